#include "common/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>

#include "common/errors.h"

namespace xsw {

int LockFileExclusive(const std::string& path) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw SysError(errno, "cannot open " + path + " (" + ErrnoText(errno) + ")");
  for (;;) {
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) return fd;
    int err = errno;
    if (err == EINTR) continue;
    close(fd);
    if (err == EWOULDBLOCK) return -1;
    throw SysError(err, "cannot lock " + path + " (" + ErrnoText(err) + ")");
  }
}

}  // namespace xsw
