// The listening socket every stage starts from, and small socket helpers.
//
// Plumbing, not a lesson: socket(), SO_REUSEADDR, bind(), listen() are the same
// in every stage (00_blocking's page walks through them once).
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>

#include "stages/common/fd.h"
#include "stages/common/options.h"

namespace echo {

enum class Blocking { kYes, kNo };

struct ListenResult {
  Fd fd;                // valid on success
  std::string address;  // the bound address, "HOST:PORT" ("[::1]:PORT" for IPv6)
  std::string error;    // on failure: "cannot listen on HOST:PORT: reason"
};

// Resolves host (numeric or a name), then socket + SO_REUSEADDR + bind + listen
// with the system's maximum backlog. The fd is close-on-exec, and non-blocking
// when asked. Port 0 lets the kernel choose; `address` then shows the real port.
ListenResult open_listener(const std::string& host, std::uint16_t port,
                           Blocking blocking);

// The server contract: prints exactly "listening on HOST:PORT" as the first line
// of stdout and flushes it; on failure prints the error to stderr and exits 1.
Fd listen_or_exit(const Options& options, Blocking blocking);

// "HOST:PORT" of a socket address, for log lines.
std::string address_string(const sockaddr* address, socklen_t length);

// What an accept() failure means for the server. None of them is a reason to
// exit: the listening socket is still fine.
enum class AcceptFailure {
  kRetry,       // EINTR: interrupted by a signal; try again
  kQueueEmpty,  // EAGAIN/EWOULDBLOCK: nothing left to accept (non-blocking only)
  kOutOfFds,    // EMFILE/ENFILE/ENOBUFS/ENOMEM: wait for resources before retrying
  kClientGone,  // ECONNABORTED, EPROTO, EPERM, ...: that one client is lost; go on
};
AcceptFailure classify_accept_error(int error);

}  // namespace echo
