// Tests for echo_bench: its pieces (the pattern, the histogram, the flags), and
// run_bench over real loopback sockets against small in-test servers that echo,
// corrupt one byte, stall or refuse, so that "never lies" is itself checked.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <functional>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "tools/echo_bench/bench.h"
#include "tools/echo_bench/flags.h"
#include "tools/echo_bench/histogram.h"
#include "tools/echo_bench/pattern.h"

namespace echo_bench {
namespace {

TEST(Pattern, FillMatchesBytewiseDefinitionAtAnyOffsetAndLength) {
  const std::uint64_t seed = stream_seed(7);
  // Across a block boundary (4,096 bytes) and the table's wrap-around (8,191
  // words from where the stream starts in it) too.
  for (std::uint64_t offset : {0ULL, 1ULL, 7ULL, 8ULL, 13ULL, 1000ULL, 4090ULL, 4096ULL,
                               65'500ULL, 1'000'003ULL}) {
    for (std::size_t length :
         {0UL, 1UL, 5UL, 8UL, 9UL, 64UL, 100UL, 5000UL, 70'000UL}) {
      std::vector<char> out(length);
      fill_pattern(seed, offset, out.data(), length);
      for (std::size_t i = 0; i < length; ++i) {
        ASSERT_EQ(static_cast<unsigned char>(out[i]), pattern_byte(seed, offset + i))
            << "offset " << offset << " + " << i;
      }
    }
  }
}

// matching_prefix agrees with the bytewise definition: all of a correct echo
// matches, and one wrong byte anywhere (head, a word, across a block boundary or
// the table's wrap-around, tail) is found at its own index.
TEST(Pattern, MatchingPrefixFindsTheFirstWrongByte) {
  const std::uint64_t seed = stream_seed(3);
  for (std::uint64_t offset : {0ULL, 5ULL, 8ULL, 4093ULL, 65'530ULL}) {
    for (std::size_t length : {0UL, 3UL, 8UL, 77UL, 4096UL, 70'001UL}) {
      std::vector<char> got(length);
      fill_pattern(seed, offset, got.data(), length);
      ASSERT_EQ(matching_prefix(seed, offset, got.data(), length), length)
          << "offset " << offset << ", length " << length;
      for (std::size_t wrong :
           {0UL, 1UL, 7UL, 8UL, 9UL, 4095UL, 4096UL, 65'535UL, 70'000UL}) {
        if (wrong >= length) continue;
        got[wrong] = static_cast<char>(got[wrong] ^ 0x10);
        ASSERT_EQ(matching_prefix(seed, offset, got.data(), length), wrong)
            << "offset " << offset << ", length " << length;
        got[wrong] = static_cast<char>(got[wrong] ^ 0x10);
      }
    }
  }
  // Another connection's bytes at the same offset do not match.
  std::vector<char> other(64);
  fill_pattern(stream_seed(4), 0, other.data(), other.size());
  EXPECT_LT(matching_prefix(seed, 0, other.data(), other.size()), 8u);
}

// A server that echoes the right bytes from the wrong place in the stream is
// caught: no 8-byte word of the first 4 MiB repeats, at any distance (in one block,
// across blocks, a whole table length apart), and connections do not share words.
TEST(Pattern, NoWordRepeatsWithinAStreamOrAcrossConnections) {
  std::unordered_set<std::uint64_t> seen;
  constexpr std::uint64_t kWords = 4 * 1024 * 1024 / 8;
  for (std::uint64_t connection : {0ULL, 1ULL, 8191ULL}) {
    const std::uint64_t seed = stream_seed(connection);
    for (std::uint64_t k = 0; k < kWords; ++k) {
      ASSERT_TRUE(seen.insert(pattern_word(seed, k)).second)
          << "connection " << connection << ", word " << k << " repeats";
    }
  }
}

TEST(Pattern, DiffersBetweenConnectionsAndMessages) {
  std::vector<char> a(64), b(64), c(64);
  fill_pattern(stream_seed(0), 0, a.data(), 64);
  fill_pattern(stream_seed(1), 0, b.data(), 64);   // another connection
  fill_pattern(stream_seed(0), 64, c.data(), 64);  // the next message
  EXPECT_NE(a, b);
  EXPECT_NE(a, c);
  // Not a constant: many distinct byte values in one message.
  std::vector<bool> seen(256);
  int distinct = 0;
  for (char ch : a) {
    if (!seen[static_cast<unsigned char>(ch)]) ++distinct;
    seen[static_cast<unsigned char>(ch)] = true;
  }
  EXPECT_GT(distinct, 40);
}

TEST(Histogram, IndexAndBucketTopAreConsistent) {
  for (std::uint64_t v : {0ULL, 1ULL, 127ULL, 128ULL, 129ULL, 255ULL, 256ULL, 1000ULL,
                          123456789ULL, ~0ULL}) {
    const int i = Histogram::index_of(v);
    ASSERT_LT(i, Histogram::kBuckets);
    EXPECT_GE(Histogram::highest_in(i), v);
    if (i > 0) {
      EXPECT_LT(Histogram::highest_in(i - 1), v) << v;
    }
  }
}

TEST(Histogram, PercentilesWithinOnePercent) {
  Histogram h;
  for (std::uint64_t v = 1; v <= 100000; ++v) h.record(v * 1000);  // 1 us .. 100 ms
  EXPECT_EQ(h.count(), 100000u);
  EXPECT_EQ(h.min(), 1000u);
  EXPECT_EQ(h.max(), 100000000u);
  for (double p : {0.5, 0.99, 0.999}) {
    const double exact = p * 100000 * 1000;
    const double got = static_cast<double>(h.percentile(p));
    EXPECT_GE(got, exact) << p;  // never below the true value
    EXPECT_LE(got, exact * 1.01) << p;
  }
  EXPECT_EQ(h.percentile(1.0), h.max());
  EXPECT_NEAR(h.mean(), 50000.5 * 1000, 1);
}

TEST(Histogram, EmptyReportsZero) {
  Histogram h;
  EXPECT_EQ(h.percentile(0.99), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
}

ParseResult parse(std::vector<std::string> args) {
  return parse_flags(args);
}

TEST(Flags, DefaultsAreDocumented) {
  const ParseResult r = parse({});
  ASSERT_EQ(r.status, ParseStatus::kOk);
  EXPECT_EQ(r.config.host, "127.0.0.1");
  EXPECT_EQ(r.config.port, 8080);
  EXPECT_EQ(r.config.connections, 1u);
  EXPECT_EQ(r.config.size, 64u);
  EXPECT_EQ(r.config.pipeline, 1u);
  EXPECT_EQ(r.config.messages, 0u);
  EXPECT_EQ(r.config.duration_s, 5);
  EXPECT_EQ(r.config.warmup_s, 1);
  EXPECT_EQ(r.config.stall_timeout_s, 10);
  EXPECT_EQ(r.config.hold_s, 0);
  EXPECT_FALSE(r.config.json);
}

TEST(Flags, ParsesBothFormsAndSuffixes) {
  const ParseResult r = parse({"--port=9000", "--connections", "10000", "--size", "16K",
                               "--pipeline=4", "--messages", "20000", "--json"});
  ASSERT_EQ(r.status, ParseStatus::kOk) << r.error;
  EXPECT_EQ(r.config.port, 9000);
  EXPECT_EQ(r.config.connections, 10000u);
  EXPECT_EQ(r.config.size, 16384u);
  EXPECT_EQ(r.config.pipeline, 4u);
  EXPECT_EQ(r.config.messages, 20000u);
  EXPECT_EQ(r.config.warmup_s, 0);  // --messages: no warm-up unless asked for
  EXPECT_TRUE(r.config.json);
  EXPECT_EQ(parse({"--size", "64MiB"}).config.size, 64u << 20);
  EXPECT_EQ(parse({"--hold", "2.5"}).config.hold_s, 2.5);
}

TEST(Flags, RejectsBadInput) {
  const std::vector<std::vector<std::string>> bad = {
      {"--port", "0"},
      {"--port", "65536"},
      {"--port", "80x"},
      {"--connections", "0"},
      {"--connections", "-1"},
      {"--connections", "1e3"},
      {"--size", "0"},
      {"--size", "2G"},
      {"--size", "12Q"},
      {"--pipeline", "0"},
      {"--duration", "0"},
      {"--duration", "-1"},
      {"--duration", "nan"},
      {"--duration", "inf"},
      {"--warmup", "-0.5"},
      {"--messages", "0"},
      {"--stall-timeout", "0"},
      {"--hold", "-1"},
      {"--hold", "soon"},
      {"--duration", "1", "--messages", "5"},
      {"--bogus"},
      {"positional"},
      {"--port"},
      {"--json=yes"},
      {"--host", ""},
      {"--connections", "1000000", "--pipeline", "1000"},
  };
  for (const auto& args : bad) {
    const ParseResult r = parse(args);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_EQ(r.status, ParseStatus::kError) << joined;
    EXPECT_FALSE(r.error.empty()) << joined;
  }
}

TEST(Flags, Help) {
  EXPECT_EQ(parse({"--help"}).status, ParseStatus::kHelp);
}

// ---- run_bench against in-test servers ------------------------------------------

// A loopback listener on a free port; serve(fd) runs on a thread for each of the
// first `clients` connections, then the listener closes.
class FakeServer {
 public:
  FakeServer(int clients, std::function<void(int)> serve) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listener_, 16) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      ADD_FAILURE() << "cannot listen on loopback";
      return;
    }
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this, clients, serve] {
      std::vector<std::thread> workers;
      for (int i = 0; i < clients; ++i) {
        const int fd = ::accept(listener_, nullptr, nullptr);
        if (fd < 0) break;
        workers.emplace_back([fd, serve] {
          serve(fd);
          ::close(fd);
        });
      }
      for (auto& w : workers) w.join();
    });
  }
  ~FakeServer() {
    ::shutdown(listener_, SHUT_RDWR);  // ends a pending accept
    if (thread_.joinable()) thread_.join();
    ::close(listener_);
  }
  std::uint16_t port() const { return port_; }

 private:
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

// Echoes until EOF; with `flip_at` set, inverts the byte at that offset. With
// `limit` set, stops after echoing that many bytes: it then shuts its side down
// (the client sees EOF) and reads to the end, so that nothing unread can turn the
// close into a reset.
void echo(int fd, long long flip_at = -1, long long limit = -1) {
  char buf[4096];
  long long offset = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return;
    if (flip_at >= offset && flip_at < offset + n) buf[flip_at - offset] ^= 0xff;
    ssize_t todo = n;
    if (limit >= 0 && offset + todo > limit)
      todo = static_cast<ssize_t>(limit - offset);
    offset += todo;
    for (ssize_t sent = 0; sent < todo;) {
      const ssize_t w = ::write(fd, buf + sent, static_cast<std::size_t>(todo - sent));
      if (w <= 0) return;
      sent += w;
    }
    if (offset == limit) {
      ::shutdown(fd, SHUT_WR);
      while (::read(fd, buf, sizeof buf) > 0) {
      }
      return;
    }
  }
}

Config config_for(std::uint16_t port) {
  Config c;
  c.port = port;
  c.connections = 2;
  c.size = 100;
  c.messages = 50;
  c.warmup_s = 0;
  c.stall_timeout_s = 2;
  return c;
}

bool run_against(const Config& config, Report& report,
                 const HoldStarted& hold_started = nullptr) {
  Address address;
  std::string error;
  if (!resolve(config, address, error)) {
    ADD_FAILURE() << error;
    return false;
  }
  return run_bench(config, address, report, hold_started);
}

TEST(RunBench, VerifiesEveryMessageOfACorrectEcho) {
  FakeServer server(2, [](int fd) { echo(fd); });
  Report r;
  int announced = 0;  // no --hold: no hold to announce
  ASSERT_TRUE(run_against(config_for(server.port()), r, [&](std::uint64_t) {
    ++announced;
  })) << r.error;
  EXPECT_EQ(announced, 0);
  EXPECT_EQ(r.messages_verified, 50u);
  EXPECT_EQ(r.bytes_verified, 50u * 100u);
  EXPECT_EQ(r.errors, 0u);
  EXPECT_GT(r.window_ns, 0);
}

// The client's CPU time counts the measured window only: a warm-up that keeps the
// client busy (a fast echo) is left out, and a window in which the server answers
// slowly costs the client almost nothing. (The process CPU clock also counts the
// in-test server's threads here; they sleep through the window.)
TEST(RunBench, ClientCpuTimeCountsTheMeasuredWindowOnly) {
  const auto start = std::chrono::steady_clock::now();
  FakeServer server(2, [start](int fd) {
    char buf[4096];
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) return;
      if (std::chrono::steady_clock::now() - start > std::chrono::milliseconds(400)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      if (::write(fd, buf, static_cast<std::size_t>(n)) != n) return;
    }
  });
  Config config = config_for(server.port());
  config.messages = 0;
  config.warmup_s = 0.5;  // busy for its first 0.4 s
  config.duration_s = 0.5;
  Report r;
  ASSERT_TRUE(run_against(config, r)) << r.error;
  ASSERT_GT(r.messages, 0u);
  EXPECT_GT(r.cpu_ns, 0) << "the window's CPU time was not read";
  // Counting from the start of traffic instead, the busy warm-up alone would be
  // well over 100 ms.
  EXPECT_LT(r.cpu_ns, r.window_ns / 5)
      << "cpu " << r.cpu_ns << " ns in a window of " << r.window_ns << " ns";
}

TEST(RunBench, NamesTheOffsetOfOneWrongByte) {
  // Byte 1234 of each connection's stream is wrong: message 12, byte 34.
  FakeServer server(2, [](int fd) { echo(fd, 1234); });
  Report r;
  EXPECT_FALSE(run_against(config_for(server.port()), r));
  EXPECT_NE(r.error.find("wrong byte at offset 1234 (message 12, byte 34 of 100)"),
            std::string::npos)
      << r.error;
  EXPECT_GT(r.errors, 0u);
}

// Reads one 100-byte message, then answers with `reply` in a single write, so
// the client receives it in one piece.
void answer_first_message(int fd, const std::string& reply) {
  char buf[100];
  for (std::size_t got = 0; got < sizeof buf;) {
    const ssize_t n = ::read(fd, buf + got, sizeof buf - got);
    if (n <= 0) return;
    got += static_cast<std::size_t>(n);
  }
  const std::string out = reply.empty() ? std::string(buf, sizeof buf) + "!" : reply;
  if (::write(fd, out.data(), out.size()) != static_cast<ssize_t>(out.size())) return;
  while (::read(fd, buf, sizeof buf) > 0) {
  }
}

TEST(RunBench, ALongWrongAnswerIsAWrongByteNotExtraBytes) {
  // 150 bytes that are not the message, to a 100-byte message: what is wrong is
  // its first byte, not its length.
  FakeServer server(2, [](int fd) { answer_first_message(fd, std::string(150, 'X')); });
  Report r;
  EXPECT_FALSE(run_against(config_for(server.port()), r));
  EXPECT_NE(r.error.find("wrong byte at offset 0 (message 0, byte 0 of 100)"),
            std::string::npos)
      << r.error;
}

TEST(RunBench, ACorrectEchoWithOneByteMoreReportsTheExtraByte) {
  FakeServer server(2, [](int fd) { answer_first_message(fd, ""); });
  Report r;
  EXPECT_FALSE(run_against(config_for(server.port()), r));
  EXPECT_NE(
      r.error.find("the server echoed 1 more byte than were sent (at offset 100)"),
      std::string::npos)
      << r.error;
}

TEST(RunBench, ReportsAnEarlyCloseWithItsOffset) {
  // Echoes 300 bytes (three messages), then closes.
  FakeServer server(2, [](int fd) { echo(fd, -1, 300); });
  Report r;
  EXPECT_FALSE(run_against(config_for(server.port()), r));
  EXPECT_NE(r.error.find("unexpected EOF from the server at offset 300"),
            std::string::npos)
      << r.error;
}

TEST(RunBench, FailsAStalledServerWithinTheStallTimeout) {
  // Reads and never answers, until the client gives up.
  FakeServer server(2, [](int fd) {
    char buf[4096];
    while (::read(fd, buf, sizeof buf) > 0) {
    }
  });
  Config config = config_for(server.port());
  config.stall_timeout_s = 0.5;
  Report r;
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(run_against(config, r));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  // It names the time it saw pass: 0.5 s, or more on a slow machine.
  EXPECT_NE(r.error.find("stalled: no progress for "), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("waiting for the echo of offset 0"), std::string::npos)
      << r.error;
}

TEST(RunBench, ARefusedConnectionFailsWithNoMeasuredWindow) {
  std::uint16_t port = 0;
  {
    FakeServer gone(0, [](int) {});  // listens, then closes: nobody listens after
    port = gone.port();
  }
  Config config = config_for(port);
  config.messages = 0;
  config.duration_s = 1;
  Report r;
  EXPECT_FALSE(run_against(config, r));
  EXPECT_NE(r.error.find("Connection refused"), std::string::npos) << r.error;
  EXPECT_EQ(r.window_ns, 0) << "no traffic ran, so nothing was measured";
  EXPECT_EQ(r.cpu_ns, 0);
  EXPECT_EQ(r.messages, 0u);
}

// Echoes until EOF and lowers `min_gap_ms` to the time from its last echo to the
// EOF: how long the client kept the connection open and idle.
void echo_and_time_the_idle_gap(int fd, std::atomic<long long>& min_gap_ms) {
  char buf[4096];
  auto last = std::chrono::steady_clock::now();
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    if (::write(fd, buf, static_cast<std::size_t>(n)) != n) return;
    last = std::chrono::steady_clock::now();
  }
  const long long gap = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - last)
                            .count();
  long long seen = min_gap_ms.load();
  while (gap < seen && !min_gap_ms.compare_exchange_weak(seen, gap)) {
  }
}

TEST(RunBench, HoldKeepsEveryConnectionOpenAndIdleThenClosesCleanly) {
  std::atomic<long long> min_gap_ms{1'000'000};
  FakeServer server(3, [&](int fd) { echo_and_time_the_idle_gap(fd, min_gap_ms); });
  Config config = config_for(server.port());
  config.connections = 3;
  config.messages = 6;
  config.hold_s = 0.5;
  Report r;
  // The hold announces itself once, when every message has been echoed.
  int announced = 0;
  std::uint64_t announced_connections = 0;
  std::uint64_t verified_then = 0;
  const auto hold_started = [&](std::uint64_t connections) {
    ++announced;
    announced_connections = connections;
    verified_then = r.messages_verified;
  };
  ASSERT_TRUE(run_against(config, r, hold_started)) << r.error;
  EXPECT_EQ(announced, 1);
  EXPECT_EQ(announced_connections, 3u);
  EXPECT_EQ(verified_then, 6u);
  EXPECT_EQ(r.messages_verified, 6u);
  EXPECT_GE(r.held_ns, 500'000'000);
  EXPECT_LT(r.held_ns, 5'000'000'000);
  // Every connection stayed open at least that long after its own last echo (the
  // server's clock; 50 ms of slack for its thread to see the EOF late or early).
  EXPECT_GE(min_gap_ms.load(), 450);
}

// What Ctrl-C or SIGTERM does in echo_bench (main's handler calls request_stop).
TEST(RunBench, AStopRequestEndsAHoldEarlyAndCleanly) {
  FakeServer server(2, [](int fd) { echo(fd); });
  Config config = config_for(server.port());
  config.messages = 4;
  config.hold_s = 30;
  Report r;
  bool ok = false;
  std::atomic<bool> holding{false};
  const auto t0 = std::chrono::steady_clock::now();
  std::thread runner(
      [&] { ok = run_against(config, r, [&](std::uint64_t) { holding = true; }); });
  while (!holding && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(holding.load());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  request_stop(SIGTERM);
  runner.join();
  EXPECT_TRUE(ok) << r.error;
  EXPECT_EQ(r.messages_verified, 4u);
  EXPECT_GE(r.held_ns, 200'000'000);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
}

TEST(RunBench, AStopRequestDuringTrafficFailsTheRunAsInterrupted) {
  FakeServer server(2, [](int fd) { echo(fd); });
  Config config = config_for(server.port());
  config.messages = 0;
  config.duration_s = 30;
  Report r;
  bool ok = true;
  const auto t0 = std::chrono::steady_clock::now();
  std::thread runner([&] { ok = run_against(config, r); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  request_stop(SIGINT);
  runner.join();
  EXPECT_FALSE(ok);
  EXPECT_EQ(r.error, "interrupted by SIGINT");
  EXPECT_GT(r.messages_verified, 0u);  // what ran until then is still reported
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
}

TEST(RunBench, AServerThatClosesAHeldConnectionFails) {
  // Echoes one 100-byte message, waits a moment, closes: the client holds it.
  FakeServer server(2, [](int fd) {
    char buf[100];
    std::size_t got = 0;
    while (got < sizeof buf) {
      const ssize_t n = ::read(fd, buf + got, sizeof buf - got);
      if (n <= 0) return;
      got += static_cast<std::size_t>(n);
    }
    if (::write(fd, buf, sizeof buf) != static_cast<ssize_t>(sizeof buf)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  });
  Config config = config_for(server.port());
  config.messages = 2;  // one per connection
  config.hold_s = 30;
  Report r;
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(run_against(config, r));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  EXPECT_NE(r.error.find("the server closed it while it was held idle (all 100 bytes "
                         "were echoed)"),
            std::string::npos)
      << r.error;
}

}  // namespace
}  // namespace echo_bench
