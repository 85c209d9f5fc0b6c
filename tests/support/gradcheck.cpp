#include "tests/support/gradcheck.h"

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>

namespace visrep::testing {

GradcheckResult check_gradients(const DifferentiableFunction& function, const std::vector<Tensor>& inputs,
                                const GradcheckTolerance& tolerance) {
  GradcheckResult result;
  for (const Tensor& input : inputs) {
    if (input.requires_grad()) {
      VISREP_CHECK(input.dtype() == kFloat64 && input.is_leaf(),
                   "gradcheck: checked inputs must be float64 leaves, got {}", input.description());
    }
  }

  // Analytic: one backward pass with the projection direction as the seed.
  for (const Tensor& input : inputs) {
    if (input.requires_grad()) input.set_grad(Tensor());
  }
  Tensor output = function(inputs);
  Generator direction_generator(12345);
  const Tensor direction = randn(output.shape(), output.dtype(), direction_generator);
  output.backward(direction);

  // The projected loss at the current input values (no graph).
  auto projected = [&]() {
    NoGradGuard no_grad;
    return sum(mul(function(inputs), direction)).item();
  };

  const double center = projected();
  for (size_t which = 0; which < inputs.size(); ++which) {
    const Tensor& input = inputs[which];
    if (!input.requires_grad()) continue;
    const Tensor analytic_grad = input.grad().defined() ? input.grad().contiguous() : zeros_like(input);
    VISREP_CHECK(input.is_contiguous(), "gradcheck: input {} must be contiguous", which);
    double* values = input.data<double>();
    const double* analytic = analytic_grad.data<double>();
    for (int64_t i = 0; i < input.numel(); ++i) {
      const double original = values[i];
      values[i] = original + tolerance.eps;
      input.storage()->bump_version();
      const double plus = projected();
      values[i] = original - tolerance.eps;
      input.storage()->bump_version();
      const double minus = projected();
      values[i] = original;
      input.storage()->bump_version();

      const double numeric = (plus - minus) / (2.0 * tolerance.eps);
      const double right_slope = (plus - center) / tolerance.eps;
      const double left_slope = (center - minus) / tolerance.eps;
      const double allowed = tolerance.atol + tolerance.rtol * std::abs(numeric);
      // Smooth: the one-sided slopes differ by ~ f'' eps (tiny). A kink: by the jump in slope.
      if (std::abs(right_slope - left_slope) > 1e-3 + 1e-2 * std::abs(numeric)) {
        ++result.skipped;
        continue;
      }
      ++result.checked;
      const double excess = std::abs(analytic[i] - numeric) - allowed;
      if (std::isnan(analytic[i]) != std::isnan(numeric) || excess > 0) {
        if (result.passed) {
          result.message = fmt::format("input {} element {}: analytic {:.10g} vs numeric {:.10g} (allowed {:.3g})",
                                       which, i, analytic[i], numeric, allowed);
        }
        result.passed = false;
      }
      result.worst_error = std::max(result.worst_error, excess);
    }
  }
  const int64_t total = result.checked + result.skipped;
  if (total > 0 && static_cast<double>(result.skipped) > tolerance.max_skipped_fraction * static_cast<double>(total)) {
    result.passed = false;
    result.message += fmt::format(" {} of {} elements sat on kinks (inputs should avoid them)", result.skipped, total);
  }
  return result;
}

}  // namespace visrep::testing
