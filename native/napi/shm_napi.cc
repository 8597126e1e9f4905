// addon.shm: the vring, gref-list, mempool and region code, for tests
// and tools. Calls are per burst, never per descriptor. The back end and the
// front end drive the C++ classes directly from their own native threads and
// do not use these bindings on the fast path.
//
// Memory arguments are either a Buffer (bounds-checked and kept alive by the
// object) or a bigint address, for mappings made elsewhere (the caller then
// guarantees the size and that the mapping outlives the object).
#include <algorithm>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "napi/convert.h"
#include "napi/registry.h"
#include "shm/gref_list.h"
#include "shm/mempool.h"
#include "shm/regions.h"
#include "shm/vring.h"

namespace {

using namespace xsw;

using napi::IsAbsent;
using napi::ReadTypedArray;
using napi::ReadU32;
using napi::ReadU64;
using napi::Span;

// A Buffer/typed array (pointer and length) or a bigint address (length unknown: 0).
struct Memory {
  uint8_t* p = nullptr;
  uint64_t len = 0;
  bool is_view = false;
};

Memory ResolveMemory(Napi::Value v, const char* what) {
  Memory m;
  if (v.IsTypedArray()) {
    auto ta = v.As<Napi::TypedArray>();
    m.p = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    m.len = ta.ByteLength();
    m.is_view = true;
  } else if (v.IsBigInt()) {
    m.p = reinterpret_cast<uint8_t*>(uintptr_t(ReadU64(v, what)));
  } else {
    throw Napi::TypeError::New(v.Env(), std::string("Expected ") + what + " to be a Buffer or a bigint address");
  }
  return m;
}

Memory RingMemory(Napi::Value v, uint32_t num) {
  Memory m = ResolveMemory(v, "ring memory");
  if (!VringSizeValid(num)) {
    throw Napi::RangeError::New(v.Env(), "vring size " + std::to_string(num) +
                                             " is not a power of two between 1 and 32768: pick e.g. 256");
  }
  if (m.is_view && m.len < VringSize(num)) {
    throw Napi::RangeError::New(v.Env(), "ring memory of " + std::to_string(m.len) + " bytes is too small for " +
                                             std::to_string(num) + " entries: it needs " +
                                             std::to_string(VringSize(num)));
  }
  return m;
}

// [{ gva: bigint, writable: boolean, buffer: Buffer } | { gva, writable, hva: bigint, len }]
void BuildRegions(Napi::Value v, RegionTable* table, std::vector<Napi::ObjectReference>* keep) {
  Napi::Env env = v.Env();
  if (!v.IsArray()) throw Napi::TypeError::New(env, "Expected regions to be an array");
  auto arr = v.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value item = arr.Get(i);
    if (!item.IsObject()) throw Napi::TypeError::New(env, "Expected regions[" + std::to_string(i) + "] to be an object");
    auto o = item.As<Napi::Object>();
    Region r;
    r.gva = ReadU64(o.Get("gva"), "region gva");
    r.writable = o.Get("writable").ToBoolean();
    Napi::Value buf = o.Get("buffer");
    if (!IsAbsent(buf)) {
      Memory m = ResolveMemory(buf, "region buffer");
      r.hva = m.p;
      r.len = IsAbsent(o.Get("len")) ? m.len : ReadU64(o.Get("len"), "region len");
      r.map_len = m.len;
      if (r.len > m.len) throw Napi::RangeError::New(env, "regions[" + std::to_string(i) + "].len is larger than its buffer");
      if (keep) keep->push_back(Napi::Persistent(buf.As<Napi::Object>()));
    } else {
      r.hva = reinterpret_cast<uint8_t*>(uintptr_t(ReadU64(o.Get("hva"), "region hva")));
      r.len = ReadU64(o.Get("len"), "region len");
      r.map_len = r.len;  // a bare address: the caller vouches for its length
    }
    if (!table->Add(r)) {
      throw Napi::RangeError::New(env, "regions[" + std::to_string(i) +
                                           "] is empty, wraps, overlaps another region, or the table is full (" +
                                           std::to_string(RegionTable::kCapacity) + "): fix the region list");
    }
  }
}

Napi::Value ViolationValue(Napi::Env env, Violation v) {
  return v == Violation::kNone ? env.Null() : Napi::String::New(env, ViolationName(v));
}

// ---------------------------------------------------------------------------

class JsVringDriver : public Napi::ObjectWrap<JsVringDriver> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "VringDriver",
                       {InstanceMethod<&JsVringDriver::Init>("init"),
                        InstanceMethod<&JsVringDriver::AddBurst>("addBurst"),
                        InstanceMethod<&JsVringDriver::Publish>("publish"),
                        InstanceMethod<&JsVringDriver::Harvest>("harvest"),
                        InstanceAccessor<&JsVringDriver::FreeDescs>("freeDescs"),
                        InstanceAccessor<&JsVringDriver::InFlight>("inFlight"),
                        InstanceAccessor<&JsVringDriver::BadUsed>("badUsed")});
  }

  // new VringDriver(mem: Buffer | bigint, num: number)
  explicit JsVringDriver(const Napi::CallbackInfo& info) : Napi::ObjectWrap<JsVringDriver>(info) {
    uint32_t num = ReadU32(info[1], "num");
    Memory m = RingMemory(info[0], num);
    try {
      driver_ = std::make_unique<VringDriver>(m.p, num);
    } catch (const std::invalid_argument& e) {
      throw Napi::RangeError::New(info.Env(), e.what());
    }
    if (m.is_view) keep_ = Napi::Persistent(info[0].As<Napi::Object>());
    bufs_.resize(num);
    used_.resize(num);
  }

 private:
  Napi::Value Init(const Napi::CallbackInfo& info) {
    driver_->Init();
    return info.Env().Undefined();
  }

  // addBurst(chains, gvas: BigUint64Array, lens: Uint32Array, nOut: Uint8Array | null,
  //          nIn: Uint8Array | null, cookies: BigUint64Array) -> chains added
  // Descriptors are taken in order from gvas/lens; nOut/nIn null mean one out
  // buffer and no in buffer per chain. Stops at the first chain that does not fit.
  Napi::Value AddBurst(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t chains = ReadU32(info[0], "chains");
    auto gvas = ReadTypedArray<uint64_t>(info[1], napi_biguint64_array, "gvas", "BigUint64Array");
    auto lens = ReadTypedArray<uint32_t>(info[2], napi_uint32_array, "lens", "Uint32Array");
    Span<uint8_t> n_out, n_in;
    if (!IsAbsent(info[3])) n_out = ReadTypedArray<uint8_t>(info[3], napi_uint8_array, "nOut", "Uint8Array");
    if (!IsAbsent(info[4])) n_in = ReadTypedArray<uint8_t>(info[4], napi_uint8_array, "nIn", "Uint8Array");
    auto cookies = ReadTypedArray<uint64_t>(info[5], napi_biguint64_array, "cookies", "BigUint64Array");
    if (cookies.len < chains || (n_out.data && n_out.len < chains) || (n_in.data && n_in.len < chains)) {
      throw Napi::RangeError::New(env, "nOut, nIn and cookies must hold at least `chains` entries");
    }
    size_t cursor = 0;
    uint32_t added = 0;
    for (; added < chains; ++added) {
      uint32_t o = n_out.data ? n_out.data[added] : 1;
      uint32_t in = n_in.data ? n_in.data[added] : 0;
      uint32_t n = o + in;
      if (n > bufs_.size() || cursor + n > gvas.len || cursor + n > lens.len) break;
      for (uint32_t k = 0; k < n; ++k) bufs_[k] = DriverBuf{gvas.data[cursor + k], lens.data[cursor + k]};
      if (driver_->Add(bufs_.data(), o, in, cookies.data[added]) < 0) break;
      cursor += n;
    }
    return Napi::Number::New(env, added);
  }

  Napi::Value Publish(const Napi::CallbackInfo& info) {
    driver_->Publish();
    return info.Env().Undefined();
  }

  // harvest(cookies: BigUint64Array, lens: Uint32Array) -> entries written
  Napi::Value Harvest(const Napi::CallbackInfo& info) {
    auto cookies = ReadTypedArray<uint64_t>(info[0], napi_biguint64_array, "cookies", "BigUint64Array");
    auto lens = ReadTypedArray<uint32_t>(info[1], napi_uint32_array, "lens", "Uint32Array");
    size_t max = std::min({cookies.len, lens.len, used_.size()});
    uint32_t n = driver_->Harvest(used_.data(), uint32_t(max));
    for (uint32_t i = 0; i < n; ++i) {
      cookies.data[i] = used_[i].cookie;
      lens.data[i] = used_[i].len;
    }
    return Napi::Number::New(info.Env(), n);
  }

  Napi::Value FreeDescs(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), driver_->FreeDescs()); }
  Napi::Value InFlight(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), driver_->InFlight()); }
  Napi::Value BadUsed(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(driver_->BadUsed())); }

  std::unique_ptr<VringDriver> driver_;
  Napi::ObjectReference keep_;
  std::vector<DriverBuf> bufs_;
  std::vector<UsedEntry> used_;
};

class JsVringDevice : public Napi::ObjectWrap<JsVringDevice> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "VringDevice",
                       {InstanceMethod<&JsVringDevice::Resume>("resume"),
                        InstanceMethod<&JsVringDevice::Avail>("avail"),
                        InstanceMethod<&JsVringDevice::PopBurst>("popBurst"),
                        InstanceMethod<&JsVringDevice::PushUsedBurst>("pushUsedBurst"),
                        InstanceMethod<&JsVringDevice::PublishUsed>("publishUsed"),
                        InstanceAccessor<&JsVringDevice::LastAvail>("lastAvail"),
                        InstanceAccessor<&JsVringDevice::UsedIdx>("usedIdx")});
  }

  // new VringDevice(mem: Buffer | bigint, num, regions, maxChainLen,
  //                 direction?: 'any' | 'device-reads' | 'device-writes')
  explicit JsVringDevice(const Napi::CallbackInfo& info) : Napi::ObjectWrap<JsVringDevice>(info) {
    Napi::Env env = info.Env();
    uint32_t num = ReadU32(info[1], "num");
    Memory m = RingMemory(info[0], num);
    BuildRegions(info[2], &regions_, &keep_regions_);
    uint32_t max_chain = ReadU32(info[3], "maxChainLen");
    RingDirection dir = RingDirection::kAny;
    if (!IsAbsent(info[4])) {
      std::string d = info[4].ToString();
      if (d == "device-reads") dir = RingDirection::kDeviceReads;
      else if (d == "device-writes") dir = RingDirection::kDeviceWrites;
      else if (d != "any") throw Napi::RangeError::New(env, "direction '" + d + "' is not one of any, device-reads, device-writes");
    }
    try {
      // A bare address: the caller vouches for the ring's length (see the top of this file).
      device_ = std::make_unique<VringDevice>(m.p, num, m.is_view ? m.len : VringSize(num), &regions_, max_chain, dir);
    } catch (const std::invalid_argument& e) {
      throw Napi::RangeError::New(env, e.what());
    }
    if (m.is_view) keep_ = Napi::Persistent(info[0].As<Napi::Object>());
  }

 private:
  Napi::Value Resume(const Napi::CallbackInfo& info) {
    device_->Resume();
    return info.Env().Undefined();
  }

  // avail() -> { count, violation: string | null }
  Napi::Value Avail(const Napi::CallbackInfo& info) {
    uint32_t count = 0;
    Violation v = device_->Avail(&count);
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("count", count);
    o.Set("violation", ViolationValue(info.Env(), v));
    return o;
  }

  // popBurst(max, heads: Uint16Array, outLens: Uint32Array, inLens: Uint32Array,
  //          firstHva?: BigUint64Array | null, nsegs?: Uint8Array | null)
  //   -> { count, violation: string | null }
  // Reads avail once, then pops up to max chains; stops at the first violation
  // (count is then the chains popped before it).
  Napi::Value PopBurst(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t max = ReadU32(info[0], "max");
    auto heads = ReadTypedArray<uint16_t>(info[1], napi_uint16_array, "heads", "Uint16Array");
    auto out_lens = ReadTypedArray<uint32_t>(info[2], napi_uint32_array, "outLens", "Uint32Array");
    auto in_lens = ReadTypedArray<uint32_t>(info[3], napi_uint32_array, "inLens", "Uint32Array");
    Span<uint64_t> first;
    Span<uint8_t> nsegs;
    if (!IsAbsent(info[4])) first = ReadTypedArray<uint64_t>(info[4], napi_biguint64_array, "firstHva", "BigUint64Array");
    if (!IsAbsent(info[5])) nsegs = ReadTypedArray<uint8_t>(info[5], napi_uint8_array, "nsegs", "Uint8Array");
    size_t cap = std::min({size_t(max), heads.len, out_lens.len, in_lens.len});
    if (first.data) cap = std::min(cap, first.len);
    if (nsegs.data) cap = std::min(cap, nsegs.len);
    uint32_t avail = 0;
    Violation v = device_->Avail(&avail);
    uint32_t n = 0;
    Chain c;
    while (v == Violation::kNone && n < avail && n < cap) {
      v = device_->Pop(&c);
      if (v != Violation::kNone || c.nseg == 0) break;
      heads.data[n] = c.head;
      out_lens.data[n] = c.out_len;
      in_lens.data[n] = c.in_len;
      if (first.data) first.data[n] = uint64_t(reinterpret_cast<uintptr_t>(c.seg[0].hva));
      if (nsegs.data) nsegs.data[n] = uint8_t(c.nseg);
      ++n;
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("count", n);
    o.Set("violation", ViolationValue(env, v));
    return o;
  }

  // pushUsedBurst(count, heads: Uint16Array, lens: Uint32Array): not visible until publishUsed().
  Napi::Value PushUsedBurst(const Napi::CallbackInfo& info) {
    uint32_t count = ReadU32(info[0], "count");
    auto heads = ReadTypedArray<uint16_t>(info[1], napi_uint16_array, "heads", "Uint16Array");
    auto lens = ReadTypedArray<uint32_t>(info[2], napi_uint32_array, "lens", "Uint32Array");
    if (heads.len < count || lens.len < count) {
      throw Napi::RangeError::New(info.Env(), "heads and lens must hold at least `count` entries");
    }
    for (uint32_t i = 0; i < count; ++i) device_->PushUsed(heads.data[i], lens.data[i]);
    return info.Env().Undefined();
  }

  Napi::Value PublishUsed(const Napi::CallbackInfo& info) {
    device_->PublishUsed();
    return info.Env().Undefined();
  }

  Napi::Value LastAvail(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), device_->LastAvail()); }
  Napi::Value UsedIdx(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), device_->UsedIdx()); }

  RegionTable regions_;
  std::vector<Napi::ObjectReference> keep_regions_;
  std::unique_ptr<VringDevice> device_;
  Napi::ObjectReference keep_;
};

// ---------------------------------------------------------------------------

// grefListPages(entries) -> number
Napi::Value GrefListPagesJs(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), GrefListPages(ReadU32(info[0], "entries")));
}

// encodeGrefList(grefs: Uint32Array, pfns: Uint32Array | null, nPages?) -> Buffer of nPages * 4096
Napi::Value EncodeGrefListJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto grefs = ReadTypedArray<uint32_t>(info[0], napi_uint32_array, "grefs", "Uint32Array");
  Span<uint32_t> pfns;
  if (!IsAbsent(info[1])) {
    pfns = ReadTypedArray<uint32_t>(info[1], napi_uint32_array, "pfns", "Uint32Array");
    if (pfns.len < grefs.len) throw Napi::RangeError::New(env, "pfns must have one entry per gref");
  }
  if (grefs.len > UINT32_MAX) throw Napi::RangeError::New(env, "too many grefs");
  uint32_t n = uint32_t(grefs.len);
  uint32_t pages = IsAbsent(info[2]) ? GrefListPages(n) : ReadU32(info[2], "nPages");
  if (pages == 0 || pages > 1024) throw Napi::RangeError::New(env, "nPages must be between 1 and 1024");
  std::vector<uint64_t> aligned(size_t(pages) * kPageSize / 8);
  auto* bytes = reinterpret_cast<uint8_t*>(aligned.data());
  if (!EncodeGrefList(grefs.data, pfns.data, n, bytes, pages)) {
    throw Napi::RangeError::New(env, std::to_string(n) + " grefs do not fit in " + std::to_string(pages) +
                                         " list pages: use at least " + std::to_string(GrefListPages(n)));
  }
  return Napi::Buffer<uint8_t>::Copy(env, bytes, size_t(pages) * kPageSize);
}

// decodeGrefList(pages: Buffer, maxEntries) -> { ok, grefs: Uint32Array, reason: string | null }
// The byte length must be a whole number of pages.
Napi::Value DecodeGrefListJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Memory m = ResolveMemory(info[0], "pages");
  if (!m.is_view) throw Napi::TypeError::New(env, "Expected pages to be a Buffer");
  if (m.len % kPageSize != 0) throw Napi::RangeError::New(env, "gref-list pages must be a multiple of 4096 bytes");
  uint32_t max_entries = ReadU32(info[1], "maxEntries");
  uint64_t n_pages = m.len / kPageSize;
  if (n_pages > UINT32_MAX) throw Napi::RangeError::New(env, "too many gref-list pages");
  // The decoder wants 8-byte alignment; a Buffer may start anywhere.
  std::vector<uint64_t> aligned(size_t(m.len / 8));
  if (m.len) std::memcpy(aligned.data(), m.p, size_t(m.len));
  std::vector<grant_ref_t> out;
  GrefListStatus st = DecodeGrefList(reinterpret_cast<uint8_t*>(aligned.data()), uint32_t(n_pages), max_entries, &out);
  Napi::Object o = Napi::Object::New(env);
  o.Set("ok", st.ok);
  auto arr = Napi::Uint32Array::New(env, out.size());
  for (size_t i = 0; i < out.size(); ++i) arr[i] = out[i];
  o.Set("grefs", arr);
  o.Set("reason", st.ok ? env.Null() : Napi::String::New(env, st.reason));
  return o;
}

// mempoolLayout(nbMbuf, bufSize?, withOffsets?) ->
//   { nbMbuf, bufSize, stride, bufsPerPage, pages, bytes, offsets?: Float64Array } | null
Napi::Value MempoolLayoutJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t nb = ReadU32(info[0], "nbMbuf");
  uint32_t size = IsAbsent(info[1]) ? kDefaultMbufBufSize : ReadU32(info[1], "bufSize");
  auto l = MempoolLayout::Make(nb, size);
  if (!l) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  o.Set("nbMbuf", l->nb_mbuf);
  o.Set("bufSize", l->buf_size);
  o.Set("stride", l->stride);
  o.Set("bufsPerPage", l->bufs_per_page);
  o.Set("pages", l->pages);
  o.Set("bytes", double(l->Bytes()));
  if (info[2].ToBoolean()) {
    auto offsets = Napi::Float64Array::New(env, l->nb_mbuf);
    for (uint32_t i = 0; i < l->nb_mbuf; ++i) offsets[i] = double(l->BufOffset(i));
    o.Set("offsets", offsets);
  }
  return o;
}

// regionTranslate(regions, gva, len, forWrite) -> { hva: bigint | null, violation: string | null }
// Throws RangeError when a region is refused by the table.
Napi::Value RegionTranslateJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RegionTable table;
  BuildRegions(info[0], &table, nullptr);
  Violation why = Violation::kNone;
  uint8_t* p = table.Translate(ReadU64(info[1], "gva"), ReadU64(info[2], "len"), info[3].ToBoolean(), &why);
  Napi::Object o = Napi::Object::New(env);
  o.Set("hva", p ? Napi::Value(Napi::BigInt::New(env, uint64_t(reinterpret_cast<uintptr_t>(p)))) : env.Null());
  o.Set("violation", p ? env.Null() : ViolationValue(env, why));
  return o;
}

void InitShm(Napi::Env env, Napi::Object group) {
  group.Set("VringDriver", JsVringDriver::Define(env));
  group.Set("VringDevice", JsVringDevice::Define(env));
  // Every violation name, index = code ([0] is "none"): shm/violation.h's table.
  Napi::Array names = Napi::Array::New(env, kViolationCount);
  for (uint32_t i = 0; i < kViolationCount; ++i) names.Set(i, ViolationName(Violation(i)));
  group.Set("violationNames", names);
  group.Set("grefListPages", Napi::Function::New(env, GrefListPagesJs, "grefListPages"));
  group.Set("encodeGrefList", Napi::Function::New(env, EncodeGrefListJs, "encodeGrefList"));
  group.Set("decodeGrefList", Napi::Function::New(env, DecodeGrefListJs, "decodeGrefList"));
  group.Set("mempoolLayout", Napi::Function::New(env, MempoolLayoutJs, "mempoolLayout"));
  group.Set("regionTranslate", Napi::Function::New(env, RegionTranslateJs, "regionTranslate"));
}

}  // namespace

XSW_NAPI_EXPORTS(shm, InitShm);
