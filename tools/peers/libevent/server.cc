// Peer: the echo server on libevent 2.1 (Debian's libevent-dev), a yardstick for
// the ladder.
//
// Not a lesson: what a user would write instead of their own loop, written the
// way libevent is meant to be used, so that the comparison in docs/results.md is
// fair. The contract is the stages' (flags, `listening on HOST:PORT`, SIGINT/SIGTERM
// -> summary, exit 0), and so is the memory policy: one buffer's worth of data per
// connection, and no reading while it is not yet written back.
//
// Why events and not bufferevents: a socket bufferevent writes only from its next
// EV_WRITE callback, so each ping-pong message would cost an epoll_ctl to start
// watching EV_WRITE, a second wake-up, and an epoll_ctl to stop, plus an
// ioctl(FIONREAD) per read. Here one persistent EV_READ event per connection reads
// into the connection's own buffer and writes the echo back at once. Only when
// the send buffer is full does the connection switch to its EV_WRITE event until
// the rest has gone out. (An evbuffer would cost a malloc and a free of a 32 KiB
// chain per message, since libevent frees a chain once it is written out, and
// the libuv and Asio peers keep one buffer per connection too.)
//
// Flags, SIGPIPE, the fd limit and the listening socket are set up as for every
// peer (peer_main.h: the stages' own listen_or_exit, same backlog,
// SO_REUSEADDR, messages); accepting, events and signals are libevent's.
#include <event2/event.h>
#include <event2/listener.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <memory>
#include <vector>

#include "stages/common/common.h"
#include "tools/peers/peer_main.h"

namespace {

constexpr char kAbout[] = "Peer: an echo server on libevent (evconnlistener, events).";

struct Server;

struct Connection {
  Server* server = nullptr;
  echo::Fd fd;
  event* read_event = nullptr;     // EV_READ | EV_PERSIST: on while nothing is pending
  event* write_event = nullptr;    // EV_WRITE | EV_PERSIST: on while something is
  std::unique_ptr<char[]> buffer;  // options.buffer_size bytes
  std::size_t filled = 0;          // bytes read into it
  std::size_t sent = 0;            // of those, bytes echoed
  bool pending() const { return sent < filled; }
  ~Connection() {
    if (read_event != nullptr) event_free(read_event);
    if (write_event != nullptr) event_free(write_event);
  }
};

struct Server {
  event_base* base;
  const echo::Options& options;
  echo::Stats& stats;
  std::vector<std::unique_ptr<Connection>> connections{};  // indexed by fd
  bool starved = false;  // out of fds since the last accept (logged once)
};

void close_connection(Connection& c) {
  c.server->connections[c.fd.get()].reset();  // frees the events, then closes
}

// Sends what is pending; false when the connection is gone (EPIPE, ECONNRESET).
bool flush(Connection& c) {
  while (c.pending()) {
    const ssize_t n = ::write(c.fd.get(), c.buffer.get() + c.sent, c.filled - c.sent);
    if (n > 0) {
      c.sent += static_cast<std::size_t>(n);
      c.server->stats.add_bytes(static_cast<std::uint64_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;  // full
    return false;
  }
  return true;
}

// Level-triggered EV_WRITE: the send buffer has room again.
void on_writable(evutil_socket_t, short, void* arg) {
  Connection& c = *static_cast<Connection*>(arg);
  if (!flush(c)) return close_connection(c);
  if (c.pending()) return;  // still full: wait again
  if (event_del(c.write_event) != 0 || event_add(c.read_event, nullptr) != 0) {
    close_connection(c);
  }
}

// Level-triggered EV_READ: one read per event, echoed at once.
void on_readable(evutil_socket_t, short, void* arg) {
  Connection& c = *static_cast<Connection*>(arg);
  ssize_t n;
  do {
    n = ::read(c.fd.get(), c.buffer.get(), c.server->options.buffer_size);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // spurious; normal
  if (n <= 0) return close_connection(c);  // EOF (all echoed) or an error
  c.filled = static_cast<std::size_t>(n);
  c.sent = 0;
  if (!flush(c)) return close_connection(c);
  if (!c.pending()) return;  // the usual case
  // The send buffer is full: stop reading until what is pending has gone out.
  if (event_del(c.read_event) != 0 || event_add(c.write_event, nullptr) != 0) {
    close_connection(c);
  }
}

void on_accept(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg) {
  Server& s = *static_cast<Server*>(arg);
  s.starved = false;
  // A yardstick, not a lesson: running out of memory here ends the process.
  auto c = std::make_unique<Connection>();
  c->server = &s;
  c->fd.reset(fd);
  c->read_event = event_new(s.base, fd, EV_READ | EV_PERSIST, on_readable, c.get());
  c->write_event = event_new(s.base, fd, EV_WRITE | EV_PERSIST, on_writable, c.get());
  // Not zeroed, like the stages' buffers: pages never written need not be resident.
  c->buffer = std::make_unique_for_overwrite<char[]>(s.options.buffer_size);
  s.stats.add_connection();
  echo::log_info("accepted a client");
  if (c->read_event == nullptr || c->write_event == nullptr ||
      event_add(c->read_event, nullptr) != 0) {
    echo::log_error("cannot set up a connection: dropping it");
    return;  // c closes fd
  }
  const auto slot = static_cast<std::size_t>(fd);
  if (s.connections.size() <= slot) s.connections.resize(slot + 1);
  s.connections[slot] = std::move(c);
}

void resume_accepting(evutil_socket_t, short, void* listener) {
  evconnlistener_enable(static_cast<evconnlistener*>(listener));
}

// libevent reports every failed accept here and keeps the listener on. Out of
// fds, the client stays queued and the level-triggered listener fires again at
// once: a spin. So pause it for 100 ms, as the stages do.
void on_accept_error(evconnlistener* listener, void* arg) {
  Server& s = *static_cast<Server*>(arg);
  const int err = errno;
  if (echo::classify_accept_error(err) != echo::AcceptFailure::kOutOfFds) {
    echo::log_info("accept: %s", std::strerror(err));
    return;
  }
  if (!s.starved) echo::log_error("accept: %s (pausing accepts)", std::strerror(err));
  s.starved = true;
  const timeval pause{0, 100'000};
  if (evconnlistener_disable(listener) != 0 ||
      event_base_once(s.base, -1, EV_TIMEOUT, resume_accepting, listener, &pause) !=
          0) {
    evconnlistener_enable(listener);  // cannot pause: retrying beats never accepting
  }
}

void on_signal(evutil_socket_t, short, void* arg) {
  event_base_loopbreak(static_cast<event_base*>(arg));
}

}  // namespace

int main(int argc, char** argv) {
  peers::Start start = peers::start_or_exit(argc, argv, kAbout);
  const echo::Options& options = start.options;
  echo::Fd& fd = start.listener;

  event_base* base = event_base_new();
  if (base == nullptr) {
    echo::log_error("event_base_new failed");
    return 1;
  }
  echo::Stats stats;
  Server server{base, options, stats};
  // Backlog 0: the socket already listens.
  evconnlistener* listener = evconnlistener_new(base, on_accept, &server,
                                                LEV_OPT_CLOSE_ON_FREE, 0, fd.release());
  event* sigint = evsignal_new(base, SIGINT, on_signal, base);
  event* sigterm = evsignal_new(base, SIGTERM, on_signal, base);
  if (listener == nullptr || sigint == nullptr || sigterm == nullptr ||
      event_add(sigint, nullptr) != 0 || event_add(sigterm, nullptr) != 0) {
    echo::log_error("cannot set up the libevent loop");
    return 1;
  }
  evconnlistener_set_error_cb(listener, on_accept_error);

  event_base_dispatch(base);

  server.connections.clear();  // closes every connection
  evconnlistener_free(listener);
  event_free(sigint);
  event_free(sigterm);
  event_base_free(base);
  echo::print_summary(stats);
  return 0;
}
