#include "tests/harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

namespace echo::testing {
namespace {

std::string g_server_path;
std::string g_stage_name;
std::string g_faultinject_path;

int ms_left(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(std::min<long long>(left, 1'000'000));
}

int count_entries(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n;
}

void set_timeouts(int fd, Clock::duration timeout) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(timeout).count();
  timeval tv{static_cast<time_t>(us / 1'000'000),
             static_cast<suseconds_t>(us % 1'000'000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

}  // namespace

const std::string& server_path() {
  return g_server_path;
}
const std::string& stage_name() {
  return g_stage_name;
}
void set_server(std::string path, std::string stage) {
  g_server_path = std::move(path);
  g_stage_name = std::move(stage);
}

bool g_soak = false;
bool soak() {
  return g_soak;
}
void set_soak(bool on) {
  g_soak = on;
}

const std::string& faultinject_path() {
  return g_faultinject_path;
}
void set_faultinject(std::string path) {
  g_faultinject_path = std::move(path);
}

std::string ExitStatus::describe() const {
  if (timed_out) return "did not exit in time (killed)";
  if (exited) return "exited with code " + std::to_string(code);
  return std::string("was killed by signal ") + std::to_string(signal) + " (" +
         ::strsignal(signal) + ")";
}

// ---- ServerProcess ---------------------------------------------------------

std::unique_ptr<ServerProcess> ServerProcess::start(
    const std::vector<std::string>& args, const Launch& launch) {
  std::unique_ptr<ServerProcess> p(new ServerProcess());
  int out[2];
  int err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    return nullptr;
  }
  // Build argv before fork: the child may only make async-signal-safe calls.
  std::vector<std::string> all = {server_path()};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  // The test's environment, with launch.env's entries replacing same-named ones.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('=') + 1);
    bool replaced = false;
    for (const auto& extra : launch.env)
      replaced = replaced || extra.rfind(name, 0) == 0;
    if (!replaced) env_strings.push_back(entry);
  }
  env_strings.insert(env_strings.end(), launch.env.begin(), launch.env.end());
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  pid_t pid = ::fork();
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    return nullptr;
  }
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    if (devnull > 2) ::close(devnull);  // the server must not inherit a stray fd
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    if (launch.nofile != 0) {
      rlimit limit{launch.nofile, launch.nofile};
      ::setrlimit(RLIMIT_NOFILE, &limit);
    }
    if (launch.address_space != 0) {
      rlimit limit{launch.address_space, launch.address_space};
      ::setrlimit(RLIMIT_AS, &limit);
    }
    ::execve(argv[0], argv.data(), envp.data());
    const char msg[] = "exec of the server failed\n";
    ssize_t ignored = ::write(2, msg, sizeof msg - 1);
    (void)ignored;
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(err[1]);
  p->pid_ = pid;
  p->out_.reset(out[0]);
  p->err_.reset(err[0]);
  p->reader_ = std::thread([raw = p.get()] { raw->collect(); });

  // The contract: the first stdout line comes once the server accepts.
  const auto deadline = Clock::now() + kShortWait;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(p->mu_);
      auto nl = p->out_text_.find('\n');
      if (nl != std::string::npos) {
        p->first_line_ = p->out_text_.substr(0, nl);
        break;
      }
    }
    if (!p->running() || Clock::now() > deadline) break;
    std::this_thread::sleep_for(milliseconds(2));
  }
  return p;
}

std::unique_ptr<ServerProcess> ServerProcess::start_on_free_port(
    std::vector<std::string> args, const Launch& launch) {
  args.insert(args.begin(), {"--port", "0"});
  auto p = start(args, launch);
  if (!p) return p;
  const std::string prefix = "listening on 127.0.0.1:";
  if (p->first_line_.rfind(prefix, 0) != 0) {
    ADD_FAILURE() << "expected '" << prefix << "PORT' as the first stdout line, got '"
                  << p->first_line_ << "'; stderr:\n"
                  << p->stderr_text();
    return p;
  }
  p->port_ =
      static_cast<std::uint16_t>(std::stoi(p->first_line_.substr(prefix.size())));
  return p;
}

void ServerProcess::collect() {
  pollfd fds[2] = {{out_.get(), POLLIN, 0}, {err_.get(), POLLIN, 0}};
  int open = 2;
  char buf[65536];
  while (open > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        std::lock_guard<std::mutex> lock(mu_);
        (i == 0 ? out_text_ : err_text_).append(buf, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        fds[i].fd = -1;
        --open;
      }
    }
  }
}

std::string ServerProcess::stdout_text() {
  std::lock_guard<std::mutex> lock(mu_);
  return out_text_;
}

std::string ServerProcess::stderr_text() {
  std::lock_guard<std::mutex> lock(mu_);
  return err_text_;
}

std::size_t ServerProcess::wait_for_stderr(const std::string& needle, std::size_t from,
                                           Clock::duration timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (from <= err_text_.size()) {
        auto at = err_text_.find(needle, from);
        if (at != std::string::npos) return at;
      }
    }
    if (Clock::now() > deadline) return std::string::npos;
    std::this_thread::sleep_for(milliseconds(2));
  }
}

void ServerProcess::reap(int status) {
  reaped_ = true;
  if (WIFEXITED(status)) {
    status_.exited = true;
    status_.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    status_.signal = WTERMSIG(status);
  }
}

bool ServerProcess::running() {
  if (reaped_) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    reap(status);
    return false;
  }
  return r == 0;
}

ExitStatus ServerProcess::wait(Clock::duration timeout) {
  waited_ = true;
  const auto deadline = Clock::now() + timeout;
  while (running()) {
    if (Clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      reap(status);
      status_.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(milliseconds(2));
  }
  if (reader_.joinable()) reader_.join();  // the pipes close with the child
  return status_;
}

ExitStatus ServerProcess::stop(int sig, Clock::duration timeout) {
  const auto deadline = Clock::now() + timeout;
  if (running()) ::kill(pid_, sig);
  if constexpr (kSignalsMayBeHeld) {
    // TSan runs a signal's handler later than it arrives, and one sent while a
    // server is still entering its loop can stay held while the server sleeps in
    // epoll_wait (decisions.md, "Sanitizer builds"). So send it again.
    auto next = Clock::now() + kSignalRepeat;
    while (running() && Clock::now() < deadline) {
      if (Clock::now() >= next) {
        ::kill(pid_, sig);
        next += kSignalRepeat;
      }
      std::this_thread::sleep_for(milliseconds(2));
    }
  }
  return wait(deadline - Clock::now());
}

ServerProcess::~ServerProcess() {
  if (running()) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    reaped_ = true;
  }
  if (reader_.joinable()) reader_.join();
}

int ServerProcess::open_fds() const {
  return count_entries("/proc/" + std::to_string(pid_) + "/fd");
}

std::string ServerProcess::describe_fds() const {
  const std::string dir = "/proc/" + std::to_string(pid_) + "/fd";
  std::string out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return "(cannot list " + dir + ")";
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char target[256] = {};
    ssize_t n = ::readlink((dir + "/" + e->d_name).c_str(), target, sizeof target - 1);
    out +=
        std::string(e->d_name) + " -> " + (n > 0 ? std::string(target, n) : "?") + "\n";
  }
  ::closedir(d);
  return out;
}

int ServerProcess::threads() const {
  return count_entries("/proc/" + std::to_string(pid_) + "/task");
}

std::string ServerProcess::status_field(const std::string& name) const {
  std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + ":", 0) == 0) {
      std::size_t v = line.find_first_not_of(" \t", name.size() + 1);
      return v == std::string::npos ? "" : line.substr(v);
    }
  }
  return "";
}

std::uint64_t ServerProcess::rss_bytes() const {
  std::string kb = status_field("VmRSS");  // "1234 kB"
  return kb.empty() ? 0 : std::stoull(kb) * 1024;
}

std::chrono::milliseconds ServerProcess::cpu_time() const {
  std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  // Fields after the ")" that closes the command name: state is field 3,
  // utime 14 and stime 15 (see proc(5)).
  std::size_t close = stat.rfind(')');
  if (close == std::string::npos) return milliseconds(0);
  std::istringstream fields(stat.substr(close + 2));
  std::string skip;
  for (int i = 3; i < 14; ++i) fields >> skip;
  unsigned long long utime = 0, stime = 0;
  fields >> utime >> stime;
  const long ticks = ::sysconf(_SC_CLK_TCK);
  return milliseconds((utime + stime) * 1000 / static_cast<unsigned long long>(ticks));
}

// ---- Clients -----------------------------------------------------------------

Fd connect_to(std::uint16_t port, Clock::duration io_timeout) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    ADD_FAILURE() << "socket: " << std::strerror(errno);
    return fd;
  }
  set_timeouts(fd.get(), io_timeout);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  while (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno == EINTR) continue;
    ADD_FAILURE() << "connect to 127.0.0.1:" << port << ": " << std::strerror(errno);
    fd.reset();
    break;
  }
  return fd;
}

bool send_all(int fd, const char* data, std::size_t size) {
  std::size_t sent = 0;
  while (sent < size) {
    ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return false;  // error, or SO_SNDTIMEO expired (EAGAIN)
    }
  }
  return true;
}

bool send_all(int fd, const std::string& data) {
  return send_all(fd, data.data(), data.size());
}

std::string recv_exact(int fd, std::size_t size, Clock::duration timeout) {
  const auto deadline = Clock::now() + timeout;
  std::string got;
  got.resize(size);
  std::size_t have = 0;
  while (have < size) {
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, ms_left(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;  // deadline
    ssize_t n = ::recv(fd, got.data() + have, size - have, MSG_DONTWAIT);
    if (n > 0) {
      have += static_cast<std::size_t>(n);
    } else if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
      continue;
    } else {
      break;  // EOF or error
    }
  }
  got.resize(have);
  return got;
}

bool wait_for_eof(int fd, Clock::duration timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, ms_left(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    char c;
    ssize_t n = ::recv(fd, &c, 1, MSG_DONTWAIT);
    if (n == 0) return true;
    if (n > 0) return false;  // unexpected extra bytes
    if (errno == EINTR || errno == EAGAIN) continue;
    return false;  // a reset is not a clean EOF
  }
}

bool stays_silent(int fd, Clock::duration duration) {
  pollfd p{fd, POLLIN, 0};
  const auto deadline = Clock::now() + duration;
  for (;;) {
    int r = ::poll(&p, 1, ms_left(deadline));
    if (r < 0 && errno == EINTR) continue;
    return r == 0;
  }
}

std::string echo_concurrently(int fd, const std::string& payload,
                              Clock::duration timeout) {
  bool sent_ok = false;
  std::thread writer([&] { sent_ok = send_all(fd, payload); });
  std::string got = recv_exact(fd, payload.size(), timeout);
  writer.join();
  if (!sent_ok) ADD_FAILURE() << "sending " << payload.size() << " bytes failed";
  return got;
}

std::string pattern(std::size_t size, std::uint32_t seed) {
  std::string out(size, '\0');
  std::uint32_t x = seed * 2654435761u + 0x9e3779b9u;
  for (std::size_t i = 0; i < size; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    out[i] = static_cast<char>(x >> 24);
  }
  return out;
}

std::string first_difference(const std::string& expected, const std::string& actual) {
  std::size_t n = std::min(expected.size(), actual.size());
  for (std::size_t i = 0; i < n; ++i) {
    if (expected[i] != actual[i]) {
      std::ostringstream s;
      s << "first difference at byte " << i << " of " << expected.size()
        << ": expected 0x" << std::hex << (expected[i] & 0xff) << ", got 0x"
        << (actual[i] & 0xff);
      return s.str();
    }
  }
  if (expected.size() != actual.size()) {
    return "got " + std::to_string(actual.size()) + " of " +
           std::to_string(expected.size()) + " bytes (the rest never arrived)";
  }
  return "identical";
}

int echo_with_many_clients(std::uint16_t port, int count, std::size_t message_size,
                           Clock::duration timeout) {
  const auto deadline = Clock::now() + timeout;
  std::vector<Fd> clients;
  std::vector<std::string> sent;
  clients.reserve(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    Fd c = connect_to(port, kShortWait);
    if (!c) return 0;
    sent.push_back(pattern(message_size, static_cast<std::uint32_t>(i + 1)));
    if (!send_all(c.get(), sent.back())) {
      ADD_FAILURE() << "client " << i << " could not send";
      return 0;
    }
    clients.push_back(std::move(c));
  }
  // Read every echo with one poll() loop; nobody disconnects until the end.
  std::vector<std::string> got(clients.size());
  std::vector<pollfd> fds;
  for (auto& c : clients) fds.push_back({c.get(), POLLIN, 0});
  int complete = 0;
  int finished = 0;  // complete, wrong or lost
  std::vector<char> buf(message_size);
  while (finished < count) {
    int r = ::poll(fds.data(), fds.size(), ms_left(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      std::size_t want = message_size - got[i].size();
      ssize_t n = ::recv(fds[i].fd, buf.data(), want, MSG_DONTWAIT);
      if (n > 0) {
        got[i].append(buf.data(), static_cast<std::size_t>(n));
        if (got[i].size() == message_size) {
          fds[i].fd = -1;
          ++finished;
          if (got[i] == sent[i]) {
            ++complete;
          } else {
            ADD_FAILURE() << "client " << i << ": "
                          << first_difference(sent[i], got[i]);
          }
        }
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        ADD_FAILURE() << "client " << i << " lost its connection after "
                      << got[i].size() << " bytes";
        fds[i].fd = -1;
        ++finished;
      }
    }
  }
  return complete;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace echo::testing
