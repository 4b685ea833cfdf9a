// Process-wide setup shared by every stage: signals, the stop request, the fd
// limit, and the counters behind the exit summary.
//
// Plumbing, not a lesson. How a stage *reacts* to a stop request (closing its
// connections, leaving its loop) is in the stage.
#pragma once

#include <atomic>
#include <cstdint>

namespace echo {

// Ignores SIGPIPE (a peer that resets mid-write must cost an EPIPE, not the
// process) and makes SIGINT/SIGTERM request a stop. The handlers are installed
// without SA_RESTART, so a blocking call interrupted by them returns EINTR.
void install_signal_handlers();

// True once SIGINT or SIGTERM arrived (or request_stop was called).
bool stop_requested();

// An eventfd that becomes readable when a stop is requested. Event-driven stages
// watch it in their poll/epoll set, so a stop wakes them without any race
// against the check of stop_requested(). Valid after install_signal_handlers().
int stop_fd();

// For blocking stages: on a stop request, shutdown(fd, SHUT_RDWR) is called on
// every fd registered here, so a blocked accept() or read() returns at once.
// Lock-free and async-signal-safe; holds up to kMaxWakeFds fds at a time.
inline constexpr int kMaxWakeFds = 8;
bool shutdown_on_stop(int fd);  // false if the table is full
void forget_on_stop(int fd);

// What the signal handler does; callable directly (tests, internal stops).
void request_stop();

// Makes sure fds 0, 1 and 2 are open, on /dev/null where they were closed, so that
// no descriptor the server opens later (the stop eventfd, the listener) takes the
// number of stdin, stdout or stderr and receives the log lines or the "listening
// on" line as writes. parse_options_or_exit calls it first, before anything opens.
void open_standard_fds();

// Raises the soft RLIMIT_NOFILE to the hard limit so that a stage can hold as many
// connections as the system lets it. Returns the new soft limit.
std::uint64_t raise_fd_limit();

// Counters for the exit summary. Relaxed atomics: 01_threads updates them from
// many threads; the single-threaded stages pay one uncontended add.
struct Stats {
  std::atomic<std::uint64_t> connections{0};  // connections accepted
  std::atomic<std::uint64_t> bytes{0};        // bytes echoed back to clients

  void add_connection() { connections.fetch_add(1, std::memory_order_relaxed); }
  void add_bytes(std::uint64_t n) { bytes.fetch_add(n, std::memory_order_relaxed); }
};

// Prints the one-line summary on stdout and flushes it:
//   summary: served N connections, echoed M bytes
void print_summary(const Stats& stats);

}  // namespace echo
