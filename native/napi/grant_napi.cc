// addon.grant: the grant layer. open() returns a native object over one
// GrantProvider; allocations and mappings reach JS as external ArrayBuffers
// that are detached the moment their memory is released.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "grant/provider.h"
#include "grant/sim_dir.h"
#include "grant/sim_provider.h"
#include "grant/xen_provider.h"
#include "napi/convert.h"
#include "napi/registry.h"

namespace {

using xsw::napi::Guard;
using xsw::napi::ReadU32;
using xsw::napi::ReadUint;

// An allocation or mapping id handed out by alloc/map.
uint64_t ReadId(const Napi::Value& v) { return ReadUint(v, "id"); }

Napi::Array NumberArray(Napi::Env env, const std::vector<uint32_t>& v) {
  Napi::Array a = Napi::Array::New(env, v.size());
  for (uint32_t i = 0; i < v.size(); ++i) a.Set(i, Napi::Number::New(env, v[i]));
  return a;
}

class GrantsWrap : public Napi::ObjectWrap<GrantsWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeGrants",
                       {InstanceAccessor<&GrantsWrap::Platform>("platform"),
                        InstanceMethod<&GrantsWrap::Alloc>("alloc"), InstanceMethod<&GrantsWrap::Free>("free"),
                        InstanceMethod<&GrantsWrap::SetUnmapNotify>("setUnmapNotify"),
                        InstanceMethod<&GrantsWrap::Map>("map"), InstanceMethod<&GrantsWrap::Unmap>("unmap"),
                        InstanceMethod<&GrantsWrap::Close>("close")});
  }

  // new NativeGrants({ platform, simDir, domid })
  explicit GrantsWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GrantsWrap>(info) {
    Napi::Env env = info.Env();
    xsw::GrantOptions opts;
    if (info.Length() > 0 && info[0].IsObject()) {
      Napi::Object o = info[0].As<Napi::Object>();
      opts.platform = xsw::napi::OptString(o, "platform", opts.platform);
      opts.sim_dir = xsw::napi::OptString(o, "simDir", opts.sim_dir);
      opts.self_domid = xsw::domid_t(xsw::napi::OptU32(o, "domid", 0, 0, xsw::kDomidFirstReserved - 1));
    }
    provider_ = Guard(env, [&] { return xsw::OpenGrantProvider(opts); });
  }

 private:
  xsw::GrantProvider& Provider(Napi::Env env) {
    if (!provider_) throw Napi::Error::New(env, "this Grants object is closed: open a new one with Grants.open()");
    return *provider_;
  }

  Napi::Value Platform(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), kind_.empty() ? (kind_ = Provider(info.Env()).kind()) : kind_);
  }

  Napi::Value Wrap(Napi::Env env, uint64_t id, uint8_t* addr, uint32_t pages) {
    Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, addr, size_t(pages) * xsw::kPageSize);
    buffers_[id] = Napi::Reference<Napi::ArrayBuffer>::New(buffer, 0);  // weak: JS owns the buffer object
    return buffer;
  }

  void Detach(uint64_t id) {
    auto it = buffers_.find(id);
    if (it == buffers_.end()) return;
    if (!it->second.IsEmpty()) {
      Napi::ArrayBuffer b = it->second.Value();
      if (!b.IsEmpty() && !b.IsDetached()) b.Detach();
    }
    buffers_.erase(it);
  }

  // alloc(toDomid, pages, writable)
  Napi::Value Alloc(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t to = ReadU32(info[0], "toDomid", 0, 0xFFFF);
    uint32_t pages = ReadU32(info[1], "pages");
    bool writable = info.Length() < 3 || info[2].ToBoolean();
    xsw::GrantAllocation a = Guard(env, [&] { return Provider(env).Allocate(xsw::domid_t(to), pages, writable); });
    Napi::Object o = Napi::Object::New(env);
    o.Set("id", Napi::Number::New(env, double(a.id)));
    o.Set("grefs", NumberArray(env, a.grefs));
    o.Set("pfns", NumberArray(env, a.pfns));
    o.Set("pages", Napi::Number::New(env, a.pages));
    o.Set("buffer", Wrap(env, a.id, a.addr, a.pages));
    o.Set("addr", Napi::BigInt::New(env, uint64_t(reinterpret_cast<uintptr_t>(a.addr))));
    return o;
  }

  Napi::Value Free(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t id = ReadId(info[0]);
    xsw::GrantProvider& p = Provider(env);
    Detach(id);
    Guard(env, [&] { p.Free(id); });
    return env.Undefined();
  }

  Napi::Value SetUnmapNotify(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t id = ReadId(info[0]);
    uint64_t off = ReadUint(info[1], "byteOffset");
    Guard(env, [&] { Provider(env).SetUnmapNotify(id, off); });
    return env.Undefined();
  }

  // map(fromDomid, refs: Uint32Array | number[], writable)
  Napi::Value Map(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t from = ReadU32(info[0], "fromDomid", 0, 0xFFFF);
    std::vector<xsw::grant_ref_t> refs;
    if (info[1].IsTypedArray() && info[1].As<Napi::TypedArray>().TypedArrayType() == napi_uint32_array) {
      Napi::Uint32Array a = info[1].As<Napi::Uint32Array>();
      refs.assign(a.Data(), a.Data() + a.ElementLength());
    } else if (info[1].IsArray()) {
      Napi::Array a = info[1].As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); ++i) refs.push_back(ReadU32(a.Get(i), "each gref"));
    } else {
      throw Napi::TypeError::New(env, "Expected grefs to be a Uint32Array or an array of numbers");
    }
    bool writable = info.Length() < 3 || info[2].ToBoolean();
    xsw::GrantMapping m = Guard(env, [&] {
      return Provider(env).Map(xsw::domid_t(from), refs.data(), uint32_t(refs.size()), writable);
    });
    Napi::Object o = Napi::Object::New(env);
    o.Set("id", Napi::Number::New(env, double(m.id)));
    o.Set("pages", Napi::Number::New(env, m.pages));
    o.Set("buffer", Wrap(env, m.id, m.addr, m.pages));
    o.Set("addr", Napi::BigInt::New(env, uint64_t(reinterpret_cast<uintptr_t>(m.addr))));
    return o;
  }

  Napi::Value Unmap(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t id = ReadId(info[0]);
    xsw::GrantProvider& p = Provider(env);
    Detach(id);
    Guard(env, [&] { p.Unmap(id); });
    return env.Undefined();
  }

  // Releases everything still held (buffers detached first).
  Napi::Value Close(const Napi::CallbackInfo& info) {
    while (!buffers_.empty()) Detach(buffers_.begin()->first);
    provider_.reset();
    return info.Env().Undefined();
  }

  std::unique_ptr<xsw::GrantProvider> provider_;
  std::string kind_;
  std::map<uint64_t, Napi::Reference<Napi::ArrayBuffer>> buffers_;
};

void InitGrant(Napi::Env env, Napi::Object group) {
  Napi::Function ctor = GrantsWrap::Define(env);
  auto* ctor_ref = new Napi::FunctionReference(Napi::Persistent(ctor));
  env.AddCleanupHook([ctor_ref] { delete ctor_ref; });
  group.Set("NativeGrants", ctor);
  // open(options) -> NativeGrants
  group.Set("open", Napi::Function::New(env, [ctor_ref](const Napi::CallbackInfo& info) -> Napi::Value {
                std::vector<napi_value> args;
                if (info.Length() > 0) args.push_back(info[0]);
                return ctor_ref->New(args);
              }, "open"));
  group.Set("detectPlatform", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                return Napi::String::New(info.Env(), xsw::DetectPlatform());
              }, "detectPlatform"));
  group.Set("defaultSimDir", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                return Napi::String::New(info.Env(), xsw::sim::DefaultSimDir());
              }, "defaultSimDir"));
  // simInit(dir, gntallocLimit): 0 keeps the configured limit.
  group.Set("simInit", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                Napi::Env env = info.Env();
                const std::string dir = xsw::napi::ReadString(info[0], "dir");
                uint32_t limit = xsw::napi::IsAbsent(info[1]) ? 0 : ReadU32(info[1], "gntallocLimit");
                Guard(env, [&] { xsw::SimInit(dir, limit); });
                return env.Undefined();
              }, "simInit"));
  group.Set("simDestroyDomain", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                Napi::Env env = info.Env();
                const std::string dir = xsw::napi::ReadString(info[0], "dir");
                uint32_t domid = ReadU32(info[1], "domid", 0, xsw::kDomidFirstReserved - 1);
                Guard(env, [&] { xsw::SimDestroyDomain(dir, xsw::domid_t(domid)); });
                return env.Undefined();
              }, "simDestroyDomain"));
  Napi::Object uapi = Napi::Object::New(env);
  for (const auto& [name, value] : xsw::XenUapiConstants()) uapi.Set(name, Napi::Number::New(env, double(value)));
  group.Set("xenUapi", uapi);
}

}  // namespace

XSW_NAPI_EXPORTS(grant, InitGrant);
