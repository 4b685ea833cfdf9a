// Stage 02_poll: one thread, non-blocking sockets, one poll() loop.
//
// Lesson: one thread asks poll() which fds are ready and serves only those.
// Sockets are non-blocking: a call that cannot proceed returns EAGAIN instead of
// stalling everyone. Each connection is a read -> write -> read state machine
// around one fixed buffer.
//
// Limitation: poll() keeps no state: every call passes the whole vector, the
// kernel checks every fd in it, and the loop walks it all to find the ready
// ones: O(n) per wake-up even if one client of 10,000 is active (fixed in
// 03_epoll_lt).
#include <poll.h>
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
    "Stage 02_poll: non-blocking sockets served by one poll() loop.";
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
  bool reading = true;             // waiting for POLLIN, else for POLLOUT
  std::uint64_t echoed = 0;        // bytes sent back on this connection
};
//! [connection]

// fds[i] and connections[i] describe the same fd; connections[0], [1] stay empty.
constexpr std::size_t kListener = 0;         // the listening socket
constexpr std::size_t kStop = 1;             // echo::stop_fd(): readable on a stop
constexpr std::size_t kFirstConnection = 2;  // clients from here on

struct Server {
  const echo::Fd& listener;
  const echo::Options& options;
  echo::Stats& stats;
  std::vector<pollfd> fds;  // what poll() watches, in the order it reports
  std::vector<Connection> connections;
  bool listener_paused = false;  // out of fds: the listener is not watched
  bool fd_freed = false;         // a connection closed since the pause
  Clock::time_point retry_at{};  // a pause ends by then at the latest
  bool starved = false;          // out of fds since the last accept (logged once)
};

//! [interest]
// What a connection waits for next follows from its state.
short interest(const Connection& c) {
  return c.reading ? POLLIN : POLLOUT;
}

// poll() reads `events` afresh on every call, so changing interest is a plain
// store in our own vector: no system call.
void set_interest(pollfd& p, short events) {
  if (p.events == events) return;
  p.events = events;
  ECHO_TRACE("poll interest fd=%d %s", p.fd, echo::poll_event_names(events).text);
}
//! [interest]

// ---- Accepting ----------------------------------------------------------------

// Adds an accepted client to the poll set, waiting to read. Running out of
// memory costs this client only.
void add_connection(Server& s, echo::Fd fd, const sockaddr* peer, socklen_t length) {
  Connection c;
  try {
    c.peer = echo::address_string(peer, length);
    c.buffer.reset(new (std::nothrow) char[s.options.buffer_size]);
    if (!c.buffer) throw std::bad_alloc();
    c.fd = std::move(fd);
    s.fds.push_back({c.fd.get(), 0, 0});
    s.connections.push_back(std::move(c));
  } catch (const std::bad_alloc&) {
    s.fds.resize(s.connections.size());  // keep the two vectors in step
    echo::log_error("out of memory: closing a new client");
    return;  // its fd closes here
  }
  const Connection& added = s.connections.back();
  ECHO_TRACE("accept fd=%d from %s", added.fd.get(), added.peer.c_str());
  echo::log_info("accepted %s", added.peer.c_str());
  s.stats.add_connection();
  set_interest(s.fds.back(), interest(added));
}

//! [pause_listener]
// Out of fds, accept fails again at once, and the listener stays readable (the
// client waits in the queue) so poll() returns at once: a 100% CPU spin. So stop
// watching it until a connection closes or kAcceptBackstopMs have passed, then
// watch it again. The time limit matters: ENFILE or ENOMEM can end without any
// of our connections closing, and a busy loop may never see poll() time out.
void pause_listener(Server& s, int err) {
  if (!s.starved) echo::log_error("accept: %s (pausing accepts)", std::strerror(err));
  s.starved = true;
  set_interest(s.fds[kListener], 0);
  s.listener_paused = true;
  s.fd_freed = false;
  s.retry_at = Clock::now() + std::chrono::milliseconds(kAcceptBackstopMs);
}

void resume_listener(Server& s) {
  s.fd_freed = false;
  set_interest(s.fds[kListener], POLLIN);
  s.listener_paused = false;
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
      s.starved = false;
      add_connection(s, echo::Fd(fd), reinterpret_cast<sockaddr*>(&peer), length);
      continue;
    }
    const int err = errno;
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
      c.length = static_cast<std::size_t>(n);
      c.offset = 0;
      c.reading = false;
      return true;
    }
    if (n == 0) return false;  // EOF: everything read so far has been echoed
    if (errno == EINTR) continue;
    // EAGAIN: rare right after POLLIN, but normal: wait again.
    if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
    echo::log_info("%s: read: %s", c.peer.c_str(), std::strerror(errno));
    return false;
  }
}
//! [handle_read]

//! [handle_write]
// Writes back what is left of the buffer. A partial write keeps waiting for
// POLLOUT and resumes from `offset` next time.
bool handle_write(Server& s, Connection& c) {
  for (;;) {
    const ssize_t n =
        ::write(c.fd.get(), c.buffer.get() + c.offset, c.length - c.offset);
    if (n >= 0) {
      c.offset += static_cast<std::size_t>(n);
      c.echoed += static_cast<std::uint64_t>(n);
      s.stats.add_bytes(static_cast<std::uint64_t>(n));
      if (c.offset < c.length) return true;  // partial write: wait for POLLOUT
      c.offset = c.length = 0;  // all echoed: the next read starts a new message
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

// Event bits are tested with &, never ==: poll() may report several at once
// (POLLIN|POLLHUP: read what is pending first). POLLERR, POLLHUP and POLLNVAL
// come unasked.
bool handle_event(Server& s, Connection& c, short events) {
  if (events & (POLLERR | POLLNVAL)) return false;  // socket error, or fd not open
  if (c.reading) return (events & (POLLIN | POLLHUP)) ? handle_read(s, c) : true;
  return (events & (POLLOUT | POLLHUP)) ? handle_write(s, c) : true;
}

// ---- Closing ------------------------------------------------------------------

//! [close_connection]
// Closes the connection at index i and fills the hole with the last entry (no
// shifting), so the caller must look at index i again.
void close_connection(Server& s, std::size_t i) {
  Connection& c = s.connections[i];
  ECHO_TRACE("close fd=%d", c.fd.get());
  echo::log_info("closed %s after echoing %llu bytes", c.peer.c_str(),
                 static_cast<unsigned long long>(c.echoed));
  c.fd.reset();
  const std::size_t last = s.fds.size() - 1;
  if (i != last) {
    s.fds[i] = s.fds[last];
    s.connections[i] = std::move(s.connections[last]);
  }
  s.fds.pop_back();
  s.connections.pop_back();
  s.fd_freed = true;  // a paused listener may accept again
}
//! [close_connection]

// ---- The loop -----------------------------------------------------------------

//! [serve]
void serve(const echo::Fd& listener, const echo::Options& options, echo::Stats& stats) {
  Server s{listener, options, stats, {}, {}};
  s.fds = {{listener.get(), 0, 0}, {echo::stop_fd(), 0, 0}};  // interest set below
  s.connections.resize(kFirstConnection);
  set_interest(s.fds[kListener], POLLIN);
  // The stop fd wakes poll() on SIGINT/SIGTERM without racing the check below.
  set_interest(s.fds[kStop], POLLIN);
  while (!echo::stop_requested()) {
    const int timeout = s.listener_paused ? kAcceptBackstopMs : -1;  // -1: no timeout
    const int n = ::poll(s.fds.data(), s.fds.size(), timeout);
    if (n < 0 && errno == EINTR) continue;  // a signal: check for a stop
    if (n < 0) {
      echo::log_error("poll: %s", std::strerror(errno));
      std::exit(1);
    }
    // Limitation: poll() marks ready fds in place (revents), so finding them means
    // walking the whole vector, however few are ready.
    for (std::size_t i = 0; i < s.fds.size();) {
      const short events = s.fds[i].revents;
      if (events == 0) {
        ++i;
        continue;
      }
      ECHO_TRACE("event fd=%d %s", s.fds[i].fd, echo::poll_event_names(events).text);
      if (i == kStop) break;  // the while condition sees the stop
      if (i == kListener) {
        if (events & POLLIN) accept_clients(s);  // new clients come last, revents 0
        ++i;
        continue;
      }
      Connection& c = s.connections[i];
      if (handle_event(s, c, events)) {
        set_interest(s.fds[i], interest(c));
        ++i;
      } else {
        close_connection(s, i);  // the last entry moved into i: look at it next
      }
    }
    if (s.listener_paused && (s.fd_freed || Clock::now() >= s.retry_at)) {
      resume_listener(s);
    }
  }
  while (s.fds.size() > kFirstConnection) close_connection(s, s.fds.size() - 1);
}
//! [serve]

}  // namespace

int main(int argc, char** argv) {
  const echo::Options options = echo::parse_options_or_exit(argc, argv, kAbout);
  echo::set_log_options(options.trace, options.quiet);
  echo::install_signal_handlers();
  echo::raise_fd_limit();

  // Non-blocking: accept() returns EAGAIN when the queue is empty instead of
  // waiting, so accept_clients can take every waiting client and go back to poll.
  echo::Fd listener = echo::listen_or_exit(options, echo::Blocking::kNo);

  echo::Stats stats;
  serve(listener, options, stats);
  echo::print_summary(stats);
  return 0;
}
