// The fixture every test of the shared suite uses, and small assertions.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>

#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/expectations.h"
#include "tests/harness.h"

namespace echo::testing {

// Starts the stage's server on a free port and, at the end of every test,
// stops it with SIGTERM and checks that it exited 0 and reported nothing from
// a sanitizer. A server that ended during the test without the test stopping
// or awaiting it (a crash) fails the test.
class StageTest : public ::testing::Test {
 protected:
  ServerProcess& start(std::vector<std::string> args = {}, const Launch& launch = {}) {
    server_ = ServerProcess::start_on_free_port(std::move(args), launch);
    if (!server_) throw std::runtime_error("server did not start");
    return *server_;
  }

  void TearDown() override {
    if (!IsSkipped() && !HasFailure()) {
      // A table entry the test never consults would show a result it never checked.
      const std::string test = current_test();
      EXPECT_TRUE(asked_limit_ || find_limitation(stage_name(), test) == nullptr)
          << test << " is listed as a limitation of " << stage_name()
          << " but never asks is_limited()";
      EXPECT_TRUE(asked_inapplicable_ ||
                  find_inapplicable(stage_name(), test) == nullptr)
          << test << " is listed as n/a for " << stage_name()
          << " but never asks is_inapplicable()";
    }
    if (!server_) return;
    if (server_->running()) {
      ExitStatus st = server_->stop(SIGTERM);
      EXPECT_TRUE(st.exited && st.code == 0)
          << "after SIGTERM the server " << st.describe() << "; stderr:\n"
          << tail(server_->stderr_text());
    } else if (!server_->waited()) {
      const ExitStatus st = server_->wait(Clock::duration::zero());
      ADD_FAILURE() << "the server ended during the test, unasked: it " << st.describe()
                    << "; stderr:\n"
                    << tail(server_->stderr_text());
    }
    const std::string err = server_->stderr_text();
    EXPECT_EQ(err.find("Sanitizer"), std::string::npos) << tail(err);
    EXPECT_EQ(err.find("runtime error:"), std::string::npos) << tail(err);
  }

  // The stage's design limit for the running test, or nullptr.
  const Limitation* is_limited() {
    asked_limit_ = true;
    const Limitation* l = find_limitation(stage_name(), current_test());
    if (l != nullptr) {
      ::testing::Test::RecordProperty("expected_limitation", std::string(l->why));
      std::cout << "[  LIMIT   ] " << stage_name() << " by design: " << l->why
                << " (asserting the limitation)\n";
    }
    return l;
  }

  // Whether the running test's situation never arises for this stage, by design
  // (see inapplicable()): the test then checks what it can instead.
  const Limitation* is_inapplicable() {
    asked_inapplicable_ = true;
    const Limitation* l = find_inapplicable(stage_name(), current_test());
    if (l != nullptr) {
      ::testing::Test::RecordProperty("not_applicable", std::string(l->why));
      std::cout << "[   N/A    ] " << stage_name() << " by design: " << l->why << "\n";
    }
    return l;
  }

  static std::string current_test() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    return std::string(info->test_suite_name()) + "." + info->name();
  }

  static std::string tail(const std::string& text, std::size_t n = 4000) {
    return text.size() <= n ? text : "..." + text.substr(text.size() - n);
  }

  std::unique_ptr<ServerProcess> server_;
  bool asked_limit_ = false;
  bool asked_inapplicable_ = false;
};

// Echoes `payload` on `fd` and checks it came back byte for byte.
inline void expect_echo(int fd, const std::string& payload) {
  std::string got = echo_concurrently(fd, payload);
  EXPECT_TRUE(got == payload) << payload.size()
                              << "-byte echo: " << first_difference(payload, got);
}

}  // namespace echo::testing
