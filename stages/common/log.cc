#include "stages/common/log.h"

#include <poll.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace echo {
namespace detail {
bool trace_enabled = false;
bool quiet_enabled = false;
}  // namespace detail

namespace {

// Formats the whole line first so that it reaches stderr in one write and lines
// from different threads (01_threads) never interleave mid-line.
void write_line(const char* prefix, const char* format, va_list args) {
  char line[1024];
  int used = std::snprintf(line, sizeof line, "%s", prefix);
  int n = std::vsnprintf(line + used, sizeof line - static_cast<std::size_t>(used) - 1,
                         format, args);
  std::size_t len =
      static_cast<std::size_t>(used) + (n < 0 ? 0 : static_cast<std::size_t>(n));
  if (len > sizeof line - 2) len = sizeof line - 2;
  line[len++] = '\n';
  std::fwrite(line, 1, len, stderr);
}

struct Name {
  std::uint32_t bit;
  const char* name;
};

template <std::size_t N>
EventNames names_of(std::uint32_t events, const Name (&table)[N]) {
  EventNames out{};
  std::size_t used = 0;
  auto append = [&](const char* s) {
    int n = std::snprintf(out.text + used, sizeof out.text - used, "%s%s",
                          used ? "|" : "", s);
    if (n > 0) used = std::min(sizeof out.text - 1, used + static_cast<std::size_t>(n));
  };
  for (const Name& entry : table) {
    if (events & entry.bit) {
      append(entry.name);
      events &= ~entry.bit;
    }
  }
  if (events != 0) {
    char rest[24];
    std::snprintf(rest, sizeof rest, "0x%x", events);
    append(rest);
  }
  if (used == 0) append("0");
  return out;
}

}  // namespace

void set_log_options(bool trace, bool quiet) {
  detail::trace_enabled = trace;
  detail::quiet_enabled = quiet;
}

void log_error(const char* format, ...) {
  va_list args;
  va_start(args, format);
  write_line("", format, args);
  va_end(args);
}

void log_info(const char* format, ...) {
  if (detail::quiet_enabled) return;
  va_list args;
  va_start(args, format);
  write_line("", format, args);
  va_end(args);
}

void trace_line(const char* format, ...) {
  va_list args;
  va_start(args, format);
  write_line("trace: ", format, args);
  va_end(args);
}

EventNames epoll_event_names(std::uint32_t events) {
  static const Name kNames[] = {
      {EPOLLIN, "EPOLLIN"},       {EPOLLOUT, "EPOLLOUT"},
      {EPOLLRDHUP, "EPOLLRDHUP"}, {EPOLLPRI, "EPOLLPRI"},
      {EPOLLERR, "EPOLLERR"},     {EPOLLHUP, "EPOLLHUP"},
      {EPOLLET, "EPOLLET"},       {EPOLLONESHOT, "EPOLLONESHOT"},
  };
  return names_of(events, kNames);
}

EventNames poll_event_names(short events) {
  static const Name kNames[] = {
      {POLLIN, "POLLIN"},     {POLLOUT, "POLLOUT"}, {POLLRDHUP, "POLLRDHUP"},
      {POLLPRI, "POLLPRI"},   {POLLERR, "POLLERR"}, {POLLHUP, "POLLHUP"},
      {POLLNVAL, "POLLNVAL"},
  };
  return names_of(static_cast<std::uint16_t>(events), kNames);
}

}  // namespace echo
