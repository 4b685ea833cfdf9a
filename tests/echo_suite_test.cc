// The shared suite: one black-box test of the echo contract, run against every
// stage's server over real sockets on 127.0.0.1.
//
// Tests named in tests/expectations.cc as a stage's design limit still run
// against that stage and assert the limitation instead (is_limited()).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>

#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "tests/expectations.h"
#include "tests/harness.h"
#include "tests/stage_test.h"

namespace echo::testing {
namespace {

class Echo : public StageTest {};
class Robustness : public StageTest {};
class Cli : public StageTest {};
class Concurrency : public StageTest {};
class Trace : public StageTest {};

// ---- Echo: byte-exact ---------------------------------------------------------

TEST_F(Echo, ShortLineIsEchoedBack) {
  auto& s = start();
  Fd c = connect_to(s.port());
  ASSERT_TRUE(send_all(c.get(), "hello, ladder\n"));
  EXPECT_EQ(recv_exact(c.get(), 14, kShortWait), "hello, ladder\n");
}

TEST_F(Echo, AllByteValuesIncludingNulAreEchoedExactly) {
  auto& s = start();
  Fd c = connect_to(s.port());
  std::string all;
  for (int round = 0; round < 4; ++round) {
    for (int b = 0; b < 256; ++b)
      all.push_back(static_cast<char>(round % 2 ? 255 - b : b));
  }
  expect_echo(c.get(), all);
}

// Sizes on both sides of the buffer size and of common socket-buffer sizes,
// all on one connection, so a stale offset or length from the previous echo
// corrupts the next one.
void echo_sizes_around(std::uint16_t port, const std::vector<std::size_t>& sizes) {
  Fd c = connect_to(port);
  std::uint32_t seed = 7;
  for (std::size_t size : sizes) {
    SCOPED_TRACE("payload of " + std::to_string(size) + " bytes");
    expect_echo(c.get(), pattern(size, seed++));
    if (::testing::Test::HasFailure()) return;
  }
}

TEST_F(Echo, SizesAcrossTheDefaultBufferEdgesAreEchoedExactly) {
  auto& s = start();  // default --buffer-size: 16 KiB
  echo_sizes_around(s.port(), {1, 2, 100, 4095, 4096, 4097, 16383, 16384, 16385, 32768,
                               65535, 65536, 65537, 1 << 20, 4 << 20});
}

TEST_F(Echo, SizesAcrossTheOriginalsBufferEdgesAreEchoedExactly) {
  auto& s = start({"--buffer-size", "255"});  // the 2013 original's buffer
  echo_sizes_around(s.port(),
                    {1, 2, 254, 255, 256, 509, 510, 511, 4096, 65536, 1 << 20});
}

TEST_F(Echo, ThousandsOfOneByteWritesAreEchoedInOrder) {
  auto& s = start();
  Fd c = connect_to(s.port());
  const int one = 1;
  ::setsockopt(c.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const std::string payload = pattern(5000, 3);
  bool sent_ok = true;
  std::thread writer([&] {
    for (char byte : payload) {
      if (!send_all(c.get(), &byte, 1)) {
        sent_ok = false;
        return;
      }
    }
  });
  std::string got = recv_exact(c.get(), payload.size(), kLongWait);
  writer.join();
  EXPECT_TRUE(sent_ok);
  EXPECT_TRUE(got == payload) << first_difference(payload, got);
}

TEST_F(Echo, SixteenMebibyteStreamIsEchoedByteForByte) {
  auto& s = start();
  Fd c = connect_to(s.port());
  expect_echo(c.get(), pattern(16 << 20, 11));
}

TEST_F(Echo, HalfCloseEchoesEverythingThenEof) {
  auto& s = start();
  Fd c = connect_to(s.port());
  const std::string payload = pattern(300'000, 5);
  bool sent_ok = false;
  std::thread writer([&] {
    sent_ok = send_all(c.get(), payload) && ::shutdown(c.get(), SHUT_WR) == 0;
  });
  std::string got = recv_exact(c.get(), payload.size(), kLongWait);
  writer.join();
  ASSERT_TRUE(sent_ok);
  EXPECT_TRUE(got == payload) << first_difference(payload, got);
  EXPECT_TRUE(wait_for_eof(c.get(), kShortWait))
      << "after echoing everything the server must close its side";
}

// ---- Robustness -------------------------------------------------------------------

TEST_F(Robustness, PeerResetMidEchoDoesNotStopTheServer) {
  auto& s = start();
  for (int round = 0; round < 3; ++round) {
    Fd rude = connect_to(s.port());
    // Send far more than the server can echo into a client that never reads,
    // so the server is mid-write when the reset arrives.
    ::fcntl(rude.get(), F_SETFL, O_NONBLOCK);
    const std::string big = pattern(4 << 20, 9);
    ::send(rude.get(), big.data(), big.size(), MSG_NOSIGNAL);
    std::this_thread::sleep_for(milliseconds(100));
    linger hard{1, 0};  // close() now sends RST instead of FIN
    ::setsockopt(rude.get(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    rude.reset();

    Fd next = connect_to(s.port());
    ASSERT_TRUE(send_all(next.get(), "still there?"));
    ASSERT_EQ(recv_exact(next.get(), 12, kShortWait), "still there?")
        << "round " << round << "; stderr:\n"
        << tail(s.stderr_text());
  }
  EXPECT_TRUE(s.running());
}

TEST_F(Robustness, FiveHundredSequentialConnectionsReturnFdsToBaseline) {
  auto& s = start({"--quiet"});
  {
    Fd warm = connect_to(s.port());
    send_all(warm.get(), "warm");
    ASSERT_EQ(recv_exact(warm.get(), 4, kShortWait), "warm");
  }
  std::this_thread::sleep_for(milliseconds(100));
  const int base_fds = s.open_fds();
  const int base_threads = s.threads();
  for (int i = 0; i < 500; ++i) {
    Fd c = connect_to(s.port());
    const std::string msg = pattern(64, static_cast<std::uint32_t>(i));
    ASSERT_TRUE(send_all(c.get(), msg));
    ASSERT_EQ(recv_exact(c.get(), msg.size(), kShortWait), msg) << "connection " << i;
  }
  const auto deadline = Clock::now() + kShortWait;
  while ((s.open_fds() != base_fds || s.threads() != base_threads) &&
         Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_EQ(s.open_fds(), base_fds) << "the server leaks file descriptors";
  EXPECT_EQ(s.threads(), base_threads) << "the server leaks threads";
}

TEST_F(Robustness, RestartOnTheSamePortRightAfterServingSucceeds) {
  auto& s = start();
  Fd c = connect_to(s.port());
  ASSERT_TRUE(send_all(c.get(), "x"));
  ASSERT_EQ(recv_exact(c.get(), 1, kShortWait), "x");
  // The server closes first, so its side of the connection sits in TIME_WAIT.
  ExitStatus st = s.stop(SIGTERM);
  ASSERT_TRUE(st.exited && st.code == 0) << st.describe();
  const std::string port = std::to_string(s.port());
  auto again = ServerProcess::start({"--port", port});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->first_line(), "listening on 127.0.0.1:" + port)
      << "a restart must not fail with EADDRINUSE (SO_REUSEADDR); stderr:\n"
      << again->stderr_text();
  ExitStatus st2 = again->stop(SIGTERM);
  EXPECT_TRUE(st2.exited && st2.code == 0) << st2.describe();
}

// ---- Cli: the server contract -------------------------------------------------------

TEST_F(Cli, UnknownFlagExitsTwoWithUsage) {
  auto p = ServerProcess::start({"--bogus"});
  ASSERT_TRUE(p);
  ExitStatus st = p->wait(kShortWait);
  EXPECT_TRUE(st.exited && st.code == 2) << st.describe();
  EXPECT_NE(p->stderr_text().find("--bogus"), std::string::npos) << p->stderr_text();
  EXPECT_NE(p->stderr_text().find("usage:"), std::string::npos) << p->stderr_text();
  EXPECT_EQ(p->stdout_text(), "") << "nothing on stdout when the flags are bad";
}

TEST_F(Cli, BadFlagValuesExitTwo) {
  const std::vector<std::vector<std::string>> cases = {
      {"--port", "70000"},    {"--port", "http"},      {"--port"},     {"--port", "-1"},
      {"--buffer-size", "0"}, {"--buffer-size", "1k"}, {"--host", ""}, {"--trace=yes"},
  };
  for (const auto& args : cases) {
    auto p = ServerProcess::start(args);
    ASSERT_TRUE(p);
    ExitStatus st = p->wait(kShortWait);
    EXPECT_TRUE(st.exited && st.code == 2)
        << "args " << ::testing::PrintToString(args) << ": " << st.describe();
    EXPECT_NE(p->stderr_text().find("usage:"), std::string::npos);
  }
}

TEST_F(Cli, HelpPrintsUsageAndExitsZero) {
  auto p = ServerProcess::start({"--help"});
  ASSERT_TRUE(p);
  ExitStatus st = p->wait(kShortWait);
  EXPECT_TRUE(st.exited && st.code == 0) << st.describe();
  const std::string out = p->stdout_text();
  for (const char* flag : {"usage:", "--host", "--port", "--buffer-size", "--trace",
                           "--quiet", "--help"}) {
    EXPECT_NE(out.find(flag), std::string::npos) << flag << " missing from:\n" << out;
  }
}

TEST_F(Cli, TakenPortExitsOneWithAClearMessage) {
  auto& s = start();
  const std::string port = std::to_string(s.port());
  auto second = ServerProcess::start({"--port", port});
  ASSERT_TRUE(second);
  ExitStatus st = second->wait(kShortWait);
  EXPECT_TRUE(st.exited && st.code == 1) << st.describe();
  EXPECT_NE(second->stderr_text().find("cannot listen on 127.0.0.1:" + port +
                                       ": Address already in use"),
            std::string::npos)
      << second->stderr_text();
  // The first server is unaffected.
  Fd c = connect_to(s.port());
  ASSERT_TRUE(send_all(c.get(), "ok"));
  EXPECT_EQ(recv_exact(c.get(), 2, kShortWait), "ok");
}

TEST_F(Cli, UnusableAddressExitsOneWithAClearMessage) {
  // "256.1.1.1" is no IPv4 address, so the resolver takes it for a host name and
  // may ask DNS: one short try keeps an offline machine's lookup well within the
  // wait. "192.0.2.1" is a valid address that is not this machine's (TEST-NET-1).
  Launch quick_resolver;
  quick_resolver.env = {"RES_OPTIONS=timeout:1 attempts:1"};
  for (const char* host : {"256.1.1.1", "192.0.2.1"}) {
    auto p = ServerProcess::start({"--host", host, "--port", "0"}, quick_resolver);
    ASSERT_TRUE(p);
    ExitStatus st = p->wait(kShortWait);
    EXPECT_TRUE(st.exited && st.code == 1) << host << ": " << st.describe();
    EXPECT_NE(p->stderr_text().find(std::string("cannot listen on ") + host + ":0: "),
              std::string::npos)
        << p->stderr_text();
  }
}

// A stop signal with a client connected: every connection closed, a summary
// that counts what was served, exit 0.
void expect_clean_stop(StageTest* test, ServerProcess& s, int sig) {
  Fd c = connect_to(s.port());
  ASSERT_TRUE(send_all(c.get(), "12345"));
  ASSERT_EQ(recv_exact(c.get(), 5, kShortWait), "12345");
  ExitStatus st = s.stop(sig);
  EXPECT_TRUE(st.exited && st.code == 0) << st.describe();
  EXPECT_TRUE(wait_for_eof(c.get(), kShortWait))
      << "the client's connection was not closed";
  EXPECT_NE(s.stdout_text().find("summary: served 1 connections, echoed 5 bytes"),
            std::string::npos)
      << s.stdout_text();
  (void)test;
}

TEST_F(Cli, SigintClosesClientsAndExitsZeroWithSummary) {
  expect_clean_stop(this, start(), SIGINT);
}

TEST_F(Cli, SigtermClosesClientsAndExitsZeroWithSummary) {
  expect_clean_stop(this, start(), SIGTERM);
}

// ---- Concurrency
// ------------------------------------------------------------------------

TEST_F(Concurrency, TwoClientsAreServedAtOnce) {
  auto& s = start();
  Fd first = connect_to(s.port());
  ASSERT_TRUE(send_all(first.get(), "first"));
  ASSERT_EQ(recv_exact(first.get(), 5, kShortWait), "first");
  Fd second = connect_to(s.port());
  ASSERT_TRUE(send_all(second.get(), "second"));
  if (is_limited()) {
    EXPECT_TRUE(stays_silent(second.get(), milliseconds(500)))
        << "expected the second client to wait while the first is connected";
    first.reset();  // the first leaves: now the second is served
    EXPECT_EQ(recv_exact(second.get(), 6, kShortWait), "second");
    return;
  }
  EXPECT_EQ(recv_exact(second.get(), 6, kShortWait), "second");
  ASSERT_TRUE(send_all(first.get(), "again"));
  EXPECT_EQ(recv_exact(first.get(), 5, kShortWait), "again");
}

TEST_F(Concurrency, TwoHundredConcurrentClientsAreAllEchoed) {
  auto& s = start({"--quiet"});
  if (is_limited()) {
    // The first client is served (none leaves, so nobody else is).
    EXPECT_EQ(echo_with_many_clients(s.port(), 200, 1024, seconds(2)), 1);
    return;
  }
  EXPECT_EQ(echo_with_many_clients(s.port(), 200, 1024, kLongWait), 200);
}

TEST_F(Concurrency, AThousandClientsConnectedAtOnceEachGetAnEcho) {
  auto& s = start({"--quiet"});
  if (is_limited()) {
    EXPECT_EQ(echo_with_many_clients(s.port(), 1000, 4096, seconds(2)), 1);
    return;
  }
  EXPECT_EQ(echo_with_many_clients(s.port(), 1000, 4096, kLongWait), 1000);
}

TEST_F(Concurrency, AnIdleClientDoesNotDelayOthers) {
  auto& s = start();
  Fd idle = connect_to(s.port());  // connected, sends nothing
  std::this_thread::sleep_for(milliseconds(50));
  Fd busy = connect_to(s.port());
  ASSERT_TRUE(send_all(busy.get(), "ping"));
  if (is_limited()) {
    EXPECT_TRUE(stays_silent(busy.get(), milliseconds(500)))
        << "expected the idle client to hold up the next one";
    idle.reset();
    EXPECT_EQ(recv_exact(busy.get(), 4, kShortWait), "ping");
    return;
  }
  EXPECT_EQ(recv_exact(busy.get(), 4, seconds(2) * kSlowdown), "ping");
}

// ---- Trace: what --trace shows
// ---------------------------------------------------------

// The fd the server gave the connection that its trace reports accepting at
// or after `from`, and where that line starts.
int accepted_fd(ServerProcess& s, std::size_t from, std::size_t* at) {
  *at = s.wait_for_stderr("trace: accept fd=", from, kShortWait);
  if (*at == std::string::npos) return -1;
  return std::stoi(s.stderr_text().substr(*at + 17));
}

TEST_F(Trace, TraceShowsReadinessEvents) {
  auto& s = start({"--trace"});
  Fd c = connect_to(s.port());
  ASSERT_TRUE(send_all(c.get(), "traced"));
  ASSERT_EQ(recv_exact(c.get(), 6, kShortWait), "traced");
  std::size_t at = 0;
  const int fd = accepted_fd(s, 0, &at);
  ASSERT_GE(fd, 0) << "no 'trace: accept fd=N' line:\n" << tail(s.stderr_text());
  c.reset();
  ASSERT_NE(s.wait_for_stderr("trace: close fd=" + std::to_string(fd), at, kShortWait),
            std::string::npos)
      << tail(s.stderr_text());
  const std::string err = s.stderr_text();
  EXPECT_EQ(err.find("traced"), std::string::npos)
      << "payload bytes must never be logged";
  if (is_limited()) {
    EXPECT_EQ(err.find("trace: event"), std::string::npos) << tail(err);
    return;
  }
  EXPECT_NE(err.find("trace: event fd=" + std::to_string(fd) + " "), std::string::npos)
      << tail(err);
}

// Counts the epoll_ctl trace lines for `fd` in stderr[from, end).
int epoll_ctl_lines(const std::string& err, std::size_t from, int fd) {
  const std::string id = "fd=" + std::to_string(fd);
  int n = 0;
  for (const auto& l : lines_of(err.substr(from))) {
    if (l.rfind("trace: epoll_ctl ", 0) != 0) continue;
    // "trace: epoll_ctl OP fd=N ...": the fd field must match exactly.
    std::size_t at = l.find(" fd=");
    if (at == std::string::npos) continue;
    std::size_t end = l.find(' ', at + 1);
    if (l.substr(at + 1, end == std::string::npos ? std::string::npos : end - at - 1) ==
        id) {
      ++n;
    }
  }
  return n;
}

TEST_F(Trace, EpollCtlCallsPerEchoedMessageMatchTheDesign) {
  auto& s = start({"--trace", "--quiet"});
  // Two connections with different message counts; the difference cancels the
  // per-connection setup and teardown and leaves the steady-state cost.
  const int kMessages[2] = {10, 110};
  int counts[2] = {0, 0};
  std::size_t from = 0;
  for (int round = 0; round < 2; ++round) {
    Fd c = connect_to(s.port());
    for (int i = 0; i < kMessages[round]; ++i) {
      const std::string msg = pattern(64, static_cast<std::uint32_t>(i));
      ASSERT_TRUE(send_all(c.get(), msg));
      ASSERT_EQ(recv_exact(c.get(), 64, kShortWait), msg);
    }
    std::size_t at = 0;
    const int fd = accepted_fd(s, from, &at);
    ASSERT_GE(fd, 0) << tail(s.stderr_text());
    c.reset();
    std::size_t closed =
        s.wait_for_stderr("trace: close fd=" + std::to_string(fd), at, kShortWait);
    ASSERT_NE(closed, std::string::npos) << tail(s.stderr_text());
    std::this_thread::sleep_for(milliseconds(50));  // any DEL printed after close
    const std::string err = s.stderr_text();
    counts[round] = epoll_ctl_lines(err, at, fd);
    from = err.size();
  }
  const int per_message = epoll_ctl_per_message(stage_name());
  EXPECT_EQ(counts[1] - counts[0], per_message * (kMessages[1] - kMessages[0]))
      << "epoll_ctl lines: " << counts[0] << " for " << kMessages[0] << " messages, "
      << counts[1] << " for " << kMessages[1] << "; the design says " << per_message
      << " per echoed message";
}

}  // namespace
}  // namespace echo::testing
