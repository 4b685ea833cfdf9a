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
#include <boost/asio/write.hpp>
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

void accept_clients(tcp::acceptor& acceptor, const echo::Options& options,
                    echo::Stats& stats) {
  acceptor.async_accept([&acceptor, &options, &stats](
                            const boost::system::error_code& error,
                            tcp::socket socket) {
    if (error == asio::error::operation_aborted) return;  // stopping
    if (error) {
      echo::log_error("accept: %s", error.message().c_str());
    } else {
      stats.add_connection();
      echo::log_info("accepted a client");
      std::make_shared<Session>(std::move(socket), options.buffer_size, stats)->start();
    }
    accept_clients(acceptor, options, stats);
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

  asio::io_context io(1);  // one thread runs it: Asio may skip its locking
  echo::Stats stats;
  tcp::acceptor acceptor(io);
  boost::system::error_code error;
  acceptor.assign(protocol, fd.release(), error);
  if (error) {
    echo::log_error("acceptor: %s", error.message().c_str());
    return 1;
  }
  accept_clients(acceptor, options, stats);

  // SIGINT/SIGTERM: stop the loop; the io_context's destructor then destroys the
  // pending operations, and with them every session and its socket.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&io](const boost::system::error_code&, int) { io.stop(); });

  io.run();
  echo::print_summary(stats);
  return 0;
}
