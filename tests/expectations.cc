#include "tests/expectations.h"

#include <map>

namespace echo::testing {

const std::vector<std::string_view>& all_stages() {
  static const std::vector<std::string_view> kStages = {
      "00_blocking", "01_threads",   "02_poll",
      "03_epoll_lt", "04_epoll_mod", "05_epoll_et",
  };
  return kStages;
}

const std::vector<Limitation>& limitations() {
  static const std::vector<Limitation> kLimitations = {
      {"00_blocking", "Concurrency.TwoClientsAreServedAtOnce",
       "one client at a time: the second waits until the first leaves (fixed in "
       "01_threads)"},
      {"00_blocking", "Concurrency.TwoHundredConcurrentClientsAreAllEchoed",
       "one client at a time: only the first of 200 connected clients is served"},
      {"00_blocking", "Concurrency.AThousandClientsConnectedAtOnceEachGetAnEcho",
       "one client at a time: only the first of 1,000 connected clients is served"},
      {"00_blocking", "Concurrency.AnIdleClientDoesNotDelayOthers",
       "one client at a time: a client that sends nothing blocks everyone behind it"},
      {"00_blocking", "Exhaustion.ClientThatNeverReadsCannotGrowServerMemory",
       "one client at a time: while it is blocked writing to a client that never "
       "reads, "
       "nobody else is served (memory stays bounded)"},
      {"00_blocking", "Hostile.IdleAndDripFeedingClientsDoNotDelayAFreshClient",
       "one client at a time: the first idle client holds everyone else up"},
      {"00_blocking", "Hostile.AFastStreamerDoesNotStarveAPingPongClient",
       "one client at a time: a streaming client holds everyone else up"},
      {"00_blocking",
       "FaultInjection.FailedAcceptIsRetriedWhileAnotherClientKeepsTheServerBusy",
       "one client at a time: the busy client holds everyone else up (the failed "
       "accept is retried once it leaves)"},
      {"00_blocking", "Trace.TraceShowsReadinessEvents",
       "no event loop: blocking calls, nothing to trace but accept and close"},
      {"01_threads", "Trace.TraceShowsReadinessEvents",
       "no event loop: each thread blocks in read(), nothing to trace but accept and "
       "close"},
  };
  return kLimitations;
}

const std::vector<Limitation>& inapplicable() {
  static const std::string_view kNoEpoll =
      "no epoll, so no epoll_ctl to fail: the test checks that none is made and "
      "every client is echoed";
  static const std::vector<Limitation> kInapplicable = {
      {"00_blocking", "FaultInjection.FailedEpollCtlDropsOnlyThatConnection", kNoEpoll},
      {"01_threads", "FaultInjection.FailedEpollCtlDropsOnlyThatConnection", kNoEpoll},
      {"02_poll", "FaultInjection.FailedEpollCtlDropsOnlyThatConnection", kNoEpoll},
      {"00_blocking", "Exhaustion.OutOfFdsKeepsServingWithoutSpinningAndRecovers",
       "one connection at a time never runs out of 32 fds: the test checks that it "
       "serves and does not spin while 100 clients wait"},
      {"00_blocking", "Defects.AllocationFailureClosesOnlyThatClient",
       "00 allocates its one buffer at start-up, so no allocation is left to fail: "
       "the test checks that clients are served and nothing is read into a null "
       "buffer"},
  };
  return kInapplicable;
}

namespace {
const Limitation* find_in(const std::vector<Limitation>& list, std::string_view stage,
                          std::string_view test) {
  for (const Limitation& l : list) {
    if (l.stage == stage && l.test == test) return &l;
  }
  return nullptr;
}
}  // namespace

const Limitation* find_limitation(std::string_view stage, std::string_view test) {
  return find_in(limitations(), stage, test);
}

const Limitation* find_inapplicable(std::string_view stage, std::string_view test) {
  return find_in(inapplicable(), stage, test);
}

int epoll_ctl_per_message(std::string_view stage) {
  if (stage == "03_epoll_lt") return 4;
  if (stage == "04_epoll_mod") return 2;
  return 0;
}

std::string markdown_table(const std::vector<std::string>& tests) {
  std::string out = "| test |";
  for (auto stage : all_stages()) out += " " + std::string(stage.substr(0, 2)) + " |";
  out += "\n|---|";
  for (std::size_t i = 0; i < all_stages().size(); ++i) out += ":-:|";
  out += "\n";
  std::map<std::string, int> note_numbers;
  std::string notes;
  for (const std::string& test : tests) {
    out += "| `" + test + "` |";
    for (auto stage : all_stages()) {
      const Limitation* l = find_limitation(stage, test);
      const Limitation* na = find_inapplicable(stage, test);
      if (l == nullptr && na == nullptr &&
          test == "Trace.EpollCtlCallsPerEchoedMessageMatchTheDesign") {
        out += " pass: " + std::to_string(epoll_ctl_per_message(stage)) + " |";
        continue;
      }
      if (l == nullptr && na == nullptr) {
        out += " pass |";
        continue;
      }
      std::string why(l != nullptr ? l->why : na->why);
      auto [it, added] =
          note_numbers.emplace(why, static_cast<int>(note_numbers.size()) + 1);
      if (added) notes += std::to_string(it->second) + ". " + why + "\n";
      out += std::string(l != nullptr ? " limit " : " n/a ") +
             std::to_string(it->second) + " |";
    }
    out += "\n";
  }
  out +=
      "\n'pass': the stage passes the test. 'limit N': the stage cannot do this by\n"
      "design; the test runs anyway and asserts the limitation (note N). 'n/a N':\n"
      "the stage never meets the test's situation by design; the test runs anyway\n"
      "and checks what it can (note N):\n\n" +
      notes;
  return out;
}

}  // namespace echo::testing
