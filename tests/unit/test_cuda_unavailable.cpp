// Asking for the GPU on a machine without one must fail at once with a visrep::Error that
// names the device and says why, whichever way the tensor was to get there: a factory,
// a copy with .to(), or a random draw made directly on the device.
#include <catch2/catch.hpp>

#include <functional>
#include <string>
#include <vector>

#include "engine/ops.h"

using namespace visrep;
using Catch::Matchers::Contains;

namespace {

// The part of the message that says why: the backend is there but no device is usable, or
// the build has no backend at all.
std::string expected_reason() {
  return cuda_built() ? "no CUDA device is usable" : "built without the CUDA backend";
}

void require_refused(const std::function<void()>& make) {
  REQUIRE_THROWS_MATCHES(make(), Error, Catch::Matchers::Predicate<Error>([](const Error& error) {
                           const std::string message = error.what();
                           return message.find("cuda:0") != std::string::npos &&
                                  message.find(expected_reason()) != std::string::npos;
                         }, "an error naming cuda:0 and saying '" + expected_reason() + "'"));
}

}  // namespace

TEST_CASE("cuda tensors are refused clearly without a usable GPU", "[unit]") {
  if (cuda_available()) {
    SUCCEED("a CUDA device is usable here; the missing-GPU path cannot be exercised on this machine");
    return;
  }
  require_refused([] { empty({2, 3}, Device::cuda()); });
  require_refused([] { zeros({4}, Device::cuda()); });
  require_refused([] { full({2}, 1.5, TensorOptions(kFloat64, Device::cuda())); });
  require_refused([] { scalar_tensor(2.0, Device::cuda()); });
  require_refused([] { from_vector<float>({1, 2, 3}).to(Device::cuda()); });
  require_refused([] { rand({8}, Device::cuda()); });
  require_refused([] { randn({8}, Device::cuda()); });
  require_refused([] { randint(0, 10, {8}, TensorOptions(kInt64, Device::cuda())); });
  require_refused([] { permutation(8, Device::cuda()); });
}

TEST_CASE("a refused cuda draw does not advance the generator", "[unit]") {
  if (cuda_available()) {
    SUCCEED("a CUDA device is usable here; the missing-GPU path cannot be exercised on this machine");
    return;
  }
  Generator generator(7);
  REQUIRE_THROWS_AS(rand({4}, Device::cuda(), generator), Error);
  CHECK(generator.stream() == 0);
}
