// Gradient checks of the reductions (engine/ops/reduction.h) over single dims, several
// (adjacent and not) dims, negative dims, all elements, keepdim both ways.
// Where to look for the rest of the family: kernels/cpu/reduction.h.
#include <catch2/catch.hpp>

#include "engine/ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

namespace {

// Sums, means and variances are polynomials of degree <= 2: the central difference is exact
// up to rounding (~1e-16 |L| / eps ~ 1e-9).
constexpr GradcheckTolerance kSmooth{.eps = 1e-6, .atol = 1e-7, .rtol = 1e-5};
// max/min are piecewise linear; random_distinct keeps every value >= 0.08 from the others,
// so no element may sit on a kink.
constexpr GradcheckTolerance kPiecewise{.eps = 1e-6, .atol = 1e-7, .rtol = 1e-5, .max_skipped_fraction = 0.0};

// The dim lists every reduction is checked over, on a (3, 4, 5) input.
const std::vector<Dims> kDimLists = {{0}, {1}, {-1}, {0, 1}, {1, 2}, {0, 2}, {2, 0}, {0, 1, 2}};

std::string dims_text(const Dims& dims) { return shape_string(dims); }

}  // namespace

TEST_CASE("sum", "[gradcheck]") {
  Generator gen = generator_for("sum");
  Tensor x = leaf(random_normal({3, 4, 5}, gen));
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return sum(in[0]); }, x);
  for (const Dims& dims : kDimLists) {
    for (bool keepdim : {false, true}) {
      INFO("dims " << dims_text(dims) << " keepdim " << keepdim);
      VISREP_CHECK_GRADIENTS(kSmooth, [&](const TensorList& in) { return sum(in[0], dims, keepdim); }, x);
    }
  }
}

TEST_CASE("mean", "[gradcheck]") {
  Generator gen = generator_for("mean");
  Tensor x = leaf(random_normal({3, 4, 5}, gen));
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return mean(in[0]); }, x);
  for (const Dims& dims : kDimLists) {
    for (bool keepdim : {false, true}) {
      INFO("dims " << dims_text(dims) << " keepdim " << keepdim);
      VISREP_CHECK_GRADIENTS(kSmooth, [&](const TensorList& in) { return mean(in[0], dims, keepdim); }, x);
    }
  }
}

TEST_CASE("max", "[gradcheck]") {
  Generator gen = generator_for("max");
  Tensor x = leaf(random_distinct({3, 4, 5}, 0.1, gen));
  VISREP_CHECK_GRADIENTS(kPiecewise, [](const TensorList& in) { return max(in[0]); }, x);
  for (const Dims& dims : kDimLists) {
    for (bool keepdim : {false, true}) {
      INFO("dims " << dims_text(dims) << " keepdim " << keepdim);
      VISREP_CHECK_GRADIENTS(kPiecewise, [&](const TensorList& in) { return max(in[0], dims, keepdim); }, x);
    }
  }
}

TEST_CASE("min", "[gradcheck]") {
  Generator gen = generator_for("min");
  Tensor x = leaf(random_distinct({3, 4, 5}, 0.1, gen));
  VISREP_CHECK_GRADIENTS(kPiecewise, [](const TensorList& in) { return min(in[0]); }, x);
  for (const Dims& dims : kDimLists) {
    for (bool keepdim : {false, true}) {
      INFO("dims " << dims_text(dims) << " keepdim " << keepdim);
      VISREP_CHECK_GRADIENTS(kPiecewise, [&](const TensorList& in) { return min(in[0], dims, keepdim); }, x);
    }
  }
}

TEST_CASE("var", "[gradcheck]") {
  Generator gen = generator_for("var");
  Tensor x = leaf(random_normal({3, 4, 5}, gen));
  for (int64_t correction : {0, 1}) {
    INFO("correction " << correction);
    VISREP_CHECK_GRADIENTS(kSmooth, [&](const TensorList& in) { return var(in[0], correction); }, x);
    for (const Dims& dims : kDimLists) {
      for (bool keepdim : {false, true}) {
        INFO("dims " << dims_text(dims) << " keepdim " << keepdim);
        VISREP_CHECK_GRADIENTS(kSmooth, [&](const TensorList& in) { return var(in[0], dims, correction, keepdim); }, x);
      }
    }
  }
}

TEST_CASE("reductions of a non-contiguous input", "[gradcheck]") {
  // The reduction plan copies a permuted input into (outer, reduced, inner) form; the
  // gradient must still land in the right places of the original leaf.
  Generator gen = generator_for("reductions of a non-contiguous input");
  Tensor x = leaf(random_distinct({4, 3, 5}, 0.1, gen));
  VISREP_CHECK_GRADIENTS(kPiecewise, [](const TensorList& in) { return sum(in[0].permute({2, 0, 1}), {1}); }, x);
  VISREP_CHECK_GRADIENTS(kPiecewise, [](const TensorList& in) { return max(in[0].transpose(0, 2), {0, 2}, true); }, x);
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return var(in[0].slice(2, 0, 5, 2), {0}); }, x);
}

TEST_CASE("sum_to", "[gradcheck]") {
  Generator gen = generator_for("sum_to");
  Tensor x = leaf(random_normal({2, 3, 4}, gen));
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return sum_to(in[0], {3, 1}); }, x);
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return sum_to(in[0], {1, 1, 4}); }, x);
}

TEST_CASE("max tie is a kink", "[gradcheck]") {
  // Two elements tied for the maximum: max is not differentiable in either (the one-sided
  // slopes are 1 and 0), so the harness must skip exactly those two and check the rest.
  Generator gen = generator_for("max tie is a kink");
  Tensor x = random_distinct({10}, 0.1, gen);
  x.data<double>()[2] = 100.0;
  x.data<double>()[7] = 100.0;
  x.set_requires_grad();
  const GradcheckTolerance tolerance{.eps = 1e-6, .atol = 1e-7, .rtol = 1e-5, .max_skipped_fraction = 0.2};
  for (bool reduce_all : {true, false}) {
    INFO("reduce_all " << reduce_all);
    const GradcheckResult result = check_gradients(
        [reduce_all](const TensorList& in) { return reduce_all ? max(in[0]) : max(in[0], {0}, true); }, {x},
        tolerance);
    INFO(result.message);
    CHECK(result.passed);
    CHECK(result.skipped == 2);
    CHECK(result.checked == 8);
  }
}
