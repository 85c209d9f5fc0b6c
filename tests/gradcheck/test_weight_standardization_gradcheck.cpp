// Gradient checks of weight_standardization (engine/ops/weight_standardization.h), one
// weight and a list, on the CPU kernels in float64 (kernels/cpu/weight_standardization.h
// lists the family's files).
#include <catch2/catch.hpp>

#include "engine/ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

namespace {

// Weight standardisation is a smooth composition of sums, a square root and a division on
// O(1) values (var + eps ~ 1): truncation ~ f''' eps^2 ~ 1e-12, rounding ~ 1e-16 |L| / eps ~ 1e-9.
constexpr GradcheckTolerance kSmooth{.eps = 1e-6, .atol = 1e-7, .rtol = 1e-5};

}  // namespace

TEST_CASE("weight_standardization", "[gradcheck]") {
  Generator gen = generator_for("weight_standardization");
  for (const Shape& shape : {Shape{4, 3, 3, 3}, Shape{3, 5}, Shape{2, 6, 1, 1}}) {
    INFO("weight " << shape_string(shape));
    Tensor w = leaf(random_normal(shape, gen));
    VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return weight_standardization(in[0]); }, w);
    VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return weight_standardization(in[0], 0.1); }, w);
  }
}

TEST_CASE("weight_standardization over a list", "[gradcheck]") {
  Generator gen = generator_for("weight_standardization over a list");
  Tensor a = leaf(random_normal({4, 2, 3, 3}, gen)), b = leaf(random_normal({3, 4, 1, 1}, gen));
  Tensor c = leaf(random_normal({2, 5}, gen));
  // All outputs in one tensor, so the projection L = sum(y * r) reaches each of them.
  VISREP_CHECK_GRADIENTS(
      kSmooth,
      [](const TensorList& in) {
        const std::vector<Tensor> out = weight_standardization(std::vector<Tensor>{in[0], in[1], in[2]}, 1e-8);
        return concat({out[0].flatten(), out[1].flatten(), out[2].flatten()});
      },
      a, b, c);
  // An output used twice and another through a further op: the gathered gradients are sums.
  VISREP_CHECK_GRADIENTS(
      kSmooth,
      [](const TensorList& in) {
        const std::vector<Tensor> out = weight_standardization(std::vector<Tensor>{in[0], in[1]});
        return concat({mul(out[0], out[0]).flatten(), out[0].flatten(), exp(out[1]).flatten()});
      },
      a, b);
}
