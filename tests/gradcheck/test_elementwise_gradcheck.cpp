// Gradient checks of the elementwise ops (engine/ops/elementwise.h): float64 central
// differences against the analytic backward, with broadcasting variants whose gradients
// must come back summed to each input's own shape.
// Where to look for the rest of the family: kernels/cpu/elementwise.h.
#include <catch2/catch.hpp>

#include "engine/ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

namespace {

// Smooth ops on O(1) inputs: with eps = 1e-6 the central difference's truncation error is
// ~ f''' eps^2 ~ 1e-12 and its rounding error ~ 1e-16 |L| / eps ~ 1e-9, far below these.
constexpr GradcheckTolerance kSmooth{.eps = 1e-6, .atol = 1e-7, .rtol = 1e-5};
// Piecewise-linear ops (relu, abs, clamp, maximum, minimum): the finite difference is exact
// away from the kinks, so the same tolerance with no kink allowed to be skipped.
constexpr GradcheckTolerance kPiecewise{.eps = 1e-6, .atol = 1e-7, .rtol = 1e-5, .max_skipped_fraction = 0.0};

}  // namespace

TEST_CASE("add", "[gradcheck]") {
  Generator gen = generator_for("add");
  Tensor a = leaf(random_normal({3, 4}, gen)), b = leaf(random_normal({3, 4}, gen));
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return add(in[0], in[1]); }, a, b);
}

TEST_CASE("sub", "[gradcheck]") {
  Generator gen = generator_for("sub");
  Tensor a = leaf(random_normal({3, 4}, gen)), b = leaf(random_normal({3, 4}, gen));
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return sub(in[0], in[1]); }, a, b);
}

TEST_CASE("mul", "[gradcheck]") {
  Generator gen = generator_for("mul");
  Tensor a = leaf(random_normal({3, 4}, gen)), b = leaf(random_normal({3, 4}, gen));
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return mul(in[0], in[1]); }, a, b);
}

TEST_CASE("mul same tensor twice", "[gradcheck]") {
  // x * x: both inputs of one node are the same leaf, so its two gradients must add.
  Generator gen = generator_for("mul same tensor twice");
  Tensor x = leaf(random_normal({5}, gen));
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return mul(in[0], in[0]); }, x);
}

TEST_CASE("div", "[gradcheck]") {
  Generator gen = generator_for("div");
  Tensor a = leaf(random_normal({3, 4}, gen));
  Tensor b = leaf(random_away_from_zero({3, 4}, 0.5, gen));  // denominators away from 0
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return div(in[0], in[1]); }, a, b);
}

TEST_CASE("scalar operands", "[gradcheck]") {
  Generator gen = generator_for("scalar operands");
  Tensor x = leaf(random_away_from_zero({2, 3}, 0.5, gen));
  VISREP_CHECK_GRADIENTS(
      kSmooth,
      [](const TensorList& in) {
        // x + 2, x - 3, 1.5 x, x / 4, 2 / x, 1 - x, all differentiable in x.
        Tensor y = add(add(sub(mul(add(in[0], 2.0), 1.5), 3.0), div(in[0], 4.0)), 2.0 / in[0]);
        return 1.0 - y;
      },
      x);
}

TEST_CASE("zero-dim tensor operand", "[gradcheck]") {
  // A 0-dim tensor that requires a gradient, broadcast against a matrix: its gradient is the
  // sum over every element.
  Generator gen = generator_for("zero-dim tensor operand");
  Tensor x = leaf(random_normal({3, 4}, gen));
  Tensor s = leaf(random_normal({}, gen));
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return add(mul(in[0], in[1]), in[1]); }, x, s);
}

TEST_CASE("neg", "[gradcheck]") {
  Generator gen = generator_for("neg");
  Tensor x = leaf(random_normal({7}, gen));
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return neg(in[0]); }, x);
}

TEST_CASE("exp", "[gradcheck]") {
  Generator gen = generator_for("exp");
  Tensor x = leaf(random_normal({3, 5}, gen));
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return exp(in[0]); }, x);
}

TEST_CASE("log", "[gradcheck]") {
  Generator gen = generator_for("log");
  Tensor x = leaf(random_uniform({3, 5}, 0.3, 3.0, gen));  // positive, away from 0
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return log(in[0]); }, x);
}

TEST_CASE("sqrt", "[gradcheck]") {
  Generator gen = generator_for("sqrt");
  Tensor x = leaf(random_uniform({3, 5}, 0.3, 3.0, gen));
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return sqrt(in[0]); }, x);
}

TEST_CASE("rsqrt", "[gradcheck]") {
  Generator gen = generator_for("rsqrt");
  Tensor x = leaf(random_uniform({3, 5}, 0.3, 3.0, gen));
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return rsqrt(in[0]); }, x);
}

TEST_CASE("pow scalar exponent", "[gradcheck]") {
  Generator gen = generator_for("pow scalar exponent");
  Tensor positive = leaf(random_uniform({3, 4}, 0.3, 2.0, gen));
  Tensor any_sign = leaf(random_normal({3, 4}, gen));
  for (double exponent : {2.5, -1.5, 0.5}) {
    INFO("exponent " << exponent);
    VISREP_CHECK_GRADIENTS(kSmooth, [exponent](const TensorList& in) { return pow(in[0], exponent); }, positive);
  }
  // Integer exponents are defined for negative bases too.
  for (double exponent : {2.0, 3.0}) {
    INFO("exponent " << exponent);
    VISREP_CHECK_GRADIENTS(kSmooth, [exponent](const TensorList& in) { return pow(in[0], exponent); }, any_sign);
  }
}

TEST_CASE("pow tensor exponent", "[gradcheck]") {
  Generator gen = generator_for("pow tensor exponent");
  Tensor base = leaf(random_uniform({3, 4}, 0.3, 2.0, gen));
  Tensor exponent = leaf(random_normal({3, 4}, gen));
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return pow(in[0], in[1]); }, base, exponent);
}

TEST_CASE("pow tensor exponent broadcast", "[gradcheck]") {
  Generator gen = generator_for("pow tensor exponent broadcast");
  Tensor base = leaf(random_uniform({3, 1}, 0.3, 2.0, gen));
  Tensor exponent = leaf(random_normal({4}, gen));
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return pow(in[0], in[1]); }, base, exponent);
}

TEST_CASE("abs", "[gradcheck]") {
  Generator gen = generator_for("abs");
  Tensor x = leaf(random_away_from_zero({4, 5}, 0.05, gen));
  VISREP_CHECK_GRADIENTS(kPiecewise, [](const TensorList& in) { return abs(in[0]); }, x);
}

TEST_CASE("relu", "[gradcheck]") {
  Generator gen = generator_for("relu");
  Tensor x = leaf(random_away_from_zero({4, 5}, 0.05, gen));
  VISREP_CHECK_GRADIENTS(kPiecewise, [](const TensorList& in) { return relu(in[0]); }, x);
}

TEST_CASE("relu kink at zero is skipped", "[gradcheck]") {
  // Exact zeros sit on relu's kink: the harness must see the one-sided slopes disagree and
  // skip exactly those elements, and still check (and pass) all the others.
  Generator gen = generator_for("relu kink at zero is skipped");
  Tensor x = random_away_from_zero({20}, 0.05, gen);
  x.data<double>()[3] = 0.0;
  x.data<double>()[11] = 0.0;
  x.set_requires_grad();
  const GradcheckTolerance tolerance{.eps = 1e-6, .atol = 1e-7, .rtol = 1e-5, .max_skipped_fraction = 0.1};
  const GradcheckResult result = check_gradients([](const TensorList& in) { return relu(in[0]); }, {x}, tolerance);
  INFO(result.message);
  REQUIRE(result.passed);
  REQUIRE(result.skipped == 2);
  REQUIRE(result.checked == 18);
}

TEST_CASE("clamp", "[gradcheck]") {
  Generator gen = generator_for("clamp");
  // Values on both sides of both bounds, none within 0.05 of either.
  Tensor x = leaf(random_away_from_points({5, 6}, -2.0, 2.0, {-0.5, 0.7}, 0.05, gen));
  VISREP_CHECK_GRADIENTS(kPiecewise, [](const TensorList& in) { return clamp(in[0], -0.5, 0.7); }, x);
  VISREP_CHECK_GRADIENTS(kPiecewise, [](const TensorList& in) { return clamp_min(in[0], -0.5); }, x);
  VISREP_CHECK_GRADIENTS(kPiecewise, [](const TensorList& in) { return clamp_max(in[0], 0.7); }, x);
}

TEST_CASE("maximum", "[gradcheck]") {
  Generator gen = generator_for("maximum");
  // One distinct ramp split in two: every pair (a_i, b_i) differs by at least the gap.
  Tensor both = random_distinct({2, 3, 4}, 0.1, gen);
  Tensor a = leaf(both.select(0, 0).contiguous()), b = leaf(both.select(0, 1).contiguous());
  VISREP_CHECK_GRADIENTS(kPiecewise, [](const TensorList& in) { return maximum(in[0], in[1]); }, a, b);
}

TEST_CASE("minimum", "[gradcheck]") {
  Generator gen = generator_for("minimum");
  Tensor both = random_distinct({2, 3, 4}, 0.1, gen);
  Tensor a = leaf(both.select(0, 0).contiguous()), b = leaf(both.select(0, 1).contiguous());
  VISREP_CHECK_GRADIENTS(kPiecewise, [](const TensorList& in) { return minimum(in[0], in[1]); }, a, b);
}

TEST_CASE("maximum minimum broadcast", "[gradcheck]") {
  Generator gen = generator_for("maximum minimum broadcast");
  Tensor all = random_distinct({16}, 0.1, gen);
  Tensor a = leaf(all.slice(0, 0, 12).reshape({3, 4}).contiguous());
  Tensor b = leaf(all.slice(0, 12, 16).contiguous());  // (4) broadcast over the rows of a
  VISREP_CHECK_GRADIENTS(kPiecewise, [](const TensorList& in) { return maximum(in[0], in[1]); }, a, b);
  VISREP_CHECK_GRADIENTS(kPiecewise, [](const TensorList& in) { return minimum(in[1], in[0]); }, a, b);
}

TEST_CASE("where", "[gradcheck]") {
  Generator gen = generator_for("where");
  Tensor condition = gt(random_normal({3, 4}, gen), 0.0);
  Tensor a = leaf(random_normal({3, 4}, gen)), b = leaf(random_normal({3, 4}, gen));
  VISREP_CHECK_GRADIENTS(
      kSmooth, [condition](const TensorList& in) { return where(condition, mul(in[0], in[0]), in[1]); }, a, b);
}

TEST_CASE("where broadcast", "[gradcheck]") {
  // condition (3, 4), a (1, 4), b (3, 1): each input's gradient sums over its broadcast dim.
  Generator gen = generator_for("where broadcast");
  Tensor condition = gt(random_normal({3, 4}, gen), 0.0);
  Tensor a = leaf(random_normal({1, 4}, gen)), b = leaf(random_normal({3, 1}, gen));
  VISREP_CHECK_GRADIENTS(kSmooth, [condition](const TensorList& in) { return where(condition, in[0], in[1]); }, a, b);
}

TEST_CASE("add broadcast", "[gradcheck]") {
  Generator gen = generator_for("add broadcast");
  Tensor a = leaf(random_normal({3, 1, 4}, gen)), b = leaf(random_normal({2, 4}, gen));
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return add(in[0], in[1]); }, a, b);
}

TEST_CASE("sub broadcast", "[gradcheck]") {
  Generator gen = generator_for("sub broadcast");
  Tensor a = leaf(random_normal({4}, gen)), b = leaf(random_normal({3, 4}, gen));
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return sub(in[0], in[1]); }, a, b);
}

TEST_CASE("mul broadcast", "[gradcheck]") {
  Generator gen = generator_for("mul broadcast");
  Tensor a = leaf(random_normal({2, 3, 4}, gen)), b = leaf(random_normal({3, 1}, gen));
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return mul(in[0], in[1]); }, a, b);
}

TEST_CASE("div broadcast", "[gradcheck]") {
  Generator gen = generator_for("div broadcast");
  Tensor a = leaf(random_normal({3, 4}, gen));
  Tensor b = leaf(random_away_from_zero({1, 4}, 0.5, gen));
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return div(in[0], in[1]); }, a, b);
  // And the other way round: a broadcast numerator over a full denominator.
  Tensor c = leaf(random_normal({3, 1}, gen));
  Tensor d = leaf(random_away_from_zero({3, 4}, 0.5, gen));
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return div(in[0], in[1]); }, c, d);
}

TEST_CASE("binary ops on non-contiguous views", "[gradcheck]") {
  // Transposed and strided operands: the kernels read through strides and the gradients
  // flow back through the views.
  Generator gen = generator_for("binary ops on non-contiguous views");
  Tensor a = leaf(random_normal({4, 3}, gen)), b = leaf(random_normal({3, 8}, gen));
  VISREP_CHECK_GRADIENTS(
      kSmooth, [](const TensorList& in) { return mul(in[0].t(), in[1].slice(1, 0, 8, 2)); }, a, b);
}
