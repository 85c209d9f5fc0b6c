// Gradient checks of matmul (every rank combination PyTorch's matmul accepts, broadcast
// batches, transposed and strided operands), linear and normalize (engine/ops/linear_algebra.h;
// kernels/cpu/linear_algebra.h lists the family's files).
#include <catch2/catch.hpp>

#include "engine/ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

namespace {

// Bilinear in the inputs: the central difference is exact up to rounding. Outputs are sums
// of K <= 5 products of O(1) values, so |L| stays ~10 and rounding ~1e-9.
constexpr GradcheckTolerance kBilinear{.eps = 1e-6, .atol = 1e-7, .rtol = 1e-5};
// normalize: a smooth composition of a sum of squares, sqrt and a division on O(1) inputs:
// truncation ~ f''' eps^2 ~ 1e-12, rounding ~ 1e-16 |L| / eps ~ 1e-9.
constexpr GradcheckTolerance kSmooth{.eps = 1e-6, .atol = 1e-7, .rtol = 1e-5};

Tensor product(const TensorList& in) { return matmul(in[0], in[1]); }

}  // namespace

TEST_CASE("matmul 2-D", "[gradcheck]") {
  Generator gen = generator_for("matmul 2-D");
  Tensor a = leaf(random_normal({3, 4}, gen)), b = leaf(random_normal({4, 5}, gen));
  VISREP_CHECK_GRADIENTS(kBilinear, product, a, b);
}

TEST_CASE("matmul batched", "[gradcheck]") {
  Generator gen = generator_for("matmul batched");
  Tensor a = leaf(random_normal({2, 3, 4}, gen)), b = leaf(random_normal({2, 4, 5}, gen));
  VISREP_CHECK_GRADIENTS(kBilinear, product, a, b);
}

TEST_CASE("matmul broadcast batch", "[gradcheck]") {
  Generator gen = generator_for("matmul broadcast batch");
  // (2, 1, 3, 4) @ (3, 4, 2) -> (2, 3, 3, 2): a's batch broadcasts over b's and vice versa.
  Tensor a = leaf(random_normal({2, 1, 3, 4}, gen)), b = leaf(random_normal({3, 4, 2}, gen));
  VISREP_CHECK_GRADIENTS(kBilinear, product, a, b);
  // One matrix against a batch: (3, 4) @ (2, 4, 5) and (2, 3, 4) @ (4, 5).
  Tensor c = leaf(random_normal({3, 4}, gen)), d = leaf(random_normal({2, 4, 5}, gen));
  VISREP_CHECK_GRADIENTS(kBilinear, product, c, d);
  Tensor e = leaf(random_normal({2, 3, 4}, gen)), f = leaf(random_normal({4, 5}, gen));
  VISREP_CHECK_GRADIENTS(kBilinear, product, e, f);
}

TEST_CASE("matmul 1-D operands", "[gradcheck]") {
  Generator gen = generator_for("matmul 1-D operands");
  Tensor u = leaf(random_normal({4}, gen)), v = leaf(random_normal({4}, gen));
  Tensor m = leaf(random_normal({4, 3}, gen)), n = leaf(random_normal({3, 4}, gen));
  Tensor batch = leaf(random_normal({2, 4, 3}, gen)), batch_left = leaf(random_normal({2, 3, 4}, gen));
  SECTION("vector @ vector") { VISREP_CHECK_GRADIENTS(kBilinear, product, u, v); }
  SECTION("vector @ matrix") { VISREP_CHECK_GRADIENTS(kBilinear, product, u, m); }
  SECTION("matrix @ vector") { VISREP_CHECK_GRADIENTS(kBilinear, product, n, v); }
  SECTION("vector @ batch") { VISREP_CHECK_GRADIENTS(kBilinear, product, u, batch); }
  SECTION("batch @ vector") { VISREP_CHECK_GRADIENTS(kBilinear, product, batch_left, v); }
}

TEST_CASE("matmul transposed inputs", "[gradcheck]") {
  // Transposed views go to BLAS as transposes; their gradients come back through the view.
  Generator gen = generator_for("matmul transposed inputs");
  Tensor a = leaf(random_normal({4, 3}, gen)), b = leaf(random_normal({5, 4}, gen));
  VISREP_CHECK_GRADIENTS(kBilinear, [](const TensorList& in) { return matmul(in[0].t(), in[1].t()); }, a, b);
  Tensor c = leaf(random_normal({2, 4, 3}, gen)), d = leaf(random_normal({2, 4, 5}, gen));
  VISREP_CHECK_GRADIENTS(kBilinear, [](const TensorList& in) { return matmul(in[0].transpose(-1, -2), in[1]); }, c, d);
  // Batch dims permuted out of order (not one uniform batch stride), and a strided slice.
  Tensor e = leaf(random_normal({3, 2, 4}, gen)), f = leaf(random_normal({2, 4, 10}, gen));
  VISREP_CHECK_GRADIENTS(
      kBilinear,
      [](const TensorList& in) { return matmul(in[0].permute({1, 0, 2}), in[1].slice(2, 1, 10, 3)); }, e, f);
}

TEST_CASE("linear", "[gradcheck]") {
  Generator gen = generator_for("linear");
  Tensor w = leaf(random_normal({3, 4}, gen)), b = leaf(random_normal({3}, gen));
  Tensor x2 = leaf(random_normal({5, 4}, gen));
  Tensor x3 = leaf(random_normal({2, 3, 4}, gen));
  Tensor x1 = leaf(random_normal({4}, gen));
  SECTION("with bias") {
    VISREP_CHECK_GRADIENTS(kBilinear, [](const TensorList& in) { return linear(in[0], in[1], in[2]); }, x2, w, b);
  }
  SECTION("without bias") {
    VISREP_CHECK_GRADIENTS(kBilinear, [](const TensorList& in) { return linear(in[0], in[1]); }, x2, w);
  }
  SECTION("3-D input") {
    VISREP_CHECK_GRADIENTS(kBilinear, [](const TensorList& in) { return linear(in[0], in[1], in[2]); }, x3, w, b);
  }
  SECTION("1-D input") {
    VISREP_CHECK_GRADIENTS(kBilinear, [](const TensorList& in) { return linear(in[0], in[1], in[2]); }, x1, w, b);
  }
  SECTION("non-contiguous 3-D input") {
    Tensor x = leaf(random_normal({3, 2, 4}, gen));
    VISREP_CHECK_GRADIENTS(kBilinear, [](const TensorList& in) { return linear(in[0].transpose(0, 1), in[1], in[2]); }, x,
                    w, b);
  }
}

TEST_CASE("normalize", "[gradcheck]") {
  Generator gen = generator_for("normalize");
  Tensor x = leaf(random_normal({3, 4}, gen));
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return normalize(in[0]); }, x);
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return normalize(in[0], 0); }, x);
  Tensor y = leaf(random_normal({2, 3, 4}, gen));
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return normalize(in[0], 1); }, y);
}
