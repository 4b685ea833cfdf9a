// What every peer's main() does before its event library takes over, so that the
// three keep the stages' contract the same way: the stages' flags and log
// options, SIGPIPE ignored (a reset client costs EPIPE, not the process), the fd
// limit raised, and the stages' own listening socket (echo::listen_or_exit: same
// backlog, SO_REUSEADDR and messages), non-blocking.
#pragma once

#include "stages/common/common.h"

namespace peers {

struct Start {
  echo::Options options;
  echo::Fd listener;
};

// Exits like the stages do: 2 on bad flags, 1 when it cannot listen.
Start start_or_exit(int argc, char** argv, const char* about);

}  // namespace peers
