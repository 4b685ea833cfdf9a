// The expectations table: what each stage cannot do, by design.
//
// A test named here still runs against that stage and asserts the limitation
// (for example, 00_blocking makes a second client wait): an expected failure
// shown, never a silent skip. The README's stage x test table is generated
// from this table (see tests/readme_table_test.sh), so the two cannot drift.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace echo::testing {

// Every stage of the ladder, in order.
const std::vector<std::string_view>& all_stages();

struct Limitation {
  std::string_view stage;  // e.g. "00_blocking"
  std::string_view test;   // "Suite.Name", e.g. "Concurrency.TwoClientsAreServedAtOnce"
  std::string_view why;    // shown in the table's notes
};

const std::vector<Limitation>& limitations();

// The limitation of `stage` for `test`, or nullptr when the stage must pass it.
const Limitation* find_limitation(std::string_view stage, std::string_view test);

// Tests whose situation a stage never meets by design: 00_blocking, holding one
// connection at a time, never runs out of fds; a stage without epoll never sees
// epoll_ctl fail. The test still runs and checks what it can (for example, that
// no epoll_ctl is made and every client is echoed), and the table shows "n/a"
// rather than a "pass" that proves less than its name says. `why` says what
// the test checks instead.
const std::vector<Limitation>& inapplicable();

// The entry of inapplicable() for `stage` and `test`, or nullptr.
const Limitation* find_inapplicable(std::string_view stage, std::string_view test);

// Steady-state epoll_ctl calls per echoed message, by design: 03 DELs and ADDs
// around both the read and the write (4), 04 MODs twice (2), 05 registers once
// (0); the others do not use epoll (0).
int epoll_ctl_per_message(std::string_view stage);

// The stage x test table in Markdown, for the README. `tests` are "Suite.Name".
std::string markdown_table(const std::vector<std::string>& tests);

}  // namespace echo::testing
