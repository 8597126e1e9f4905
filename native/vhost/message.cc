#include "vhost/message.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace xsw::vhost {

const char* RequestName(uint32_t request) {
  switch (request) {
    case kGetFeatures: return "GET_FEATURES";
    case kSetFeatures: return "SET_FEATURES";
    case kSetOwner: return "SET_OWNER";
    case kResetOwner: return "RESET_OWNER";
    case kSetMemTable: return "SET_MEM_TABLE";
    case kSetLogBase: return "SET_LOG_BASE";
    case kSetLogFd: return "SET_LOG_FD";
    case kSetVringNum: return "SET_VRING_NUM";
    case kSetVringAddr: return "SET_VRING_ADDR";
    case kSetVringBase: return "SET_VRING_BASE";
    case kGetVringBase: return "GET_VRING_BASE";
    case kSetVringKick: return "SET_VRING_KICK";
    case kSetVringCall: return "SET_VRING_CALL";
    case kSetVringErr: return "SET_VRING_ERR";
    case kGetProtocolFeatures: return "GET_PROTOCOL_FEATURES";
    case kSetProtocolFeatures: return "SET_PROTOCOL_FEATURES";
    case kGetQueueNum: return "GET_QUEUE_NUM";
    case kSetVringEnable: return "SET_VRING_ENABLE";
    case kSetStatus: return "SET_STATUS";
    case kGetStatus: return "GET_STATUS";
    default: return "an unknown request";
  }
}

void Message::CloseFds() {
  for (uint32_t i = 0; i < nfds; ++i) {
    if (fds[i] >= 0) ::close(fds[i]);
    fds[i] = -1;
  }
  nfds = 0;
}

int Message::TakeFd(uint32_t i) {
  if (i >= nfds) return -1;
  int f = fds[i];
  fds[i] = -1;
  return f;
}

MessageReader::~MessageReader() { DropFds(); }

void MessageReader::DropFds() {
  for (uint32_t i = 0; i < nfds_; ++i) ::close(fds_[i]);
  nfds_ = 0;
}

MessageReader::Status MessageReader::Read(int fd, Message* out, std::string* why) {
  for (;;) {
    uint32_t need = sizeof(MsgHeader);
    if (have_ >= sizeof(MsgHeader)) {
      MsgHeader h;
      std::memcpy(&h, buf_, sizeof h);
      if ((h.flags & kFlagVersionMask) != kFlagVersion || (h.flags & kFlagReply) != 0) {
        *why = "a message header with flags 0x" + [&] {
          char b[16];
          std::snprintf(b, sizeof b, "%x", h.flags);
          return std::string(b);
        }() + " (not version 1, or a reply)";
        return Status::kError;
      }
      if (h.size > kMaxPayload) {
        *why = std::string("a ") + RequestName(h.request) + " message claiming " + std::to_string(h.size) +
               " payload bytes, more than any request has (" + std::to_string(kMaxPayload) + ")";
        return Status::kError;
      }
      need += h.size;
    }
    if (have_ == need && have_ >= sizeof(MsgHeader)) {
      std::memcpy(&out->hdr, buf_, sizeof(MsgHeader));
      std::memcpy(out->payload, buf_ + sizeof(MsgHeader), out->hdr.size);
      out->CloseFds();
      for (uint32_t i = 0; i < nfds_; ++i) out->fds[i] = fds_[i];
      out->nfds = nfds_;
      nfds_ = 0;
      have_ = 0;
      return Status::kMessage;
    }
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
    struct iovec iov {buf_ + have_, need - have_};
    struct msghdr mh {};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control;
    mh.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Status::kAgain;
    // fds arrive even with a read error or end of stream: collect, then judge.
    bool too_many = (mh.msg_flags & MSG_CTRUNC) != 0;
    if (n >= 0) {
      for (struct cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        uint32_t k = uint32_t((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (uint32_t i = 0; i < k; ++i) {
          int f;
          std::memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
          if (nfds_ < kMaxFds) {
            fds_[nfds_++] = f;
          } else {
            ::close(f);
            too_many = true;
          }
        }
      }
    }
    if (too_many) {
      DropFds();
      *why = "a message carrying more than " + std::to_string(kMaxFds) + " file descriptors";
      return Status::kError;
    }
    if (n < 0) {
      *why = std::string("the connection failed (") + std::strerror(errno) + ")";
      return Status::kLost;
    }
    if (n == 0) {
      if (have_ == 0 && nfds_ == 0) return Status::kClosed;
      *why = "the peer vanished in the middle of a message (" + std::to_string(have_) + " of " +
             std::to_string(need) + " bytes read)";
      return Status::kLost;
    }
    have_ += uint32_t(n);
  }
}

bool SendMessage(int fd, uint32_t request, uint32_t flags, const void* payload, uint32_t size, const int* fds,
                 uint32_t nfds, std::string* why) {
  uint8_t buf[sizeof(MsgHeader) + kMaxPayload + 64];
  if (size > sizeof buf - sizeof(MsgHeader) || nfds > kMaxFds * 2) {
    *why = "a message too large to send";
    return false;
  }
  MsgHeader h{request, flags, size};
  std::memcpy(buf, &h, sizeof h);
  if (size != 0) std::memcpy(buf + sizeof h, payload, size);
  struct iovec iov {buf, sizeof h + size};
  struct msghdr mh {};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds * 2)];
  if (nfds != 0) {
    mh.msg_control = control;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    std::memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  for (;;) {
    ssize_t n = ::sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n == ssize_t(sizeof h + size)) return true;
    *why = n < 0 ? std::string("the socket refused the message (") + std::strerror(errno) + ")"
                 : std::string("the socket took only part of the message");
    return false;
  }
}

}  // namespace xsw::vhost
