// Gradient checks of the Tensor's own differentiable methods (engine/tensor.h): the view
// ops, clone and dtype round trips (the copy kernels, kernels/cpu/copy.h, list the family's
// files). These are linear maps, so any error is a routing error (a gradient landing on
// the wrong element, dropped, or counted twice), which the random projection exposes.
#include <catch2/catch.hpp>

#include "engine/ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

namespace {

// Linear maps: the central difference is exact up to rounding (~1e-10 here).
constexpr GradcheckTolerance kLinear{.eps = 1e-6, .atol = 1e-7, .rtol = 1e-5};

}  // namespace

TEST_CASE("reshape", "[gradcheck]") {
  Generator gen = generator_for("reshape");
  Tensor x = leaf(random_normal({2, 3, 4}, gen));
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return in[0].reshape({4, -1}); }, x);
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return in[0].view({6, 4}); }, x);
  // Non-contiguous: reshape copies, and the gradient must still reach the right elements.
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return in[0].transpose(0, 2).reshape({-1, 6}); }, x);
}

TEST_CASE("permute", "[gradcheck]") {
  Generator gen = generator_for("permute");
  Tensor x = leaf(random_normal({2, 3, 4}, gen));
  for (const std::vector<int64_t>& order : {std::vector<int64_t>{2, 0, 1}, {1, 2, 0}, {0, 2, 1}, {-1, -3, -2}}) {
    INFO("order " << shape_string(order));
    VISREP_CHECK_GRADIENTS(kLinear, [&](const TensorList& in) { return in[0].permute(order); }, x);
  }
  // A permute of a permute (the composed inverse must come back).
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return in[0].permute({2, 0, 1}).permute({2, 0, 1}); }, x);
}

TEST_CASE("transpose", "[gradcheck]") {
  Generator gen = generator_for("transpose");
  Tensor x = leaf(random_normal({2, 3, 4}, gen));
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return in[0].transpose(0, 2); }, x);
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return in[0].transpose(-1, 1); }, x);
  Tensor m = leaf(random_normal({3, 5}, gen));
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return in[0].t(); }, m);
}

TEST_CASE("slice", "[gradcheck]") {
  Generator gen = generator_for("slice");
  Tensor x = leaf(random_normal({5, 7}, gen));
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return in[0].slice(0, 1, 4); }, x);
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return in[0].slice(1, 0, 7, 3); }, x);
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return in[0].slice(1, -5, -1, 2); }, x);
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return in[0].slice(0, 1, 100, 2).slice(1, 2, 6, 2); }, x);
}

TEST_CASE("select", "[gradcheck]") {
  Generator gen = generator_for("select");
  Tensor x = leaf(random_normal({3, 4, 2}, gen));
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return in[0].select(1, 2); }, x);
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return in[0].select(0, -1); }, x);
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return in[0].select(-1, 0).select(0, 1); }, x);
}

TEST_CASE("narrow", "[gradcheck]") {
  Generator gen = generator_for("narrow");
  Tensor x = leaf(random_normal({3, 6}, gen));
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return in[0].narrow(1, 2, 3); }, x);
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return in[0].narrow(0, 0, 1); }, x);
}

TEST_CASE("expand", "[gradcheck]") {
  Generator gen = generator_for("expand");
  Tensor x = leaf(random_normal({3, 1}, gen));
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return in[0].expand({3, 4}); }, x);
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return in[0].expand({2, -1, 5}); }, x);
  // An expanded view used in arithmetic, then contiguous (a copy of the broadcast).
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return mul(in[0].expand({3, 4}), 2.0).contiguous(); }, x);
}

TEST_CASE("squeeze unsqueeze", "[gradcheck]") {
  Generator gen = generator_for("squeeze unsqueeze");
  Tensor x = leaf(random_normal({3, 1, 4}, gen));
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return in[0].squeeze(1); }, x);
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return in[0].squeeze(-2).unsqueeze(0); }, x);
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return in[0].unsqueeze(3); }, x);
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return in[0].transpose(0, 2).unsqueeze(1); }, x);
}

TEST_CASE("flatten", "[gradcheck]") {
  Generator gen = generator_for("flatten");
  Tensor x = leaf(random_normal({2, 3, 4}, gen));
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return in[0].flatten(); }, x);
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return in[0].flatten(1); }, x);
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return in[0].permute({2, 1, 0}).flatten(0, 1); }, x);
}

TEST_CASE("clone", "[gradcheck]") {
  Generator gen = generator_for("clone");
  Tensor x = leaf(random_normal({3, 4}, gen));
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return in[0].clone(); }, x);
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return in[0].t().clone(); }, x);
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return in[0].t().contiguous(); }, x);
}

TEST_CASE("to dtype round trip", "[gradcheck]") {
  // float64 -> float32 -> float64 rounds each value to float32 (relative 6e-8), so the step
  // must dwarf that rounding: with eps = 1e-2 a difference quotient is off by at most
  // ~2 * 6e-8 * |x| / (2 eps) ~ 1e-5 |x| per unit of the projection, under atol = 1e-4.
  const GradcheckTolerance tolerance{.eps = 1e-2, .atol = 1e-4, .rtol = 1e-4};
  Generator gen = generator_for("to dtype round trip");
  Tensor x = leaf(random_normal({3, 4}, gen));
  VISREP_CHECK_GRADIENTS(tolerance, [](const TensorList& in) { return mul(in[0].to(kFloat32), 3.0).to(kFloat64); }, x);
}
