// addon.vhost: vhost-user ports of the back end's switch (backend/vhost.ts wraps them):
//   VhostUserPort  one socket (listening, or connecting with `client`) and
//                  the peer connected to it, attached to a NativeSwitch
// The socket is watched by libuv on the JS thread (uv_poll), so every
// message is handled there, like every other control-plane call into the
// switch; the data thread never waits for the socket.
#include <unistd.h>
#include <uv.h>

#include <memory>
#include <string>

#include "common/errors.h"
#include "common/ethernet.h"
#include "napi/convert.h"
#include "napi/registry.h"
#include "napi/switch_access.h"
#include "vhost/port.h"

namespace {

using xsw::napi::Guard;
using xsw::napi::ReadObject;

class VhostUserPort : public Napi::ObjectWrap<VhostUserPort> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "VhostUserPort",
                       {InstanceMethod<&VhostUserPort::Tick>("tick"), InstanceMethod<&VhostUserPort::Slot>("slot"),
                        InstanceMethod<&VhostUserPort::Close>("close")});
  }

  // new VhostUserPort(nativeSwitch, { path, client, mac?: 'xx:..', domid })
  explicit VhostUserPort(const Napi::CallbackInfo& info) : Napi::ObjectWrap<VhostUserPort>(info) {
    Napi::Env env = info.Env();
    xsw::Switch* sw = xsw::napi::SwitchOf(info[0], "switch");
    switch_ref_ = Napi::Persistent(info[0].As<Napi::Object>());  // the switch outlives its ports
    Napi::Object o = ReadObject(info[1], "options");
    xsw::vhost::PortConfig cfg;
    cfg.path = xsw::napi::ReadString(o.Get("path"), "path");
    cfg.client = o.Get("client").ToBoolean();
    cfg.domid = uint16_t(xsw::napi::ReadU32(o.Get("domid"), "domid", 0, 0xFFFF));
    if (!xsw::napi::IsAbsent(o.Get("mac"))) {
      const std::string mac = xsw::napi::ReadString(o.Get("mac"), "mac");
      auto parsed = xsw::ParseMac(mac);
      if (!parsed) throw Napi::TypeError::New(env, "Expected mac to look like 02:00:00:00:00:11, got '" + mac + "'");
      cfg.mac = *parsed;
    }
    port_ = Guard(env, [&] { return std::make_unique<xsw::vhost::Port>(sw, cfg); });
    napi_get_uv_event_loop(env, &loop_);
    Rewatch();
  }

  ~VhostUserPort() override { Shutdown(); }

 private:
  static void OnPoll(uv_poll_t* h, int status, int events) {
    auto* self = static_cast<VhostUserPort*>(h->data);
    if (self == nullptr || !self->port_) return;
    try {
      self->port_->OnReadable();
    } catch (...) {
      // Handlers report through their log; nothing may unwind into libuv.
    }
    self->Rewatch();
  }

  // Watches the port's current fd, and closes the fds it let go of once they are no longer watched.
  void Rewatch() {
    const int fd = port_ ? port_->WatchFd() : -1;
    if (fd != watched_ && poll_ != nullptr) {
      uv_poll_stop(poll_);
      poll_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
      watched_ = -1;
    }
    if (port_) {
      for (int f : port_->TakeRetiredFds()) ::close(f);
    }
    if (fd >= 0 && poll_ == nullptr) {
      poll_ = new uv_poll_t;
      if (uv_poll_init(loop_, poll_, fd) != 0) {
        delete poll_;
        poll_ = nullptr;
        return;
      }
      poll_->data = this;
      uv_poll_start(poll_, UV_READABLE | UV_DISCONNECT, &VhostUserPort::OnPoll);
      watched_ = fd;
    }
  }

  void Shutdown() {
    if (poll_ != nullptr) {
      uv_poll_stop(poll_);
      poll_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
      watched_ = -1;
    }
    port_.reset();  // detaches its device while the switch is still alive
    if (!switch_ref_.IsEmpty()) switch_ref_.Reset();
  }

  // tick() -> [{ level: 'info' | 'warn', msg }]: periodic work (client
  // reconnects, MAC learning, quarantine) and the log lines since the last call.
  Napi::Value Tick(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array out = Napi::Array::New(env);
    if (!port_) return out;
    try {
      port_->Tick();
    } catch (const std::exception& e) {
      // Never expected (the session reports through its log), but never fatal either.
    }
    Rewatch();
    uint32_t i = 0;
    for (const xsw::vhost::LogLine& l : port_->DrainLog()) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("level", l.info ? "info" : "warn");
      o.Set("msg", l.text);
      out.Set(i++, o);
    }
    return out;
  }

  // slot() -> the switch slot of the attached device, or -1.
  Napi::Value Slot(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), port_ ? port_->slot() : -1);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  std::unique_ptr<xsw::vhost::Port> port_;
  Napi::ObjectReference switch_ref_;
  uv_loop_t* loop_ = nullptr;
  uv_poll_t* poll_ = nullptr;
  int watched_ = -1;
};

void InitVhost(Napi::Env env, Napi::Object group) { group.Set("VhostUserPort", VhostUserPort::Define(env)); }

}  // namespace

XSW_NAPI_EXPORTS(vhost, InitVhost);
