// echo_bench's command line: every flag is validated before anything connects.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace echo_bench {

// Limits that keep the preallocated state bounded.
inline constexpr std::uint64_t kMaxConnections = 1'000'000;
inline constexpr std::uint64_t kMaxSize = std::uint64_t{1} << 30;  // 1 GiB
inline constexpr std::uint64_t kMaxPipeline = 1'000'000;
// One send timestamp per message in flight: connections x pipeline of them.
inline constexpr std::uint64_t kMaxInFlight = std::uint64_t{1} << 24;
inline constexpr std::uint64_t kMaxMessages = 1'000'000'000'000'000ULL;
inline constexpr double kMaxSeconds = 1e6;

struct Config {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  std::uint64_t connections = 1;
  std::uint64_t size = 64;      // bytes per message
  std::uint64_t pipeline = 1;   // messages in flight per connection (1: ping-pong)
  std::uint64_t messages = 0;   // total across connections; 0: run for duration_s
  double duration_s = 5;        // measured seconds, after the warm-up
  double warmup_s = 1;          // not counted; 0 by default with --messages
  double stall_timeout_s = 10;  // no progress on a busy connection for this long
  double hold_s = 0;            // then keep every connection open and idle this long
  bool json = false;
};

enum class ParseStatus { kOk, kHelp, kError };

struct ParseResult {
  ParseStatus status = ParseStatus::kOk;
  Config config;
  std::string error;  // when status == kError
};

// Parses the arguments after the program name; `--flag value` and `--flag=value`.
ParseResult parse_flags(const std::vector<std::string>& args);

std::string usage(const std::string& program);

}  // namespace echo_bench
