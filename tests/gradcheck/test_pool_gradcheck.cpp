// Gradient checks of the pooling ops (engine/ops/pool.h) on the CPU kernels in float64
// (kernels/cpu/pool.h lists the family's files).
#include <catch2/catch.hpp>

#include "engine/ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

namespace {

// Average pools are linear: exact up to rounding.
constexpr GradcheckTolerance kLinear{.eps = 1e-6, .atol = 1e-7, .rtol = 1e-5};
// max_pool2d is piecewise linear; random_distinct inputs keep every window's winner >= 0.08
// ahead, so no element may sit on a kink.
constexpr GradcheckTolerance kPiecewise{.eps = 1e-6, .atol = 1e-7, .rtol = 1e-5, .max_skipped_fraction = 0.0};

}  // namespace

TEST_CASE("max_pool2d", "[gradcheck]") {
  Generator gen = generator_for("max_pool2d");
  SECTION("2x2 stride 2") {
    Tensor x = leaf(random_distinct({2, 2, 4, 6}, 0.1, gen));
    VISREP_CHECK_GRADIENTS(kPiecewise, [](const TensorList& in) { return max_pool2d(in[0], {.kernel = {2, 2}}); }, x);
  }
  SECTION("3x3 stride 2 padding 1 odd size") {
    Tensor x = leaf(random_distinct({1, 2, 5, 7}, 0.1, gen));
    VISREP_CHECK_GRADIENTS(
        kPiecewise,
        [](const TensorList& in) { return max_pool2d(in[0], {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}); },
        x);
  }
  SECTION("overlapping windows stride 1") {
    // One input element can win several windows: its gradient is the sum of theirs.
    Tensor x = leaf(random_distinct({1, 1, 4, 5}, 0.1, gen));
    VISREP_CHECK_GRADIENTS(kPiecewise,
                    [](const TensorList& in) { return max_pool2d(in[0], {.kernel = {2, 3}, .stride = {1, 1}}); }, x);
  }
}

TEST_CASE("avg_pool2d", "[gradcheck]") {
  Generator gen = generator_for("avg_pool2d");
  Tensor x = leaf(random_normal({2, 2, 5, 6}, gen));
  for (bool count_include_pad : {true, false}) {
    INFO("count_include_pad " << count_include_pad);
    VISREP_CHECK_GRADIENTS(
        kLinear,
        [count_include_pad](const TensorList& in) {
          return avg_pool2d(in[0], {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}, count_include_pad);
        },
        x);
    VISREP_CHECK_GRADIENTS(
        kLinear,
        [count_include_pad](const TensorList& in) {
          return avg_pool2d(in[0], {.kernel = {2, 3}, .stride = {1, 2}, .padding = {1, 0}}, count_include_pad);
        },
        x);
  }
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return avg_pool2d(in[0], {.kernel = {2, 2}}); }, x);
}

TEST_CASE("adaptive_avg_pool2d", "[gradcheck]") {
  Generator gen = generator_for("adaptive_avg_pool2d");
  Tensor x = leaf(random_normal({2, 2, 5, 7}, gen));
  for (Pair size : {Pair{3, 4}, Pair{2, 2}, Pair{1, 1}, Pair{5, 7}, Pair{6, 9}}) {
    INFO("output size " << size[0] << "x" << size[1]);
    VISREP_CHECK_GRADIENTS(kLinear, [size](const TensorList& in) { return adaptive_avg_pool2d(in[0], size); }, x);
  }
}

TEST_CASE("global_avg_pool2d", "[gradcheck]") {
  Generator gen = generator_for("global_avg_pool2d");
  Tensor x = leaf(random_normal({2, 3, 4, 5}, gen));
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return global_avg_pool2d(in[0]); }, x);
}
