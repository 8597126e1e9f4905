// addon.abi: the ABI's sizes and offsets, so TypeScript can check its own
// copy (native/abi.ts, test/abi.test.ts).
#include <cstddef>

#include "abi/abi.h"
#include "napi/convert.h"
#include "napi/registry.h"

namespace {

void InitAbi(Napi::Env env, Napi::Object group) {
  using namespace xsw;
  Napi::Object layout = Napi::Object::New(env);
  auto set = [&](const char* k, double v) { layout.Set(k, Napi::Number::New(env, v)); };
  set("pageSize", kPageSize);
  set("grantEntrySize", sizeof(GrantEntryV1));
  set("grantEntryFlags", offsetof(GrantEntryV1, flags));
  set("grantEntryDomid", offsetof(GrantEntryV1, domid));
  set("grantEntryFrame", offsetof(GrantEntryV1, frame));
  set("GTF_permit_access", GTF_permit_access);
  set("GTF_readonly", GTF_readonly);
  set("GTF_reading", GTF_reading);
  set("GTF_writing", GTF_writing);
  set("reservedRefs", kGnttabReservedEntries);
  set("grefItemSize", sizeof(GrefListItem));
  set("grefItemPfn", offsetof(GrefListItem, pfn));
  set("grefItemsPerPage", kGrefItemsPerPage);
  set("maxGrefListPages", kMaxGrefListPages);
  set("descSize", sizeof(VringDesc));
  set("descLen", offsetof(VringDesc, len));
  set("descFlags", offsetof(VringDesc, flags));
  set("descNext", offsetof(VringDesc, next));
  set("availIdx", offsetof(VringAvail, idx));
  set("availRing", offsetof(VringAvail, ring));
  set("usedIdx", offsetof(VringUsed, idx));
  set("usedRing", offsetof(VringUsed, ring));
  set("usedElemSize", sizeof(VringUsedElem));
  set("vringAlign", kVringAlign);
  set("availOffset256", VringAvailOffset(256));
  set("usedOffset256", VringUsedOffset(256));
  set("vringSize256", VringSize(256));
  set("virtioNetHdrLen", sizeof(VirtioNetHdr));
  set("vringFlagLive", kVringFlagLive);
  group.Set("layout", layout);
  // vringLayout(num) -> { avail, used, size, pages }
  group.Set("vringLayout", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                Napi::Env env = info.Env();
                const uint32_t num = xsw::napi::ReadU32(info[0], "num", 1, kMaxRingSize);
                Napi::Object o = Napi::Object::New(env);
                o.Set("avail", double(VringAvailOffset(num)));
                o.Set("used", double(VringUsedOffset(num)));
                o.Set("size", double(VringSize(num)));
                o.Set("pages", double(VringPages(num)));
                return o;
              }, "vringLayout"));
}

}  // namespace

XSW_NAPI_EXPORTS(abi, InitAbi);
