// Exposes the ABI's sizes and offsets so TypeScript can check its own copy.
#include <cstddef>

#include "abi.h"
#include "napi/registry.h"

namespace {

void InitAbi(Napi::Env env, Napi::Object exports) {
  using namespace xsw;
  Napi::Object abi = Napi::Object::New(env);
  auto set = [&](const char* k, double v) { abi.Set(k, Napi::Number::New(env, v)); };
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
  exports.Set("abi", abi);
  exports.Set("vringLayout", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                Napi::Env env = info.Env();
                uint32_t num = info[0].As<Napi::Number>().Uint32Value();
                Napi::Object o = Napi::Object::New(env);
                o.Set("avail", double(VringAvailOffset(num)));
                o.Set("used", double(VringUsedOffset(num)));
                o.Set("size", double(VringSize(num)));
                o.Set("pages", double(VringPages(num)));
                return o;
              }));
}

}  // namespace

XSW_NAPI_EXPORTS(abi, InitAbi);
