// Entry point of the shared suite. Each per-stage test target runs this same
// binary with the stage's server:
//
//   echo_suite --server=PATH --stage=NN_name [gtest flags]
//
// With --markdown_table it prints the stage x test table for the README instead.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tests/expectations.h"
#include "tests/harness.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);  // removes the gtest flags it knows

  std::string server;
  std::string stage;
  bool table = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--server=", 9) == 0) {
      server = argv[i] + 9;
    } else if (std::strncmp(argv[i], "--stage=", 8) == 0) {
      stage = argv[i] + 8;
    } else if (std::strncmp(argv[i], "--faultinject=", 14) == 0) {
      char resolved[PATH_MAX];
      if (::realpath(argv[i] + 14, resolved) == nullptr) {
        std::fprintf(stderr, "echo_suite: no fault-injection library at %s\n",
                     argv[i] + 14);
        return 2;
      }
      echo::testing::set_faultinject(resolved);
    } else if (std::strcmp(argv[i], "--soak") == 0) {
      echo::testing::set_soak(true);
    } else if (std::strcmp(argv[i], "--markdown_table") == 0) {
      table = true;
    } else {
      std::fprintf(stderr, "echo_suite: unknown argument '%s'\n", argv[i]);
      return 2;
    }
  }

  if (table) {
    std::vector<std::string> tests;
    auto* unit = ::testing::UnitTest::GetInstance();
    for (int s = 0; s < unit->total_test_suite_count(); ++s) {
      const auto* suite = unit->GetTestSuite(s);
      for (int t = 0; t < suite->total_test_count(); ++t) {
        tests.push_back(std::string(suite->name()) + "." +
                        suite->GetTestInfo(t)->name());
      }
    }
    // An entry that names no test or no stage would silently never apply; one
    // that is both a limitation and n/a would contradict itself.
    int stale = 0;
    auto check = [&](const echo::testing::Limitation& l, const char* kind) {
      bool test_known = false;
      for (const auto& t : tests) test_known = test_known || t == l.test;
      bool stage_known = false;
      for (auto s : echo::testing::all_stages())
        stage_known = stage_known || s == l.stage;
      const bool both = echo::testing::find_limitation(l.stage, l.test) != nullptr &&
                        echo::testing::find_inapplicable(l.stage, l.test) != nullptr;
      if (!test_known || !stage_known || both) {
        std::fprintf(stderr, "echo_suite: %s %s / %.*s / %.*s\n",
                     both ? "contradictory" : "stale", kind,
                     static_cast<int>(l.stage.size()), l.stage.data(),
                     static_cast<int>(l.test.size()), l.test.data());
        ++stale;
      }
    };
    for (const auto& l : echo::testing::limitations()) check(l, "limitation");
    for (const auto& l : echo::testing::inapplicable()) check(l, "n/a entry");
    if (stale != 0) return 1;
    std::fputs(echo::testing::markdown_table(tests).c_str(), stdout);
    return 0;
  }

  if (server.empty() || stage.empty()) {
    std::fprintf(stderr,
                 "usage: echo_suite --server=PATH --stage=NN_name [gtest flags]\n"
                 "       echo_suite --markdown_table\n");
    return 2;
  }
  bool known = false;
  for (auto s : echo::testing::all_stages()) known = known || s == stage;
  if (!known) {
    std::fprintf(stderr, "echo_suite: stage '%s' is not in tests/expectations.cc\n",
                 stage.c_str());
    return 2;
  }

  // The suite itself holds up to a thousand client sockets at once.
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }

  echo::testing::set_server(server, stage);
  return RUN_ALL_TESTS();
}
