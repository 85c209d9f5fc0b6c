// Parity cases of matmul and linear (kernels/cuda/linear_algebra.cu on cuBLAS).
//
// Tolerances: float32 with TF32 off computes fp32 products on both devices, but OpenBLAS
// and cuBLAS add them in different orders (blocking, split-K), so results differ by a few
// ulps: NMSE ~1e-14 for these sizes. 1e-10 leaves room for that and still fails on a
// single wrong element of the smaller outputs (~1e-3). float64 gets 1e-24 for the same
// reason. TF32 rounds each input to a 10-bit mantissa (relative error ~5e-4), hence 1e-5.
// Where to look for the rest of the family: kernels/cpu/linear_algebra.h.
#include <catch2/catch.hpp>

#include "engine/cuda.h"
#include "tests/parity/parity.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

namespace {

using Inputs = ParityInputs;

// TF32 for the duration of a case (off unless the case says otherwise), restored after.

constexpr double kFloatTolerance = 1e-10;   // fp32, different summation orders (see the top)
constexpr double kDoubleTolerance = 1e-24;  // fp64, different summation orders

// a @ b with both operands fresh normal leaves of the given shapes.
void check_matmul(const Shape& a_shape, const Shape& b_shape, double tolerance = kFloatTolerance,
                  DType dtype = kFloat32) {
  const ScopedTf32 tf32_off(false);
  const std::string name =
      "matmul " + shape_string(a_shape) + " @ " + shape_string(b_shape) + " " + std::string(dtype_name(dtype));
  check_parity({.name = name,
                .make_inputs = [=](Generator& g) -> Inputs {
                  return {parity_leaf(random_normal(a_shape, g), dtype), parity_leaf(random_normal(b_shape, g), dtype)};
                },
                .function = [](const Inputs& in) { return matmul(in[0], in[1]); },
                .tolerance = tolerance});
}

}  // namespace

TEST_CASE("matmul 2-D odd sizes 33x17x65", "[gpu]") { check_matmul({33, 17}, {17, 65}); }

TEST_CASE("matmul 1x1x1", "[gpu]") { check_matmul({1, 1}, {1, 1}); }

TEST_CASE("matmul single row and single column", "[gpu]") {
  check_matmul({1, 40}, {40, 3});
  check_matmul({5, 40}, {40, 1});
}

TEST_CASE("matmul batched", "[gpu]") { check_matmul({4, 7, 9}, {4, 9, 5}); }

TEST_CASE("matmul broadcast batch dims", "[gpu]") { check_matmul({3, 1, 6, 8}, {2, 8, 4}); }

TEST_CASE("matmul batch against one shared matrix (batch stride 0)", "[gpu]") {
  check_matmul({5, 6, 8}, {8, 3});
  check_matmul({8, 3}, {5, 3, 6});
}

TEST_CASE("matmul of transposed views", "[gpu]") {
  const ScopedTf32 tf32_off(false);
  // Stored (17, 33) and (65, 17): both operands reach cuBLAS as transposes, not copies.
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(random_normal({17, 33}, g)), parity_leaf(random_normal({65, 17}, g))};
                },
                .function = [](const Inputs& in) { return matmul(in[0].t(), in[1].t()); },
                .tolerance = kFloatTolerance});
}

TEST_CASE("matmul of batched transposed views", "[gpu]") {
  const ScopedTf32 tf32_off(false);
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(random_normal({4, 9, 7}, g)), parity_leaf(random_normal({4, 5, 9}, g))};
                },
                .function = [](const Inputs& in) { return matmul(in[0].transpose(-1, -2), in[1].transpose(-1, -2)); },
                .tolerance = kFloatTolerance});
}

TEST_CASE("matmul of a permuted batch (row stride larger than the batch stride)", "[gpu]") {
  const ScopedTf32 tf32_off(false);
  // (6, 4, 5) permuted to (4, 6, 5): batch stride 5, row stride 20, column stride 1.
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(random_normal({6, 4, 5}, g)), parity_leaf(random_normal({4, 5, 3}, g))};
                },
                .function = [](const Inputs& in) { return matmul(in[0].permute({1, 0, 2}), in[1]); },
                .tolerance = kFloatTolerance});
}

TEST_CASE("matmul 1-D dot product", "[gpu]") { check_matmul({37}, {37}); }

TEST_CASE("matmul matrix-vector and vector-matrix", "[gpu]") {
  check_matmul({9, 13}, {13});
  check_matmul({13}, {13, 9});
}

TEST_CASE("matmul vector with a batch of matrices", "[gpu]") {
  check_matmul({13}, {3, 13, 5});
  check_matmul({3, 5, 13}, {13});
}

TEST_CASE("matmul with an empty inner dimension gives zeros", "[gpu]") {
  const ScopedTf32 tf32_off(false);
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {random_normal({3, 0}, g).to(kFloat32), random_normal({0, 4}, g).to(kFloat32)};
                },
                .function = [](const Inputs& in) { return matmul(in[0], in[1]); },
                .tolerance = 0.0,  // exact zeros on both devices
                .compare_backward = false});
}

TEST_CASE("matmul float64", "[gpu]") {
  check_matmul({20, 31}, {31, 10}, kDoubleTolerance, kFloat64);
  check_matmul({3, 6, 7}, {3, 7, 2}, kDoubleTolerance, kFloat64);
}

TEST_CASE("matmul with TF32 enabled", "[gpu]") {
  const ScopedTf32 tf32_on(true);
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(random_normal({64, 256}, g)), parity_leaf(random_normal({256, 48}, g))};
                },
                .function = [](const Inputs& in) { return matmul(in[0], in[1]); },
                .tolerance = 1e-5});  // TF32's 10-bit mantissa on the inputs (see the top)
}

TEST_CASE("linear with bias", "[gpu]") {
  const ScopedTf32 tf32_off(false);
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(random_normal({10, 12}, g)), parity_leaf(random_normal({7, 12}, g)),
                          parity_leaf(random_normal({7}, g))};
                },
                .function = [](const Inputs& in) { return linear(in[0], in[1], in[2]); },
                .tolerance = kFloatTolerance});
}

TEST_CASE("linear with a 3-D input", "[gpu]") {
  const ScopedTf32 tf32_off(false);
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(random_normal({2, 5, 12}, g)), parity_leaf(random_normal({7, 12}, g)),
                          parity_leaf(random_normal({7}, g))};
                },
                .function = [](const Inputs& in) { return linear(in[0], in[1], in[2]); },
                .tolerance = kFloatTolerance});
}

TEST_CASE("linear without bias", "[gpu]") {
  const ScopedTf32 tf32_off(false);
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(random_normal({33, 64}, g)), parity_leaf(random_normal({17, 64}, g))};
                },
                .function = [](const Inputs& in) { return linear(in[0], in[1]); },
                .tolerance = kFloatTolerance});
}
