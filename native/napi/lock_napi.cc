// An exclusive lock held for a process's lifetime (native/lock.ts wraps it):
//   lockFileExclusive(path) -> fd
// Opens the file (creating it, mode 0644, close-on-exec) and takes
// flock(LOCK_EX | LOCK_NB). The lock belongs to the open file, so the kernel
// drops it when the process dies, even by SIGKILL: nothing stale is left.
// The caller keeps the fd open for as long as it wants the lock.
// Throws an Error whose .code is an errno name: 'EAGAIN' when another open
// file holds the lock, else why the file could not be opened or locked.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "core/status.h"
#include "napi/registry.h"

namespace {

Napi::Value LockFileExclusive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "Expected path to be a string");
  std::string path = info[0].As<Napi::String>();
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  int err = fd < 0 ? errno : 0;
  if (fd >= 0) {
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      if (errno == EINTR) continue;
      err = errno == EWOULDBLOCK ? EAGAIN : errno;
      close(fd);
      fd = -1;
      break;
    }
  }
  if (fd < 0) {
    Napi::Error e = Napi::Error::New(env, "cannot lock " + path + " (" + xsw::ErrnoText(err) + ")");
    e.Set("code", Napi::String::New(env, xsw::ErrnoName(err)));
    throw e;
  }
  return Napi::Number::New(env, fd);
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("lockFileExclusive", Napi::Function::New(env, LockFileExclusive));
}

}  // namespace

XSW_NAPI_EXPORTS(lock, Init);
