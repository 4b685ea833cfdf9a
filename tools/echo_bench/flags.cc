#include "tools/echo_bench/flags.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <optional>

namespace echo_bench {
namespace {

// A whole number in [min, max]; with `suffixes`, K/M/G (or KiB/MiB/GiB) multiply
// by 1024, 1024^2, 1024^3.
std::optional<std::uint64_t> parse_count(const std::string& text, std::uint64_t min,
                                         std::uint64_t max, bool suffixes) {
  if (text.empty() || text[0] < '0' || text[0] > '9') return std::nullopt;
  errno = 0;
  char* end = nullptr;
  const unsigned long long value = std::strtoull(text.c_str(), &end, 10);
  if (errno != 0) return std::nullopt;
  std::string suffix(end);
  std::uint64_t scale = 1;
  if (suffixes && !suffix.empty()) {
    if (suffix == "K" || suffix == "k" || suffix == "KiB") {
      scale = 1024;
    } else if (suffix == "M" || suffix == "m" || suffix == "MiB") {
      scale = 1024 * 1024;
    } else if (suffix == "G" || suffix == "g" || suffix == "GiB") {
      scale = 1024 * 1024 * 1024;
    } else {
      return std::nullopt;
    }
  } else if (!suffix.empty()) {
    return std::nullopt;
  }
  if (value > max / scale) return std::nullopt;
  const std::uint64_t result = value * scale;
  if (result < min) return std::nullopt;
  return result;
}

// Seconds as a decimal number (e.g. 5, 0.5) in [min, max]; `min_exclusive`
// rejects min itself.
std::optional<double> parse_seconds(const std::string& text, double min, double max,
                                    bool min_exclusive) {
  if (text.empty() || !(text[0] == '.' || (text[0] >= '0' && text[0] <= '9'))) {
    return std::nullopt;
  }
  errno = 0;
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (errno != 0 || *end != '\0' || !std::isfinite(value)) return std::nullopt;
  if (value < min || (min_exclusive && value == min) || value > max)
    return std::nullopt;
  return value;
}

// kMaxSeconds as the error messages print it.
const std::string kMaxSecondsText = "1000000";
static_assert(kMaxSeconds == 1e6, "kMaxSecondsText must name kMaxSeconds");

std::string bad(const std::string& flag, const std::string& value,
                const std::string& expected) {
  return flag + ": expected " + expected + ", got '" + value + "'";
}

}  // namespace

ParseResult parse_flags(const std::vector<std::string>& args) {
  ParseResult result;
  Config& c = result.config;
  bool have_duration = false;
  bool have_messages = false;
  bool have_warmup = false;
  auto error = [&](std::string message) {
    result.status = ParseStatus::kError;
    result.error = std::move(message);
    return result;
  };

  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i];
    std::optional<std::string> inline_value;
    if (flag.rfind("--", 0) != 0) return error("unexpected argument '" + flag + "'");
    if (const auto eq = flag.find('='); eq != std::string::npos) {
      inline_value = flag.substr(eq + 1);
      flag.resize(eq);
    }

    if (flag == "--help" || flag == "--json") {
      if (inline_value) return error(flag + " takes no value");
      if (flag == "--help") {
        result.status = ParseStatus::kHelp;
        return result;
      }
      c.json = true;
      continue;
    }

    // Every other flag takes a value.
    static const char* const kValued[] = {
        "--host",     "--port",     "--connections", "--size",          "--pipeline",
        "--duration", "--messages", "--warmup",      "--stall-timeout", "--hold",
    };
    bool known = false;
    for (const char* name : kValued) known = known || flag == name;
    if (!known) return error("unknown flag '" + flag + "'");
    std::string value;
    if (inline_value) {
      value = *inline_value;
    } else if (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) {
      value = args[++i];
    } else {
      return error(flag + " needs a value");
    }

    if (flag == "--host") {
      if (value.empty()) return error("--host: expected an address or a host name");
      c.host = value;
    } else if (flag == "--port") {
      const auto v = parse_count(value, 1, 65535, false);
      if (!v) return error(bad(flag, value, "a port number from 1 to 65535"));
      c.port = static_cast<std::uint16_t>(*v);
    } else if (flag == "--connections") {
      const auto v = parse_count(value, 1, kMaxConnections, false);
      if (!v) {
        return error(
            bad(flag, value,
                "a whole number from 1 to " + std::to_string(kMaxConnections)));
      }
      c.connections = *v;
    } else if (flag == "--size") {
      const auto v = parse_count(value, 1, kMaxSize, true);
      if (!v) {
        return error(bad(flag, value,
                         "a message size in bytes from 1 to 1G (K, M, G or KiB, MiB, "
                         "GiB: 1024, 1024^2, 1024^3)"));
      }
      c.size = *v;
    } else if (flag == "--pipeline") {
      const auto v = parse_count(value, 1, kMaxPipeline, false);
      if (!v) {
        return error(bad(flag, value,
                         "a whole number from 1 to " + std::to_string(kMaxPipeline)));
      }
      c.pipeline = *v;
    } else if (flag == "--messages") {
      const auto v = parse_count(value, 1, kMaxMessages, false);
      if (!v) {
        return error(bad(
            flag, value,
            "a whole number of messages from 1 to " + std::to_string(kMaxMessages)));
      }
      c.messages = *v;
      have_messages = true;
    } else if (flag == "--duration") {
      const auto v = parse_seconds(value, 0, kMaxSeconds, true);
      if (!v)
        return error(bad(flag, value,
                         "seconds, more than 0 and at most " + kMaxSecondsText +
                             " (e.g. 5 or 0.5)"));
      c.duration_s = *v;
      have_duration = true;
    } else if (flag == "--warmup") {
      const auto v = parse_seconds(value, 0, kMaxSeconds, false);
      if (!v)
        return error(bad(flag, value,
                         "seconds, from 0 to " + kMaxSecondsText + " (e.g. 1 or 0.5)"));
      c.warmup_s = *v;
      have_warmup = true;
    } else if (flag == "--stall-timeout") {
      const auto v = parse_seconds(value, 0, kMaxSeconds, true);
      if (!v)
        return error(
            bad(flag, value,
                "seconds, more than 0 and at most " + kMaxSecondsText + " (e.g. 10)"));
      c.stall_timeout_s = *v;
    } else if (flag == "--hold") {
      const auto v = parse_seconds(value, 0, kMaxSeconds, false);
      if (!v)
        return error(
            bad(flag, value, "seconds, from 0 to " + kMaxSecondsText + " (e.g. 30)"));
      c.hold_s = *v;
    }
  }

  if (have_duration && have_messages) {
    return error("give either --duration or --messages, not both");
  }
  // --messages N sends exactly N messages; a warm-up would have to add messages,
  // so it only applies when asked for (and then it excludes the messages that
  // complete during it from the statistics, still within the N).
  if (have_messages && !have_warmup) c.warmup_s = 0;
  if (c.connections * c.pipeline > kMaxInFlight) {
    return error("--connections x --pipeline must be at most " +
                 std::to_string(kMaxInFlight) +
                 " (a send time is kept for every message in flight)");
  }
  return result;
}

std::string usage(const std::string& program) {
  return "usage: " + program + R"( [flags]

A load generator for echo servers that never lies: it verifies every echoed byte
against a deterministic per-connection pattern and fails loudly (exit 1, naming
the connection and the offset) on a wrong byte, an unexpected EOF or reset, or a
stall.

  --host ADDR           server address or name (default 127.0.0.1)
  --port N              server port (default 8080)
  --connections N       concurrent connections, up to 1000000 (default 1)
  --size BYTES          message size up to 1G; K, M, G (or KiB, MiB, GiB)
                        multiply by 1024, 1024^2, 1024^3 (default 64)
  --pipeline K          messages in flight per connection; 1 is ping-pong (default 1;
                        connections x pipeline at most 16777216)
  --duration S          measure for S seconds after the warm-up (default 5;
                        seconds here and below at most 1000000)
  --messages N          send exactly N messages in total (at most 10^15), then
                        close cleanly
                        (give --duration or --messages, not both)
  --warmup S            seconds not counted in the statistics (default 1 with
                        --duration, 0 with --messages)
  --stall-timeout S     fail when a busy connection makes no progress for S
                        seconds (default 10)
  --hold S              once every connection has finished its messages, keep
                        them all open and idle for S seconds before closing
                        (e.g. to read the server's memory per idle connection);
                        the server must neither send nor close meanwhile; a
                        line on stderr says when the hold begins (default 0)
  --json                print one JSON object on stdout instead of the report
  --help                print this help

Ctrl-C or SIGTERM during a --hold ends the hold at once: every connection closes
cleanly and the run counts as verified. At any other moment it stops the run,
which fails as interrupted, with what was measured until then.

Exit status: 0 every byte verified; 1 a verification, connection or stall failure
(or the connections cannot fit the fd/port limits); 2 bad flags.
)";
}

}  // namespace echo_bench
