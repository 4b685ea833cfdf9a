// The shared suite's harness: starts a stage's server as a child process and
// talks to it over real sockets on 127.0.0.1.
//
// Every wait has a deadline, so a broken server fails a test; it never hangs it.
// Client reads always loop until the expected byte count: TCP may split replies.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "stages/common/fd.h"

namespace echo::testing {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

// How long the largest transfers may take; generous for sanitizer builds on a
// shared 2-core machine.
inline constexpr seconds kLongWait{60};
inline constexpr seconds kShortWait{10};

// Sanitizer builds (--config=asan, --config=tsan) run the same assertions, with
// three allowances. Two are here: timing bounds are multiplied by kSlowdown (5
// for ASan; 10 for TSan, which makes thread creation and every memory access many
// times slower), and memory-growth bounds get kSanitizerMemorySlack (ASan keeps
// freed memory in quarantine, so RSS does not drop back after frees). Leaks are
// still caught, by LeakSanitizer.
#if defined(__SANITIZE_THREAD__)
inline constexpr bool kSanitized = true;
inline constexpr int kSlowdown = 10;
#elif defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;
inline constexpr int kSlowdown = 5;
#else
inline constexpr bool kSanitized = false;
inline constexpr int kSlowdown = 1;
#endif

inline constexpr std::uint64_t kSanitizerMemorySlack = kSanitized ? (256ull << 20) : 0;

// A third allowance, for TSan only: its runtime may hold a signal that arrives
// while the server is not in a blocking call, and never deliver it, so stop()
// sends the signal again every kSignalRepeat until the server exits.
#if defined(__SANITIZE_THREAD__)
inline constexpr bool kSignalsMayBeHeld = true;
#else
inline constexpr bool kSignalsMayBeHeld = false;
#endif
inline constexpr milliseconds kSignalRepeat{500};

// Path of the server binary under test and its stage name, from the test's
// command line (--server=PATH --stage=NN_name; see tests/echo_suite.bzl).
const std::string& server_path();
const std::string& stage_name();
void set_server(std::string path, std::string stage);

// Soak mode (--soak): the long-running targets multiply their iteration counts.
bool soak();
void set_soak(bool on);

// Absolute path of tools/faultinject's libfaultinject.so (--faultinject=PATH).
const std::string& faultinject_path();
void set_faultinject(std::string path);

// How to launch a server beyond its arguments.
struct Launch {
  std::uint64_t nofile = 0;         // RLIMIT_NOFILE soft and hard, 0: inherit
  std::uint64_t address_space = 0;  // RLIMIT_AS in bytes, 0: inherit
  std::vector<std::string> env;     // extra NAME=VALUE entries
};

// How a server run ended.
struct ExitStatus {
  bool exited = false;  // false: killed by a signal, or did not end in time
  int code = -1;        // exit code when exited
  int signal = 0;       // the signal that killed it, when !exited
  bool timed_out = false;
  std::string describe() const;
};

// A server child process with its stdout and stderr collected in the
// background (so the child never blocks on a full pipe).
class ServerProcess {
 public:
  // Starts server_path() with `args` (add "--port", "0" yourself or use
  // start_on_free_port) and waits for the first stdout line; the caller checks
  // it (first_line()), since some tests expect it not to say "listening on".
  static std::unique_ptr<ServerProcess> start(const std::vector<std::string>& args,
                                              const Launch& launch = {});
  // --port 0 plus args; asserts the listening line and parses the port.
  static std::unique_ptr<ServerProcess> start_on_free_port(
      std::vector<std::string> args = {}, const Launch& launch = {});

  ~ServerProcess();  // kills the child if it is still running

  pid_t pid() const { return pid_; }
  std::uint16_t port() const { return port_; }
  const std::string& first_line() const { return first_line_; }

  std::string stdout_text();
  std::string stderr_text();
  // Waits until stderr contains `needle` at or after byte `from`; returns its
  // position or npos on timeout.
  std::size_t wait_for_stderr(const std::string& needle, std::size_t from,
                              Clock::duration timeout);

  // Sends `sig` and waits up to `timeout` for the exit; kills it after that.
  ExitStatus stop(int sig, Clock::duration timeout = kShortWait);
  // Waits for the child to exit on its own (for servers that should fail fast).
  ExitStatus wait(Clock::duration timeout);
  bool running();
  // Whether stop() or wait() was called: whether an exit was asked for or expected.
  bool waited() const { return waited_; }

  // Number of open fds (/proc/PID/fd) and threads (/proc/PID/task).
  int open_fds() const;
  // What each open fd is ("3 -> socket:[1234]", ...), for failure messages.
  std::string describe_fds() const;

  int threads() const;
  // CPU time used so far (user + system), resident memory, and one line of
  // /proc/PID/status (e.g. "SigIgn"), all read from /proc.
  std::chrono::milliseconds cpu_time() const;
  std::uint64_t rss_bytes() const;
  std::string status_field(const std::string& name) const;

 private:
  ServerProcess() = default;
  void collect();  // the background reader
  void reap(int status);

  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
  std::string first_line_;
  Fd out_;
  Fd err_;
  std::mutex mu_;
  std::string out_text_;
  std::string err_text_;
  bool reaped_ = false;
  bool waited_ = false;
  ExitStatus status_;
  std::thread reader_;
};

// ---- Client helpers ----------------------------------------------------------

// A connected client socket (blocking), or an invalid Fd with the failure in
// the current test. SO_RCVTIMEO/SO_SNDTIMEO bound every blocking call.
Fd connect_to(std::uint16_t port, Clock::duration io_timeout = kLongWait);

// Sends everything (looping over partial sends); false on error or timeout.
bool send_all(int fd, const std::string& data);
bool send_all(int fd, const char* data, std::size_t size);

// Reads until exactly `size` bytes arrived, EOF, an error, or the deadline.
// Returns what arrived (shorter on failure).
std::string recv_exact(int fd, std::size_t size, Clock::duration timeout);

// True if the peer's EOF arrives (read returns 0) before the deadline with no
// further bytes.
bool wait_for_eof(int fd, Clock::duration timeout);

// True if nothing at all is readable on fd for the whole duration.
bool stays_silent(int fd, Clock::duration duration);

// Writes `payload` from a second thread while this one reads it back; returns
// what was read (payload.size() bytes on success). The way to echo more than
// the socket buffers hold without deadlocking client and server.
std::string echo_concurrently(int fd, const std::string& payload,
                              Clock::duration timeout = kLongWait);

// A deterministic, non-repeating-looking byte pattern (not a constant), so a
// misplaced or stale byte shows up as a mismatch.
std::string pattern(std::size_t size, std::uint32_t seed = 1);

// Describes the first difference between two byte strings, for failures.
std::string first_difference(const std::string& expected, const std::string& actual);

// Connects `count` clients, sends each `message_size` bytes, and reads all the
// echoes with one poll() loop while every client stays connected. Returns how
// many clients got their full, correct echo before the deadline.
int echo_with_many_clients(std::uint16_t port, int count, std::size_t message_size,
                           Clock::duration timeout);

// Lines of text, and counters over --trace output.
std::vector<std::string> lines_of(const std::string& text);

}  // namespace echo::testing
