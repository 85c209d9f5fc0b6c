// Gradient checks of group_norm (engine/ops/group_norm.h) on the CPU kernels in float64
// (kernels/cpu/group_norm.h lists the family's files).
#include <catch2/catch.hpp>

#include "engine/ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

namespace {

// Group normalisation is a smooth composition of sums, a square root and a division on
// O(1) values (var + eps ~ 1): truncation ~ f''' eps^2 ~ 1e-12, rounding ~ 1e-16 |L| / eps ~ 1e-9.
constexpr GradcheckTolerance kSmooth{.eps = 1e-6, .atol = 1e-7, .rtol = 1e-5};

}  // namespace

TEST_CASE("group_norm affine", "[gradcheck]") {
  Generator gen = generator_for("group_norm affine");
  for (const auto& [shape, groups] : std::vector<std::pair<Shape, int64_t>>{
           {{2, 6, 3, 2}, 3}, {{3, 4}, 2}, {{2, 4, 2, 2, 2}, 1}, {{1, 4, 1, 1}, 2}}) {
    INFO("input " << shape_string(shape) << ", " << groups << " groups");
    const int64_t channels = shape[1];
    Tensor x = leaf(random_normal(shape, gen));
    Tensor gamma = leaf(random_uniform({channels}, 0.5, 1.5, gen)), beta = leaf(random_normal({channels}, gen));
    VISREP_CHECK_GRADIENTS(
        kSmooth, [groups](const TensorList& in) { return group_norm(in[0], groups, in[1], in[2]); }, x, gamma, beta);
  }
}

TEST_CASE("group_norm without affine", "[gradcheck]") {
  Generator gen = generator_for("group_norm without affine");
  Tensor x = leaf(random_normal({2, 6, 2, 3}, gen));
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return group_norm(in[0], 2); }, x);
  // gamma only: the gradient of beta is not asked for.
  Tensor gamma = leaf(random_normal({6}, gen));
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return group_norm(in[0], 3, in[1], Tensor()); }, x,
                         gamma);
}

TEST_CASE("group_norm with fused relu", "[gradcheck]") {
  Generator gen = generator_for("group_norm with fused relu");
  // beta near 0 so that about half of the outputs are clipped; the harness skips any element
  // whose nudge crosses the kink at 0 (none is expected at these sizes).
  Tensor x = leaf(random_normal({2, 6, 3, 3}, gen));
  Tensor gamma = leaf(random_uniform({6}, 0.5, 1.5, gen)), beta = leaf(random_uniform({6}, -0.3, 0.3, gen));
  VISREP_CHECK_GRADIENTS(
      kSmooth, [](const TensorList& in) { return group_norm(in[0], 3, in[1], in[2], 1e-5, true); }, x, gamma, beta);
  VISREP_CHECK_GRADIENTS(
      kSmooth, [](const TensorList& in) { return group_norm(in[0], 2, Tensor(), Tensor(), 1e-3, true); }, x);
}

TEST_CASE("group_norm with a large eps", "[gradcheck]") {
  // eps comparable to the variance: the eps term in 1 / sqrt(var + eps) matters.
  Generator gen = generator_for("group_norm with a large eps");
  Tensor x = leaf(mul(random_normal({2, 4, 3}, gen), 0.5));
  Tensor gamma = leaf(random_normal({4}, gen)), beta = leaf(random_normal({4}, gen));
  VISREP_CHECK_GRADIENTS(
      kSmooth, [](const TensorList& in) { return group_norm(in[0], 2, in[1], in[2], 0.5); }, x, gamma, beta);
}
