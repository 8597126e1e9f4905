#include "grant/sim_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>

#include "common/errors.h"
#include "grant/sim_layout.h"

namespace xsw::sim {
namespace {

void MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0700) == 0 || errno == EEXIST) {
    struct stat st;
    if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return;
    throw SysError(ENOTDIR, "sim path " + path + " exists but is not a directory: remove it or choose another XSW_SIM_DIR");
  }
  int err = errno;
  throw SysError(err, "cannot create the sim directory " + path + " (" + ErrnoText(err) +
                          "): set XSW_SIM_DIR to a writable directory");
}

// Reads a whole small file; "" when it does not exist.
std::string ReadSmallFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  char buf[256];
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  return n > 0 ? std::string(buf, size_t(n)) : "";
}

// Hands out process tokens: a counter in <dir>/seq, bumped under flock.
uint32_t NextToken(const std::string& dir) {
  std::string path = dir + "/seq";
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    int err = errno;
    throw SysError(err, "cannot open " + path + " (" + ErrnoText(err) + "): check the sim directory's permissions");
  }
  uint32_t token = 0;
  try {
    LockFile(fd, path.c_str());
    uint32_t last = 0;
    if (pread(fd, &last, sizeof(last), 0) != ssize_t(sizeof(last))) last = 0;
    token = last + 1;
    if (token == 0) token = 1;
    if (pwrite(fd, &token, sizeof(token), 0) != ssize_t(sizeof(token))) {
      int err = errno;
      throw SysError(err, "cannot update " + path + " (" + ErrnoText(err) + ")");
    }
  } catch (...) {
    close(fd);
    throw;
  }
  close(fd);  // also drops the lock
  return token;
}

}  // namespace

std::string DefaultSimDir() {
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  if (xdg && *xdg) return std::string(xdg) + "/xsw-sim";
  if (geteuid() == 0) return "/run/xsw-sim";
  return "/tmp/xsw-sim-" + std::to_string(geteuid());
}

std::string ResolveSimDir(const std::string& configured) {
  if (!configured.empty()) return configured;
  const char* env = std::getenv("XSW_SIM_DIR");
  if (env && *env) return env;
  return DefaultSimDir();
}

void EnsureSimDir(const std::string& dir) {
  MakeDir(dir);
  MakeDir(dir + "/procs");
}

uint32_t ReadGntallocLimit(const std::string& dir) {
  std::string text = ReadSmallFile(dir + "/config");
  const char* key = "gntalloc_limit=";
  size_t at = text.find(key);
  if (at == std::string::npos) return kDefaultGntallocLimit;
  unsigned long v = std::strtoul(text.c_str() + at + std::strlen(key), nullptr, 10);
  return v == 0 || v > kSimTableEntries ? kDefaultGntallocLimit : uint32_t(v);
}

void WriteSimConfig(const std::string& dir, uint32_t gntalloc_limit) {
  if (gntalloc_limit > kSimTableEntries)
    throw SysError(EINVAL, "gntalloc limit " + std::to_string(gntalloc_limit) + " exceeds the sim grant table (" +
                               std::to_string(kSimTableEntries) + " entries): choose a smaller limit");
  uint32_t limit = gntalloc_limit ? gntalloc_limit : ReadGntallocLimit(dir);
  std::string tmp = dir + "/.config." + std::to_string(getpid());
  std::string text = "gntalloc_limit=" + std::to_string(limit) + "\n";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || write(fd, text.data(), text.size()) != ssize_t(text.size())) {
    int err = errno;
    if (fd >= 0) close(fd);
    throw SysError(err, "cannot write the sim config in " + dir + " (" + ErrnoText(err) + ")");
  }
  close(fd);
  if (rename(tmp.c_str(), (dir + "/config").c_str()) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    throw SysError(err, "cannot write the sim config in " + dir + " (" + ErrnoText(err) + ")");
  }
}

std::vector<domid_t> ListDomains(const std::string& dir) {
  std::vector<domid_t> out;
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    const char* name = e->d_name;
    if (std::strncmp(name, "dom", 3) != 0 || !name[3]) continue;
    char* end = nullptr;
    unsigned long v = std::strtoul(name + 3, &end, 10);
    if (*end == 0 && v < kDomidFirstReserved) out.push_back(domid_t(v));
  }
  closedir(d);
  return out;
}

std::string DomainDir(const std::string& dir, domid_t domid) { return dir + "/dom" + std::to_string(domid); }

void LockFile(int fd, const char* what) {
  while (flock(fd, LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    int err = errno;
    throw SysError(err, std::string("cannot lock ") + what + " (" + ErrnoText(err) + ")");
  }
}

void UnlockFile(int fd) { flock(fd, LOCK_UN); }

ProcRegistration::ProcRegistration(const std::string& dir, domid_t domid) {
  // Lock a temporary file first and rename it into place, so no reaper ever
  // sees a registration whose lock is not yet held.
  std::random_device rd;
  std::string tmp = dir + "/procs/.new-" + std::to_string(getpid()) + "-" + std::to_string(rd());
  fd_ = open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd_ < 0) {
    int err = errno;
    throw SysError(err, "cannot register with the sim in " + dir + " (" + ErrnoText(err) +
                            "): check that the sim directory is writable");
  }
  try {
    LockFile(fd_, tmp.c_str());
    token_ = NextToken(dir);
    std::string text = std::to_string(getpid()) + " " + std::to_string(domid) + "\n";
    if (write(fd_, text.data(), text.size()) != ssize_t(text.size())) throw SysError(errno, "cannot write " + tmp);
    path_ = dir + "/procs/" + std::to_string(token_);
    if (rename(tmp.c_str(), path_.c_str()) != 0) throw SysError(errno, "cannot rename " + tmp + " to " + path_);
  } catch (...) {
    unlink(tmp.c_str());
    close(fd_);
    throw;
  }
}

ProcRegistration::~ProcRegistration() {
  unlink(path_.c_str());
  close(fd_);
}

void DeadProc::Finish() {
  unlink(path.c_str());
  if (fd >= 0) close(fd);
  fd = -1;
}

std::vector<DeadProc> FindDeadProcs(const std::string& dir, uint32_t self_token) {
  std::vector<DeadProc> dead;
  std::string procs = dir + "/procs";
  DIR* d = opendir(procs.c_str());
  if (!d) return dead;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    bool temp = name.rfind(".new-", 0) == 0;
    char* end = nullptr;
    unsigned long token = std::strtoul(name.c_str(), &end, 10);
    if (!temp && (*end != 0 || token == 0 || token == self_token || token > UINT32_MAX)) continue;
    std::string path = procs + "/" + name;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {  // its owner lives
      close(fd);
      continue;
    }
    if (temp) {  // a registration that died half way owns nothing yet; a fresh one may not be locked yet
      struct stat st;
      if (fstat(fd, &st) == 0 && time(nullptr) - st.st_mtime > 10) unlink(path.c_str());
      close(fd);
      continue;
    }
    DeadProc p;
    p.token = uint32_t(token);
    p.path = path;
    p.fd = fd;
    char buf[64] = {0};
    if (pread(fd, buf, sizeof(buf) - 1, 0) > 0) std::sscanf(buf, "%d %d", &p.pid, &p.domid);
    dead.push_back(p);
  }
  closedir(d);
  return dead;
}

}  // namespace xsw::sim
