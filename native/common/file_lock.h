// An exclusive lock that lasts as long as the process: flock(2) on a file.
// The kernel releases it when the holder exits or is killed, so a SIGKILLed
// holder cannot leave it stale (used for one xsw-backend per host).
#pragma once

#include <string>

namespace xsw {

// Opens (creating, mode 0644) and locks `path` without waiting. Returns the
// fd that holds the lock (close it to let go), or -1 when another open file
// holds it. Throws SysError when the file cannot be opened or locked.
int LockFileExclusive(const std::string& path);

}  // namespace xsw
