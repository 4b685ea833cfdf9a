// Stage 00_blocking: the simplest correct echo server.
//
// Lesson: socket/bind/listen/accept, then a read/write loop that copes with
// partial writes and EINTR. Every call blocks, so the process does one thing at a
// time: it accepts one client, echoes until that client closes, and only then
// accepts the next.
//
// Limitation: one client at a time; a second client waits in the listen queue
// until the first one leaves (fixed in 01_threads).
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "stages/common/common.h"

namespace {

constexpr char kAbout[] =
    "Stage 00_blocking: a blocking echo server that serves one client at a time.";

// ---- Connection state ---------------------------------------------------------

//! [connection]
// One client at a time, so one buffer serves every connection in turn.
struct Connection {
  echo::Fd fd;
  std::string peer;          // "HOST:PORT", for log lines
  std::uint64_t echoed = 0;  // bytes sent back on this connection
};
//! [connection]

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
void echo_until_eof(Connection& c, std::vector<char>& buffer, echo::Stats& stats) {
  for (;;) {
    ssize_t n = ::read(c.fd.get(), buffer.data(), buffer.size());
    if (n > 0) {
      if (!write_all(c, buffer.data(), static_cast<std::size_t>(n))) return;
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

void close_connection(Connection& c) {
  echo::forget_on_stop(c.fd.get());
  ECHO_TRACE("close fd=%d", c.fd.get());
  echo::log_info("closed %s after echoing %llu bytes", c.peer.c_str(),
                 static_cast<unsigned long long>(c.echoed));
  c.fd.reset();
}

// ---- The loop -----------------------------------------------------------------

//! [serve]
// One client at a time: accept, echo until EOF, close, repeat.
void serve(const echo::Fd& listener, const echo::Options& options, echo::Stats& stats) {
  std::vector<char> buffer(options.buffer_size);
  Connection c;
  while (accept_client(listener, c)) {
    stats.add_connection();
    echo::log_info("accepted %s", c.peer.c_str());
    // A stop must wake the blocked read() below, not wait for the client.
    echo::shutdown_on_stop(c.fd.get());
    echo_until_eof(c, buffer, stats);
    close_connection(c);
  }
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
