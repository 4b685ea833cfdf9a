// Logging to stderr: errors always, per-connection info unless --quiet, and
// --trace lines that show every readiness event and interest-set change.
//
// Plumbing, not a lesson. stdout carries only the `listening on` line and the
// exit summary, so scripts can read them; everything else goes to stderr.
// Payload bytes are never logged.
#pragma once

#include <cstdint>

namespace echo {

namespace detail {
extern bool trace_enabled;
extern bool quiet_enabled;
}  // namespace detail

void set_log_options(bool trace, bool quiet);
inline bool tracing() {
  return detail::trace_enabled;
}

// "what: strerror(err)" style messages and the like; always printed.
void log_error(const char* format, ...) __attribute__((format(printf, 1, 2)));
// Connection-level news (accepted, closed); silenced by --quiet.
void log_info(const char* format, ...) __attribute__((format(printf, 1, 2)));
// One "trace: ..." line; call it through ECHO_TRACE so it costs a branch when off.
void trace_line(const char* format, ...) __attribute__((format(printf, 1, 2)));

// Readable names for event masks, for trace lines: "EPOLLIN|EPOLLRDHUP".
struct EventNames {
  char text[112];
};
EventNames epoll_event_names(std::uint32_t events);
EventNames poll_event_names(short events);

}  // namespace echo

// Prints a trace line only with --trace. Off, it costs one predictable branch and
// the arguments are not evaluated.
#define ECHO_TRACE(...)                                     \
  do {                                                      \
    if (::echo::tracing()) ::echo::trace_line(__VA_ARGS__); \
  } while (0)
