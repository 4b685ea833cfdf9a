#include "stages/common/options.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "stages/common/process.h"

namespace echo {
namespace {

// Strict unsigned parse: digits only, no sign, no spaces, no overflow.
std::optional<unsigned long long> parse_unsigned(const std::string& text) {
  if (text.empty() || text.size() > 19) return std::nullopt;
  unsigned long long value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return value;
}

}  // namespace

ParseResult parse_options(const std::vector<std::string>& args) {
  ParseResult result;
  Options& o = result.options;
  auto fail = [&result](std::string message) {
    result.status = ParseStatus::kError;
    result.error = std::move(message);
    return result;
  };

  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i];
    std::optional<std::string> inline_value;
    if (auto eq = flag.find('='); flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      inline_value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    }
    // Flags without a value.
    if (flag == "--help" || flag == "-h" || flag == "--trace" || flag == "--quiet") {
      if (inline_value) return fail(flag + " takes no value");
      if (flag == "--trace") {
        o.trace = true;
      } else if (flag == "--quiet") {
        o.quiet = true;
      } else {
        result.status = ParseStatus::kHelp;
        return result;
      }
      continue;
    }
    if (flag != "--host" && flag != "--port" && flag != "--buffer-size") {
      return fail("unknown argument '" + args[i] + "'");
    }
    std::string value;
    if (inline_value) {
      value = *inline_value;
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return fail(flag + " needs a value");
    }
    if (flag == "--host") {
      if (value.empty()) return fail("--host needs a non-empty address");
      o.host = value;
    } else if (flag == "--port") {
      auto port = parse_unsigned(value);
      if (!port || *port > 65535) {
        return fail("--port must be a number from 0 to 65535, not '" + value + "'");
      }
      o.port = static_cast<std::uint16_t>(*port);
    } else {
      auto size = parse_unsigned(value);
      if (!size || *size < 1 || *size > kMaxBufferSize) {
        return fail("--buffer-size must be a number of bytes from 1 to " +
                    std::to_string(kMaxBufferSize) + ", not '" + value + "'");
      }
      o.buffer_size = static_cast<std::size_t>(*size);
    }
  }
  return result;
}

std::string usage(const std::string& program, const std::string& about) {
  return "usage: " + program +
         " [--host ADDR] [--port N] [--buffer-size BYTES] [--trace] [--quiet] "
         "[--help]\n"
         "\n" +
         about +
         "\n"
         "\n"
         "  --host ADDR          address to listen on (default " +
         kDefaultHost +
         "; use 0.0.0.0 to expose it)\n"
         "  --port N             TCP port, 0 lets the kernel choose (default " +
         std::to_string(kDefaultPort) +
         ")\n"
         "  --buffer-size BYTES  per-connection buffer, 1.." +
         std::to_string(kMaxBufferSize) + " (default " +
         std::to_string(kDefaultBufferSize) +
         ")\n"
         "  --trace              print every readiness event and interest change\n"
         "  --quiet              no per-connection log lines\n"
         "  -h, --help           this text\n"
         "\n"
         "Prints 'listening on HOST:PORT' on stdout when ready. SIGINT or SIGTERM\n"
         "closes every connection, prints a summary and exits 0.\n";
}

Options parse_options_or_exit(int argc, char** argv, const char* about) {
  open_standard_fds();
  const std::string program = argc > 0 ? argv[0] : "server";
  ParseResult r =
      parse_options(std::vector<std::string>(argv + (argc > 0 ? 1 : 0), argv + argc));
  switch (r.status) {
    case ParseStatus::kOk:
      return r.options;
    case ParseStatus::kHelp:
      std::fputs(usage(program, about).c_str(), stdout);
      // Help that could not be written (a full disk) is not a success.
      std::exit(std::fflush(stdout) == 0 && !std::ferror(stdout) ? 0 : 1);
    case ParseStatus::kError:
      break;
  }
  std::fprintf(stderr, "%s: %s\n%s", program.c_str(), r.error.c_str(),
               usage(program, about).c_str());
  std::exit(2);
}

}  // namespace echo
