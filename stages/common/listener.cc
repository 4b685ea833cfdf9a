#include "stages/common/listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace echo {

namespace {

std::string host_port(const std::string& host, std::uint16_t port) {
  const bool ipv6 = host.find(':') != std::string::npos;
  return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace

std::string address_string(const sockaddr* address, socklen_t length) {
  char host[NI_MAXHOST];
  char port[NI_MAXSERV];
  if (::getnameinfo(address, length, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return "?";
  }
  return host_port(host, static_cast<std::uint16_t>(std::atoi(port)));
}

ListenResult open_listener(const std::string& host, std::uint16_t port,
                           Blocking blocking) {
  ListenResult result;
  const std::string wanted = host_port(host, port);
  auto fail = [&](const std::string& reason) {
    result.fd.reset();
    result.error = "cannot listen on " + wanted + ": " + reason;
    return std::move(result);
  };

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    return fail(rc == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(rc));
  }
  // Only the first address is used: a server listens on one address.
  const addrinfo& ai = *found;
  int type =
      ai.ai_socktype | SOCK_CLOEXEC | (blocking == Blocking::kNo ? SOCK_NONBLOCK : 0);
  result.fd.reset(::socket(ai.ai_family, type, ai.ai_protocol));
  if (!result.fd) {
    ::freeaddrinfo(found);
    return fail(std::string("socket: ") + std::strerror(errno));
  }
  // SO_REUSEADDR: a restart right after serving clients must not fail with
  // EADDRINUSE because old connections linger in TIME_WAIT.
  const int on = 1;
  if (::setsockopt(result.fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0) {
    ::freeaddrinfo(found);
    return fail(std::string("setsockopt(SO_REUSEADDR): ") + std::strerror(errno));
  }
  if (::bind(result.fd.get(), ai.ai_addr, ai.ai_addrlen) != 0) {
    const int err = errno;
    ::freeaddrinfo(found);
    return fail(std::strerror(err));
  }
  ::freeaddrinfo(found);
  if (::listen(result.fd.get(), SOMAXCONN) != 0) {
    return fail(std::string("listen: ") + std::strerror(errno));
  }
  sockaddr_storage bound{};
  socklen_t length = sizeof bound;
  if (::getsockname(result.fd.get(), reinterpret_cast<sockaddr*>(&bound), &length) !=
      0) {
    return fail(std::string("getsockname: ") + std::strerror(errno));
  }
  result.address = address_string(reinterpret_cast<sockaddr*>(&bound), length);
  return result;
}

Fd listen_or_exit(const Options& options, Blocking blocking) {
  ListenResult r = open_listener(options.host, options.port, blocking);
  if (!r.fd) {
    std::fprintf(stderr, "%s\n", r.error.c_str());
    std::exit(1);
  }
  std::printf("listening on %s\n", r.address.c_str());
  std::fflush(stdout);
  return std::move(r.fd);
}

AcceptFailure classify_accept_error(int error) {
  switch (error) {
    case EINTR:
      return AcceptFailure::kRetry;
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
      return AcceptFailure::kQueueEmpty;
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
      return AcceptFailure::kOutOfFds;
    default:
      return AcceptFailure::kClientGone;
  }
}

}  // namespace echo
