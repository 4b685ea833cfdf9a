#include "tools/peers/peer_main.h"

#include <csignal>
#include <utility>

namespace peers {

Start start_or_exit(int argc, char** argv, const char* about) {
  Start s{echo::parse_options_or_exit(argc, argv, about), echo::Fd()};
  echo::set_log_options(false, s.options.quiet);
  if (s.options.trace) echo::log_error("--trace: not supported by the peers; ignored");
  std::signal(SIGPIPE, SIG_IGN);
  echo::raise_fd_limit();
  s.listener = echo::listen_or_exit(s.options, echo::Blocking::kNo);
  return s;
}

}  // namespace peers
