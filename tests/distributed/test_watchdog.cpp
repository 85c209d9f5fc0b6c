// The watchdog on its own, with a give_up that records instead of exiting. Deadlines are
// short; every wait for the watchdog is bounded (10 s) and only the lower bound of a wait
// is ever relied on (a loaded machine can only make the watchdog later, never earlier).
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/distributed/watchdog.h"

namespace visrep::distributed::test {
namespace {

using Catch::Contains;
using namespace std::chrono_literals;

struct Recorder {
  std::mutex mutex;
  std::vector<std::string> messages;
  std::atomic<int> aborts{0};
  std::vector<int> aborts_seen_by_give_up;

  Watchdog::GiveUp give_up() {
    return [this](const std::string& message) {
      std::lock_guard lock(mutex);
      messages.push_back(message);
      aborts_seen_by_give_up.push_back(aborts.load());
    };
  }
  size_t count() {
    std::lock_guard lock(mutex);
    return messages.size();
  }
  // Waits up to 10 s for `n` messages.
  bool wait_for(size_t n) {
    for (int i = 0; i < 1000 && count() < n; ++i) std::this_thread::sleep_for(10ms);
    return count() >= n;
  }
};

}  // namespace

TEST_CASE("watchdog: a blocking call past the deadline gives up once, naming the rank and the call", "[watchdog]") {
  Recorder recorder;
  Watchdog watchdog(0.1, "rank 2 of 3", recorder.give_up());
  {
    Watchdog::Scope scope = watchdog.watch("all_reduce (sum) of 8 float32 elements, call 4 on cpu");
    REQUIRE(recorder.wait_for(1));
    std::this_thread::sleep_for(300ms);  // still inside the scope: no second message
  }
  REQUIRE(recorder.count() == 1);
  CHECK_THAT(recorder.messages[0], Contains("rank 2 of 3: all_reduce (sum) of 8 float32 elements, call 4 on cpu "
                                            "has waited") &&
                                       Contains("for the other ranks"));
}

TEST_CASE("watchdog: calls that end before the deadline are left alone", "[watchdog]") {
  Recorder recorder;
  Watchdog watchdog(1.0, "rank 0 of 2", recorder.give_up());
  for (int i = 0; i < 100; ++i) Watchdog::Scope scope = watchdog.watch("barrier");
  std::this_thread::sleep_for(1500ms);  // past the deadline of every one of them
  CHECK(recorder.count() == 0);
}

TEST_CASE("watchdog: queued GPU work is polled until done, or given up on at the deadline", "[watchdog]") {
  Recorder recorder;
  Watchdog watchdog(1.0, "rank 1 of 2", recorder.give_up());
  std::atomic<bool> first_done{false};
  watchdog.track("all_gather of 4 float32 elements, call 0 on cuda:0", [&] { return first_done.load(); });
  watchdog.track("broadcast from rank 0 of 4 float32 elements, call 1 on cuda:0", [] { return false; });
  CHECK(watchdog.tracked() == 2);
  first_done = true;
  REQUIRE(recorder.wait_for(1));
  CHECK_THAT(recorder.messages[0], Contains("rank 1 of 2: broadcast from rank 0 of 4 float32 elements, call 1 on "
                                            "cuda:0 was queued on the GPU") &&
                                       Contains("has not completed"));
  CHECK(watchdog.tracked() == 0);
}

TEST_CASE("watchdog: a device transport's asynchronous failure aborts it, then gives up", "[watchdog]") {
  Recorder recorder;
  Watchdog watchdog(600, "rank 0 of 4", recorder.give_up());
  std::atomic<bool> failed{false};
  watchdog.set_transport(
      [&] {
        return failed ? std::string(
                            "NCCL reported an asynchronous error on cuda:0: "
                            "remote process exited or there was a network error")
                      : std::string();
      },
      [&] { ++recorder.aborts; });
  watchdog.track("all_reduce (sum) of 1024 float32 elements, call 9 on cuda:0", [] { return false; });
  std::this_thread::sleep_for(200ms);
  CHECK(recorder.count() == 0);  // healthy: polled, nothing said
  failed = true;
  REQUIRE(recorder.wait_for(1));
  CHECK_THAT(recorder.messages[0], Contains("rank 0 of 4: NCCL reported an asynchronous error on cuda:0") &&
                                       Contains("(while all_reduce (sum) of 1024 float32 elements, call 9 on cuda:0 "
                                                "was queued)"));
  CHECK(recorder.aborts_seen_by_give_up[0] == 1);  // the transport was aborted before giving up
  watchdog.clear_transport();
}

}  // namespace visrep::distributed::test
