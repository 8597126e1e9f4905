// vhost-user message framing over a non-blocking unix stream socket: the
// 12-byte header, a payload of at most kMaxPayload bytes, and up to kMaxFds
// file descriptors passed with SCM_RIGHTS. Each message is read into private
// memory exactly once; a header or fd count no request can have is refused
// here, before anything looks at the payload. Control path only.
#pragma once

#include <cstdint>
#include <string>

#include "vhost/protocol.h"

namespace xsw::vhost {

// One whole message and the fds that came with it. The message owns its fds
// and closes those nobody took (TakeFd).
struct Message {
  MsgHeader hdr{};
  uint8_t payload[kMaxPayload] = {};
  int fds[kMaxFds];
  uint32_t nfds = 0;

  Message() {
    for (int& f : fds) f = -1;
  }
  ~Message() { CloseFds(); }
  Message(const Message&) = delete;
  Message& operator=(const Message&) = delete;

  void CloseFds();
  // The i-th fd, now owned by the caller (-1 if absent or taken).
  int TakeFd(uint32_t i);
};

class MessageReader {
 public:
  enum class Status {
    kMessage,  // *out holds one whole message
    kAgain,    // nothing more to read now (a partial message is kept)
    kClosed,   // the peer closed the socket between messages
    kLost,     // *why says what: the peer gone mid-message, or the socket failed
    kError,    // *why says what: a malformed header, too many fds
  };
  MessageReader() = default;
  ~MessageReader();
  MessageReader(const MessageReader&) = delete;
  MessageReader& operator=(const MessageReader&) = delete;

  Status Read(int fd, Message* out, std::string* why);

 private:
  void DropFds();

  uint8_t buf_[sizeof(MsgHeader) + kMaxPayload];
  uint32_t have_ = 0;
  int fds_[kMaxFds];
  uint32_t nfds_ = 0;
};

// Sends one message (header, payload, optional fds) in one sendmsg without
// blocking. False when the socket would not take it whole (*why says why).
bool SendMessage(int fd, uint32_t request, uint32_t flags, const void* payload, uint32_t size, const int* fds,
                 uint32_t nfds, std::string* why);

// A reply to `request`: version 1, the reply flag set.
inline bool SendReply(int fd, uint32_t request, const void* payload, uint32_t size, std::string* why) {
  return SendMessage(fd, request, kFlagVersion | kFlagReply, payload, size, nullptr, 0, why);
}

}  // namespace xsw::vhost
