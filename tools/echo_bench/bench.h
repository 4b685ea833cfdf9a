// The load generator: one epoll loop drives every connection.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <string>

#include "tools/echo_bench/flags.h"
#include "tools/echo_bench/histogram.h"

namespace echo_bench {

struct Address {
  sockaddr_storage storage{};
  socklen_t length = 0;
  std::string text;  // "HOST:PORT" ("[::1]:PORT" for IPv6)
};

// Resolves --host/--port (numeric or a name; the first address returned).
bool resolve(const Config& config, Address& out, std::string& error);

// Raises the soft RLIMIT_NOFILE to the hard limit and checks that the connections
// fit in it and in the local port range; explains why not when they do not.
bool fit_connections(const Config& config, std::string& error);

struct Report {
  // Connecting (before any message is sent; never counted in the statistics).
  std::uint64_t connected = 0;        // connections established
  std::uint64_t connect_retries = 0;  // EADDRNOTAVAIL retries (no free local port)
  std::int64_t connect_total_ns = 0;  // first connect() to the last one established
  Histogram connect_ns;               // per connection: connect() to established

  // Traffic.
  std::uint64_t messages_sent = 0;      // messages whose first byte was sent
  std::uint64_t messages_verified = 0;  // messages fully echoed and verified
  std::uint64_t bytes_verified = 0;     // echoed bytes checked against the pattern
  std::uint64_t messages = 0;           // of those, completed in the measured window
  std::int64_t window_ns = 0;           // the measured window
  // echo_bench's own CPU time (user + system, CLOCK_PROCESS_CPUTIME_ID) in the
  // measured window: near the window itself, the client's one core was busy all
  // along and may be what set the pace, not the server.
  std::int64_t cpu_ns = 0;
  // Fairness: the fewest and most messages one connection completed in the window.
  std::uint64_t min_per_connection = 0;
  std::uint64_t max_per_connection = 0;
  // Every message completed after the warm-up (also after the window): from the
  // send() of its first byte to the receipt of its last.
  Histogram latency_ns;

  // --hold: how long every connection was held open and idle after its last echo.
  std::int64_t held_ns = 0;

  std::uint64_t errors = 0;
  std::string error;  // the first failure, e.g. "connection 3: byte at offset ..."
};

// Called once, with --hold, when the last connection has finished its messages and
// the hold begins: every connection is then open, echoed and idle.
using HoldStarted = std::function<void(std::uint64_t connections)>;

// Asks a running run_bench to stop; async-signal-safe (main calls it from its
// SIGINT and SIGTERM handler). A running --hold ends at once and every connection
// closes cleanly; at any other moment the run fails as "interrupted". The run sees
// it within one epoll_wait (a signal interrupts that) or one tick.
void request_stop(int signal_number);

// Connects, sends, verifies, closes. False on any failure (report.error says what);
// the report holds what was measured up to then.
bool run_bench(const Config& config, const Address& address, Report& report,
               const HoldStarted& hold_started = nullptr);

}  // namespace echo_bench
