// The host's side of the checks CUDA ops defer to the next synchronisation
// (kernels/deferred_error_list.h; the device side, kernels/cuda/deferred_errors.h, runs in
// the parity suite): slots in queue order, the first marked one reported, nothing twice.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "kernels/deferred_error_list.h"

using visrep::kernels::DeferredErrorList;
using visrep::kernels::kNoError;

namespace {

std::vector<long long> clear_slots(size_t count) { return std::vector<long long>(2 * count, kNoError); }

}  // namespace

TEST_CASE("deferred errors: slots in order, the first marked one is reported", "[unit]") {
  DeferredErrorList list;
  CHECK(list.empty());
  std::vector<std::string> asked;
  const auto message = [&asked](std::string op) {
    return [&asked, op](long long position, long long detail) {
      asked.push_back(op);
      return op + ": position " + std::to_string(position) + ", value " + std::to_string(detail);
    };
  };
  CHECK(list.add(message("index_select")) == 0);
  CHECK(list.add(message("nll_loss")) == 1);
  CHECK(list.add(message("one_hot")) == 2);
  CHECK(list.size() == 3);
  std::vector<long long> slots = clear_slots(3);
  slots[2] = 4;  // nll_loss: row 4, target 11
  slots[3] = 11;
  slots[4] = 0;  // one_hot too, queued later: a consequence at most, not reported
  slots[5] = -1;
  CHECK(list.take_first_error(slots.data()) == "nll_loss: position 4, value 11");
  CHECK(asked == std::vector<std::string>{"nll_loss"});  // messages are built only when reported
  CHECK(list.empty());  // taken: the same error is never reported twice

  CHECK(list.add(message("gather")) == 0);  // slots are reused from the start
  CHECK_FALSE(list.take_first_error(clear_slots(1).data()).has_value());
  CHECK(list.empty());
}

TEST_CASE("deferred errors: a full list and an empty one", "[unit]") {
  DeferredErrorList list;
  CHECK_FALSE(list.take_first_error(nullptr).has_value());  // nothing pending reads no slot
  for (size_t i = 0; i < DeferredErrorList::kCapacity; ++i) {
    REQUIRE_FALSE(list.full());
    list.add([](long long, long long) { return std::string("unreachable"); });
  }
  CHECK(list.full());
  CHECK_FALSE(list.take_first_error(clear_slots(DeferredErrorList::kCapacity).data()).has_value());
  CHECK_FALSE(list.full());
  // The clear value is what a byte-wise memset writes (one cudaMemsetAsync clears them all)
  // and lies above every position a tensor can have.
  CHECK(kNoError == 0x7f7f7f7f7f7f7f7fLL);
  CHECK(kNoError > (1LL << 62));
}
