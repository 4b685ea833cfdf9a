// The server contract's command line, shared by every stage:
//
//   server [--host ADDR] [--port N] [--buffer-size BYTES] [--trace] [--quiet] [--help]
//
// Plumbing, not a lesson: every stage parses its flags the same way so that the
// shared suite and the tools can drive any stage alike.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace echo {

// Defaults are the same in every stage so that stages compare fairly.
inline constexpr const char* kDefaultHost = "127.0.0.1";
inline constexpr std::uint16_t kDefaultPort = 8080;
inline constexpr std::size_t kDefaultBufferSize = 16 * 1024;
inline constexpr std::size_t kMaxBufferSize = 64 * 1024 * 1024;

struct Options {
  std::string host = kDefaultHost;    // numeric IPv4/IPv6 address or a host name
  std::uint16_t port = kDefaultPort;  // 0 lets the kernel choose
  std::size_t buffer_size = kDefaultBufferSize;  // bytes per connection buffer
  bool trace = false;  // print every readiness event and interest change
  bool quiet = false;  // no per-connection log lines
};

enum class ParseStatus { kOk, kHelp, kError };

struct ParseResult {
  ParseStatus status = ParseStatus::kOk;
  Options options;
  std::string error;  // set when status == kError
};

// Parses the arguments after the program name. Accepts `--flag value` and
// `--flag=value`. Never exits; see parse_options_or_exit for the CLI policy.
ParseResult parse_options(const std::vector<std::string>& args);

// The usage text, with `program` and a one-line description of the stage.
std::string usage(const std::string& program, const std::string& about);

// CLI policy shared by every stage: --help prints usage to stdout and exits 0 (1
// if stdout cannot take it); a bad flag prints the problem and usage to stderr
// and exits 2. Before parsing, it makes sure fds 0 to 2 are open
// (open_standard_fds), since it is the first thing every server calls.
Options parse_options_or_exit(int argc, char** argv, const char* about);

}  // namespace echo
