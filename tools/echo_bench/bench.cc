#include "tools/echo_bench/bench.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <vector>

#include "tools/echo_bench/pattern.h"

namespace echo_bench {
namespace {

constexpr std::int64_t kSecond = 1'000'000'000;
constexpr std::size_t kIoChunk = 256 * 1024;  // bytes per send/recv call at most
constexpr int kMaxReadsPerEvent = 4;          // then let other connections run
constexpr int kMaxEvents = 1024;              // events taken per epoll_wait
constexpr std::uint64_t kConnectBatch = 256;  // connects in progress at once
constexpr std::uint64_t kSpareFds = 16;       // stdio, epoll, and some slack

// request_stop: the signal's number. A lock-free atomic, so that a signal handler
// may set it and another thread (the tests') may too.
std::atomic<int> stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free);

std::int64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);  // vDSO: no system call
  return ts.tv_sec * kSecond + ts.tv_nsec;
}

// This process's CPU time, user + system. A system call: read at the two ends of
// the measured window only.
std::int64_t cpu_now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * kSecond + ts.tv_nsec;
}

unsigned long long ull(std::uint64_t v) {
  return static_cast<unsigned long long>(v);
}

enum class State : std::uint8_t {
  kWaiting,     // not connecting yet (batching) or waiting to retry
  kConnecting,  // connect() in progress: waiting for EPOLLOUT
  kConnected,   // established; waiting for every other connection
  kRunning,     // sending and verifying messages
  kHeld,        // all echoed; kept open and idle until --hold is over
  kClosing,     // shutdown(SHUT_WR) sent: waiting for the server's EOF
  kClosed,
};

// One connection's stream: bytes [0, sent) were written, [0, received) were
// echoed and verified, and messages up to `limit` bytes are reserved for it.
// Invariant: received <= sent <= limit, and limit is a whole number of messages.
struct Connection {
  int fd = -1;
  State state = State::kWaiting;
  bool want_out = false;  // EPOLLOUT is in the interest set
  std::uint32_t retries = 0;
  std::uint64_t seed = 0;
  std::uint64_t sent = 0;
  std::uint64_t limit = 0;
  std::uint64_t received = 0;
  std::uint64_t counted = 0;       // messages completed in the measured window
  std::int64_t first_attempt = 0;  // the first connect() call
  std::int64_t retry_at = 0;
  std::int64_t last_progress = 0;  // last byte moved (or state change)
};

class Bench {
 public:
  Bench(const Config& config, const Address& address, Report& report,
        const HoldStarted& hold_started)
      : config_(config),
        address_(address),
        report_(report),
        hold_started_(hold_started),
        count_(config.connections),
        size_(config.size),
        pipeline_(config.pipeline),
        stall_ns_(static_cast<std::int64_t>(config.stall_timeout_s * 1e9)),
        hold_ns_(static_cast<std::int64_t>(config.hold_s * 1e9)),
        pool_(config.messages),
        conns_(count_),
        stamps_(count_ * pipeline_),
        send_buffer_(new char[kIoChunk]),
        recv_buffer_(new char[kIoChunk]) {
    for (std::uint64_t i = 0; i < count_; ++i) conns_[i].seed = stream_seed(i);
    progress_ = ::isatty(STDERR_FILENO) == 1;
  }

  ~Bench() {
    for (Connection& c : conns_) {
      if (c.fd >= 0) ::close(c.fd);
    }
    if (epoll_ >= 0) ::close(epoll_);
  }

  bool run();

 private:
  std::uint32_t index(const Connection& c) const {
    return static_cast<std::uint32_t>(&c - conns_.data());
  }
  void fail(const char* format, ...) __attribute__((format(printf, 2, 3)));
  bool watch(Connection& c, int op, std::uint32_t events);

  void start_connects(std::int64_t now);
  void begin_connect(Connection& c, std::int64_t now);
  void retry_connect(Connection& c, std::int64_t now);
  void finish_connect(Connection& c);
  void connected(Connection& c, std::int64_t now);
  void start_traffic(std::int64_t now);
  void note_window(std::int64_t now);

  void handle(Connection& c, std::uint32_t events);
  void read_idle(Connection& c);
  void read_running(Connection& c);
  bool verify(Connection& c, std::size_t n, std::int64_t now);
  void refill(Connection& c);
  bool flush(Connection& c);
  void finish(Connection& c, std::int64_t now);
  void end_hold(std::int64_t now);
  void read_held(Connection& c);
  void begin_close(Connection& c, std::int64_t now);
  void read_closing(Connection& c);

  int timeout_ms(std::int64_t now) const;
  void tick(std::int64_t now);
  void check_stalls(std::int64_t now);
  void print_progress(std::int64_t now);

  const Config& config_;
  const Address& address_;
  Report& report_;
  const HoldStarted& hold_started_;
  const std::uint64_t count_;
  const std::uint64_t size_;
  const std::uint64_t pipeline_;
  const std::int64_t stall_ns_;
  const std::int64_t hold_ns_;
  const bool by_count_ = config_.messages > 0;
  std::uint64_t pool_;  // --messages: messages not reserved yet

  std::vector<Connection> conns_;
  std::vector<std::int64_t> stamps_;  // send time of message m: [c * pipeline + m % K]
  std::unique_ptr<char[]> send_buffer_;
  std::unique_ptr<char[]> recv_buffer_;
  epoll_event events_[kMaxEvents];

  int epoll_ = -1;
  bool failed_ = false;
  bool progress_ = false;       // a live line on stderr (a terminal only)
  std::uint64_t next_new_ = 0;  // next connection never tried
  std::deque<std::uint32_t> retry_queue_;
  std::uint64_t connecting_ = 0;
  std::uint64_t closed_ = 0;
  std::uint64_t held_ = 0;       // connections in State::kHeld
  std::int64_t hold_start_ = 0;  // the last connection finished: the hold began
  std::int64_t hold_end_ = 0;    // 0: no hold running

  std::int64_t start_ = 0;  // first connect()
  bool started_ = false;    // traffic started
  bool sending_ = false;    // new messages may be reserved
  std::int64_t measure_start_ = 0;
  std::int64_t measure_end_ = INT64_MAX;  // --duration only
  std::int64_t last_counted_ = 0;
  std::int64_t cpu_at_start_ = -1;  // CPU time when the window opened (-1: not yet)
  std::int64_t cpu_at_end_ = -1;    // and when it closed
  std::int64_t next_tick_ = 0;
  std::int64_t tick_ns_ = kSecond;
  std::int64_t next_progress_ = 0;
  std::uint64_t progress_verified_ = 0;  // messages_verified at the last line
};

void Bench::fail(const char* format, ...) {
  ++report_.errors;
  failed_ = true;
  if (!report_.error.empty()) return;  // the first failure is the one to read
  char text[512];
  va_list args;
  va_start(args, format);
  std::vsnprintf(text, sizeof text, format, args);
  va_end(args);
  report_.error = text;
}

bool Bench::watch(Connection& c, int op, std::uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u32 = index(c);
  if (::epoll_ctl(epoll_, op, c.fd, &ev) == 0) return true;
  fail("connection %u: epoll_ctl: %s", index(c), std::strerror(errno));
  return false;
}

// ---- Connecting ---------------------------------------------------------------

// Keeps at most kConnectBatch connects in progress, so that 10,000 connections
// never overflow the server's listen queue with SYNs at once.
void Bench::start_connects(std::int64_t now) {
  while (connecting_ < kConnectBatch && !failed_) {
    if (!retry_queue_.empty() && conns_[retry_queue_.front()].retry_at <= now) {
      Connection& c = conns_[retry_queue_.front()];
      retry_queue_.pop_front();
      begin_connect(c, now);
    } else if (next_new_ < count_) {
      begin_connect(conns_[next_new_++], now);
    } else {
      return;
    }
  }
}

void Bench::begin_connect(Connection& c, std::int64_t now) {
  if (c.first_attempt == 0) c.first_attempt = now;
  c.last_progress = now;
  const int family = address_.storage.ss_family;
  c.fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c.fd < 0) {
    fail("connection %u: socket: %s", index(c), std::strerror(errno));
    return;
  }
  // Small messages go out at once instead of waiting for an ACK (Nagle).
  const int one = 1;
  ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const auto* sa = reinterpret_cast<const sockaddr*>(&address_.storage);
  if (::connect(c.fd, sa, address_.length) == 0) {
    if (watch(c, EPOLL_CTL_ADD, EPOLLIN)) connected(c, now);
    return;
  }
  const int err = errno;
  if (err == EINPROGRESS || err == EINTR) {  // completes later: EPOLLOUT says when
    c.state = State::kConnecting;
    ++connecting_;
    watch(c, EPOLL_CTL_ADD, EPOLLOUT);
    return;
  }
  if (err == EADDRNOTAVAIL || err == EAGAIN) {  // no free local port right now
    retry_connect(c, now);
    return;
  }
  fail("connection %u: connect to %s: %s", index(c), address_.text.c_str(),
       std::strerror(err));
}

// Out of local ports (often: many in TIME_WAIT from an earlier run). They free up
// with time, so back off and retry, up to the stall timeout.
void Bench::retry_connect(Connection& c, std::int64_t now) {
  ::close(c.fd);
  c.fd = -1;
  c.state = State::kWaiting;
  if (now - c.first_attempt > stall_ns_) {
    fail(
        "connection %u: connect to %s: %s: no free local port after %u retries over "
        "%.1f s (ports in TIME_WAIT? see /proc/sys/net/ipv4/ip_local_port_range)",
        index(c), address_.text.c_str(), std::strerror(EADDRNOTAVAIL), c.retries,
        config_.stall_timeout_s);
    return;
  }
  const std::int64_t backoff =
      std::min<std::int64_t>(kSecond / 100 << std::min(c.retries, 7u), kSecond);
  c.retry_at = now + backoff;
  ++c.retries;
  ++report_.connect_retries;
  retry_queue_.push_back(index(c));
}

void Bench::finish_connect(Connection& c) {
  --connecting_;
  int err = 0;
  socklen_t length = sizeof err;
  if (::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &length) != 0) err = errno;
  const std::int64_t now = now_ns();
  if (err == 0) {
    if (watch(c, EPOLL_CTL_MOD, EPOLLIN)) connected(c, now);
  } else if (err == EADDRNOTAVAIL) {
    retry_connect(c, now);
  } else {
    fail("connection %u: connect to %s: %s", index(c), address_.text.c_str(),
         std::strerror(err));
  }
}

void Bench::connected(Connection& c, std::int64_t now) {
  c.state = State::kConnected;
  c.last_progress = now;
  ++report_.connected;
  report_.connect_ns.record(static_cast<std::uint64_t>(now - c.first_attempt));
  report_.connect_total_ns = now - start_;
}

// Every connection is up: the clock starts and every connection reserves and
// sends its first messages.
void Bench::start_traffic(std::int64_t now) {
  started_ = true;
  sending_ = true;
  measure_start_ = now + static_cast<std::int64_t>(config_.warmup_s * 1e9);
  if (!by_count_) {
    measure_end_ = measure_start_ + static_cast<std::int64_t>(config_.duration_s * 1e9);
  }
  note_window(now);  // no warm-up: the window opens now
  for (Connection& c : conns_) {
    c.state = State::kRunning;
    c.last_progress = now;
    refill(c);
    if (failed_) return;
  }
}

// Reads the CPU clock as the measured window opens and, with --duration, as it
// closes, to within one turn of the loop. (A --messages window closes in verify.)
void Bench::note_window(std::int64_t now) {
  if (!started_) return;
  if (cpu_at_start_ < 0 && now >= measure_start_) cpu_at_start_ = cpu_now_ns();
  if (!by_count_ && cpu_at_start_ >= 0 && cpu_at_end_ < 0 && now >= measure_end_) {
    cpu_at_end_ = cpu_now_ns();
  }
}

// ---- Sending and verifying ----------------------------------------------------

void Bench::handle(Connection& c, std::uint32_t events) {
  switch (c.state) {
    case State::kConnecting:
      finish_connect(c);
      break;
    case State::kConnected:
      read_idle(c);
      break;
    case State::kRunning:
      // Read first: errors and EOF show up there (EPOLLERR/EPOLLHUP too).
      if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        read_running(c);
      } else if (events & EPOLLOUT) {
        if (flush(c)) refill(c);
      }
      break;
    case State::kHeld:
      read_held(c);
      break;
    case State::kClosing:
      read_closing(c);
      break;
    case State::kWaiting:
    case State::kClosed:
      break;
  }
}

// Nothing was sent yet, so nothing may arrive.
void Bench::read_idle(Connection& c) {
  const ssize_t n = ::recv(c.fd, recv_buffer_.get(), kIoChunk, 0);
  if (n > 0) {
    fail("connection %u: the server sent %zd bytes before any was sent to it", index(c),
         n);
  } else if (n == 0) {
    fail("connection %u: the server closed the connection before any byte was sent",
         index(c));
  } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    fail("connection %u: recv: %s (before any byte was sent)", index(c),
         std::strerror(errno));
  }
}

void Bench::read_running(Connection& c) {
  for (int round = 0; round < kMaxReadsPerEvent; ++round) {
    const ssize_t n = ::recv(c.fd, recv_buffer_.get(), kIoChunk, 0);
    if (n > 0) {
      if (!verify(c, static_cast<std::size_t>(n), now_ns())) return;
      if (static_cast<std::size_t>(n) < kIoChunk) break;  // drained, most likely
      continue;
    }
    if (n == 0) {
      fail(
          "connection %u: unexpected EOF from the server at offset %llu (%llu bytes "
          "sent, %llu echoed)",
          index(c), ull(c.received), ull(c.sent), ull(c.received));
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;  // level-triggered: wait
    fail("connection %u: recv: %s at offset %llu (%llu bytes sent, %llu echoed)",
         index(c), std::strerror(errno), ull(c.received), ull(c.sent), ull(c.received));
    return;
  }
  refill(c);
}

// Checks n bytes just received against the pattern and completes the messages
// whose last byte they carry.
bool Bench::verify(Connection& c, std::size_t n, std::int64_t now) {
  // The bytes that echo what was sent are checked first: a server that answers
  // with something else entirely (an HTTP error page, say) has a wrong byte
  // before it has too many.
  const std::size_t expected = std::min<std::uint64_t>(n, c.sent - c.received);
  const char* got = recv_buffer_.get();
  if (const std::size_t i = matching_prefix(c.seed, c.received, got, expected);
      i != expected) {
    const std::uint64_t offset = c.received + i;
    fail(
        "connection %u: wrong byte at offset %llu (message %llu, byte %llu of %llu): "
        "got 0x%02x, expected 0x%02x",
        index(c), ull(offset), ull(offset / size_), ull(offset % size_), ull(size_),
        static_cast<unsigned char>(got[i]), pattern_byte(c.seed, offset));
    return false;
  }
  if (n > expected) {
    fail(
        "connection %u: the server echoed %llu more byte%s than were sent (at offset "
        "%llu)",
        index(c), ull(n - expected), n - expected == 1 ? "" : "s", ull(c.sent));
    return false;
  }
  const std::uint64_t first = c.received / size_;
  c.received += n;
  const std::uint64_t last = c.received / size_;  // messages [first, last) complete
  // Latency counts every message completed after the warm-up, also after the
  // window: a starved connection's late echo must show in the percentiles, not
  // vanish from them. Throughput counts the messages completed in the window.
  const std::uint64_t base = index(c) * pipeline_;
  if (now >= measure_start_) {
    for (std::uint64_t m = first; m < last; ++m) {
      report_.latency_ns.record(
          static_cast<std::uint64_t>(now - stamps_[base + m % pipeline_]));
    }
  }
  if (now >= measure_start_ && now <= measure_end_ && last > first) {
    report_.messages += last - first;
    c.counted += last - first;
    last_counted_ = now;
  }
  report_.messages_verified += last - first;
  report_.bytes_verified += n;
  c.last_progress = now;
  // --messages: the window closes with the last message verified. Both of its end
  // readings are taken here, after the check, so that they agree.
  if (by_count_ && last > first && cpu_at_end_ < 0 &&
      report_.messages_verified >= config_.messages && now >= measure_start_) {
    last_counted_ = now_ns();
    cpu_at_end_ = cpu_now_ns();
    if (cpu_at_start_ < 0) cpu_at_start_ = cpu_at_end_;  // it opened in this turn
  }
  return true;
}

// Reserves messages up to the pipeline depth, sends them, and closes the
// connection once it has nothing left to do.
void Bench::refill(Connection& c) {
  if (sending_) {
    const std::uint64_t reserved = c.limit / size_;
    const std::uint64_t in_flight = reserved - c.received / size_;
    std::uint64_t take = pipeline_ - in_flight;
    if (by_count_) {
      take = std::min(take, pool_);
      pool_ -= take;
    }
    c.limit += take * size_;
  }
  if (!flush(c)) return;
  if (c.received == c.limit) finish(c, now_ns());  // all echoed, no more to send
}

// Sends what is reserved until done or the socket is full. A message's send time
// is taken just before the send() that carries its first byte.
bool Bench::flush(Connection& c) {
  char* out = send_buffer_.get();
  const std::uint64_t base = index(c) * pipeline_;
  while (c.sent < c.limit) {
    const std::size_t length = std::min<std::uint64_t>(c.limit - c.sent, kIoChunk);
    fill_pattern(c.seed, c.sent, out, length);
    const std::int64_t now = now_ns();
    const ssize_t n = ::send(c.fd, out, length, MSG_NOSIGNAL);
    if (n > 0) {
      const std::uint64_t first = (c.sent + size_ - 1) / size_;
      c.sent += static_cast<std::uint64_t>(n);
      const std::uint64_t last =
          (c.sent + size_ - 1) / size_;  // started: [first, last)
      for (std::uint64_t m = first; m < last; ++m) stamps_[base + m % pipeline_] = now;
      report_.messages_sent += last - first;
      c.last_progress = now;
      if (static_cast<std::size_t>(n) < length) break;  // the socket is full
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;  // full: EPOLLOUT
    fail("connection %u: send: %s at offset %llu (%llu bytes echoed)", index(c),
         std::strerror(errno), ull(c.sent), ull(c.received));
    return false;
  }
  // Watch for EPOLLOUT only while something is waiting to be sent.
  const bool want_out = c.sent < c.limit;
  if (want_out != c.want_out) {
    c.want_out = want_out;
    return watch(c, EPOLL_CTL_MOD, EPOLLIN | (want_out ? EPOLLOUT : 0u));
  }
  return true;
}

// ---- Holding and closing ------------------------------------------------------

// A connection with nothing left to send closes, or with --hold waits, open and
// idle, until every connection has finished and the hold is over.
void Bench::finish(Connection& c, std::int64_t now) {
  if (hold_ns_ == 0) {
    begin_close(c, now);
    return;
  }
  c.state = State::kHeld;
  if (++held_ == count_) {
    hold_start_ = now;
    hold_end_ = now + hold_ns_;
    if (hold_started_) {
      if (progress_) std::fprintf(stderr, "\r\x1b[K");  // a clean line for it
      hold_started_(count_);
    }
  }
}

void Bench::end_hold(std::int64_t now) {
  report_.held_ns = now - hold_start_;
  hold_end_ = 0;
  for (Connection& c : conns_) {
    if (c.state == State::kHeld) begin_close(c, now);
    if (failed_) return;
  }
}

// A held connection is idle: the server has nothing to send and must not close it.
void Bench::read_held(Connection& c) {
  const ssize_t n = ::recv(c.fd, recv_buffer_.get(), kIoChunk, 0);
  if (n > 0) {
    fail(
        "connection %u: %zd unexpected bytes while held idle (all %llu bytes were "
        "echoed)",
        index(c), n, ull(c.received));
  } else if (n == 0) {
    fail(
        "connection %u: the server closed it while it was held idle (all %llu bytes "
        "were echoed)",
        index(c), ull(c.received));
  } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    fail("connection %u: recv: %s while held idle (all %llu bytes were echoed)",
         index(c), std::strerror(errno), ull(c.received));
  }
}

// A clean close: half-close our side, then wait for the server to echo nothing
// more and close its side (EOF), and only then close the socket.
void Bench::begin_close(Connection& c, std::int64_t now) {
  if (::shutdown(c.fd, SHUT_WR) != 0) {
    fail("connection %u: shutdown: %s", index(c), std::strerror(errno));
    return;
  }
  c.state = State::kClosing;
  c.last_progress = now;
}

void Bench::read_closing(Connection& c) {
  const ssize_t n = ::recv(c.fd, recv_buffer_.get(), kIoChunk, 0);
  if (n == 0) {
    ::close(c.fd);
    c.fd = -1;
    c.state = State::kClosed;
    ++closed_;
  } else if (n > 0) {
    fail("connection %u: %zd unexpected bytes after the last echo (at offset %llu)",
         index(c), n, ull(c.received));
  } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    fail("connection %u: recv: %s while closing (all %llu bytes were echoed)", index(c),
         std::strerror(errno), ull(c.received));
  }
}

// ---- Timers -------------------------------------------------------------------

int Bench::timeout_ms(std::int64_t now) const {
  std::int64_t deadline = next_tick_;
  if (sending_) deadline = std::min(deadline, measure_end_);
  if (hold_end_ != 0) deadline = std::min(deadline, hold_end_);
  if (!retry_queue_.empty()) {
    deadline = std::min(deadline, conns_[retry_queue_.front()].retry_at);
  }
  if (deadline <= now) return 0;
  return static_cast<int>((deadline - now + 999'999) / 1'000'000);
}

void Bench::tick(std::int64_t now) {
  check_stalls(now);
  if (progress_ && now >= next_progress_) {
    print_progress(now);
    next_progress_ += kSecond;
  }
}

// A connection is busy when it waits for something from the server: its connect,
// an echo, or the EOF after its half-close.
void Bench::check_stalls(std::int64_t now) {
  for (Connection& c : conns_) {
    if (now - c.last_progress <= stall_ns_) continue;
    const double idle = static_cast<double>(now - c.last_progress) / 1e9;
    const unsigned i = index(c);
    if (c.state == State::kConnecting) {
      fail("connection %u: stalled: connect to %s did not complete in %.1f s", i,
           address_.text.c_str(), idle);
    } else if (c.state == State::kRunning && c.received < c.limit) {
      fail(
          "connection %u: stalled: no progress for %.1f s, waiting for the echo of "
          "offset %llu (%llu bytes sent, %llu echoed)",
          i, idle, ull(c.received), ull(c.sent), ull(c.received));
    } else if (c.state == State::kClosing) {
      fail(
          "connection %u: stalled: no EOF from the server %.1f s after "
          "shutdown(SHUT_WR) "
          "(all %llu bytes were echoed)",
          i, idle, ull(c.received));
    }
    if (failed_) return;
  }
}

void Bench::print_progress(std::int64_t now) {
  const double t = static_cast<double>(now - start_) / 1e9;
  if (!started_) {
    std::fprintf(stderr, "\r%6.1f s  connecting: %llu of %llu established\x1b[K", t,
                 ull(report_.connected), ull(count_));
  } else {
    const std::uint64_t done = report_.messages_verified - progress_verified_;
    const char* phase = now < measure_start_ ? "warm-up"
                        : sending_           ? "measuring"
                                             : "finishing";
    if (hold_end_ != 0) {
      std::fprintf(stderr,
                   "\r%6.1f s  holding %llu connections idle: %.0f s left\x1b[K", t,
                   ull(held_), static_cast<double>(hold_end_ - now) / 1e9);
    } else {
      std::fprintf(stderr, "\r%6.1f s  %s: %llu msg/s, %llu messages verified\x1b[K", t,
                   phase, ull(done), ull(report_.messages_verified));
    }
  }
  std::fflush(stderr);
  progress_verified_ = report_.messages_verified;
}

// ---- The loop -----------------------------------------------------------------

bool Bench::run() {
  epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_ < 0) {
    fail("epoll_create1: %s", std::strerror(errno));
    return false;
  }
  start_ = now_ns();
  tick_ns_ = std::max<std::int64_t>(std::min(kSecond, stall_ns_ / 4), kSecond / 100);
  next_tick_ = start_ + tick_ns_;
  next_progress_ = start_ + kSecond;
  std::int64_t now = start_;
  while (!failed_ && closed_ < count_) {
    if (!started_) start_connects(now);
    if (!started_ && report_.connected == count_) start_traffic(now);
    if (failed_) break;
    const int n = ::epoll_wait(epoll_, events_, kMaxEvents, timeout_ms(now));
    if (n < 0 && errno != EINTR) {
      fail("epoll_wait: %s", std::strerror(errno));
      break;
    }
    for (int i = 0; i < n && !failed_; ++i) {
      handle(conns_[events_[i].data.u32], events_[i].events);
    }
    now = now_ns();
    note_window(now);
    if (sending_ && now >= measure_end_) sending_ = false;  // --duration is over
    if (hold_end_ != 0 && now >= hold_end_) end_hold(now);  // --hold is over
    if (const int signal_number = stop_signal.exchange(0); signal_number != 0) {
      if (hold_end_ != 0) {
        end_hold(now);  // the hold is cut short: close cleanly
      } else {
        fail("interrupted by %s", signal_number == SIGINT    ? "SIGINT"
                                  : signal_number == SIGTERM ? "SIGTERM"
                                                             : "a signal");
      }
    }
    if (now >= next_tick_) {
      tick(now);
      while (next_tick_ <= now) next_tick_ += tick_ns_;
    }
  }
  if (progress_) std::fprintf(stderr, "\r\x1b[K");
  report_.min_per_connection = UINT64_MAX;
  for (const Connection& c : conns_) {
    report_.min_per_connection = std::min(report_.min_per_connection, c.counted);
    report_.max_per_connection = std::max(report_.max_per_connection, c.counted);
  }
  // A run that failed before its traffic started has no window; one that failed
  // during --duration has a window up to the failure.
  const std::int64_t end = by_count_ ? last_counted_ : std::min(measure_end_, now_ns());
  report_.window_ns =
      measure_start_ == 0 ? 0 : std::max<std::int64_t>(end - measure_start_, 0);
  // A run that failed inside its window counts CPU time up to the failure. With
  // --duration the window ends there too; with --messages it ends at the last
  // completed message, so the CPU time's span may also take in a stall (idle, it
  // adds little).
  if (cpu_at_start_ >= 0) {
    report_.cpu_ns = (cpu_at_end_ >= 0 ? cpu_at_end_ : cpu_now_ns()) - cpu_at_start_;
  }
  return !failed_;
}

}  // namespace

// ---- Setup --------------------------------------------------------------------

bool resolve(const Config& config, Address& out, std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  const std::string port = std::to_string(config.port);
  const int rc = ::getaddrinfo(config.host.c_str(), port.c_str(), &hints, &list);
  if (rc != 0 || list == nullptr) {
    error = "--host: cannot resolve '" + config.host + "': " + ::gai_strerror(rc);
    return false;
  }
  std::memcpy(&out.storage, list->ai_addr, list->ai_addrlen);
  out.length = list->ai_addrlen;
  char host[INET6_ADDRSTRLEN] = "?";
  if (list->ai_family == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(list->ai_addr)->sin6_addr,
                host, sizeof host);
    out.text = "[" + std::string(host) + "]:" + port;
  } else {
    ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(list->ai_addr)->sin_addr, host,
                sizeof host);
    out.text = std::string(host) + ":" + port;
  }
  ::freeaddrinfo(list);
  return true;
}

bool fit_connections(const Config& config, std::string& error) {
  const std::uint64_t need = config.connections + kSpareFds;
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    if (limit.rlim_cur < limit.rlim_max) {
      rlimit raised = limit;
      raised.rlim_cur = limit.rlim_max;
      if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
    }
    if (limit.rlim_cur != RLIM_INFINITY && need > limit.rlim_cur) {
      error = std::to_string(config.connections) + " connections need about " +
              std::to_string(need) + " file descriptors, but this process may open " +
              std::to_string(limit.rlim_cur) +
              " (RLIMIT_NOFILE, already raised to the hard limit). Use fewer "
              "connections, or raise the hard limit (as root: `ulimit -Hn " +
              std::to_string(need) + "`, or /etc/security/limits.conf).";
      return false;
    }
  }
  // Every connection to one server address needs its own local port.
  if (FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
    unsigned low = 0, high = 0;
    if (std::fscanf(f, "%u %u", &low, &high) == 2 && high >= low &&
        config.connections > high - low + 1) {
      error = std::to_string(config.connections) +
              " connections to one address need as many local ports, but "
              "/proc/sys/net/ipv4/ip_local_port_range allows " +
              std::to_string(high - low + 1) + " (" + std::to_string(low) + "-" +
              std::to_string(high) + ").";
      std::fclose(f);
      return false;
    }
    std::fclose(f);
  }
  return true;
}

void request_stop(int signal_number) {
  stop_signal.store(signal_number);
}

bool run_bench(const Config& config, const Address& address, Report& report,
               const HoldStarted& hold_started) {
  Bench bench(config, address, report, hold_started);
  return bench.run();
}

}  // namespace echo_bench
