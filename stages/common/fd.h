// An owning file descriptor: closes on destruction, moves but never copies.
//
// Plumbing shared by every stage, not a lesson. Stages keep connection fds in
// an Fd so that every exit path (error, EOF, shutdown) closes exactly once.
#pragma once

#include <unistd.h>

#include <utility>

namespace echo {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }

  // Gives up ownership without closing.
  int release() { return std::exchange(fd_, -1); }

  // Closes the current fd (if any) and owns `fd` instead. close() is not
  // retried on EINTR: on Linux the fd is released even when close reports it.
  void reset(int fd = -1) {
    if (fd_ >= 0 && fd_ != fd) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace echo
