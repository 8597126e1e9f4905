// Errors of the control paths: an errno value plus one sentence for people.
// The data plane never throws; it returns codes and counts.
#pragma once

#include <cerrno>
#include <stdexcept>
#include <string>

namespace xsw {

class SysError : public std::runtime_error {
 public:
  SysError(int err, const std::string& message) : std::runtime_error(message), err_(err) {}
  int err() const { return err_; }

 private:
  int err_;
};

// "ENOSPC", "EACCES", ...: the name the JS side puts in error.code.
const char* ErrnoName(int err);

// "ENOSPC: No space left on device": for the parenthesis of an error sentence.
std::string ErrnoText(int err);

}  // namespace xsw
