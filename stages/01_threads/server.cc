// Stage 01_threads: a thread per connection.
//
// Lesson: concurrency with threads. The echo code is 00_blocking's: every call
// still blocks, but each client gets its own thread and buffer, so a blocked
// read() stalls that client only. The main thread accepts, starts a thread per
// client, joins the finished ones, and on a stop wakes and joins them all.
//
// Limitation: every client costs a thread: a stack, a kernel task, and a context
// switch each time its data arrives. Thousands of mostly idle clients mean
// thousands of sleeping threads (fixed in 02_poll).
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <list>
#include <memory>
#include <mutex>
#include <new>
#include <string>

#include "stages/common/common.h"

namespace {

constexpr char kAbout[] =
    "Stage 01_threads: a blocking echo server with a thread per connection.";

// ---- Connection state ---------------------------------------------------------

//! [connection]
// Each client is served by its own thread, so each needs its own buffer.
struct Connection {
  echo::Fd fd;
  std::string peer;                // "HOST:PORT", for log lines
  std::unique_ptr<char[]> buffer;  // options.buffer_size bytes, this client's own
  std::uint64_t echoed = 0;        // bytes sent back on this connection
};
//! [connection]

//! [clients]
// The threads started and not yet joined. On a stop the main thread must wake
// each one (it needs their sockets) and join each one (it needs their handles).
struct Clients;
struct Client {
  Clients& clients;
  Connection c;          // the client thread's own, except c.fd (see the mutex)
  pthread_t thread{};    // touched by the main thread only
  bool started = false;  // whether `thread` runs (and must be joined)
};
struct Clients {
  const std::size_t buffer_size;
  echo::Stats& stats;
  // Guards each c.fd: threads close their socket under it and the main thread
  // shuts sockets down under it, never on a closed (maybe reused) fd. A closed
  // fd means that thread is done, or about to return.
  std::mutex mutex;
  // Only the main thread adds or removes entries; a list keeps each thread's
  // reference to its own entry valid meanwhile.
  std::list<Client> all;
};
//! [clients]

// ---- Accepting ----------------------------------------------------------------

// Blocks until a client connects or a stop is requested. Accept errors never
// stop the server: the listening socket is still fine.
bool accept_client(const echo::Fd& listener, Connection& out) {
  while (!echo::stop_requested()) {
    sockaddr_storage peer{};
    socklen_t length = sizeof peer;
    int fd = ::accept4(listener.get(), reinterpret_cast<sockaddr*>(&peer), &length,
                       SOCK_CLOEXEC);
    if (fd >= 0) {
      out.fd.reset(fd);
      out.peer = echo::address_string(reinterpret_cast<sockaddr*>(&peer), length);
      out.echoed = 0;
      ECHO_TRACE("accept fd=%d from %s", fd, out.peer.c_str());
      return true;
    }
    const int err = errno;
    switch (echo::classify_accept_error(err)) {
      case echo::AcceptFailure::kRetry:       // a signal: check for a stop, retry
      case echo::AcceptFailure::kQueueEmpty:  // cannot happen on a blocking socket
        break;
      case echo::AcceptFailure::kOutOfFds: {
        // Out of fds: retrying at once would spin. Wait a little; the client
        // stays queued until then.
        echo::log_error("accept: %s (retrying in 100 ms)", std::strerror(err));
        timespec pause{0, 100'000'000};
        ::nanosleep(&pause, nullptr);
        break;
      }
      case echo::AcceptFailure::kClientGone:
        if (!echo::stop_requested()) echo::log_error("accept: %s", std::strerror(err));
        break;
    }
  }
  return false;
}

// ---- Echoing ------------------------------------------------------------------

//! [write_all]
// write() may take fewer bytes than asked (a partial write): resume from where it
// stopped until everything is sent.
bool write_all(Connection& c, const char* data, std::size_t size) {
  std::size_t sent = 0;
  while (sent < size) {
    ssize_t n = ::write(c.fd.get(), data + sent, size - sent);
    if (n >= 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (errno == EINTR && !echo::stop_requested()) continue;  // a signal: retry
    if (errno != EINTR)
      echo::log_info("%s: write: %s", c.peer.c_str(), std::strerror(errno));
    return false;  // EPIPE/ECONNRESET: the peer is gone (SIGPIPE is ignored)
  }
  c.echoed += size;
  return true;
}
//! [write_all]

//! [echo_until_eof]
// Reads whatever has arrived (up to the buffer size) and writes it back, until
// the client closes its side (read returns 0) or the connection fails.
void echo_until_eof(Connection& c, std::size_t buffer_size, echo::Stats& stats) {
  for (;;) {
    ssize_t n = ::read(c.fd.get(), c.buffer.get(), buffer_size);
    if (n > 0) {
      if (!write_all(c, c.buffer.get(), static_cast<std::size_t>(n))) return;
      stats.add_bytes(static_cast<std::uint64_t>(n));
      continue;
    }
    if (n == 0) return;  // EOF: the client is done sending
    if (errno == EINTR && !echo::stop_requested()) continue;  // a signal: retry
    if (errno != EINTR)
      echo::log_info("%s: read: %s", c.peer.c_str(), std::strerror(errno));
    return;
  }
}
//! [echo_until_eof]

// ---- Closing ------------------------------------------------------------------

void close_connection(Clients& clients, Connection& c) {
  ECHO_TRACE("close fd=%d", c.fd.get());
  echo::log_info("closed %s after echoing %llu bytes", c.peer.c_str(),
                 static_cast<unsigned long long>(c.echoed));
  c.buffer.reset();  // give the memory back now, not when the thread is joined
  std::lock_guard<std::mutex> lock(clients.mutex);
  c.fd.reset();
}

// ---- The loop -----------------------------------------------------------------

//! [threads]
// The body of each client's thread: 00_blocking's echo loop, on its own buffer.
void* client_thread(void* arg) {
  Client& self = *static_cast<Client*>(arg);
  Connection& c = self.c;
  const std::size_t size = self.clients.buffer_size;
  c.buffer.reset(new (std::nothrow) char[size]);
  if (c.buffer)
    echo_until_eof(c, size, self.clients.stats);
  else
    echo::log_error("%s: no memory for a %zu-byte buffer", c.peer.c_str(), size);
  close_connection(self.clients, c);
  return nullptr;
}

// Each thread reserves its whole stack up front, by default `ulimit -s` (usually
// 8 MiB) of address space: 8 GiB for 1,000 clients, which fails where overcommit
// is strict. An echo loop needs a few KiB, so 256 KiB is plenty. (std::thread
// cannot set a stack size, hence pthread_create.)
constexpr std::size_t kStackSize = 256 * 1024;

// Hands the connection to a new thread. Failing to start one (EAGAIN: too many
// threads, or no memory for a stack) loses this client only.
void start_client(Clients& clients, Connection c) {
  Client* client;
  {
    std::lock_guard<std::mutex> lock(clients.mutex);
    client = &clients.all.emplace_back(Client{clients, std::move(c)});
  }
  pthread_attr_t attr;
  ::pthread_attr_init(&attr);
  ::pthread_attr_setstacksize(&attr, kStackSize);
  const int err = ::pthread_create(&client->thread, &attr, client_thread, client);
  ::pthread_attr_destroy(&attr);
  client->started = err == 0;
  if (err != 0) {
    echo::log_error("%s: cannot start a thread: %s", client->c.peer.c_str(),
                    std::strerror(err));
    close_connection(clients, client->c);  // reaped like a finished thread
  }
}
//! [threads]

// Joins the threads whose client has left. A finished thread is already gone
// from the kernel, but its stack stays reserved until it is joined.
void join_finished(Clients& clients) {
  std::lock_guard<std::mutex> lock(clients.mutex);
  clients.all.remove_if([](Client& client) {
    if (client.c.fd.valid()) return false;  // still serving its client
    // Its socket is closed and the mutex released: the thread is returning.
    if (client.started) ::pthread_join(client.thread, nullptr);
    return true;
  });
}

//! [stop]
// A stop: wake every thread blocked on its client, then wait for them all.
void stop_clients(Clients& clients) {
  {
    std::lock_guard<std::mutex> lock(clients.mutex);
    // Wakes a blocked read() (it returns 0) or write() (EPIPE).
    for (Client& client : clients.all)
      if (client.c.fd.valid()) ::shutdown(client.c.fd.get(), SHUT_RDWR);
  }
  // Without the mutex: each thread takes it once more to close its socket.
  for (Client& client : clients.all)
    if (client.started) ::pthread_join(client.thread, nullptr);
  clients.all.clear();
}
//! [stop]

//! [serve]
// Accept, hand the client to its own thread, repeat. The main thread never
// touches client data: it only starts, stops and joins threads.
void serve(const echo::Fd& listener, const echo::Options& options, echo::Stats& stats) {
  Clients clients{options.buffer_size, stats, {}, {}};
  Connection c;
  while (accept_client(listener, c)) {
    stats.add_connection();
    echo::log_info("accepted %s", c.peer.c_str());
    // Limitation: threads that finished while accept() blocked wait here to be
    // joined; the next client (or the stop) reaps them.
    join_finished(clients);
    start_client(clients, std::move(c));
  }
  stop_clients(clients);
}
//! [serve]

}  // namespace

int main(int argc, char** argv) {
  const echo::Options options = echo::parse_options_or_exit(argc, argv, kAbout);
  echo::set_log_options(options.trace, options.quiet);
  echo::install_signal_handlers();
  echo::raise_fd_limit();

  echo::Fd listener = echo::listen_or_exit(options, echo::Blocking::kYes);
  // A stop must also wake a blocked accept().
  echo::shutdown_on_stop(listener.get());

  echo::Stats stats;
  serve(listener, options, stats);
  echo::print_summary(stats);
  return 0;
}
