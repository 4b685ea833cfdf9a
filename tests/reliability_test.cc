// Reliability: fault injection, resource exhaustion and hostile clients, plus
// one test per defect of the 2013 original that the echo suite does not
// already catch (see docs/original.md for the full defect -> test map).
//
// Everything is observed from outside the server: its sockets, its exit status
// and stderr, and /proc/PID (fds, threads, CPU time, resident memory).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "tests/expectations.h"
#include "tests/harness.h"
#include "tests/stage_test.h"

namespace echo::testing {
namespace {

bool serves_concurrently() {
  return stage_name() != "00_blocking";
}

// A launch that preloads tools/faultinject with `spec` (see faultinject.cc).
Launch with_faults(const std::string& spec) {
  Launch launch;
  launch.env = {"LD_PRELOAD=" + faultinject_path(), "ECHO_FAULTS=" + spec,
                "ECHO_FAULTS_REPORT=1"};
  // Under AddressSanitizer the shim is loaded before the ASan runtime, which
  // ASan refuses by default; interposing in front of it is exactly the point.
  const char* asan = std::getenv("ASAN_OPTIONS");
  launch.env.push_back(std::string("ASAN_OPTIONS=") +
                       (asan ? std::string(asan) + ":" : "") +
                       "verify_asan_link_order=0");
  return launch;
}

// Stops the server, expects exit 0, and returns how many faults the shim
// injected into `call` (from its exit report), so that no fault-injection test
// can pass without faults actually happening.
long stop_and_count_faults(ServerProcess& s, const std::string& call) {
  ExitStatus st = s.stop(SIGTERM);
  EXPECT_TRUE(st.exited && st.code == 0) << st.describe();
  const std::string err = s.stderr_text();
  const std::string key = "faultinject: " + call + " fault injected ";
  std::size_t at = err.find(key);
  if (at == std::string::npos) {
    ADD_FAILURE() << "no fault report for " << call << " in:\n" << err.substr(0, 2000);
    return 0;
  }
  return std::stol(err.substr(at + key.size()));
}

// After stop_and_count_faults: how many calls of `call` the shim saw in all
// ("... injected N times in M calls"), or -1 without a report.
long calls_seen(ServerProcess& s, const std::string& call) {
  const std::string err = s.stderr_text();
  const std::size_t at = err.find("faultinject: " + call + " fault injected ");
  const std::size_t in = at == std::string::npos ? at : err.find(" times in ", at);
  return in == std::string::npos ? -1 : std::stol(err.substr(in + 10));
}

// Ping-pongs `count` messages of `size` bytes on a fresh connection.
void ping_pong(std::uint16_t port, int count, std::size_t size) {
  Fd c = connect_to(port);
  for (int i = 0; i < count && !::testing::Test::HasFailure(); ++i) {
    const std::string msg = pattern(size, static_cast<std::uint32_t>(i + 100));
    ASSERT_TRUE(send_all(c.get(), msg));
    std::string got = recv_exact(c.get(), size, kShortWait);
    ASSERT_TRUE(got == msg) << "message " << i << ": " << first_difference(msg, got);
  }
}

// CPU the server burns over `window` while the test does nothing.
milliseconds cpu_over(ServerProcess& s, milliseconds window) {
  const milliseconds before = s.cpu_time();
  std::this_thread::sleep_for(window);
  return s.cpu_time() - before;
}

// Waits until the server's fd and thread counts are back at a baseline. With
// `echo_first`, a fresh echo comes first: the listener accepts in order, so once
// it is answered every client connected before it has been accepted. Without it,
// a slow server (a sanitizer build) could still be at the baseline only because
// it had not yet accepted the clients whose cleanup the caller means to check.
// A caller whose clients were all answered already can pass false. A thread
// count of kAnyThreads checks the fds only.
constexpr int kAnyThreads = -1;
void expect_back_to_baseline(ServerProcess& s, int fds, int threads,
                             bool echo_first = true) {
  if (echo_first) ping_pong(s.port(), 1, 64);
  const auto deadline = Clock::now() + kShortWait;
  const auto threads_ok = [&] {
    return threads == kAnyThreads || s.threads() == threads;
  };
  while ((s.open_fds() != fds || !threads_ok()) && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_EQ(s.open_fds(), fds) << "file descriptors leaked; open now:\n"
                               << s.describe_fds();
  if (threads != kAnyThreads) {
    EXPECT_EQ(s.threads(), threads) << "threads leaked";
  }
}

// The iteration multiplier: 1 normally, 10 in the soak targets (--soak).
int scale() {
  return soak() ? 10 : 1;
}

class FaultInjection : public StageTest {};
class Exhaustion : public StageTest {};
class Hostile : public StageTest {};
class Defects : public StageTest {};

// ---- Fault injection ----------------------------------------------------------

TEST_F(FaultInjection, ShortWritesKeepEchoesByteExact) {
  // Every second write or send on a socket writes a single byte.
  auto& s = start({}, with_faults("write:short/2"));
  Fd c = connect_to(s.port());
  std::uint32_t seed = 1;
  for (std::size_t size : {1, 2, 255, 256, 16384, 16385, 65537, 1 << 20}) {
    SCOPED_TRACE(std::to_string(size) + " bytes");
    expect_echo(c.get(), pattern(size, seed++));
    if (HasFailure()) return;  // the connection's stream is out of step now
  }
  c.reset();  // 00 serves one client at a time
  // Few messages: a 1-byte segment followed by the rest waits for a delayed ACK
  // (Nagle), so each cut message costs ~40 ms. Correctness, not speed, is tested.
  ping_pong(s.port(), 50, 64);

  EXPECT_GT(stop_and_count_faults(s, "write"), 0);
}

TEST_F(FaultInjection, EintrStormsKeepEchoesByteExact) {
  // Every 2nd read and readiness wait, and every 3rd write, fail with EINTR.
  auto& s = start({}, with_faults("read:eintr/2,write:eintr/3,wait:eintr/2"));
  Fd c = connect_to(s.port());
  expect_echo(c.get(), pattern(2 << 20, 4));
  c.reset();
  ping_pong(s.port(), 200, 64);
  EXPECT_GT(stop_and_count_faults(s, "read"), 0);
  EXPECT_GT(stop_and_count_faults(s, "write"), 0);
  // 02-05 wait in poll()/epoll_wait(); 00 and 01 block in accept and read.
  if (stage_name() != "00_blocking" && stage_name() != "01_threads") {
    EXPECT_GT(stop_and_count_faults(s, "wait"), 0);
  }
}

// Sequential clients, each with one echo, against a server whose accepts fail.
void serve_sequential_clients_through(const std::string& faults, int clients) {
  auto s = ServerProcess::start_on_free_port({"--quiet"}, with_faults(faults));
  ASSERT_TRUE(s);
  for (int i = 0; i < clients; ++i) {
    Fd c = connect_to(s->port());
    const std::string msg = pattern(100, static_cast<std::uint32_t>(i));
    ASSERT_TRUE(send_all(c.get(), msg));
    ASSERT_EQ(recv_exact(c.get(), msg.size(), kShortWait), msg)
        << "client " << i << " with " << faults << "; stderr:\n"
        << s->stderr_text().substr(0, 2000);
  }
  EXPECT_GT(stop_and_count_faults(*s, "accept"), 0);
}

TEST_F(FaultInjection, AcceptFailuresNeverStopTheServer) {
  serve_sequential_clients_through("accept:econnaborted/2", 30);
  serve_sequential_clients_through("accept:emfile/3", 30);
  serve_sequential_clients_through("accept:eintr/2", 30);
}

TEST_F(FaultInjection, FailedAcceptIsRetriedWhileAnotherClientKeepsTheServerBusy) {
  // Every 2nd accept fails with ENFILE: the system's file table is full. The
  // server pauses its listener, as it does when out of fds, but closing one of
  // its own connections is not what frees a system-wide table: it must try
  // again on its own, even while a busy client gives its loop news all the time.
  auto& s = start({"--quiet"}, with_faults("accept:enfile/2"));
  Fd busy = connect_to(s.port());
  expect_echo(busy.get(), pattern(64, 1));  // accepted; the next accept fails
  if (HasFailure()) return;
  std::atomic<bool> stop{false};
  std::atomic<long> round_trips{0};
  std::atomic<bool> busy_failed{false};
  std::thread pinger([&] {
    const std::string msg = pattern(64, 2);
    while (!stop) {
      if (!send_all(busy.get(), msg) || recv_exact(busy.get(), 64, kShortWait) != msg) {
        busy_failed = true;
        return;
      }
      ++round_trips;
    }
  });
  std::this_thread::sleep_for(milliseconds(300));  // the loop is busy, listener paused
  Fd fresh = connect_to(s.port());
  const std::string msg = pattern(100, 3);
  const bool sent = send_all(fresh.get(), msg);
  if (is_limited()) {
    EXPECT_TRUE(stays_silent(fresh.get(), milliseconds(300)));
  } else {
    EXPECT_TRUE(sent && recv_exact(fresh.get(), msg.size(), kShortWait) == msg)
        << "the client that came during the pause was not served while another "
           "client kept the server busy; stderr:\n"
        << s.stderr_text().substr(0, 2000);
  }
  stop = true;
  pinger.join();
  EXPECT_FALSE(busy_failed) << "the busy client's echo failed";
  EXPECT_GT(round_trips.load(), 10) << "the busy client was not kept busy";
  busy.reset();
  if (is_limited()) {  // 00: served once the busy client leaves
    EXPECT_TRUE(sent && recv_exact(fresh.get(), msg.size(), kShortWait) == msg);
  }
  EXPECT_GT(stop_and_count_faults(s, "accept"), 0);
}

// Sequential clients, one 64-byte echo each, against a server whose faults cost
// some of them their connection. Each must be echoed whole or closed: never a
// partial or wrong echo, never left hanging; and the server must stay up.
struct Outcome {
  int served = 0;
  int closed = 0;
};

// The server's fd count once it has settled: a stage prints "listening on"
// before it opens its epoll fd, so a count taken at once can be one short.
int settled_fds(ServerProcess& s) {
  int fds = s.open_fds();
  const auto deadline = Clock::now() + kShortWait;
  for (auto stable_since = Clock::now();
       Clock::now() - stable_since < milliseconds(100) * kSlowdown &&
       Clock::now() < deadline;) {
    std::this_thread::sleep_for(milliseconds(10));
    const int now = s.open_fds();
    if (now != fds) {
      fds = now;
      stable_since = Clock::now();
    }
  }
  return fds;
}

// After recv_exact came back short: whether the server closed or reset the
// connection (a read sees EOF or an error), rather than just staying silent.
bool connection_ended(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 0) != 1) return false;
  char byte;
  const ssize_t n = ::recv(fd, &byte, 1, MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

Outcome echo_or_close_each(ServerProcess& s, int clients) {
  Outcome out;
  for (int i = 0; i < clients; ++i) {
    Fd c = connect_to(s.port());
    const std::string msg = pattern(64, static_cast<std::uint32_t>(i));
    if (!send_all(c.get(), msg)) {
      ADD_FAILURE() << "client " << i << ": send failed";
      return out;
    }
    const std::string got = recv_exact(c.get(), msg.size(), seconds(5));
    if (got == msg) {
      ++out.served;
      continue;
    }
    // Not echoed. A server killed in the middle of a write (by SIGPIPE, say)
    // closes this client too: give a dying process 50 ms to be seen as dead.
    for (int wait = 0; wait < 25 && s.running(); ++wait) {
      std::this_thread::sleep_for(milliseconds(2));
    }
    if (!s.running()) {
      ADD_FAILURE() << "the server died at client " << i << ": "
                    << s.stderr_text().substr(0, 2000);
      return out;
    }
    if (!got.empty()) {
      ADD_FAILURE() << "client " << i << ": " << first_difference(msg, got);
      return out;
    }
    if (!connection_ended(c.get())) {
      ADD_FAILURE() << "client " << i << " was neither echoed nor closed within 5 s: "
                    << "the server left it hanging";
      return out;
    }
    ++out.closed;
  }
  return out;
}

TEST_F(FaultInjection, FailedEpollCtlDropsOnlyThatConnection) {
  // Every 7th epoll_ctl on a socket fails with ENOMEM (the listener's own
  // registration, call 1, succeeds).
  auto& s = start({"--quiet"}, with_faults("epoll_ctl:enomem/7"));
  const int fds = settled_fds(s);  // before any client; threads are not compared,
                                   // as a sanitizer may add its own thread later
  const Outcome out = echo_or_close_each(s, 40);
  if (HasFailure()) return;  // echo_or_close_each said what went wrong
  // Dropped means closed: no fd of a dropped connection may linger. (No fresh
  // echo first: its own epoll_ctl could be one that fails.)
  expect_back_to_baseline(s, fds, kAnyThreads, /*echo_first=*/false);
  const long faults = stop_and_count_faults(s, "epoll_ctl");
  if (is_inapplicable()) {  // no epoll
    EXPECT_EQ(calls_seen(s, "epoll_ctl"), 0)
        << stage_name() << " was expected not to use epoll";
    EXPECT_EQ(faults, 0);
    EXPECT_EQ(out.served, 40);
  } else {
    EXPECT_GT(faults, 0);
    EXPECT_GT(out.closed, 0) << "epoll_ctl failed but no connection was dropped";
    EXPECT_GT(out.served, 0) << "one failed epoll_ctl must not drop every connection";
  }
}

TEST_F(FaultInjection, EpipeOnWriteClosesOnlyThatConnection) {
  // Every 5th write or send on a socket fails with EPIPE and raises SIGPIPE, as
  // the kernel does for a write to a connection the peer has already shut down.
  // A server that has not ignored SIGPIPE dies at the first one (defect 3).
  auto& s = start({"--quiet"}, with_faults("write:epipe/5"));
  const int fds = settled_fds(s);  // before any client (threads: as above)
  const Outcome out = echo_or_close_each(s, 30);
  if (HasFailure()) return;  // echo_or_close_each said what went wrong
  expect_back_to_baseline(s, fds, kAnyThreads, /*echo_first=*/false);
  EXPECT_GT(out.closed, 0) << "no write failed: is the fault reaching the server?";
  EXPECT_GT(out.served, out.closed) << "one failed write must cost one connection only";
  EXPECT_GT(stop_and_count_faults(s, "write"), 0);
}

// ---- Exhaustion ---------------------------------------------------------------------

TEST_F(Exhaustion, OutOfFdsKeepsServingWithoutSpinningAndRecovers) {
  Launch low;
  low.nofile = 32;  // soft and hard: raise_fd_limit() cannot lift it
  auto& s = start({"--quiet"}, low);
  std::vector<Fd> clients;
  for (int i = 0; i < 100; ++i) {
    Fd c = connect_to(s.port());  // the kernel completes these, accepted or not
    ASSERT_TRUE(c);
    ASSERT_TRUE(send_all(c.get(), pattern(64, static_cast<std::uint32_t>(i))));
    clients.push_back(std::move(c));
  }
  std::this_thread::sleep_for(milliseconds(500));
  int served = 0;
  for (std::size_t i = 0; i < clients.size(); ++i) {
    if (recv_exact(clients[i].get(), 64, milliseconds(20)) ==
        pattern(64, static_cast<std::uint32_t>(i))) {
      ++served;
    }
  }
  // 00 holds one connection at a time, so it never runs out of fds here.
  EXPECT_GE(served, is_inapplicable() ? 1 : 10) << "served what it could";
  const milliseconds cpu = cpu_over(s, milliseconds(1000));
  EXPECT_LT(cpu.count(), 150 * kSlowdown)
      << "out of fds, the server must wait, not spin";
  ASSERT_TRUE(s.running());
  clients.clear();  // everyone leaves: the server must recover fully
  for (int i = 0; i < 30; ++i) ping_pong(s.port(), 2, 64);
}

TEST_F(Exhaustion, ClientThatNeverReadsCannotGrowServerMemory) {
  auto& s = start({"--quiet"});
  ping_pong(s.port(), 5, 64);
  const std::uint64_t rss_before = s.rss_bytes();
  Fd hog = connect_to(s.port());
  ::fcntl(hog.get(), F_SETFL, O_NONBLOCK);
  // Push as much as the kernel will take, for a second, never reading.
  const std::string chunk = pattern(1 << 20, 21);
  std::uint64_t pushed = 0;
  const auto until = Clock::now() + seconds(1);
  while (Clock::now() < until && pushed < (64ull << 20)) {
    ssize_t n = ::send(hog.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL);
    if (n > 0) {
      pushed += static_cast<std::uint64_t>(n);
    } else {
      std::this_thread::sleep_for(milliseconds(5));
    }
  }
  std::this_thread::sleep_for(milliseconds(200));
  const std::uint64_t rss_after = s.rss_bytes();
  EXPECT_LT(rss_after, rss_before + (1 << 20) + kSanitizerMemorySlack)
      << "RSS grew from " << rss_before << " to " << rss_after
      << " after the client pushed " << pushed << " bytes without reading";
  if (is_limited()) {
    Fd other = connect_to(s.port());
    ASSERT_TRUE(send_all(other.get(), "x"));
    EXPECT_TRUE(stays_silent(other.get(), milliseconds(300)));
    hog.reset();  // the hog leaves: the next client is served
    EXPECT_EQ(recv_exact(other.get(), 1, kShortWait), "x");
    return;
  }
  ping_pong(s.port(), 20, 64);  // everyone else is still served
}

TEST_F(Exhaustion, TwoThousandChurnCyclesReturnToBaseline) {
  auto& s = start({"--quiet"});
  ping_pong(s.port(), 5, 64);
  std::this_thread::sleep_for(milliseconds(100));
  const int fds = s.open_fds();
  const int threads = s.threads();
  const std::uint64_t rss = s.rss_bytes();
  for (int i = 0; i < 2000 * scale(); ++i) {
    Fd c = connect_to(s.port());
    ASSERT_TRUE(c);
    const std::string msg = pattern(200, static_cast<std::uint32_t>(i));
    switch (i % 4) {
      case 0:  // a whole echo, then close
        ASSERT_TRUE(send_all(c.get(), msg));
        ASSERT_EQ(recv_exact(c.get(), msg.size(), kShortWait), msg) << "cycle " << i;
        break;
      case 1: {  // send, then reset
        send_all(c.get(), msg);
        linger hard{1, 0};
        ::setsockopt(c.get(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
        break;
      }
      case 2:  // half-close: everything echoed, then EOF
        ASSERT_TRUE(send_all(c.get(), msg));
        ::shutdown(c.get(), SHUT_WR);
        ASSERT_EQ(recv_exact(c.get(), msg.size(), kShortWait), msg) << "cycle " << i;
        ASSERT_TRUE(wait_for_eof(c.get(), kShortWait)) << "cycle " << i;
        break;
      case 3:  // connect and leave at once
        break;
    }
  }
  expect_back_to_baseline(s, fds, threads);
  EXPECT_LT(s.rss_bytes(), rss + (2 << 20) + kSanitizerMemorySlack)
      << "memory grew from " << rss;
}

// ---- Hostile clients
// ------------------------------------------------------------------

TEST_F(Hostile, IdleAndDripFeedingClientsDoNotDelayAFreshClient) {
  auto& s = start({"--quiet"});
  std::vector<Fd> idle;
  for (int i = 0; i < 200; ++i) idle.push_back(connect_to(s.port()));
  std::atomic<bool> stop{false};
  std::vector<Fd> drips;
  for (int i = 0; i < 20; ++i) drips.push_back(connect_to(s.port()));
  std::thread dripper([&] {
    while (!stop) {
      for (auto& d : drips) send_all(d.get(), "d", 1);
      std::this_thread::sleep_for(milliseconds(20));
    }
  });
  std::this_thread::sleep_for(milliseconds(200));
  Fd fresh = connect_to(s.port());
  // EXPECT, not ASSERT, until the threads below are joined: returning early
  // with a joinable std::thread would abort the whole suite.
  EXPECT_TRUE(send_all(fresh.get(), "fresh"));
  if (is_limited()) {
    EXPECT_TRUE(stays_silent(fresh.get(), milliseconds(500)));
  } else {
    const auto t0 = Clock::now();
    EXPECT_EQ(recv_exact(fresh.get(), 5, seconds(2) * kSlowdown), "fresh");

    EXPECT_LT(Clock::now() - t0, milliseconds(500) * kSlowdown)
        << "the fresh client waited too long";
  }
  stop = true;
  dripper.join();
  if (is_limited()) {  // once everyone before it has left, the fresh client is served
    idle.clear();
    drips.clear();
    EXPECT_EQ(recv_exact(fresh.get(), 5, kShortWait), "fresh");
  }
}

TEST_F(Hostile, AFastStreamerDoesNotStarveAPingPongClient) {
  auto& s = start({"--quiet"});
  Fd streamer = connect_to(s.port());
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> streamed{0};  // bytes echoed to the streamer, all checked
  std::atomic<bool> stream_wrong{false};
  const std::string chunk = pattern(256 << 10, 8);
  // Writes as fast as it can and reads everything back, for as long as the test runs.
  std::thread writer([&] {
    while (!stop && send_all(streamer.get(), chunk)) {
    }
  });
  std::thread reader([&] {
    std::vector<char> buf(chunk.size());
    std::size_t at = 0;  // where in the repeated chunk the next byte is
    while (!stop) {
      const ssize_t n = ::recv(streamer.get(), buf.data(), buf.size(), 0);
      if (n <= 0) break;
      for (std::size_t done = 0; done < static_cast<std::size_t>(n);) {
        const std::size_t len =
            std::min(static_cast<std::size_t>(n) - done, chunk.size() - at);
        if (std::memcmp(buf.data() + done, chunk.data() + at, len) != 0)
          stream_wrong = true;
        done += len;
        at = (at + len) % chunk.size();
      }
      streamed += static_cast<std::uint64_t>(n);
    }
  });
  std::this_thread::sleep_for(milliseconds(200));  // the stream is flowing
  const std::uint64_t streamed_before = streamed;
  Fd pinger = connect_to(s.port());
  if (is_limited()) {
    EXPECT_TRUE(send_all(pinger.get(), "ping"));  // EXPECT: threads still run
    EXPECT_TRUE(stays_silent(pinger.get(), milliseconds(500)));
  } else {
    Clock::duration worst{};
    for (int i = 0; i < 50; ++i) {
      const std::string msg = pattern(64, static_cast<std::uint32_t>(i));
      const auto t0 = Clock::now();
      // EXPECT and break, not ASSERT: the threads above must be joined first.
      const bool sent = send_all(pinger.get(), msg);
      const std::string got = sent ? recv_exact(pinger.get(), 64, kShortWait) : "";
      EXPECT_TRUE(got == msg) << "ping " << i << ": " << first_difference(msg, got);
      if (got != msg) break;
      worst = std::max(worst, Clock::now() - t0);
    }
    EXPECT_LT(worst, milliseconds(500) * kSlowdown)
        << "a ping waited behind the streamer";
    // The stream still flows: serving the pinger did not stall it. (Within a
    // deadline: on a loaded machine the reader thread may not have run yet.)
    const auto until = Clock::now() + kShortWait;
    while (streamed.load() == streamed_before && Clock::now() < until) {
      std::this_thread::sleep_for(milliseconds(10));
    }
    EXPECT_GT(streamed.load(), streamed_before)
        << "the streamer got nothing more back once the pinger had come";
  }
  stop = true;
  ::shutdown(streamer.get(), SHUT_RDWR);
  writer.join();
  reader.join();
  EXPECT_GT(streamed.load(), 0u) << "the stream never flowed";
  EXPECT_FALSE(stream_wrong) << "the streamer got back bytes it did not send";
  if (is_limited()) {  // once the streamer has gone, the pinger is served
    streamer.reset();
    EXPECT_EQ(recv_exact(pinger.get(), 4, kShortWait), "ping");
  }
}

// TCP urgent data: once it has copied anything, Linux's read() stops short at
// the urgent mark, with the rest of the stream already waiting. An
// edge-triggered server that takes every short read for "drained" (epoll(7)'s
// shortcut) then waits for an edge that never comes. The urgent byte itself is
// out of band (no server sets SO_OOBINLINE), so it is not part of the echo.
TEST_F(Hostile, UrgentDataDoesNotStallTheStream) {
  auto& s = start({"--quiet"});
  Fd c = connect_to(s.port());
  const int one = 1;  // no Nagle: each part leaves at once, as its own segment
  ::setsockopt(c.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  expect_echo(c.get(), "ready");  // accepted and registered
  if (HasFailure()) return;
  ::kill(s.pid(), SIGSTOP);  // all three parts are queued before the server reads
  const bool sent = send_all(c.get(), "abc") &&
                    ::send(c.get(), "X", 1, MSG_OOB | MSG_NOSIGNAL) == 1 &&
                    send_all(c.get(), "def");
  std::this_thread::sleep_for(milliseconds(100));
  ::kill(s.pid(), SIGCONT);
  ASSERT_TRUE(sent);
  EXPECT_EQ(recv_exact(c.get(), 6, kShortWait), "abcdef")
      << "the bytes after the urgent mark were not echoed";
}

// SIGTERM while the server is stuck writing to a client that never reads (00
// and 01 block in write(); 02-05 wait for EPOLLOUT/POLLOUT), with other clients
// connected: every connection is closed and the server exits 0 at once, with a
// summary that counts them all. It must not wait for the client to read.
TEST_F(Hostile, StopWhileWritingToAClientThatNeverReadsIsPrompt) {
  auto& s = start({"--quiet"});
  Fd hog = connect_to(s.port());
  ::fcntl(hog.get(), F_SETFL, O_NONBLOCK);
  const std::string chunk = pattern(1 << 20, 31);
  std::uint64_t pushed = 0;
  auto last_progress = Clock::now();  // push until the kernel takes nothing for 300 ms
  while (Clock::now() - last_progress < milliseconds(300) && pushed < (64ull << 20)) {
    const ssize_t n = ::send(hog.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL);
    if (n > 0) {
      pushed += static_cast<std::uint64_t>(n);
      last_progress = Clock::now();
    } else {
      std::this_thread::sleep_for(milliseconds(5));
    }
  }
  std::vector<Fd> others;
  for (int i = 0; i < 3; ++i) {
    others.push_back(connect_to(s.port()));
    if (serves_concurrently()) expect_echo(others.back().get(), "x");  // accepted
  }
  if (HasFailure()) return;
  const auto before = Clock::now();
  const ExitStatus st = s.stop(SIGTERM);
  const auto took = Clock::now() - before;
  EXPECT_TRUE(st.exited && st.code == 0)
      << "after SIGTERM the server " << st.describe() << "; stderr:\n"
      << s.stderr_text().substr(0, 2000);
  EXPECT_LT(took, seconds(2) * kSlowdown)
      << "the stop waited for a client that does not read (" << pushed
      << " bytes pushed)";
  const std::string served = serves_concurrently() ? "4" : "1";
  EXPECT_NE(s.stdout_text().find("summary: served " + served + " connections"),
            std::string::npos)
      << s.stdout_text();
}

TEST_F(Hostile, IdleConnectedClientsCostNoCpu) {
  auto& s = start({"--quiet"});
  std::vector<Fd> clients;
  for (int i = 0; i < 100; ++i) {
    Fd c = connect_to(s.port());
    ASSERT_TRUE(send_all(c.get(), "hi"));
    ASSERT_EQ(recv_exact(c.get(), 2, kShortWait), "hi");
    // Each client did one echo and now idles. 00 serves one client at a time:
    // there each must leave for the next to be served, and only the last idles.
    if (serves_concurrently() || i == 99) clients.push_back(std::move(c));
  }
  // So that 00 too has 100 connected clients: 99 more wait in its accept queue,
  // their "hi" sent and unanswered, while the one it serves idles.
  for (int i = 0; !serves_concurrently() && i < 99; ++i) {
    Fd c = connect_to(s.port());
    ASSERT_TRUE(send_all(c.get(), "hi"));
    clients.push_back(std::move(c));
  }

  const milliseconds cpu = cpu_over(s, milliseconds(1000));
  EXPECT_LT(cpu.count(), 50 * kSlowdown)
      << "an idle server must sleep (a level-triggered EPOLLOUT left "
         "armed makes it spin)";
}

TEST_F(Hostile, StopContinueAndSignalStormsLoseNothing) {
  auto& s = start({"--quiet"});
  Fd c = connect_to(s.port());
  std::atomic<bool> stop{false};
  std::thread storm([&] {
    while (!stop) {
      ::kill(s.pid(), SIGSTOP);
      std::this_thread::sleep_for(milliseconds(20));
      ::kill(s.pid(), SIGCONT);
      for (int sig : {SIGWINCH, SIGCHLD, SIGURG})
        ::kill(s.pid(), sig);  // ignored by default
      std::this_thread::sleep_for(milliseconds(5));
    }
  });
  expect_echo(c.get(), pattern(4 << 20, 31));
  c.reset();
  ping_pong(s.port(), 100, 64);
  stop = true;
  storm.join();
  ::kill(s.pid(), SIGCONT);
}

TEST_F(Hostile, ClientsThatResetInTheAcceptQueueAreHarmless) {
  auto& s = start({"--quiet"});
  ping_pong(s.port(), 2, 64);
  std::this_thread::sleep_for(milliseconds(100));
  const int fds = s.open_fds();
  const int threads = s.threads();
  ::kill(s.pid(), SIGSTOP);  // nobody accepts while the clients come and go
  for (int i = 0; i < 50; ++i) {
    Fd c = connect_to(s.port());
    send_all(c.get(), "gone");
    linger hard{1, 0};
    ::setsockopt(c.get(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  }
  ::kill(s.pid(), SIGCONT);
  ping_pong(s.port(), 10, 64);
  expect_back_to_baseline(s, fds, threads);
}

// ---- Defects of the 2013 original not caught elsewhere
// --------------------------------

// Defect 1: it slept 60 s after every accept.
TEST_F(Defects, EveryNewClientIsServedWithoutDelay) {
  auto& s = start({"--quiet"});
  for (int i = 0; i < 20; ++i) {
    const auto t0 = Clock::now();
    ping_pong(s.port(), 1, 64);
    EXPECT_LT(Clock::now() - t0, seconds(1) * kSlowdown) << "client " << i;
  }
}

// Defect 3: SIGPIPE was not ignored, so a write to a reset peer killed it.
TEST_F(Defects, SigpipeIsIgnored) {
  auto& s = start();
  const std::string ignored =
      s.status_field("SigIgn");  // a hex mask, bit N-1 = signal N
  ASSERT_FALSE(ignored.empty());
  const unsigned long long mask = std::stoull(ignored, nullptr, 16);
  EXPECT_TRUE(mask & (1ull << (SIGPIPE - 1))) << "SigIgn: " << ignored;
}

// Defect 4: it printed the (not NUL-terminated) buffer with %s.
TEST_F(Defects, PayloadBytesAreNeverLogged) {
  for (const char* flag : {"--trace", "--buffer-size"}) {
    std::vector<std::string> args = {flag};
    if (std::string(flag) == "--buffer-size") args.push_back("255");
    auto s = ServerProcess::start_on_free_port(args);
    ASSERT_TRUE(s);
    Fd c = connect_to(s->port());
    std::string secret = "PAYLOAD-MUST-NOT-BE-LOGGED-";
    secret += std::string(255 - secret.size(), 'Z');  // exactly the original's buffer
    ASSERT_TRUE(send_all(c.get(), secret));
    ASSERT_EQ(recv_exact(c.get(), secret.size(), kShortWait), secret);
    c.reset();
    s->stop(SIGTERM);
    EXPECT_EQ(s->stderr_text().find("PAYLOAD-MUST"), std::string::npos)
        << "with " << flag << ":\n"
        << s->stderr_text().substr(0, 2000);
  }
}

// Defects 4 and 10, on stdout: the original printed every buffer with printf.
// stdout carries exactly the contract's two lines, whatever the traffic.
TEST_F(Defects, StdoutCarriesOnlyTheListeningAndSummaryLines) {
  auto& s = start({"--buffer-size", "255"});
  {
    Fd c = connect_to(s.port());
    std::string msg = "PAYLOAD-MUST-NOT-BE-LOGGED-";
    msg += std::string(255 - msg.size(), 'Q');
    for (int i = 0; i < 200; ++i) {
      ASSERT_TRUE(send_all(c.get(), msg));
      ASSERT_EQ(recv_exact(c.get(), msg.size(), kShortWait), msg) << "message " << i;
    }
  }
  ExitStatus st = s.stop(SIGTERM);
  EXPECT_TRUE(st.exited && st.code == 0) << st.describe();
  EXPECT_EQ(s.stdout_text(),
            "listening on 127.0.0.1:" + std::to_string(s.port()) +
                "\nsummary: served 1 connections, echoed 51000 bytes\n");
}

// Defect 8: events compared with ==, so EPOLLIN|EPOLLHUP or EPOLLERR fell through
// and a reset connection was never closed (a level-triggered busy loop and a leak).
TEST_F(Defects, ResetClientsAreClosedWithoutSpinning) {
  auto& s = start({"--quiet"});
  ping_pong(s.port(), 2, 64);
  std::this_thread::sleep_for(milliseconds(100));
  const int fds = s.open_fds();
  const int threads = s.threads();
  for (int i = 0; i < 50; ++i) {
    Fd c = connect_to(s.port());
    ASSERT_TRUE(send_all(c.get(), pattern(32 << 10, static_cast<std::uint32_t>(i))));
    linger hard{1, 0};
    ::setsockopt(c.get(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  }
  expect_back_to_baseline(s, fds, threads);
  EXPECT_LT(cpu_over(s, milliseconds(1000)).count(), 50 * kSlowdown);
}

// Defect 10: it logged every message with printf.
TEST_F(Defects, NothingIsLoggedPerMessage) {
  auto& s = start();
  ping_pong(s.port(), 2000, 64);
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_LE(lines_of(s.stderr_text()).size(), 2u)
      << "expected at most an accept and a close line:\n"
      << s.stderr_text().substr(0, 2000);
}

// Defect 11: allocation failures were unchecked.
TEST_F(Defects, AllocationFailureClosesOnlyThatClient) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "sanitizers reserve terabytes of address space, so RLIMIT_AS cannot "
                  "be used to make allocations fail; the plain build runs this test";
#endif
  Launch small;
  small.address_space = 1ull << 30;  // 1 GiB: about a dozen 64 MiB buffers fit
  // Not --quiet: a server that reads into a null buffer gets EFAULT, which costs
  // only that client too and would pass unseen, but it logs "Bad address".
  auto& s = start({"--buffer-size", "67108864"}, small);
  std::this_thread::sleep_for(milliseconds(100));
  const int fds = s.open_fds();
  const int threads = s.threads();
  std::vector<Fd> clients;
  for (int i = 0; i < 30; ++i) {
    clients.push_back(connect_to(s.port()));
    ASSERT_TRUE(
        send_all(clients.back().get(), pattern(1024, static_cast<std::uint32_t>(i))));
  }
  int served = 0;
  int closed = 0;
  for (std::size_t i = 0; i < clients.size(); ++i) {
    const std::string msg = pattern(1024, static_cast<std::uint32_t>(i));
    std::string got = recv_exact(clients[i].get(), msg.size(), seconds(5));
    if (got == msg) {
      ++served;
    } else {
      ASSERT_EQ(got.size(), 0u) << "client " << i << ": " << first_difference(msg, got);
      ++closed;
    }
    // 00 serves one client at a time: let it move on. The others keep every
    // client (and so every buffer) until all have answered, so the allocations
    // really compete for the address space.
    if (!serves_concurrently()) clients[i].reset();
  }
  clients.clear();

  EXPECT_GT(served, 0);
  if (!is_inapplicable()) {  // 00 allocates its one buffer at start-up
    EXPECT_GT(closed, 0) << "no allocation failed: limit too high?";
  }
  ASSERT_TRUE(s.running()) << s.stderr_text().substr(0, 2000);
  EXPECT_EQ(s.stderr_text().find("Bad address"), std::string::npos)
      << "a read or write went to a null buffer (EFAULT): an allocation was not "
         "checked";
  // Once every buffer is freed again, it serves as before. Every client was
  // accepted (each got an answer or was closed), and an echo before the buffers
  // are freed could itself be refused its buffer: no fresh echo first.
  expect_back_to_baseline(s, fds, threads, /*echo_first=*/false);
  ping_pong(s.port(), 5, 64);
}

}  // namespace
}  // namespace echo::testing
