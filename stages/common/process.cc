#include "stages/common/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace echo {
namespace {

std::atomic<bool> g_stop{false};
int g_stop_fd = -1;
// Empty slots hold -1 (fd 0 is a real fd).
std::atomic<int> g_wake_fds[kMaxWakeFds] = {-1, -1, -1, -1, -1, -1, -1, -1};
static_assert(kMaxWakeFds == 8, "update the initializer above");

static_assert(std::atomic<bool>::is_always_lock_free);
static_assert(std::atomic<int>::is_always_lock_free);

void on_stop_signal(int) {
  const int saved_errno = errno;  // the interrupted code may be about to read errno
  request_stop();
  errno = saved_errno;
}

}  // namespace

void request_stop() {
  // Everything here is async-signal-safe: atomics, write(2), shutdown(2).
  g_stop.store(true);
  if (g_stop_fd >= 0) {
    const std::uint64_t one = 1;
    ssize_t ignored = ::write(g_stop_fd, &one, sizeof one);
    (void)ignored;  // the counter can only overflow after 2^64 stops
  }
  for (auto& slot : g_wake_fds) {
    int fd = slot.load();
    if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
  }
}

void open_standard_fds() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    // open() takes the lowest free number, which is `fd`: the ones below are open.
    // Without /dev/null (a bare chroot) there is nothing better to do: carry on.
    (void)::open("/dev/null", O_RDWR);
  }
}

void install_signal_handlers() {
  if (g_stop_fd < 0) {
    g_stop_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (g_stop_fd < 0) {
      std::fprintf(stderr, "eventfd: %s\n", std::strerror(errno));
      std::exit(1);
    }
  }

  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  if (::sigaction(SIGPIPE, &ignore, nullptr) != 0) {
    std::fprintf(stderr, "sigaction(SIGPIPE): %s\n", std::strerror(errno));
    std::exit(1);
  }

  struct sigaction stop {};
  stop.sa_handler = on_stop_signal;
  sigemptyset(&stop.sa_mask);
  stop.sa_flags = 0;  // no SA_RESTART: blocked calls return EINTR
  for (int sig : {SIGINT, SIGTERM}) {
    if (::sigaction(sig, &stop, nullptr) != 0) {
      std::fprintf(stderr, "sigaction(%s): %s\n", sig == SIGINT ? "SIGINT" : "SIGTERM",
                   std::strerror(errno));
      std::exit(1);
    }
  }
}

bool stop_requested() {
  return g_stop.load(std::memory_order_relaxed);
}

int stop_fd() {
  return g_stop_fd;
}

bool shutdown_on_stop(int fd) {
  for (auto& slot : g_wake_fds) {
    int expected = -1;
    if (slot.compare_exchange_strong(expected, fd)) {
      // A stop that raced with the registration must still wake this fd.
      if (stop_requested()) ::shutdown(fd, SHUT_RDWR);
      return true;
    }
  }
  return false;
}

void forget_on_stop(int fd) {
  for (auto& slot : g_wake_fds) {
    int expected = fd;
    slot.compare_exchange_strong(expected, -1);
  }
}

std::uint64_t raise_fd_limit() {
  struct rlimit limit {};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur < limit.rlim_max) {
    struct rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) return raised.rlim_cur;
  }
  return limit.rlim_cur;
}

void print_summary(const Stats& stats) {
  std::printf("summary: served %" PRIu64 " connections, echoed %" PRIu64 " bytes\n",
              stats.connections.load(), stats.bytes.load());
  std::fflush(stdout);
}

}  // namespace echo
