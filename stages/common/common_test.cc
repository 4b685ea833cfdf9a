// Unit tests for stages/common: flags, the owning fd, the listening socket,
// logging helpers, the fd limit, the summary line and the stop request.
//
// The stop-request tests flip process-global state (a stop can only be requested
// once per process), so they come last in this file; each of them also copes with
// running after a stop (e.g. under --gtest_shuffle).
#include "stages/common/common.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <limits>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "gtest/gtest.h"

namespace {

using echo::Blocking;
using echo::ParseResult;
using echo::ParseStatus;

// ---- Helpers -------------------------------------------------------------------

ParseResult parse(std::initializer_list<std::string> args) {
  return echo::parse_options(std::vector<std::string>(args));
}

// True while `fd` names an open file description in this process.
bool is_open(int fd) {
  return ::fcntl(fd, F_GETFD) != -1;
}

// True when `fd` is closed: fcntl reports EBADF.
bool is_closed(int fd) {
  errno = 0;
  return ::fcntl(fd, F_GETFD) == -1 && errno == EBADF;
}

int open_dev_null() {
  return ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

// The port of "HOST:PORT" or "[HOST]:PORT".
std::uint16_t port_of(const std::string& address) {
  return static_cast<std::uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
}

// A blocking client connected to the loopback address of `family` at `port`, or an
// invalid Fd if connect() failed.
echo::Fd connect_loopback(int family, std::uint16_t port) {
  echo::Fd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fd;
  int rc;
  if (family == AF_INET6) {
    sockaddr_in6 to{};
    to.sin6_family = AF_INET6;
    to.sin6_port = htons(port);
    to.sin6_addr = in6addr_loopback;
    rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof to);
  } else {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof to);
  }
  if (rc != 0) fd.reset();
  return fd;
}

int int_sockopt(int fd, int level, int name) {
  int value = -1;
  socklen_t length = sizeof value;
  if (::getsockopt(fd, level, name, &value, &length) != 0) return -1;
  return value;
}

// Runs `body` with file descriptor `target` (1 = stdout, 2 = stderr) redirected
// into a pipe and returns what it wrote. Output must stay below the pipe's
// capacity (64 KiB), which every caller here does by far.
std::string capture_fd(int target, const std::function<void()>& body) {
  std::fflush(stdout);
  std::fflush(stderr);
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return "<pipe failed>";
  const int saved = ::dup(target);
  ::dup2(p[1], target);
  ::close(p[1]);
  body();
  std::fflush(stdout);
  std::fflush(stderr);
  ::dup2(saved, target);
  ::close(saved);
  std::string out;
  char chunk[4096];
  ssize_t n;
  while ((n = ::read(p[0], chunk, sizeof chunk)) > 0) {
    out.append(chunk, static_cast<std::size_t>(n));
  }
  ::close(p[0]);
  return out;
}

// argv for parse_options_or_exit, kept alive by the caller.
struct Argv {
  explicit Argv(std::initializer_list<std::string> args) : storage(args) {
    for (std::string& s : storage) pointers.push_back(s.data());
    pointers.push_back(nullptr);
  }
  int argc() const { return static_cast<int>(storage.size()); }
  char** argv() { return pointers.data(); }
  std::vector<std::string> storage;
  std::vector<char*> pointers;
};

// ---- parse_options: defaults and every flag ------------------------------------

TEST(ParseOptions, NoArgumentsGiveTheDefaults) {
  ParseResult r = parse({});
  EXPECT_EQ(r.status, ParseStatus::kOk);
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(r.options.host, "127.0.0.1");
  EXPECT_EQ(r.options.port, 8080);
  EXPECT_EQ(r.options.buffer_size, 16u * 1024u);
  EXPECT_FALSE(r.options.trace);
  EXPECT_FALSE(r.options.quiet);
}

TEST(ParseOptions, DefaultsMatchTheNamedConstants) {
  echo::Options o;
  EXPECT_EQ(o.host, echo::kDefaultHost);
  EXPECT_EQ(o.port, echo::kDefaultPort);
  EXPECT_EQ(o.buffer_size, echo::kDefaultBufferSize);
  EXPECT_EQ(echo::kMaxBufferSize, 64u * 1024u * 1024u);
}

TEST(ParseOptions, HostInBothForms) {
  EXPECT_EQ(parse({"--host", "0.0.0.0"}).options.host, "0.0.0.0");
  EXPECT_EQ(parse({"--host=::1"}).options.host, "::1");
  EXPECT_EQ(parse({"--host", "localhost"}).options.host, "localhost");
  // Only the first '=' separates flag and value.
  EXPECT_EQ(parse({"--host=a=b"}).options.host, "a=b");
}

TEST(ParseOptions, PortInBothForms) {
  ParseResult spaced = parse({"--port", "9000"});
  EXPECT_EQ(spaced.status, ParseStatus::kOk);
  EXPECT_EQ(spaced.options.port, 9000);
  ParseResult inline_value = parse({"--port=9001"});
  EXPECT_EQ(inline_value.status, ParseStatus::kOk);
  EXPECT_EQ(inline_value.options.port, 9001);
}

TEST(ParseOptions, BufferSizeInBothForms) {
  ParseResult spaced = parse({"--buffer-size", "4096"});
  EXPECT_EQ(spaced.status, ParseStatus::kOk);
  EXPECT_EQ(spaced.options.buffer_size, 4096u);
  ParseResult inline_value = parse({"--buffer-size=1"});
  EXPECT_EQ(inline_value.status, ParseStatus::kOk);
  EXPECT_EQ(inline_value.options.buffer_size, 1u);
}

TEST(ParseOptions, TraceAndQuietAreSwitches) {
  ParseResult trace = parse({"--trace"});
  EXPECT_EQ(trace.status, ParseStatus::kOk);
  EXPECT_TRUE(trace.options.trace);
  EXPECT_FALSE(trace.options.quiet);
  ParseResult quiet = parse({"--quiet"});
  EXPECT_EQ(quiet.status, ParseStatus::kOk);
  EXPECT_TRUE(quiet.options.quiet);
  EXPECT_FALSE(quiet.options.trace);
}

TEST(ParseOptions, SwitchesTakeNoValue) {
  for (const char* arg : {"--trace=1", "--quiet=yes", "--help=1"}) {
    ParseResult r = parse({arg});
    EXPECT_EQ(r.status, ParseStatus::kError) << arg;
    EXPECT_NE(r.error.find("takes no value"), std::string::npos) << r.error;
  }
}

TEST(ParseOptions, AllFlagsTogetherInAnyOrder) {
  ParseResult r = parse(
      {"--quiet", "--buffer-size=65536", "--trace", "--port", "0", "--host=0.0.0.0"});
  ASSERT_EQ(r.status, ParseStatus::kOk) << r.error;
  EXPECT_EQ(r.options.host, "0.0.0.0");
  EXPECT_EQ(r.options.port, 0);
  EXPECT_EQ(r.options.buffer_size, 65536u);
  EXPECT_TRUE(r.options.trace);
  EXPECT_TRUE(r.options.quiet);
}

TEST(ParseOptions, TheLastOfARepeatedFlagWins) {
  ParseResult r = parse({"--port", "1", "--port=2"});
  ASSERT_EQ(r.status, ParseStatus::kOk);
  EXPECT_EQ(r.options.port, 2);
}

TEST(ParseOptions, HelpInEitherSpellingAsksForUsage) {
  EXPECT_EQ(parse({"--help"}).status, ParseStatus::kHelp);
  EXPECT_EQ(parse({"-h"}).status, ParseStatus::kHelp);
  EXPECT_EQ(parse({"--port", "1", "--help"}).status, ParseStatus::kHelp);
  // --help wins over a later bad flag: parsing stops there.
  EXPECT_EQ(parse({"--help", "--bogus"}).status, ParseStatus::kHelp);
}

// ---- parse_options: errors --------------------------------------------------------

TEST(ParseOptions, UnknownArgumentsAreErrors) {
  for (const char* arg : {"--bogus", "--bogus=1", "-p", "positional", "--port9000",
                          "--PORT", "-", "--"}) {
    ParseResult r = parse({arg});
    EXPECT_EQ(r.status, ParseStatus::kError) << arg;
    EXPECT_EQ(r.error, "unknown argument '" + std::string(arg) + "'") << arg;
  }
}

TEST(ParseOptions, AnErrorAfterGoodFlagsIsStillAnError) {
  ParseResult r = parse({"--port", "1", "--trace", "--nope"});
  EXPECT_EQ(r.status, ParseStatus::kError);
  EXPECT_EQ(r.error, "unknown argument '--nope'");
}

TEST(ParseOptions, FlagsWithoutTheirValueAreErrors) {
  for (const char* flag : {"--host", "--port", "--buffer-size"}) {
    ParseResult r = parse({flag});
    EXPECT_EQ(r.status, ParseStatus::kError) << flag;
    EXPECT_EQ(r.error, std::string(flag) + " needs a value");
  }
}

TEST(ParseOptions, EmptyHostIsAnError) {
  for (ParseResult r : {parse({"--host="}), parse({"--host", ""})}) {
    EXPECT_EQ(r.status, ParseStatus::kError);
    EXPECT_EQ(r.error, "--host needs a non-empty address");
  }
}

TEST(ParseOptions, PortBoundaries) {
  EXPECT_EQ(parse({"--port", "0"}).options.port, 0);
  EXPECT_EQ(parse({"--port", "1"}).options.port, 1);
  EXPECT_EQ(parse({"--port", "65535"}).options.port, 65535);
  EXPECT_EQ(parse({"--port", "00080"}).options.port, 80);
  ParseResult r = parse({"--port", "65536"});
  EXPECT_EQ(r.status, ParseStatus::kError);
  EXPECT_EQ(r.error, "--port must be a number from 0 to 65535, not '65536'");
}

TEST(ParseOptions, BadPortsAreErrors) {
  for (const char* value : {"-1", "+1", "abc", "80x", "0x50", "", " 80", "80 ", "8.0",
                            "99999999999999999999", "18446744073709551616"}) {
    ParseResult spaced = parse({"--port", value});
    EXPECT_EQ(spaced.status, ParseStatus::kError) << "'" << value << "'";
    EXPECT_EQ(spaced.error, "--port must be a number from 0 to 65535, not '" +
                                std::string(value) + "'");
    ParseResult inline_value = parse({"--port=" + std::string(value)});
    EXPECT_EQ(inline_value.status, ParseStatus::kError) << "'" << value << "'";
  }
}

TEST(ParseOptions, AFlagIsNotTakenAsAMissingValue) {
  // "--port --trace": the value slot holds a flag, which is not a number.
  ParseResult r = parse({"--port", "--trace"});
  EXPECT_EQ(r.status, ParseStatus::kError);
  EXPECT_EQ(r.error, "--port must be a number from 0 to 65535, not '--trace'");
}

TEST(ParseOptions, BufferSizeBoundaries) {
  const std::string max = std::to_string(echo::kMaxBufferSize);
  const std::string too_big = std::to_string(echo::kMaxBufferSize + 1);
  EXPECT_EQ(parse({"--buffer-size", "1"}).options.buffer_size, 1u);
  ParseResult at_max = parse({"--buffer-size", max});
  EXPECT_EQ(at_max.status, ParseStatus::kOk);
  EXPECT_EQ(at_max.options.buffer_size, echo::kMaxBufferSize);
  const std::string expected_prefix =
      "--buffer-size must be a number of bytes from 1 to " + max + ", not '";
  for (const std::string& value :
       {std::string("0"), too_big, std::string("-5"), std::string("1k"),
        std::string(""), std::string("4096 "), std::string("99999999999999999999")}) {
    ParseResult r = parse({"--buffer-size", value});
    EXPECT_EQ(r.status, ParseStatus::kError) << "'" << value << "'";
    EXPECT_EQ(r.error, expected_prefix + value + "'");
  }
}

TEST(ParseOptions, AnErrorLeavesNoHalfParsedSuccess) {
  ParseResult r = parse({"--port", "70000"});
  EXPECT_EQ(r.status, ParseStatus::kError);
  EXPECT_FALSE(r.error.empty());
}

// ---- usage and parse_options_or_exit ---------------------------------------------

TEST(Usage, MentionsProgramAboutEveryFlagAndTheDefaults) {
  const std::string text = echo::usage("prog", "Stage 99: about line.");
  EXPECT_EQ(text.rfind("usage: prog ", 0), 0u) << text;
  EXPECT_NE(text.find("Stage 99: about line."), std::string::npos);
  for (const char* flag : {"--host ADDR", "--port N", "--buffer-size BYTES", "--trace",
                           "--quiet", "--help"}) {
    EXPECT_NE(text.find(flag), std::string::npos) << flag;
  }
  EXPECT_NE(text.find("127.0.0.1"), std::string::npos);
  EXPECT_NE(text.find("8080"), std::string::npos);
  EXPECT_NE(text.find(std::to_string(echo::kDefaultBufferSize)), std::string::npos);
  EXPECT_NE(text.find(std::to_string(echo::kMaxBufferSize)), std::string::npos);
  EXPECT_NE(text.find("listening on HOST:PORT"), std::string::npos);
  EXPECT_EQ(text.back(), '\n');
}

TEST(ParseOptionsOrExit, ReturnsTheParsedOptions) {
  Argv args({"server", "--port", "1234", "--quiet"});
  echo::Options o = echo::parse_options_or_exit(args.argc(), args.argv(), "about");
  EXPECT_EQ(o.port, 1234);
  EXPECT_TRUE(o.quiet);
  EXPECT_EQ(o.host, "127.0.0.1");
}

TEST(ParseOptionsOrExitDeathTest, HelpPrintsUsageToStdoutAndExitsZero) {
  // A death test's regex reads the child's stderr. First: with stdout thrown
  // away, --help leaves stderr empty...
  EXPECT_EXIT(
      {
        ::dup2(::open("/dev/null", O_WRONLY), 1);
        Argv args({"myserver", "--help"});
        echo::parse_options_or_exit(args.argc(), args.argv(), "about");
      },
      ::testing::ExitedWithCode(0), "^$");
  // ...then, with stdout sent to stderr, the usage text shows up.
  EXPECT_EXIT(
      {
        ::dup2(2, 1);
        Argv args({"myserver", "--help"});
        echo::parse_options_or_exit(args.argc(), args.argv(), "Stage about.");
      },
      ::testing::ExitedWithCode(0),
      "^usage: myserver \\[--host ADDR\\].*Stage about\\.");
}

TEST(ParseOptionsOrExitDeathTest, HelpThatCannotBeWrittenExitsOne) {
  EXPECT_EXIT(
      {
        ::dup2(::open("/dev/full", O_WRONLY), 1);
        Argv args({"myserver", "--help"});
        echo::parse_options_or_exit(args.argc(), args.argv(), "about");
      },
      ::testing::ExitedWithCode(1), "");
}

// With stdout and stderr closed, the next descriptors opened (here an eventfd,
// as install_signal_handlers makes) would be 1 and 2, and every log line a write
// into them. parse_options_or_exit reopens them on /dev/null first.
TEST(ParseOptionsOrExitDeathTest, ClosedStandardFdsAreReopenedOnDevNull) {
  EXPECT_EXIT(
      {
        ::close(1);
        ::close(2);
        Argv args({"myserver"});
        echo::parse_options_or_exit(args.argc(), args.argv(), "about");
        char target[32] = {};
        const bool null2 =
            ::readlink("/proc/self/fd/2", target, sizeof target - 1) > 0 &&
            std::string(target) == "/dev/null";
        const int next = ::open("/dev/null", O_RDONLY);
        std::_Exit(null2 && next > 2 ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(ParseOptionsOrExitDeathTest, BadFlagPrintsTheProblemAndUsageAndExitsTwo) {
  EXPECT_EXIT(
      {
        Argv args({"myserver", "--port", "x"});
        echo::parse_options_or_exit(args.argc(), args.argv(), "about");
      },
      ::testing::ExitedWithCode(2),
      "myserver: --port must be a number from 0 to 65535, not 'x'\nusage: myserver ");
}

// ---- Fd ---------------------------------------------------------------------------

static_assert(!std::is_copy_constructible_v<echo::Fd>);
static_assert(!std::is_copy_assignable_v<echo::Fd>);
static_assert(std::is_nothrow_move_constructible_v<echo::Fd>);
static_assert(std::is_nothrow_move_assignable_v<echo::Fd>);

TEST(Fd, DefaultIsInvalid) {
  echo::Fd fd;
  EXPECT_EQ(fd.get(), -1);
  EXPECT_FALSE(fd.valid());
  EXPECT_FALSE(static_cast<bool>(fd));
}

TEST(Fd, ClosesOnDestruction) {
  const int raw = open_dev_null();
  ASSERT_GE(raw, 0);
  {
    echo::Fd fd(raw);
    EXPECT_TRUE(fd.valid());
    EXPECT_TRUE(static_cast<bool>(fd));
    EXPECT_EQ(fd.get(), raw);
    EXPECT_TRUE(is_open(raw));
  }
  EXPECT_TRUE(is_closed(raw));
}

TEST(Fd, MoveConstructionTransfersOwnership) {
  const int raw = open_dev_null();
  ASSERT_GE(raw, 0);
  echo::Fd from(raw);
  {
    echo::Fd to(std::move(from));
    EXPECT_EQ(from.get(), -1);  // NOLINT(bugprone-use-after-move): the moved-from state
    EXPECT_FALSE(from.valid());
    EXPECT_EQ(to.get(), raw);
    EXPECT_TRUE(is_open(raw));
  }
  EXPECT_TRUE(is_closed(raw));
}

TEST(Fd, MoveAssignmentClosesTheOldFdAndTakesTheNewOne) {
  const int first = open_dev_null();
  const int second = open_dev_null();
  ASSERT_GE(first, 0);
  ASSERT_GE(second, 0);
  echo::Fd a(first);
  echo::Fd b(second);
  b = std::move(a);
  EXPECT_TRUE(is_closed(second));
  EXPECT_TRUE(is_open(first));
  EXPECT_EQ(b.get(), first);
  EXPECT_EQ(a.get(), -1);  // NOLINT(bugprone-use-after-move)
  b = echo::Fd();
  EXPECT_TRUE(is_closed(first));
  EXPECT_FALSE(b.valid());
}

TEST(Fd, SelfMoveAssignmentKeepsTheFdOpen) {
  const int raw = open_dev_null();
  ASSERT_GE(raw, 0);
  echo::Fd fd(raw);
  echo::Fd& alias = fd;  // through a reference, so the compiler does not object
  fd = std::move(alias);
  EXPECT_EQ(fd.get(), raw);
  EXPECT_TRUE(is_open(raw));
}

TEST(Fd, ReleaseGivesUpOwnershipWithoutClosing) {
  const int raw = open_dev_null();
  ASSERT_GE(raw, 0);
  {
    echo::Fd fd(raw);
    EXPECT_EQ(fd.release(), raw);
    EXPECT_EQ(fd.get(), -1);
    EXPECT_EQ(fd.release(), -1);
  }
  EXPECT_TRUE(is_open(raw));
  ::close(raw);
}

TEST(Fd, ResetClosesTheOldFdAndOwnsTheNewOne) {
  const int first = open_dev_null();
  const int second = open_dev_null();
  ASSERT_GE(first, 0);
  ASSERT_GE(second, 0);
  echo::Fd fd(first);
  fd.reset(second);
  EXPECT_TRUE(is_closed(first));
  EXPECT_EQ(fd.get(), second);
  fd.reset();
  EXPECT_TRUE(is_closed(second));
  EXPECT_FALSE(fd.valid());
  fd.reset();  // resetting an empty Fd is harmless
  EXPECT_EQ(fd.get(), -1);
}

// ---- open_listener ---------------------------------------------------------------

TEST(OpenListener, PortZeroGetsARealPortShownInAddress) {
  echo::ListenResult r = echo::open_listener("127.0.0.1", 0, Blocking::kYes);
  ASSERT_TRUE(r.fd.valid()) << r.error;
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(r.address.rfind("127.0.0.1:", 0), 0u) << r.address;
  const std::uint16_t port = port_of(r.address);
  EXPECT_NE(port, 0);
  sockaddr_in bound{};
  socklen_t length = sizeof bound;
  ASSERT_EQ(::getsockname(r.fd.get(), reinterpret_cast<sockaddr*>(&bound), &length), 0);
  EXPECT_EQ(ntohs(bound.sin_port), port);
  EXPECT_EQ(int_sockopt(r.fd.get(), SOL_SOCKET, SO_ACCEPTCONN), 1);
}

TEST(OpenListener, AClientCanConnectAndBeAccepted) {
  echo::ListenResult r = echo::open_listener("127.0.0.1", 0, Blocking::kYes);
  ASSERT_TRUE(r.fd.valid()) << r.error;
  echo::Fd client = connect_loopback(AF_INET, port_of(r.address));
  ASSERT_TRUE(client.valid()) << std::strerror(errno);
  // The handshake is complete, so a blocking accept returns at once.
  echo::Fd server(::accept4(r.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(server.valid()) << std::strerror(errno);
  ASSERT_EQ(::write(client.get(), "hi", 2), 2);
  char got[2] = {};
  ASSERT_EQ(::read(server.get(), got, sizeof got), 2);
  EXPECT_EQ(std::string(got, 2), "hi");
}

TEST(OpenListener, SetsReuseAddrAndCloseOnExec) {
  for (Blocking blocking : {Blocking::kYes, Blocking::kNo}) {
    echo::ListenResult r = echo::open_listener("127.0.0.1", 0, blocking);
    ASSERT_TRUE(r.fd.valid()) << r.error;
    EXPECT_EQ(int_sockopt(r.fd.get(), SOL_SOCKET, SO_REUSEADDR), 1);
    const int fd_flags = ::fcntl(r.fd.get(), F_GETFD);
    ASSERT_NE(fd_flags, -1);
    EXPECT_TRUE(fd_flags & FD_CLOEXEC);
  }
}

TEST(OpenListener, NonBlockingOnlyWhenAsked) {
  echo::ListenResult blocking = echo::open_listener("127.0.0.1", 0, Blocking::kYes);
  echo::ListenResult non_blocking = echo::open_listener("127.0.0.1", 0, Blocking::kNo);
  ASSERT_TRUE(blocking.fd.valid()) << blocking.error;
  ASSERT_TRUE(non_blocking.fd.valid()) << non_blocking.error;
  EXPECT_FALSE(::fcntl(blocking.fd.get(), F_GETFL) & O_NONBLOCK);
  EXPECT_TRUE(::fcntl(non_blocking.fd.get(), F_GETFL) & O_NONBLOCK);
  // A non-blocking listener with an empty queue says EAGAIN instead of waiting.
  errno = 0;
  EXPECT_EQ(::accept(non_blocking.fd.get(), nullptr, nullptr), -1);
  EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK) << std::strerror(errno);
}

TEST(OpenListener, ATakenPortIsAClearError) {
  echo::ListenResult first = echo::open_listener("127.0.0.1", 0, Blocking::kYes);
  ASSERT_TRUE(first.fd.valid()) << first.error;
  const std::uint16_t port = port_of(first.address);
  echo::ListenResult second = echo::open_listener("127.0.0.1", port, Blocking::kYes);
  EXPECT_FALSE(second.fd.valid());
  EXPECT_EQ(second.error.rfind(
                "cannot listen on 127.0.0.1:" + std::to_string(port) + ": ", 0),
            0u)
      << second.error;
  EXPECT_NE(second.error.find("Address already in use"), std::string::npos)
      << second.error;
}

TEST(OpenListener, ARestartRightAfterServingAClientCanListenAgain) {
  // The server closes first, so its side of the connection lingers in TIME_WAIT;
  // SO_REUSEADDR is what lets the next listener bind the same port.
  std::uint16_t port = 0;
  {
    echo::ListenResult r = echo::open_listener("127.0.0.1", 0, Blocking::kYes);
    ASSERT_TRUE(r.fd.valid()) << r.error;
    port = port_of(r.address);
    echo::Fd client = connect_loopback(AF_INET, port);
    ASSERT_TRUE(client.valid());
    echo::Fd server(::accept(r.fd.get(), nullptr, nullptr));
    ASSERT_TRUE(server.valid());
    server.reset();  // active close on the server side
    char byte;
    EXPECT_EQ(::read(client.get(), &byte, 1), 0);  // the client sees EOF
  }
  echo::ListenResult again = echo::open_listener("127.0.0.1", port, Blocking::kYes);
  EXPECT_TRUE(again.fd.valid()) << again.error;
  EXPECT_EQ(again.address, "127.0.0.1:" + std::to_string(port));
}

TEST(OpenListener, AnAddressNotOnThisMachineIsAClearError) {
  // 192.0.2.1 is TEST-NET-1 (RFC 5737): never a local address. Only bind() is
  // tried; nothing is sent anywhere.
  echo::ListenResult r = echo::open_listener("192.0.2.1", 0, Blocking::kYes);
  EXPECT_FALSE(r.fd.valid());
  EXPECT_EQ(r.address, "");
  EXPECT_EQ(r.error.rfind("cannot listen on 192.0.2.1:0: ", 0), 0u) << r.error;
  EXPECT_NE(r.error.find("Cannot assign requested address"), std::string::npos)
      << r.error;
}

TEST(OpenListener, AHostNameFromTheHostsFileResolves) {
  echo::ListenResult r = echo::open_listener("localhost", 0, Blocking::kYes);
  ASSERT_TRUE(r.fd.valid()) << r.error;
  EXPECT_TRUE(r.address.rfind("127.0.0.1:", 0) == 0 ||
              r.address.rfind("[::1]:", 0) == 0)
      << r.address;
}

TEST(OpenListener, Ipv6LoopbackWorksOrFailsClearly) {
  echo::ListenResult r = echo::open_listener("::1", 0, Blocking::kNo);
  if (!r.fd.valid()) {
    // No IPv6 here: the error still names the address in brackets.
    EXPECT_EQ(r.error.rfind("cannot listen on [::1]:0: ", 0), 0u) << r.error;
    return;
  }
  EXPECT_EQ(r.error, "");
  ASSERT_EQ(r.address.rfind("[::1]:", 0), 0u) << r.address;
  const std::uint16_t port = port_of(r.address);
  EXPECT_NE(port, 0);
  echo::Fd client = connect_loopback(AF_INET6, port);
  EXPECT_TRUE(client.valid()) << std::strerror(errno);
}

// ---- listen_or_exit --------------------------------------------------------------

TEST(ListenOrExit, PrintsTheListeningLineOnStdout) {
  echo::Options options;
  options.port = 0;
  echo::Fd fd;
  const std::string out =
      capture_fd(1, [&] { fd = echo::listen_or_exit(options, Blocking::kNo); });
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(out.rfind("listening on 127.0.0.1:", 0), 0u) << out;
  ASSERT_EQ(out.back(), '\n');
  EXPECT_EQ(out.find('\n'), out.size() - 1) << "exactly one line: " << out;
  sockaddr_in bound{};
  socklen_t length = sizeof bound;
  ASSERT_EQ(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &length), 0);
  EXPECT_EQ(out,
            "listening on 127.0.0.1:" + std::to_string(ntohs(bound.sin_port)) + "\n");
}

TEST(ListenOrExitDeathTest, ATakenPortExitsOneWithTheError) {
  echo::ListenResult first = echo::open_listener("127.0.0.1", 0, Blocking::kYes);
  ASSERT_TRUE(first.fd.valid()) << first.error;
  echo::Options options;
  options.port = port_of(first.address);
  EXPECT_EXIT(echo::listen_or_exit(options, Blocking::kYes),
              ::testing::ExitedWithCode(1),
              "^cannot listen on 127\\.0\\.0\\.1:" + std::to_string(options.port) +
                  ": Address already in use\n$");
}

// ---- address_string --------------------------------------------------------------

TEST(AddressString, Ipv4) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(4567);
  ASSERT_EQ(::inet_pton(AF_INET, "10.1.2.3", &a.sin_addr), 1);
  EXPECT_EQ(echo::address_string(reinterpret_cast<sockaddr*>(&a), sizeof a),
            "10.1.2.3:4567");
  a.sin_port = htons(65535);
  EXPECT_EQ(echo::address_string(reinterpret_cast<sockaddr*>(&a), sizeof a),
            "10.1.2.3:65535");
}

TEST(AddressString, Ipv6InBrackets) {
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(80);
  ASSERT_EQ(::inet_pton(AF_INET6, "2001:db8::1", &a.sin6_addr), 1);
  EXPECT_EQ(echo::address_string(reinterpret_cast<sockaddr*>(&a), sizeof a),
            "[2001:db8::1]:80");
  a.sin6_addr = in6addr_loopback;
  a.sin6_port = htons(0);
  EXPECT_EQ(echo::address_string(reinterpret_cast<sockaddr*>(&a), sizeof a), "[::1]:0");
  ASSERT_EQ(::inet_pton(AF_INET6, "::ffff:1.2.3.4", &a.sin6_addr), 1);
  EXPECT_EQ(echo::address_string(reinterpret_cast<sockaddr*>(&a), sizeof a),
            "[::ffff:1.2.3.4]:0");
}

TEST(AddressString, UnprintableAddressesGiveAQuestionMark) {
  // Only TCP peers are ever printed; anything getnameinfo() rejects gives "?".
  sockaddr_storage unknown{};
  unknown.ss_family = AF_UNSPEC;
  EXPECT_EQ(echo::address_string(reinterpret_cast<sockaddr*>(&unknown), sizeof unknown),
            "?");
  sockaddr_in too_short{};
  too_short.sin_family = AF_INET;
  EXPECT_EQ(echo::address_string(reinterpret_cast<sockaddr*>(&too_short), 4), "?");
}

// ---- classify_accept_error ---------------------------------------------------------

TEST(ClassifyAcceptError, EveryErrnoHasItsMeaning) {
  using echo::AcceptFailure;
  EXPECT_EQ(echo::classify_accept_error(EINTR), AcceptFailure::kRetry);
  EXPECT_EQ(echo::classify_accept_error(EAGAIN), AcceptFailure::kQueueEmpty);
  EXPECT_EQ(echo::classify_accept_error(EWOULDBLOCK), AcceptFailure::kQueueEmpty);
  EXPECT_EQ(echo::classify_accept_error(EMFILE), AcceptFailure::kOutOfFds);
  EXPECT_EQ(echo::classify_accept_error(ENFILE), AcceptFailure::kOutOfFds);
  EXPECT_EQ(echo::classify_accept_error(ENOBUFS), AcceptFailure::kOutOfFds);
  EXPECT_EQ(echo::classify_accept_error(ENOMEM), AcceptFailure::kOutOfFds);
  EXPECT_EQ(echo::classify_accept_error(ECONNABORTED), AcceptFailure::kClientGone);
  EXPECT_EQ(echo::classify_accept_error(EPROTO), AcceptFailure::kClientGone);
  EXPECT_EQ(echo::classify_accept_error(EPERM), AcceptFailure::kClientGone);
  EXPECT_EQ(echo::classify_accept_error(ENETDOWN), AcceptFailure::kClientGone);
}

// ---- Event names -------------------------------------------------------------------

std::string epoll_names(std::uint32_t events) {
  return echo::epoll_event_names(events).text;
}
std::string poll_names(int events) {
  return echo::poll_event_names(static_cast<short>(events)).text;
}

TEST(EpollEventNames, SingleBitsAndZero) {
  EXPECT_EQ(epoll_names(0), "0");
  EXPECT_EQ(epoll_names(EPOLLIN), "EPOLLIN");
  EXPECT_EQ(epoll_names(EPOLLOUT), "EPOLLOUT");
  EXPECT_EQ(epoll_names(EPOLLRDHUP), "EPOLLRDHUP");
  EXPECT_EQ(epoll_names(EPOLLPRI), "EPOLLPRI");
  EXPECT_EQ(epoll_names(EPOLLERR), "EPOLLERR");
  EXPECT_EQ(epoll_names(EPOLLHUP), "EPOLLHUP");
  EXPECT_EQ(epoll_names(EPOLLET), "EPOLLET");
  EXPECT_EQ(epoll_names(EPOLLONESHOT), "EPOLLONESHOT");
}

TEST(EpollEventNames, CombinationsInAFixedOrder) {
  EXPECT_EQ(epoll_names(EPOLLIN | EPOLLRDHUP), "EPOLLIN|EPOLLRDHUP");
  EXPECT_EQ(epoll_names(EPOLLHUP | EPOLLIN), "EPOLLIN|EPOLLHUP");
  EXPECT_EQ(epoll_names(EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET),
            "EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET");
  EXPECT_EQ(epoll_names(EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLERR |
                        EPOLLHUP | EPOLLET | EPOLLONESHOT),
            "EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLPRI|EPOLLERR|EPOLLHUP|EPOLLET|"
            "EPOLLONESHOT");
}

TEST(EpollEventNames, UnknownBitsAreShownInHex) {
  EXPECT_EQ(epoll_names(0x100), "0x100");
  EXPECT_EQ(epoll_names(EPOLLIN | EPOLLRDNORM), "EPOLLIN|0x40");
  EXPECT_EQ(epoll_names(EPOLLOUT | EPOLLEXCLUSIVE | EPOLLWAKEUP),
            "EPOLLOUT|0x30000000");
  const std::uint32_t known = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLERR |
                              EPOLLHUP | EPOLLET | EPOLLONESHOT;
  char rest[16];
  std::snprintf(rest, sizeof rest, "0x%x", 0xffffffffu & ~known);
  EXPECT_EQ(epoll_names(0xffffffffu),
            "EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLPRI|EPOLLERR|EPOLLHUP|EPOLLET|"
            "EPOLLONESHOT|" +
                std::string(rest));
}

TEST(PollEventNames, SingleBitsAndZero) {
  EXPECT_EQ(poll_names(0), "0");
  EXPECT_EQ(poll_names(POLLIN), "POLLIN");
  EXPECT_EQ(poll_names(POLLOUT), "POLLOUT");
  EXPECT_EQ(poll_names(POLLRDHUP), "POLLRDHUP");
  EXPECT_EQ(poll_names(POLLPRI), "POLLPRI");
  EXPECT_EQ(poll_names(POLLERR), "POLLERR");
  EXPECT_EQ(poll_names(POLLHUP), "POLLHUP");
  EXPECT_EQ(poll_names(POLLNVAL), "POLLNVAL");
}

TEST(PollEventNames, CombinationsAndUnknownBits) {
  EXPECT_EQ(poll_names(POLLOUT | POLLIN), "POLLIN|POLLOUT");
  EXPECT_EQ(poll_names(POLLIN | POLLRDHUP | POLLHUP | POLLERR),
            "POLLIN|POLLRDHUP|POLLERR|POLLHUP");
  EXPECT_EQ(poll_names(POLLIN | POLLRDNORM), "POLLIN|0x40");
  // The sign bit of a short is an unknown bit like any other, not 0xffff8000.
  EXPECT_EQ(poll_names(0x8000), "0x8000");
  EXPECT_EQ(poll_names(0xffff),
            "POLLIN|POLLOUT|POLLRDHUP|POLLPRI|POLLERR|POLLHUP|POLLNVAL|0xdfc0");
}

// ---- Logging ---------------------------------------------------------------------

class LogTest : public ::testing::Test {
 protected:
  void TearDown() override { echo::set_log_options(false, false); }
};

TEST_F(LogTest, TraceIsOffByDefaultAndCostsNoArgumentEvaluation) {
  echo::set_log_options(false, false);
  EXPECT_FALSE(echo::tracing());
  int evaluated = 0;
  const std::string err = capture_fd(2, [&] { ECHO_TRACE("x %d", ++evaluated); });
  EXPECT_EQ(evaluated, 0);
  EXPECT_EQ(err, "");
}

TEST_F(LogTest, TraceLinesCarryThePrefix) {
  echo::set_log_options(true, false);
  EXPECT_TRUE(echo::tracing());
  const std::string err = capture_fd(2, [] {
    ECHO_TRACE("event fd=%d %s", 7, echo::epoll_event_names(EPOLLIN | EPOLLHUP).text);
  });
  EXPECT_EQ(err, "trace: event fd=7 EPOLLIN|EPOLLHUP\n");
}

TEST_F(LogTest, QuietSilencesInfoButNeverErrors) {
  echo::set_log_options(false, false);
  EXPECT_EQ(capture_fd(2, [] { echo::log_info("accepted %s", "x"); }), "accepted x\n");
  echo::set_log_options(false, true);
  EXPECT_EQ(capture_fd(2, [] { echo::log_info("accepted %s", "x"); }), "");
  EXPECT_EQ(capture_fd(2, [] { echo::log_error("bad: %s", "y"); }), "bad: y\n");
}

TEST_F(LogTest, AVeryLongLineIsCutButStaysOneLine) {
  const std::string long_text(5000, 'x');
  const std::string err =
      capture_fd(2, [&] { echo::log_error("%s", long_text.c_str()); });
  ASSERT_FALSE(err.empty());
  EXPECT_LE(err.size(), 1024u);
  EXPECT_GE(err.size(), 1000u);
  EXPECT_EQ(err.back(), '\n');
  EXPECT_EQ(err.find('\n'), err.size() - 1);
}

// ---- raise_fd_limit --------------------------------------------------------------

TEST(RaiseFdLimit, RaisesTheSoftLimitToTheHardLimit) {
  rlimit before{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &before), 0);
  // Lower the soft limit first (always allowed) so that there is something to
  // raise; 256 is still far above what this test process has open.
  if (before.rlim_max > 256) {
    rlimit lowered = before;
    lowered.rlim_cur = 256;
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0);
  }
  const std::uint64_t raised = echo::raise_fd_limit();
  rlimit after{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &after), 0);
  EXPECT_EQ(after.rlim_cur, after.rlim_max);
  EXPECT_EQ(after.rlim_max, before.rlim_max);
  EXPECT_EQ(raised, after.rlim_cur);
  // Idempotent: a second call changes nothing and reports the same limit.
  EXPECT_EQ(echo::raise_fd_limit(), raised);
}

// ---- Stats and print_summary -------------------------------------------------------

TEST(Stats, CountsConnectionsAndBytes) {
  echo::Stats stats;
  EXPECT_EQ(stats.connections.load(), 0u);
  EXPECT_EQ(stats.bytes.load(), 0u);
  stats.add_connection();
  stats.add_connection();
  stats.add_bytes(5);
  stats.add_bytes(0);
  stats.add_bytes(7);
  EXPECT_EQ(stats.connections.load(), 2u);
  EXPECT_EQ(stats.bytes.load(), 12u);
}

TEST(Stats, CountsExactlyFromManyThreads) {
  echo::Stats stats;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&stats] {
      for (int i = 0; i < 10000; ++i) {
        stats.add_connection();
        stats.add_bytes(3);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(stats.connections.load(), 40000u);
  EXPECT_EQ(stats.bytes.load(), 120000u);
}

TEST(PrintSummary, PrintsOneLineOnStdout) {
  echo::Stats stats;
  EXPECT_EQ(capture_fd(1, [&] { echo::print_summary(stats); }),
            "summary: served 0 connections, echoed 0 bytes\n");
  stats.add_connection();
  stats.add_connection();
  stats.add_connection();
  stats.add_bytes(12345);
  EXPECT_EQ(capture_fd(1, [&] { echo::print_summary(stats); }),
            "summary: served 3 connections, echoed 12345 bytes\n");
  stats.bytes = std::numeric_limits<std::uint64_t>::max();
  EXPECT_EQ(capture_fd(1, [&] { echo::print_summary(stats); }),
            "summary: served 3 connections, echoed 18446744073709551615 bytes\n");
}

// ---- Stop requests: process-global, so these stay last ---------------------------

// A connected pair of stream sockets, closed when the test ends.
struct SocketPair {
  SocketPair() {
    int fds[2] = {-1, -1};
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0) {
      a.reset(fds[0]);
      b.reset(fds[1]);
    }
  }
  echo::Fd a;
  echo::Fd b;
};

// True when `fd` reports readable (data or EOF) within `timeout_ms`.
bool readable_within(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

class StopTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { echo::install_signal_handlers(); }
};

TEST_F(StopTest, SignalHandlersAreInstalledAndTheStopFdIsAnEventFd) {
  const int fd = echo::stop_fd();
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(::fcntl(fd, F_GETFL) & O_NONBLOCK);
  EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC);
  // Installing twice keeps the same stop fd (stages may call it once each).
  echo::install_signal_handlers();
  EXPECT_EQ(echo::stop_fd(), fd);

  struct sigaction action {};
  ASSERT_EQ(::sigaction(SIGPIPE, nullptr, &action), 0);
  EXPECT_EQ(action.sa_handler, SIG_IGN);
  for (int sig : {SIGINT, SIGTERM}) {
    ASSERT_EQ(::sigaction(sig, nullptr, &action), 0);
    EXPECT_NE(action.sa_handler, SIG_DFL) << sig;
    EXPECT_NE(action.sa_handler, SIG_IGN) << sig;
    EXPECT_FALSE(action.sa_flags & SA_RESTART) << "blocked calls must see EINTR";
  }
}

TEST_F(StopTest, TheWakeTableHoldsEightFdsThenReportsFull) {
  std::vector<SocketPair> pairs(echo::kMaxWakeFds + 1);
  for (int i = 0; i < echo::kMaxWakeFds; ++i) {
    ASSERT_TRUE(pairs[i].a.valid());
    EXPECT_TRUE(echo::shutdown_on_stop(pairs[i].a.get())) << i;
  }
  const int extra = pairs[echo::kMaxWakeFds].a.get();
  EXPECT_FALSE(echo::shutdown_on_stop(extra));
  // Forgetting one frees its slot for the next.
  echo::forget_on_stop(pairs[3].a.get());
  EXPECT_TRUE(echo::shutdown_on_stop(extra));
  EXPECT_FALSE(echo::shutdown_on_stop(pairs[3].a.get()));
  for (SocketPair& p : pairs) echo::forget_on_stop(p.a.get());
  // Forgetting an fd that is not there is harmless, and the table is empty again.
  echo::forget_on_stop(12345);
  for (int i = 0; i < echo::kMaxWakeFds; ++i) {
    EXPECT_TRUE(echo::shutdown_on_stop(pairs[i].a.get())) << i;
  }
  for (SocketPair& p : pairs) echo::forget_on_stop(p.a.get());
}

TEST_F(StopTest, BeforeAStopTheStopFdIsNotReadable) {
  if (echo::stop_requested()) GTEST_SKIP() << "a stop was already requested (shuffled)";
  EXPECT_FALSE(readable_within(echo::stop_fd(), 0));
}

TEST_F(StopTest, RequestStopWakesTheStopFdAndShutsDownRegisteredSockets) {
  SocketPair watched;
  SocketPair forgotten;
  ASSERT_TRUE(watched.a.valid());
  ASSERT_TRUE(forgotten.a.valid());
  // A blocked read must return 0 (EOF) promptly once the stop arrives. The
  // receive timeout only keeps a broken stop from hanging the test.
  timeval two_seconds{2, 0};
  ASSERT_EQ(::setsockopt(watched.a.get(), SOL_SOCKET, SO_RCVTIMEO, &two_seconds,
                         sizeof two_seconds),
            0);
  // Registering after a stop shuts a socket down at once, so the forgotten
  // socket can only be checked in the first stop of the process (the usual
  // order; shuffled or repeated runs still check everything else).
  const bool first_stop = !echo::stop_requested();
  ASSERT_TRUE(echo::shutdown_on_stop(watched.a.get()));
  if (first_stop) {
    ASSERT_TRUE(echo::shutdown_on_stop(forgotten.a.get()));
    echo::forget_on_stop(forgotten.a.get());
  }

  std::atomic<ssize_t> read_result{-2};
  std::atomic<int> read_errno{0};
  const auto start = std::chrono::steady_clock::now();
  std::thread reader([&] {
    char byte;
    ssize_t n;
    do {
      n = ::read(watched.a.get(), &byte, 1);
    } while (n < 0 && errno == EINTR);
    read_errno = errno;
    read_result = n;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let it block
  echo::request_stop();
  reader.join();
  const auto elapsed = std::chrono::steady_clock::now() - start;
  echo::forget_on_stop(watched.a.get());

  EXPECT_EQ(read_result.load(), 0) << std::strerror(read_errno.load());
  EXPECT_LT(elapsed, std::chrono::seconds(1));
  EXPECT_TRUE(echo::stop_requested());
  EXPECT_TRUE(readable_within(echo::stop_fd(), 1000));

  if (!first_stop) return;
  // The forgotten socket was left alone: it still carries data both ways.
  EXPECT_FALSE(readable_within(forgotten.a.get(), 0));
  ASSERT_EQ(::write(forgotten.a.get(), "x", 1), 1);
  ASSERT_EQ(::write(forgotten.b.get(), "y", 1), 1);
  char byte = 0;
  EXPECT_EQ(::read(forgotten.b.get(), &byte, 1), 1);
  EXPECT_EQ(byte, 'x');
  EXPECT_EQ(::read(forgotten.a.get(), &byte, 1), 1);
  EXPECT_EQ(byte, 'y');
}

TEST_F(StopTest, TheStopFdStaysReadableAndCountsStops) {
  echo::request_stop();
  EXPECT_TRUE(readable_within(echo::stop_fd(), 1000));
  EXPECT_TRUE(readable_within(echo::stop_fd(), 0));  // polling does not consume it
  std::uint64_t count = 0;
  ASSERT_EQ(::read(echo::stop_fd(), &count, sizeof count),
            static_cast<ssize_t>(sizeof count));
  EXPECT_GE(count, 1u);
  // Reading consumed the counter; the next stop makes it readable again.
  EXPECT_FALSE(readable_within(echo::stop_fd(), 0));
  echo::request_stop();
  EXPECT_TRUE(readable_within(echo::stop_fd(), 1000));
}

TEST_F(StopTest, RegisteringAfterAStopShutsTheSocketDownAtOnce) {
  echo::request_stop();
  SocketPair late;
  ASSERT_TRUE(late.a.valid());
  ASSERT_TRUE(echo::shutdown_on_stop(late.a.get()));
  echo::forget_on_stop(late.a.get());
  EXPECT_TRUE(readable_within(late.a.get(), 1000));
  char byte;
  EXPECT_EQ(::read(late.a.get(), &byte, 1), 0);
}

// Earlier tests of this process have requested a stop already, which would make
// every check below true before the signal. So each signal is raised in a fresh
// process (a "threadsafe" death test re-runs the test binary), where nothing
// has been requested yet; the child's exit code says which check failed.
TEST(StopSignalDeathTest, SigintAndSigtermRequestAStopInsteadOfKillingTheProcess) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  for (int sig : {SIGINT, SIGTERM}) {
    EXPECT_EXIT(
        {
          echo::install_signal_handlers();
          SocketPair watched;
          int failed = 0;
          if (!watched.a.valid() || !echo::shutdown_on_stop(watched.a.get()))
            failed = 10;
          if (echo::stop_requested() || readable_within(echo::stop_fd(), 0) ||
              readable_within(watched.a.get(), 0)) {
            failed = 11;  // a stop before the signal: the checks below prove nothing
          }
          ::raise(sig);  // the handler runs before raise() returns
          if (!echo::stop_requested()) failed = 12;
          if (!readable_within(echo::stop_fd(), 1000)) failed = 13;
          echo::forget_on_stop(watched.a.get());
          if (!readable_within(watched.a.get(), 1000)) failed = 14;
          errno = 0;
          if (::send(watched.a.get(), "x", 1, MSG_NOSIGNAL) != -1 || errno != EPIPE) {
            failed = 15;
          }
          std::_Exit(failed);
        },
        ::testing::ExitedWithCode(0), "")
        << "signal " << sig;
  }
}

TEST_F(StopTest, AWriteToAClosedPeerIsAnErrorNotSigpipe) {
  SocketPair pair;
  ASSERT_TRUE(pair.a.valid());
  pair.b.reset();
  errno = 0;
  // No MSG_NOSIGNAL: only the ignored SIGPIPE keeps this process alive.
  EXPECT_EQ(::write(pair.a.get(), "x", 1), -1);
  EXPECT_EQ(errno, EPIPE);
}

}  // namespace
