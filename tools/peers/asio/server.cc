// Peer: the echo server on Boost.Asio (Debian's libboost-dev, header-only), a
// yardstick for the ladder.
//
// Not a lesson: what a user would write instead of their own loop, written the
// way Asio is meant to be used (its own async_tcp_echo_server example, on one
// single-threaded io_context), so that the comparison in docs/results.md is fair.
// The contract is the stages' (flags, `listening on HOST:PORT`, SIGINT/SIGTERM ->
// summary, exit 0), and so is the memory policy: one fixed buffer per connection,
// read -> write it all -> read.
//
// Asio registers each socket with its epoll reactor once (edge-triggered) and
// tries each operation at once before waiting for readiness, so a write usually
// completes without waiting; its handler memory is recycled, not allocated per
// operation.
//
// Flags, SIGPIPE, the fd limit and the listening socket are set up as for every
// peer (peer_main.h: the stages' own listen_or_exit, same backlog,
// SO_REUSEADDR, messages); accepting, I/O and signals are Asio's.
#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <csignal>
#include <memory>
#include <utility>

#include "stages/common/common.h"
#include "tools/peers/peer_main.h"

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

constexpr char kAbout[] =
    "Peer: an echo server on Boost.Asio (async_read_some/async_write, one thread).";

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::size_t size, echo::Stats& stats)
      : socket_(std::move(socket)),
        size_(size),
        buffer_(std::make_unique_for_overwrite<char[]>(size)),
        stats_(stats) {}

  void start() { read(); }

 private:
  void read() {
    socket_.async_read_some(
        asio::buffer(buffer_.get(), size_),
        [self = shared_from_this()](const boost::system::error_code& error,
                                    std::size_t n) {
          if (!error) self->write(n);  // on EOF or an error the session ends here
        });
  }

  void write(std::size_t length) {
    asio::async_write(socket_, asio::buffer(buffer_.get(), length),
                      [self = shared_from_this()](
                          const boost::system::error_code& error, std::size_t n) {
                        if (error) return;
                        self->stats_.add_bytes(n);
                        self->read();
                      });
  }

  tcp::socket socket_;
  std::size_t size_;
  std::unique_ptr<char[]> buffer_;  // not zeroed, like the stages' buffers
  echo::Stats& stats_;
};

struct Acceptor {
  tcp::acceptor socket;
  asio::steady_timer retry;  // out of fds: when to accept again
  const echo::Options& options;
  echo::Stats& stats;
  bool starved = false;  // out of fds since the last accept (logged once)
};

void accept_clients(Acceptor& a) {
  a.socket.async_accept([&a](const boost::system::error_code& error,
                             tcp::socket socket) {
    if (error == asio::error::operation_aborted) return;  // stopping
    if (error &&
        echo::classify_accept_error(error.value()) == echo::AcceptFailure::kOutOfFds) {
      // Out of fds, the client stays queued and an accept at once fails at once,
      // forever: a spin. So wait 100 ms, as the stages do.
      if (!a.starved)
        echo::log_error("accept: %s (pausing accepts)", error.message().c_str());
      a.starved = true;
      a.retry.expires_after(std::chrono::milliseconds(100));
      a.retry.async_wait([&a](const boost::system::error_code& e) {
        if (!e) accept_clients(a);
      });
      return;
    }
    if (error) {
      echo::log_info("accept: %s", error.message().c_str());
    } else {
      a.starved = false;
      a.stats.add_connection();
      echo::log_info("accepted a client");
      std::make_shared<Session>(std::move(socket), a.options.buffer_size, a.stats)
          ->start();
    }
    accept_clients(a);
  });
}

}  // namespace

int main(int argc, char** argv) {
  peers::Start start = peers::start_or_exit(argc, argv, kAbout);
  const echo::Options& options = start.options;
  echo::Fd& fd = start.listener;

  sockaddr_storage bound{};
  socklen_t length = sizeof bound;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &length);
  const tcp protocol = bound.ss_family == AF_INET6 ? tcp::v6() : tcp::v4();

  // One thread runs everything and no other thread touches the io_context, so it
  // needs no locking: this hint drops the scheduler's and the sockets' mutexes (a
  // hint of 1 selects the single-thread queue but keeps them).
  asio::io_context io(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE);
  echo::Stats stats;
  Acceptor acceptor{tcp::acceptor(io), asio::steady_timer(io), options, stats};
  boost::system::error_code error;
  acceptor.socket.assign(protocol, fd.release(), error);
  if (error) {
    echo::log_error("acceptor: %s", error.message().c_str());
    return 1;
  }
  accept_clients(acceptor);

  // SIGINT/SIGTERM: stop the loop; the io_context's destructor then destroys the
  // pending operations, and with them every session and its socket.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&io](const boost::system::error_code&, int) { io.stop(); });

  io.run();
  echo::print_summary(stats);
  return 0;
}
