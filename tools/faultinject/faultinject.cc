// faultinject: an LD_PRELOAD shim that makes rare system-call outcomes happen
// on a deterministic schedule, so tests can prove a server copes with them.
//
// On loopback, partial writes, EINTR and accept failures almost never happen
// by themselves; a test that waits for them proves nothing. With this shim a
// test says, for example:
//
//   LD_PRELOAD=libfaultinject.so ECHO_FAULTS="write:short/3,read:eintr/5" server ...
//
// ECHO_FAULTS is a comma-separated list of CALL:FAULT/N (every Nth call of CALL,
// counting from 1) or CALL:FAULT@N (the Nth call only):
//
//   write, send, sendto    short (1 byte written instead of all), eintr, eagain,
//                          epipe (EPIPE, and SIGPIPE raised in the calling thread
//                          unless send/sendto passed MSG_NOSIGNAL, as the kernel does
//                          when the peer has gone)
//   read, recv, recvfrom   eintr
//   accept, accept4        eintr, econnaborted, emfile, enfile
//   epoll_ctl              enomem, enospc (ADD/MOD/DEL on a socket fail, nothing done)
//   epoll_wait, poll       eintr (both count as one call, also named "wait")
//
// Faults apply to sockets only (the stop eventfd, stdout and stderr are left
// alone), and only where the real kernel could produce them: eagain only on
// non-blocking sockets. Reads are never shortened: for a stream socket a short
// read means "drained" (epoll(7)), and a server may rely on that.
// Every injected fault is counted; with ECHO_FAULTS_REPORT=1 the shim prints
// "faultinject: CALL FAULT injected K times" to stderr at exit.
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

enum class Fault {
  kNone,
  kShort,
  kEintr,
  kEagain,
  kEpipe,
  kEconnaborted,
  kEmfile,
  kEnfile,
  kEnomem,
  kEnospc
};

enum Call { kRead, kWrite, kAccept, kEpollCtl, kWait, kCallCount };

const char* const kCallNames[kCallCount] = {"read", "write", "accept", "epoll_ctl",
                                            "wait"};

struct Rule {
  Fault fault = Fault::kNone;
  long every = 0;  // every Nth call (0: unused)
  long only = 0;   // only the Nth call (0: unused)
  std::atomic<long> calls{0};
  std::atomic<long> injected{0};
};

Rule g_rules[kCallCount];
bool g_report = false;

Fault parse_fault(const char* name, std::size_t len) {
  struct {
    const char* name;
    Fault fault;
  } static const kFaults[] = {
      {"short", Fault::kShort},
      {"eintr", Fault::kEintr},
      {"eagain", Fault::kEagain},
      {"epipe", Fault::kEpipe},
      {"econnaborted", Fault::kEconnaborted},
      {"emfile", Fault::kEmfile},
      {"enfile", Fault::kEnfile},
      {"enomem", Fault::kEnomem},
      {"enospc", Fault::kEnospc},
  };
  for (const auto& f : kFaults) {
    if (std::strlen(f.name) == len && std::strncmp(f.name, name, len) == 0)
      return f.fault;
  }
  return Fault::kNone;
}

int call_of(const char* name, std::size_t len) {
  struct {
    const char* name;
    int call;
  } static const kCalls[] = {
      {"write", kWrite},     {"send", kWrite},     {"sendto", kWrite},
      {"read", kRead},       {"recv", kRead},      {"recvfrom", kRead},
      {"accept", kAccept},   {"accept4", kAccept}, {"epoll_ctl", kEpollCtl},
      {"epoll_wait", kWait}, {"poll", kWait},      {"wait", kWait},
  };
  for (const auto& c : kCalls) {
    if (std::strlen(c.name) == len && std::strncmp(c.name, name, len) == 0)
      return c.call;
  }
  return -1;
}

[[noreturn]] void bad_spec(const char* spec) {
  std::fprintf(stderr,
               "faultinject: bad ECHO_FAULTS entry '%s' (see tools/faultinject)\n",
               spec);
  std::_Exit(3);
}

// Parses ECHO_FAULTS once, before main().
__attribute__((constructor)) void parse_spec() {
  const char* spec = std::getenv("ECHO_FAULTS");
  g_report = std::getenv("ECHO_FAULTS_REPORT") != nullptr;
  if (spec == nullptr) return;
  const char* p = spec;
  while (*p != '\0') {
    const char* end = std::strchr(p, ',');
    if (end == nullptr) end = p + std::strlen(p);
    const char* colon = static_cast<const char*>(std::memchr(p, ':', end - p));
    if (colon == nullptr) bad_spec(p);
    int call = call_of(p, colon - p);
    const char* mark = colon + 1;
    while (mark < end && *mark != '/' && *mark != '@') ++mark;
    if (call < 0 || mark == end) bad_spec(p);
    Fault fault = parse_fault(colon + 1, mark - colon - 1);
    char* num_end = nullptr;
    long n = std::strtol(mark + 1, &num_end, 10);
    if (fault == Fault::kNone || n <= 0 || num_end != end) bad_spec(p);
    Rule& r = g_rules[call];
    r.fault = fault;
    (*mark == '/' ? r.every : r.only) = n;
    p = *end == ',' ? end + 1 : end;
  }
}

__attribute__((destructor)) void report() {
  if (!g_report) return;
  for (int c = 0; c < kCallCount; ++c) {
    if (g_rules[c].fault != Fault::kNone) {
      std::fprintf(stderr, "faultinject: %s fault injected %ld times in %ld calls\n",
                   kCallNames[c], g_rules[c].injected.load(), g_rules[c].calls.load());
    }
  }
}

bool is_socket(int fd) {
  struct stat st;
  return fd >= 0 && ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

bool is_nonblocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  return flags >= 0 && (flags & O_NONBLOCK) != 0;
}

// Decides whether this call of `call` on `fd` gets the fault; -1 fd: no socket check.
Fault next_fault(Call call, int fd) {
  Rule& r = g_rules[call];
  if (r.fault == Fault::kNone) return Fault::kNone;
  if (fd >= 0 && !is_socket(fd)) return Fault::kNone;
  long n = r.calls.fetch_add(1) + 1;
  bool hit = (r.every != 0 && n % r.every == 0) || (r.only != 0 && n == r.only);
  if (!hit) return Fault::kNone;
  if (r.fault == Fault::kEagain && !is_nonblocking(fd)) return Fault::kNone;
  r.injected.fetch_add(1);
  return r.fault;
}

int errno_of(Fault f) {
  switch (f) {
    case Fault::kEintr:
      return EINTR;
    case Fault::kEagain:
      return EAGAIN;
    case Fault::kEpipe:
      return EPIPE;
    case Fault::kEconnaborted:
      return ECONNABORTED;
    case Fault::kEmfile:
      return EMFILE;
    case Fault::kEnfile:
      return ENFILE;
    case Fault::kEnomem:
      return ENOMEM;
    case Fault::kEnospc:
      return ENOSPC;
    default:
      return 0;
  }
}

template <typename F>
F real(const char* name) {
  static_assert(sizeof(F) == sizeof(void*));
  void* sym = ::dlsym(RTLD_NEXT, name);
  if (sym == nullptr) {
    std::fprintf(stderr, "faultinject: no real %s\n", name);
    std::_Exit(3);
  }
  F f;
  std::memcpy(&f, &sym, sizeof f);
  return f;
}

// For write-like calls: returns the length to pass on, or sets errno and -1.
// `flags` are send()'s (0 for write): EPIPE raises SIGPIPE unless MSG_NOSIGNAL.
ssize_t write_fault(int fd, std::size_t len, int flags, std::size_t* pass_len) {
  *pass_len = len;
  Fault f = next_fault(kWrite, fd);
  if (f == Fault::kNone) return 0;
  if (f == Fault::kShort) {
    if (len > 1) *pass_len = 1;
    return 0;
  }
  if (f == Fault::kEpipe && (flags & MSG_NOSIGNAL) == 0) {
    ::pthread_kill(::pthread_self(), SIGPIPE);  // the kernel signals the caller
  }
  errno = errno_of(f);
  return -1;
}

ssize_t read_fault(int fd) {
  Fault f = next_fault(kRead, fd);
  if (f == Fault::kNone || f == Fault::kShort) return 0;
  errno = errno_of(f);
  return -1;
}

}  // namespace

extern "C" {

ssize_t write(int fd, const void* buf, size_t len) {
  static auto fn = real<ssize_t (*)(int, const void*, size_t)>("write");
  std::size_t pass;
  if (write_fault(fd, len, 0, &pass) < 0) return -1;
  return fn(fd, buf, pass);
}

ssize_t send(int fd, const void* buf, size_t len, int flags) {
  static auto fn = real<ssize_t (*)(int, const void*, size_t, int)>("send");
  std::size_t pass;
  if (write_fault(fd, len, flags, &pass) < 0) return -1;
  return fn(fd, buf, pass, flags);
}

ssize_t sendto(int fd, const void* buf, size_t len, int flags, const sockaddr* to,
               socklen_t tolen) {
  static auto fn =
      real<ssize_t (*)(int, const void*, size_t, int, const sockaddr*, socklen_t)>(
          "sendto");
  std::size_t pass;
  if (write_fault(fd, len, flags, &pass) < 0) return -1;
  return fn(fd, buf, pass, flags, to, tolen);
}

ssize_t read(int fd, void* buf, size_t len) {
  static auto fn = real<ssize_t (*)(int, void*, size_t)>("read");
  if (read_fault(fd) < 0) return -1;
  return fn(fd, buf, len);
}

ssize_t recv(int fd, void* buf, size_t len, int flags) {
  static auto fn = real<ssize_t (*)(int, void*, size_t, int)>("recv");
  if (read_fault(fd) < 0) return -1;
  return fn(fd, buf, len, flags);
}

ssize_t recvfrom(int fd, void* buf, size_t len, int flags, sockaddr* from,
                 socklen_t* fromlen) {
  static auto fn =
      real<ssize_t (*)(int, void*, size_t, int, sockaddr*, socklen_t*)>("recvfrom");
  if (read_fault(fd) < 0) return -1;
  return fn(fd, buf, len, flags, from, fromlen);
}

int accept(int fd, sockaddr* addr, socklen_t* len) {
  static auto fn = real<int (*)(int, sockaddr*, socklen_t*)>("accept");
  if (Fault f = next_fault(kAccept, fd); f != Fault::kNone) {
    errno = errno_of(f);
    return -1;
  }
  return fn(fd, addr, len);
}

int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
  static auto fn = real<int (*)(int, sockaddr*, socklen_t*, int)>("accept4");
  if (Fault f = next_fault(kAccept, fd); f != Fault::kNone) {
    errno = errno_of(f);
    return -1;
  }
  return fn(fd, addr, len, flags);
}

int epoll_ctl(int epfd, int op, int fd, epoll_event* event) {
  static auto fn = real<int (*)(int, int, int, epoll_event*)>("epoll_ctl");
  if (Fault f = next_fault(kEpollCtl, fd); f != Fault::kNone) {
    errno = errno_of(f);
    return -1;
  }
  return fn(epfd, op, fd, event);
}

int epoll_wait(int epfd, epoll_event* events, int max, int timeout) {
  static auto fn = real<int (*)(int, epoll_event*, int, int)>("epoll_wait");
  if (Fault f = next_fault(kWait, -1); f != Fault::kNone) {
    errno = errno_of(f);
    return -1;
  }
  return fn(epfd, events, max, timeout);
}

int poll(pollfd* fds, nfds_t n, int timeout) {
  static auto fn = real<int (*)(pollfd*, nfds_t, int)>("poll");
  if (Fault f = next_fault(kWait, -1); f != Fault::kNone) {
    errno = errno_of(f);
    return -1;
  }
  return fn(fds, n, timeout);
}

}  // extern "C"
