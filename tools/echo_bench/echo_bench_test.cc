// Unit tests for echo_bench's pieces: the pattern, the histogram and the flags.
// The end-to-end checks (corruption, stalls, 10,000 connections) run against real
// servers; see docs/tools.md.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "tools/echo_bench/flags.h"
#include "tools/echo_bench/histogram.h"
#include "tools/echo_bench/pattern.h"

namespace echo_bench {
namespace {

TEST(Pattern, FillMatchesBytewiseDefinitionAtAnyOffsetAndLength) {
  const std::uint64_t seed = stream_seed(7);
  for (std::uint64_t offset : {0ULL, 1ULL, 7ULL, 8ULL, 13ULL, 1000ULL}) {
    for (std::size_t length : {0UL, 1UL, 5UL, 8UL, 9UL, 64UL, 100UL}) {
      std::vector<char> out(length);
      fill_pattern(seed, offset, out.data(), length);
      for (std::size_t i = 0; i < length; ++i) {
        ASSERT_EQ(static_cast<unsigned char>(out[i]), pattern_byte(seed, offset + i))
            << "offset " << offset << " + " << i;
      }
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

}  // namespace
}  // namespace echo_bench
