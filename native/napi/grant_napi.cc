// N-API surface of the grant layer: openGrants() returns a native object over
// one GrantProvider; allocations and mappings reach JS as external
// ArrayBuffers that are detached the moment their memory is released.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/grant.h"
#include "core/grant_sim.h"
#include "core/grant_xen.h"
#include "core/sim_dir.h"
#include "napi/registry.h"

namespace {

using xsw::SysError;

[[noreturn]] void ThrowSys(Napi::Env env, const SysError& e) {
  Napi::Error err = Napi::Error::New(env, e.what());
  err.Set("code", Napi::String::New(env, xsw::ErrnoName(e.err())));
  err.Set("errno", Napi::Number::New(env, e.err()));
  throw err;
}

// Runs fn, turning SysError into a JS Error with code = errno name.
template <typename Fn>
auto Guard(Napi::Env env, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const SysError& e) {
    ThrowSys(env, e);
  }
}

uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* name, uint64_t max = UINT32_MAX) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string("Expected ") + name + " to be a number");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= 0 && v <= double(max)) || v != double(uint64_t(v)))
    throw Napi::RangeError::New(info.Env(), std::string("Expected ") + name + " to be an integer from 0 to " +
                                                std::to_string(max));
  return uint32_t(v);
}

uint64_t ArgId(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), "Expected id to be a number");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= 0) || v != double(uint64_t(v))) throw Napi::RangeError::New(info.Env(), "Expected id to be a handle id");
  return uint64_t(v);
}

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
      if (o.Has("platform") && !o.Get("platform").IsUndefined()) {
        if (!o.Get("platform").IsString()) throw Napi::TypeError::New(env, "Expected platform to be 'auto', 'xen' or 'sim'");
        opts.platform = o.Get("platform").As<Napi::String>().Utf8Value();
      }
      if (o.Has("simDir") && !o.Get("simDir").IsUndefined()) {
        if (!o.Get("simDir").IsString()) throw Napi::TypeError::New(env, "Expected simDir to be a string");
        opts.sim_dir = o.Get("simDir").As<Napi::String>().Utf8Value();
      }
      if (o.Has("domid") && !o.Get("domid").IsUndefined()) {
        Napi::Value d = o.Get("domid");
        double v = d.IsNumber() ? d.As<Napi::Number>().DoubleValue() : -1;
        if (!(v >= 0 && v < xsw::kDomidFirstReserved) || v != double(uint32_t(v)))
          throw Napi::RangeError::New(env, "Expected domid to be an integer from 0 to 32751");
        opts.self_domid = xsw::domid_t(v);
      }
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
    uint32_t to = ArgU32(info, 0, "toDomid", 0xFFFF);
    uint32_t pages = ArgU32(info, 1, "pages");
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
    uint64_t id = ArgId(info, 0);
    xsw::GrantProvider& p = Provider(env);
    Detach(id);
    Guard(env, [&] { p.Free(id); });
    return env.Undefined();
  }

  Napi::Value SetUnmapNotify(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t id = ArgId(info, 0);
    if (!info[1].IsNumber()) throw Napi::TypeError::New(env, "Expected byteOffset to be a number");
    double off = info[1].As<Napi::Number>().DoubleValue();
    if (!(off >= 0) || off != double(uint64_t(off))) throw Napi::RangeError::New(env, "Expected byteOffset to be a non-negative integer");
    Guard(env, [&] { Provider(env).SetUnmapNotify(id, uint64_t(off)); });
    return env.Undefined();
  }

  // map(fromDomid, refs: Uint32Array | number[], writable)
  Napi::Value Map(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t from = ArgU32(info, 0, "fromDomid", 0xFFFF);
    std::vector<xsw::grant_ref_t> refs;
    if (info[1].IsTypedArray() && info[1].As<Napi::TypedArray>().TypedArrayType() == napi_uint32_array) {
      Napi::Uint32Array a = info[1].As<Napi::Uint32Array>();
      refs.assign(a.Data(), a.Data() + a.ElementLength());
    } else if (info[1].IsArray()) {
      Napi::Array a = info[1].As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); ++i) {
        Napi::Value v = a.Get(i);
        double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
        if (!(d >= 0 && d <= double(UINT32_MAX)) || d != double(uint32_t(d)))
          throw Napi::TypeError::New(env, "Expected grefs to be unsigned 32-bit integers");
        refs.push_back(uint32_t(d));
      }
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
    uint64_t id = ArgId(info, 0);
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

void InitGrant(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = GrantsWrap::Define(env);
  auto* ctor_ref = new Napi::FunctionReference(Napi::Persistent(ctor));
  env.AddCleanupHook([ctor_ref] { delete ctor_ref; });
  exports.Set("NativeGrants", ctor);
  exports.Set("openGrants", Napi::Function::New(env, [ctor_ref](const Napi::CallbackInfo& info) -> Napi::Value {
                std::vector<napi_value> args;
                if (info.Length() > 0) args.push_back(info[0]);
                return ctor_ref->New(args);
              }, "openGrants"));
  exports.Set("detectPlatform", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                return Napi::String::New(info.Env(), xsw::DetectPlatform());
              }, "detectPlatform"));
  exports.Set("defaultSimDir", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                return Napi::String::New(info.Env(), xsw::sim::DefaultSimDir());
              }, "defaultSimDir"));
  // simInit(dir, gntallocLimit): 0 keeps the configured limit.
  exports.Set("simInit", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                Napi::Env env = info.Env();
                if (!info[0].IsString()) throw Napi::TypeError::New(env, "Expected dir to be a string");
                uint32_t limit = info.Length() > 1 && !info[1].IsUndefined() ? ArgU32(info, 1, "gntallocLimit") : 0;
                Guard(env, [&] { xsw::SimInit(info[0].As<Napi::String>().Utf8Value(), limit); });
                return env.Undefined();
              }, "simInit"));
  exports.Set("simDestroyDomain", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                Napi::Env env = info.Env();
                if (!info[0].IsString()) throw Napi::TypeError::New(env, "Expected dir to be a string");
                uint32_t domid = ArgU32(info, 1, "domid", xsw::kDomidFirstReserved - 1);
                Guard(env, [&] { xsw::SimDestroyDomain(info[0].As<Napi::String>().Utf8Value(), xsw::domid_t(domid)); });
                return env.Undefined();
              }, "simDestroyDomain"));
  Napi::Object uapi = Napi::Object::New(env);
  for (const auto& [name, value] : xsw::XenUapiConstants()) uapi.Set(name, Napi::Number::New(env, double(value)));
  exports.Set("xenUapi", uapi);
}

}  // namespace

XSW_NAPI_EXPORTS(grant, InitGrant);
