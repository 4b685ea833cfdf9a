// Stage 05_epoll_et: edge-triggered epoll, registered once for everything.
//
// Lesson: 04_epoll_mod still spent an epoll_ctl on every read/write flip and a
// wake-up on every read, because a level-triggered interest must follow the
// state machine. With EPOLLET a connection is registered once, at accept, for
// EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI, and never touched again. The
// price: an edge reports a change once, so the connection must remember what it
// was told (`readable`, `writable`, `peer_closed`, `urgent`) and work until the
// socket is drained or the send buffer is full, since no new edge comes while
// that is not so. A short read tells us the socket is drained without an extra
// call (epoll(7)), and a per-turn budget keeps one fast client from starving
// the others.
//
// Limitation: one thread, so one core; the ladder stops here on purpose.
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
    "Stage 05_epoll_et: edge-triggered epoll, registered once, drained on every edge.";
constexpr int kMaxEvents = 256;         // events taken per epoll_wait
constexpr int kAcceptBackstopMs = 100;  // a paused listener is retried this soon
constexpr int kReadsPerTurn = 1;        // buffer-fulls per connection per turn (README)
// Registered once at accept: everything a connection will ever wait for.
constexpr std::uint32_t kInterest =
    EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET;

// ---- Connection state ---------------------------------------------------------

//! [connection]
// A connection reads only into an empty buffer and writes it all back before it
// reads again, so a client that never reads costs one buffer, not unbounded
// memory. An edge is said once: the flags below remember what it said.
struct Connection {
  echo::Fd fd;
  std::string peer;                // "HOST:PORT", for log lines
  std::unique_ptr<char[]> buffer;  // options.buffer_size bytes
  std::size_t length = 0;          // bytes read, not yet echoed
  std::size_t offset = 0;          // bytes of those already written back
  bool readable = false;           // no short read since the last EPOLLIN edge
  bool writable = false;           // no EAGAIN on write since the last EPOLLOUT edge
  bool peer_closed = false;        // EPOLLRDHUP: no edge will follow; read up to EOF
  bool urgent = false;             // EPOLLPRI: short reads count only from EAGAIN
  bool queued = false;             // on the ready list: budget spent, work left
  std::uint64_t echoed = 0;        // bytes sent back on this connection
};
//! [connection]

struct Server {
  const echo::Fd& listener;
  const echo::Options& options;
  echo::Stats& stats;
  echo::Fd epoll;
  std::vector<std::unique_ptr<Connection>> connections{};  // indexed by fd
  std::vector<int> ready{};      // fds of connections with work left (see service)
  std::vector<int> turn{};       // the ready list being serviced
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

// ---- Accepting ----------------------------------------------------------------

// Adds an accepted client to the epoll set, waiting for everything.
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
    // Each fd is queued at most once, so this makes push_back never allocate.
    // capacity(), not size(): it grows geometrically, so this rarely reallocates.
    s.ready.reserve(s.connections.capacity());

    s.turn.reserve(s.connections.capacity());

    s.connections[slot] = std::move(c);
  } catch (const std::bad_alloc&) {
    echo::log_error("out of memory: closing a new client");
    return;  // its fd closes here
  }
  const Connection& added = *s.connections[n];
  ECHO_TRACE("accept fd=%d from %s", n, added.peer.c_str());
  echo::log_info("accepted %s", added.peer.c_str());
  s.stats.add_connection();
  if (!control(s, EPOLL_CTL_ADD, n, kInterest)) close_connection(s, n);
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
// Reads into the empty buffer. A short read means the socket is drained
// (epoll(7)): the next bytes raise a new EPOLLIN edge, so no read is spent on
// seeing EAGAIN. A short read says nothing about EOF, though, and after
// EPOLLRDHUP no edge will come: then read on until read() returns 0. Nor does it
// after EPOLLPRI: a read stops at TCP's urgent mark with the rest of the stream
// already waiting, so then read on until EAGAIN.
bool handle_read(Server& s, Connection& c) {
  for (;;) {
    const ssize_t n = ::read(c.fd.get(), c.buffer.get(), s.options.buffer_size);
    if (n > 0) {
      // Fix (defect 4): the original printed the buffer with %s, reading past its
      // end (it is not NUL-terminated); payload bytes are never logged.
      c.length = static_cast<std::size_t>(n);
      c.offset = 0;
      if (c.length < s.options.buffer_size && !c.peer_closed && !c.urgent) {
        c.readable = false;
      }
      return true;
    }
    if (n == 0) return false;  // EOF: everything read so far has been echoed
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {  // drained: normal; the next
      c.readable = c.urgent = false;                // EPOLLIN edge says when to
      return true;                                  // read again
    }
    echo::log_info("%s: read: %s", c.peer.c_str(), std::strerror(errno));
    // Fix (defect 7): every path returns a value; the original's handler fell off
    // its end, which is undefined behaviour in C++.
    return false;
  }
}
//! [handle_read]

//! [handle_write]
// Writes back the rest of the buffer until it is all sent or the send buffer is
// full; then the EPOLLOUT edge says when to resume from `offset`. Only EAGAIN
// counts as full: epoll(7) lets a short write mean it too, but a short write
// with another cause (an interposed library, the tests' fault shim) would then
// wait for an edge that never comes. Checking costs a write() only when the
// buffer really fills, which a ping-pong never does.
bool handle_write(Server& s, Connection& c) {
  while (c.offset < c.length) {
    const ssize_t n =
        ::write(c.fd.get(), c.buffer.get() + c.offset, c.length - c.offset);
    if (n >= 0) {
      c.offset += static_cast<std::size_t>(n);
      c.echoed += static_cast<std::uint64_t>(n);
      s.stats.add_bytes(static_cast<std::uint64_t>(n));
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {  // full: normal; wait for the
      c.writable = false;                           // EPOLLOUT edge
      return true;
    }
    echo::log_info("%s: write: %s", c.peer.c_str(), std::strerror(errno));
    return false;  // EPIPE/ECONNRESET: the peer is gone (SIGPIPE is ignored)
  }
  // Fix (defect 5): a completed write resets offset and length, so the next
  // message goes out from the start of the buffer.
  c.offset = c.length = 0;
  return true;
}
//! [handle_write]

//! [service]
// One turn of a connection: read -> write -> read ... until the socket is
// drained or the send buffer is full (an edge resumes it), or the budget is
// spent (the ready list resumes it). Returns false to close.
bool service(Server& s, Connection& c) {
  for (int reads = 0;;) {
    if (c.length > 0) {  // write straight after a read, without waiting for EPOLLOUT
      if (!c.writable) return true;
      if (!handle_write(s, c)) return false;
      continue;
    }
    // The buffer is empty again: read at once. Bytes left in the socket when
    // reading stopped raise no new edge, so waiting for one would hang.
    if (!c.readable) return true;
    if (reads++ == kReadsPerTurn) {
      c.queued = true;
      s.ready.push_back(c.fd.get());
      return true;
    }
    if (!handle_read(s, c)) return false;
  }
}
//! [service]

// Fix (defect 8): event bits are tested with &, never ==; EPOLLIN|EPOLLRDHUP is
// read to the end (pending data is echoed before the EOF closes the connection).
bool handle_event(Server& s, Connection& c, std::uint32_t events) {
  if (events & EPOLLERR) return false;  // a socket error: nothing more to echo
  if (events & (EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLHUP)) c.readable = true;
  if (events & (EPOLLRDHUP | EPOLLHUP)) c.peer_closed = true;
  if (events & EPOLLPRI) c.urgent = true;
  if (events & (EPOLLOUT | EPOLLHUP)) c.writable = true;
  return c.queued || service(s, c);  // a queued one gets its turn below
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
  // The listener stays level-triggered: accept_clients may stop before the queue
  // is empty (out of fds, a lost client) and is then told again about the rest;
  // an edge-triggered listener would have to remember that it stopped early.
  if (!control(s, EPOLL_CTL_ADD, listener.get(), EPOLLIN) ||
      !control(s, EPOLL_CTL_ADD, echo::stop_fd(), EPOLLIN)) {
    std::exit(1);
  }
  epoll_event events[kMaxEvents];
  while (!echo::stop_requested()) {
    int timeout = s.listener_paused ? kAcceptBackstopMs : -1;  // -1: no timeout
    if (!s.ready.empty()) timeout = 0;  // work is waiting: only collect news
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
      // Registered once at accept for kInterest: no epoll_ctl here, ever.
      if (!handle_event(s, c, events[i].events)) close_connection(s, fd);
      //! [interest]
    }
    //! [ready]
    // Connections that spent their budget get another turn, after everyone
    // with news had one. Skip fds closed (and maybe reused) since they queued.
    s.turn.swap(s.ready);
    for (const int fd : s.turn) {
      Connection* c = s.connections[fd].get();
      if (c == nullptr || !c->queued) continue;
      c->queued = false;
      if (!service(s, *c)) close_connection(s, fd);
    }
    s.turn.clear();
    //! [ready]
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
