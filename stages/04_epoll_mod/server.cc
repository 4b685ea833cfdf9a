// Stage 04_epoll_mod: register once, switch interest with EPOLL_CTL_MOD.
//
// Lesson: 03_epoll_lt took a connection out of the interest list and put it
// back around every event. It can stay registered for its whole life instead:
// ADD it once at accept and, when it flips between waiting to read and waiting
// to write, change its interest in place with EPOLL_CTL_MOD. Everything else is
// 03's, including the fixes of the original's defects (still marked in place).
//
// Limitation: still one epoll_ctl per flip and one read per wake-up, because a
// level-triggered interest has to follow the state machine (fixed in 05_epoll_et).
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "stages/common/common.h"

namespace {

using Clock = std::chrono::steady_clock;  // times the listener's pause

constexpr char kAbout[] =
    "Stage 04_epoll_mod: level-triggered epoll, interest switched with MOD.";
constexpr int kMaxEvents = 256;         // events taken per epoll_wait
constexpr int kAcceptBackstopMs = 100;  // a paused listener is retried this soon

// ---- Connection state ---------------------------------------------------------

//! [connection]
// A connection either waits to read (its buffer is empty) or waits to write back
// what it read. It never reads while echoed bytes are pending, so a client that
// never reads costs one buffer, not unbounded memory.
struct Connection {
  echo::Fd fd;
  std::string peer;                // "HOST:PORT", for log lines
  std::unique_ptr<char[]> buffer;  // options.buffer_size bytes
  std::size_t length = 0;          // bytes read, not yet echoed
  std::size_t offset = 0;          // bytes of those already written back
  bool reading = true;             // waiting for EPOLLIN, else for EPOLLOUT
  std::uint64_t echoed = 0;        // bytes sent back on this connection
};
//! [connection]

struct Server {
  const echo::Fd& listener;
  const echo::Options& options;
  echo::Stats& stats;
  echo::Fd epoll;
  std::vector<std::unique_ptr<Connection>> connections{};  // indexed by fd
  bool listener_paused = false;  // out of fds: the listener is not watched
  bool fd_freed = false;         // a connection closed since the pause
  Clock::time_point retry_at{};  // a pause ends by then at the latest
  bool starved = false;          // out of fds since the last accept (logged once)
};

void close_connection(Server& s, int fd);

// Every epoll_ctl goes through here, so that --trace shows each call.
bool control(const Server& s, int op, int fd, std::uint32_t events) {
  const char* name = op == EPOLL_CTL_ADD ? "ADD" : op == EPOLL_CTL_MOD ? "MOD" : "DEL";
  if (op == EPOLL_CTL_DEL) {
    ECHO_TRACE("epoll_ctl DEL fd=%d", fd);
  } else {
    ECHO_TRACE("epoll_ctl %s fd=%d %s", name, fd, echo::epoll_event_names(events).text);
  }
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (::epoll_ctl(s.epoll.get(), op, fd, &ev) == 0) return true;
  echo::log_error("epoll_ctl %s fd=%d: %s", name, fd, std::strerror(errno));
  return false;
}

std::uint32_t interest(const Connection& c) {
  return c.reading ? EPOLLIN : EPOLLOUT;
}

// ---- Accepting ----------------------------------------------------------------

// Adds an accepted client to the epoll set, waiting to read.
// Fix (defect 11): allocations are checked (the buffer with new(std::nothrow), the
// rest by catching bad_alloc); running out of memory costs this client only.
void add_connection(Server& s, echo::Fd fd, const sockaddr* peer, socklen_t length) {
  const int n = fd.get();
  try {
    auto c = std::make_unique<Connection>();
    c->peer = echo::address_string(peer, length);
    c->buffer.reset(new (std::nothrow) char[s.options.buffer_size]);
    if (!c->buffer) throw std::bad_alloc();
    c->fd = std::move(fd);
    const auto slot = static_cast<std::size_t>(n);
    if (s.connections.size() <= slot) s.connections.resize(slot + 1);
    s.connections[slot] = std::move(c);
  } catch (const std::bad_alloc&) {
    echo::log_error("out of memory: closing a new client");
    return;  // its fd closes here
  }
  const Connection& added = *s.connections[n];
  ECHO_TRACE("accept fd=%d from %s", n, added.peer.c_str());
  echo::log_info("accepted %s", added.peer.c_str());
  s.stats.add_connection();
  if (!control(s, EPOLL_CTL_ADD, n, interest(added))) close_connection(s, n);
}

//! [pause_listener]
// Out of fds, accept fails again at once and the level-triggered listener wakes
// us again at once: a 100% CPU spin. So stop watching it until a connection
// closes or kAcceptBackstopMs have passed, then watch it again. The time limit
// matters: ENFILE or ENOMEM can end without any of our connections closing, and
// a busy loop may never see epoll_wait time out.
void pause_listener(Server& s, int err) {
  if (!s.starved) echo::log_error("accept: %s (pausing accepts)", std::strerror(err));
  s.starved = true;
  control(s, EPOLL_CTL_DEL, s.listener.get(), 0);
  s.listener_paused = true;
  s.fd_freed = false;
  s.retry_at = Clock::now() + std::chrono::milliseconds(kAcceptBackstopMs);
}

void resume_listener(Server& s) {
  s.fd_freed = false;
  s.listener_paused = !control(s, EPOLL_CTL_ADD, s.listener.get(), EPOLLIN);
  if (s.listener_paused) {  // the ADD failed: try again after another backstop
    s.retry_at = Clock::now() + std::chrono::milliseconds(kAcceptBackstopMs);
  }
}
//! [pause_listener]

// The listener is non-blocking: accept every client waiting in the queue.
void accept_clients(Server& s) {
  for (;;) {
    sockaddr_storage peer{};
    socklen_t length = sizeof peer;
    const int fd = ::accept4(s.listener.get(), reinterpret_cast<sockaddr*>(&peer),
                             &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      // Fix (defect 1): no sleep after accept; the loop goes straight on.
      s.starved = false;
      add_connection(s, echo::Fd(fd), reinterpret_cast<sockaddr*>(&peer), length);
      continue;
    }
    const int err = errno;
    // Fix (defect 2): no accept error exits the server.
    switch (echo::classify_accept_error(err)) {
      case echo::AcceptFailure::kRetry:  // EINTR
        continue;
      case echo::AcceptFailure::kQueueEmpty:  // EAGAIN: all accepted; normal flow
        return;
      case echo::AcceptFailure::kOutOfFds:
        pause_listener(s, err);
        return;
      case echo::AcceptFailure::kClientGone:  // that client is lost; others may wait
        echo::log_info("accept: %s", std::strerror(err));
        continue;
    }
  }
}

// ---- Echoing ------------------------------------------------------------------

//! [handle_read]
// The connection waits to read, so its buffer is empty: fill it, then wait to
// write it back.
bool handle_read(Server& s, Connection& c) {
  for (;;) {
    const ssize_t n = ::read(c.fd.get(), c.buffer.get(), s.options.buffer_size);
    if (n > 0) {
      // Fix (defect 4): the original printed the buffer with %s, reading past its
      // end (it is not NUL-terminated); payload bytes are never logged.
      c.length = static_cast<std::size_t>(n);
      c.offset = 0;
      c.reading = false;
      return true;
    }
    if (n == 0) return false;  // EOF: everything read so far has been echoed
    if (errno == EINTR) continue;
    // EAGAIN: rare after a level-triggered EPOLLIN, but normal: wait again.
    if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
    echo::log_info("%s: read: %s", c.peer.c_str(), std::strerror(errno));
    // Fix (defect 7): every path returns a value; the original's handler fell off
    // its end, which is undefined behaviour in C++.
    return false;
  }
}
//! [handle_read]

//! [handle_write]
// Writes back what is left of the buffer. A partial write keeps waiting for
// EPOLLOUT and resumes from `offset` next time.
bool handle_write(Server& s, Connection& c) {
  for (;;) {
    const ssize_t n =
        ::write(c.fd.get(), c.buffer.get() + c.offset, c.length - c.offset);
    if (n >= 0) {
      c.offset += static_cast<std::size_t>(n);
      c.echoed += static_cast<std::uint64_t>(n);
      s.stats.add_bytes(static_cast<std::uint64_t>(n));
      if (c.offset < c.length) return true;  // partial write: wait for EPOLLOUT
      // Fix (defect 5): a completed write resets offset and length, so the next
      // message goes out from the start of the buffer.
      c.offset = c.length = 0;
      c.reading = true;
      return true;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return true;  // full again: wait
    echo::log_info("%s: write: %s", c.peer.c_str(), std::strerror(errno));
    return false;  // EPIPE/ECONNRESET: the peer is gone (SIGPIPE is ignored)
  }
}
//! [handle_write]

// Fix (defect 8): event bits are tested with &, never ==, so EPOLLIN|EPOLLHUP is
// still read (pending data is echoed before the EOF closes the connection).
bool handle_event(Server& s, Connection& c, std::uint32_t events) {
  if (events & EPOLLERR) return false;  // a socket error: nothing more to echo
  if (c.reading) return (events & (EPOLLIN | EPOLLHUP)) ? handle_read(s, c) : true;
  return (events & (EPOLLOUT | EPOLLHUP)) ? handle_write(s, c) : true;
}

// ---- Closing ------------------------------------------------------------------

//! [close_connection]
// No DEL before close: epoll watches the open file, not the fd number, and this
// file has no other fd (no dup, no fork; SOCK_CLOEXEC), so close() also ends its
// registration. A DEL would only matter if another fd shared the file.
void close_connection(Server& s, int fd) {
  const Connection& c = *s.connections[fd];
  ECHO_TRACE("close fd=%d", fd);
  echo::log_info("closed %s after echoing %llu bytes", c.peer.c_str(),
                 static_cast<unsigned long long>(c.echoed));
  s.connections[fd].reset();
  s.fd_freed = true;  // a paused listener may accept again
}
//! [close_connection]

// ---- The loop -----------------------------------------------------------------

//! [serve]
void serve(const echo::Fd& listener, const echo::Options& options, echo::Stats& stats) {
  Server s{listener, options, stats, echo::Fd(::epoll_create1(EPOLL_CLOEXEC))};
  if (!s.epoll) {
    echo::log_error("epoll_create1: %s", std::strerror(errno));
    std::exit(1);
  }
  // The stop fd wakes the loop on SIGINT/SIGTERM without racing the check below.
  if (!control(s, EPOLL_CTL_ADD, listener.get(), EPOLLIN) ||
      !control(s, EPOLL_CTL_ADD, echo::stop_fd(), EPOLLIN)) {
    std::exit(1);
  }
  epoll_event events[kMaxEvents];
  while (!echo::stop_requested()) {
    const int timeout = s.listener_paused ? kAcceptBackstopMs : -1;  // -1: no timeout
    const int n = ::epoll_wait(s.epoll.get(), events, kMaxEvents, timeout);
    if (n < 0 && errno == EINTR) continue;  // a signal: check for a stop
    if (n < 0) {
      echo::log_error("epoll_wait: %s", std::strerror(errno));
      std::exit(1);
    }
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      // Fix (defect 10): no printf per message, only trace lines when asked for.
      ECHO_TRACE("event fd=%d %s", fd, echo::epoll_event_names(events[i].events).text);
      if (fd == echo::stop_fd()) break;  // the while condition sees the stop
      if (fd == listener.get()) {
        accept_clients(s);
        continue;
      }
      Connection& c = *s.connections[fd];
      //! [interest]
      // Registered once at accept; one MOD only when the connection flips
      // between waiting to read and waiting to write.
      // Fix (defect 6): an epoll_ctl failure closes this connection only.
      const bool was_reading = c.reading;
      bool open = handle_event(s, c, events[i].events);
      open = open &&
             (c.reading == was_reading || control(s, EPOLL_CTL_MOD, fd, interest(c)));
      if (!open) close_connection(s, fd);
      //! [interest]
    }
    if (s.listener_paused && (s.fd_freed || Clock::now() >= s.retry_at)) {
      resume_listener(s);
    }
  }
  for (auto& c : s.connections) {
    if (c) close_connection(s, c->fd.get());
  }
}
//! [serve]

}  // namespace

int main(int argc, char** argv) {
  const echo::Options options = echo::parse_options_or_exit(argc, argv, kAbout);
  echo::set_log_options(options.trace, options.quiet);
  // Fix (defect 3): this ignores SIGPIPE; a reset peer costs EPIPE, not the process.
  echo::install_signal_handlers();
  echo::raise_fd_limit();

  // Fix (defect 9): this sets SO_REUSEADDR, so a quick restart gets no EADDRINUSE.
  echo::Fd listener = echo::listen_or_exit(options, echo::Blocking::kNo);

  echo::Stats stats;
  serve(listener, options, stats);
  echo::print_summary(stats);
  return 0;
}
