// echo_bench: a load generator for echo servers that never lies.
//
//   bazel run //tools:echo_bench -- --port 8080 --connections 100 --duration 5
//
// It verifies every echoed byte against a deterministic per-connection pattern
// and exits 1 naming the connection and offset of the first wrong byte, or on an
// unexpected EOF, reset or stall. See docs/tools.md.
#include <signal.h>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "tools/echo_bench/bench.h"
#include "tools/echo_bench/flags.h"

namespace {

using echo_bench::Config;
using echo_bench::Histogram;
using echo_bench::Report;

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kClientBusyPercent = 90;  // a client core this busy may be the limit

unsigned long long ull(std::uint64_t v) {
  return static_cast<unsigned long long>(v);
}

// A duration in nanoseconds, in a readable unit: "850 ns", "52.3 us", "1.21 ms".
std::string human_time(double ns) {
  char text[32];
  if (ns < 1e3) {
    std::snprintf(text, sizeof text, "%.0f ns", ns);
  } else if (ns < 1e6) {
    std::snprintf(text, sizeof text, "%.3g us", ns / 1e3);
  } else if (ns < 1e9) {
    std::snprintf(text, sizeof text, "%.3g ms", ns / 1e6);
  } else {
    std::snprintf(text, sizeof text, "%.3g s", ns / 1e9);
  }
  return text;
}

double seconds(std::int64_t ns) {
  return static_cast<double>(ns) / 1e9;
}

double per_second(std::uint64_t count, std::int64_t window_ns) {
  return window_ns > 0 ? static_cast<double>(count) / seconds(window_ns) : 0.0;
}

void print_human(const Config& config, const echo_bench::Address& address,
                 const Report& r) {
  std::printf("echo_bench: %s, %llu connection%s, %llu-byte messages, pipeline %llu, ",
              address.text.c_str(), ull(config.connections),
              config.connections == 1 ? "" : "s", ull(config.size),
              ull(config.pipeline));
  if (config.messages > 0) {
    std::printf("exactly %llu message%s", ull(config.messages),
                config.messages == 1 ? "" : "s");
  } else {
    std::printf("%g s", config.duration_s);
  }
  if (config.warmup_s > 0) std::printf(" after a %g s warm-up", config.warmup_s);
  std::printf("\n");

  const Histogram& cn = r.connect_ns;
  std::printf(
      "connect:    %llu of %llu connections in %s; per connection mean %s, "
      "p50 %s, p99 %s, max %s",
      ull(r.connected), ull(config.connections),
      human_time(static_cast<double>(r.connect_total_ns)).c_str(),
      human_time(cn.mean()).c_str(),
      human_time(static_cast<double>(cn.percentile(0.50))).c_str(),
      human_time(static_cast<double>(cn.percentile(0.99))).c_str(),
      human_time(static_cast<double>(cn.max())).c_str());
  if (r.connect_retries > 0) {
    std::printf(" (%llu retries: no free local port)", ull(r.connect_retries));
  }
  std::printf("\n");

  const double mb = static_cast<double>(r.messages * config.size) / 1e6;
  std::printf(
      "throughput: %llu messages in %.3f s: %.0f msg/s, %.2f MB/s of echoed "
      "payload\n",
      ull(r.messages), seconds(r.window_ns), per_second(r.messages, r.window_ns),
      r.window_ns > 0 ? mb / seconds(r.window_ns) : 0.0);
  if (r.window_ns > 0) {
    // One thread: at most one core. Near 100%, echo_bench itself may have set the
    // pace, and the rate says as much about the client as about the server.
    const double busy =
        static_cast<double>(r.cpu_ns) / static_cast<double>(r.window_ns);
    std::printf("client:     %.0f%% of one core busy in the window (%s of CPU",
                100 * busy, human_time(static_cast<double>(r.cpu_ns)).c_str());
    if (r.messages > 0) {
      std::printf(", %s per message", human_time(static_cast<double>(r.cpu_ns) /
                                                 static_cast<double>(r.messages))
                                          .c_str());
    }
    // The note goes with the printed (rounded) percentage.
    std::printf(")%s\n", std::lround(100 * busy) >= kClientBusyPercent
                             ? ": echo_bench may have set the pace"
                             : "");
  }
  std::printf("fairness:   %llu to %llu messages per connection in the window\n",
              ull(r.min_per_connection), ull(r.max_per_connection));
  const Histogram& lat = r.latency_ns;
  std::printf(
      "latency:    p50 %s, p99 %s, p99.9 %s, max %s (round trip of the %llu messages "
      "completed after the warm-up)\n",
      human_time(static_cast<double>(lat.percentile(0.50))).c_str(),
      human_time(static_cast<double>(lat.percentile(0.99))).c_str(),
      human_time(static_cast<double>(lat.percentile(0.999))).c_str(),
      human_time(static_cast<double>(lat.max())).c_str(), ull(lat.count()));
  std::printf(
      "verified:   %llu bytes in %llu messages (of %llu sent), every byte "
      "checked\n",
      ull(r.bytes_verified), ull(r.messages_verified), ull(r.messages_sent));
  if (config.hold_s > 0) {
    std::printf(
        "held:       every connection open and idle for %.3f s after the last "
        "echo\n",
        seconds(r.held_ns));
  }
  if (r.errors == 0) {
    std::printf("errors:     0\n");
  } else {
    std::printf("errors:     %llu (first: %s)\n", ull(r.errors), r.error.c_str());
  }
}

std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
      out += escaped;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

void print_histogram_json(const char* name, const Histogram& h) {
  std::printf(
      "\"%s\":{\"count\":%llu,\"min\":%llu,\"mean\":%.0f,\"p50\":%llu,"
      "\"p99\":%llu,\"p999\":%llu,\"max\":%llu}",
      name, ull(h.count()), ull(h.min()), h.mean(), ull(h.percentile(0.50)),
      ull(h.percentile(0.99)), ull(h.percentile(0.999)), ull(h.max()));
}

void print_json(const Config& config, const echo_bench::Address& address,
                const Report& r, bool ok) {
  std::printf(
      "{\"ok\":%s,\"server\":%s,\"connections\":%llu,\"size\":%llu,"
      "\"pipeline\":%llu,",
      ok ? "true" : "false", json_string(address.text).c_str(), ull(config.connections),
      ull(config.size), ull(config.pipeline));
  if (config.messages > 0) {
    std::printf("\"mode\":\"messages\",\"messages_requested\":%llu,",
                ull(config.messages));
  } else {
    std::printf("\"mode\":\"duration\",\"duration_s\":%g,", config.duration_s);
  }
  std::printf("\"warmup_s\":%g,", config.warmup_s);
  std::printf("\"connected\":%llu,\"connect_retries\":%llu,\"connect_total_s\":%.6f,",
              ull(r.connected), ull(r.connect_retries), seconds(r.connect_total_ns));
  print_histogram_json("connect_ns", r.connect_ns);
  std::printf(
      ",\"messages\":%llu,\"window_s\":%.6f,\"messages_per_s\":%.1f,"
      "\"mb_per_s\":%.3f,\"cpu_s\":%.6f,",
      ull(r.messages), seconds(r.window_ns), per_second(r.messages, r.window_ns),
      per_second(r.messages * config.size, r.window_ns) / 1e6, seconds(r.cpu_ns));
  std::printf("\"min_per_connection\":%llu,\"max_per_connection\":%llu,",
              ull(r.min_per_connection), ull(r.max_per_connection));
  print_histogram_json("latency_ns", r.latency_ns);
  std::printf(",\"hold_s\":%g,\"held_s\":%.6f", config.hold_s, seconds(r.held_ns));
  std::printf(
      ",\"messages_sent\":%llu,\"messages_verified\":%llu,"
      "\"bytes_verified\":%llu,\"errors\":%llu,\"error\":%s}\n",
      ull(r.messages_sent), ull(r.messages_verified), ull(r.bytes_verified),
      ull(r.errors), r.error.empty() ? "null" : json_string(r.error).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  const std::string program = "echo_bench";
  const echo_bench::ParseResult parsed =
      echo_bench::parse_flags(std::vector<std::string>(argv + 1, argv + argc));
  if (parsed.status == echo_bench::ParseStatus::kHelp) {
    std::fputs(echo_bench::usage(program).c_str(), stdout);
    if (std::fflush(stdout) != 0 || std::ferror(stdout)) return kExitFailed;
    return kExitOk;
  }
  if (parsed.status == echo_bench::ParseStatus::kError) {
    std::fprintf(stderr, "%s: %s\n\n%s", program.c_str(), parsed.error.c_str(),
                 echo_bench::usage(program).c_str());
    return kExitUsage;
  }
  const Config& config = parsed.config;

  // A server that resets mid-send must cost an EPIPE (reported), not the process.
  std::signal(SIGPIPE, SIG_IGN);
  // Ctrl-C or SIGTERM: a --hold ends early and cleanly (the report follows, exit 0);
  // otherwise the run stops as failed, with what it measured so far.
  struct sigaction stop {};
  stop.sa_handler = [](int signal_number) { echo_bench::request_stop(signal_number); };
  sigemptyset(&stop.sa_mask);
  sigaction(SIGINT, &stop, nullptr);
  sigaction(SIGTERM, &stop, nullptr);

  echo_bench::Address address;
  std::string error;
  if (!echo_bench::resolve(config, address, error)) {
    std::fprintf(stderr, "%s: %s\n", program.c_str(), error.c_str());
    return kExitUsage;
  }
  if (!echo_bench::fit_connections(config, error)) {
    std::fprintf(stderr, "%s: cannot run: %s\n", program.c_str(), error.c_str());
    return kExitFailed;
  }

  Report report;
  // One line when a hold begins, terminal or not: a script that reads the server's
  // memory while the connections are idle (bench_all does) waits for it.
  const auto hold_started = [&](std::uint64_t connections) {
    std::fprintf(stderr, "%s: holding %llu connection%s open and idle for %g s\n",
                 program.c_str(), static_cast<unsigned long long>(connections),
                 connections == 1 ? "" : "s", config.hold_s);
    std::fflush(stderr);
  };
  const bool ok = echo_bench::run_bench(config, address, report, hold_started);
  if (config.json) {
    print_json(config, address, report, ok);
  } else {
    print_human(config, address, report);
  }
  // A report that did not reach stdout (a full disk, a closed pipe) must not
  // pass for a verified run: a script would read success and no numbers.
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    std::fprintf(stderr, "%s: FAILED: cannot write the report to stdout\n",
                 program.c_str());
    return kExitFailed;
  }
  if (!ok) {
    std::fprintf(stderr, "%s: FAILED: %s\n", program.c_str(), report.error.c_str());
    return kExitFailed;
  }
  if (report.messages == 0) {
    std::fprintf(stderr,
                 "%s: note: every echo was verified, but none completed inside the "
                 "measured window, so the rates and latencies above are empty (%s)\n",
                 program.c_str(),
                 config.messages > 0 ? "every message completed during the warm-up: "
                                       "lower --warmup or send more --messages"
                                     : "use a longer --duration");
  }
  return kExitOk;
}
