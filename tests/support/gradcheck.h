// Float64 central-difference gradient checks (in the manner of flashlight's jacobian tests
// and dlib's test_layer).
//
// The function's output y is projected onto a fixed random direction r, L = sum(y * r), so
// one backward pass gives dL/dx for every input at once. Each element of each input that
// requires a gradient is then nudged by +-eps and (L(x + eps) - L(x - eps)) / (2 eps)
// compared with the analytic value: |analytic - numeric| <= atol + rtol * |numeric|.
//
// Kink-aware: where the two one-sided slopes (L(x+eps) - L(x)) / eps and
// (L(x) - L(x-eps)) / eps disagree by more than the tolerance, the element sits on a kink
// (relu at 0, a tie in max) and has no derivative to compare; it is skipped and counted.
// Tests draw inputs away from kinks, so more than max_skipped_fraction skipped fails.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/ops.h"

namespace visrep::testing {

struct GradcheckTolerance {
  double eps = 1e-6;   // finite-difference step
  double atol = 1e-7;  // absolute tolerance
  double rtol = 1e-5;  // relative tolerance
  double max_skipped_fraction = 0.02;
};

struct GradcheckResult {
  bool passed = true;
  int64_t checked = 0;
  int64_t skipped = 0;       // elements on a kink
  double worst_error = 0.0;  // largest |analytic - numeric| - (atol + rtol |numeric|) seen (<= 0 passes)
  std::string message;       // what failed, for the test log
};

using DifferentiableFunction = std::function<Tensor(const std::vector<Tensor>&)>;

// Inputs that should be checked must be float64 leaves with requires_grad set; the others
// (indices, labels, constants) are passed through untouched.
GradcheckResult check_gradients(const DifferentiableFunction& function, const std::vector<Tensor>& inputs,
                                const GradcheckTolerance& tolerance = {});

// A leaf that requires a gradient: what the checks differentiate with respect to.
inline Tensor leaf(Tensor tensor) {
  tensor.set_requires_grad();
  return tensor;
}

}  // namespace visrep::testing

// Runs check_gradients inside a Catch2 test and reports the result.
#define VISREP_REQUIRE_GRADIENTS(function, inputs, ...)                                            \
  do {                                                                                              \
    const auto visrep_result = ::visrep::testing::check_gradients(function, inputs, ##__VA_ARGS__); \
    INFO(visrep_result.message);                                                                    \
    INFO("checked " << visrep_result.checked << " elements, skipped " << visrep_result.skipped     \
                    << " on kinks");                                                                \
    REQUIRE(visrep_result.passed);                                                                  \
    REQUIRE(visrep_result.checked > 0);                                                             \
  } while (false)

// VISREP_CHECK_GRADIENTS(tolerance, function, inputs...): the same with the inputs listed.
#define VISREP_CHECK_GRADIENTS(tolerance, function, ...) \
  VISREP_REQUIRE_GRADIENTS(function, (std::vector<::visrep::Tensor>{__VA_ARGS__}), tolerance)
