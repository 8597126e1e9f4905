// The sim directory: where it is, its config, and the registry of processes
// that use it (liveness without a daemon: a file per process held with flock).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "abi/abi.h"

namespace xsw::sim {

// $XDG_RUNTIME_DIR/xsw-sim, else /run/xsw-sim for root, else /tmp/xsw-sim-<uid>.
std::string DefaultSimDir();
// `configured`, else $XSW_SIM_DIR, else DefaultSimDir().
std::string ResolveSimDir(const std::string& configured);
// Creates the directory and its procs/ (mode 0700) if missing.
void EnsureSimDir(const std::string& dir);

uint32_t ReadGntallocLimit(const std::string& dir);
// limit 0 keeps the current value (or writes the default when there is none).
void WriteSimConfig(const std::string& dir, uint32_t gntalloc_limit);

// Domain directories present in the sim dir.
std::vector<domid_t> ListDomains(const std::string& dir);
std::string DomainDir(const std::string& dir, domid_t domid);

// flock(LOCK_EX) that retries on EINTR; throws SysError on failure.
void LockFile(int fd, const char* what);
void UnlockFile(int fd);

// This process's entry in procs/: a unique token (never reused) and a file
// locked for as long as the registration lives.
class ProcRegistration {
 public:
  ProcRegistration(const std::string& dir, domid_t domid);
  ~ProcRegistration();
  ProcRegistration(const ProcRegistration&) = delete;
  ProcRegistration& operator=(const ProcRegistration&) = delete;
  uint32_t token() const { return token_; }

 private:
  std::string path_;
  int fd_ = -1;
  uint32_t token_ = 0;
};

// A process that died without cleaning up, with its registration file
// locked by us. Finish() removes it once its state has been undone.
struct DeadProc {
  uint32_t token = 0;
  int pid = 0;
  int domid = -1;
  std::string path;
  int fd = -1;
  void Finish();
};

// Every registered process other than `self_token` whose lock can be taken.
std::vector<DeadProc> FindDeadProcs(const std::string& dir, uint32_t self_token);

}  // namespace xsw::sim
