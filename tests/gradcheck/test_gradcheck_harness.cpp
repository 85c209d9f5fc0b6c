// The gradient-check harness itself must be able to fail: a backward that is wrong by a
// factor, that drops an input's gradient, or that routes it to the wrong element is caught.
#include <catch2/catch.hpp>

#include "engine/ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

namespace {
constexpr GradcheckTolerance kDefault{.eps = 1e-6, .atol = 1e-7, .rtol = 1e-5};
}

TEST_CASE("harness catches a scaled gradient", "[gradcheck]") {
  Generator gen = generator_for("harness catches a scaled gradient");
  Tensor x = random_normal({3}, gen).set_requires_grad();
  // exp with a deliberately wrong backward (2x too large).
  auto broken = [](const std::vector<Tensor>& in) {
    Tensor y = exp(in[0].detach());
    return record("broken_exp", y, {in[0]}, [y](const Tensor& g) -> TensorList { return {mul(mul(g, y), 2.0)}; });
  };
  const GradcheckResult result = check_gradients(broken, {x}, kDefault);
  REQUIRE_FALSE(result.passed);
  REQUIRE_THAT(result.message, Catch::Contains("analytic"));
  // The correct op passes with the same inputs and tolerance.
  REQUIRE(check_gradients([](const std::vector<Tensor>& in) { return exp(in[0]); }, {x}, kDefault).passed);
}

TEST_CASE("harness catches a misrouted gradient", "[gradcheck]") {
  Generator gen = generator_for("harness catches a misrouted gradient");
  Tensor x = random_normal({4}, gen).set_requires_grad();
  // A "flip" whose backward forgets to flip the gradient back.
  auto broken = [](const std::vector<Tensor>& in) {
    Tensor y = index_select(in[0].detach(), 0, from_vector<int64_t>({3, 2, 1, 0}));
    return record("broken_flip", y, {in[0]}, [](const Tensor& g) -> TensorList { return {g}; });
  };
  REQUIRE_FALSE(check_gradients(broken, {x}, kDefault).passed);
}

TEST_CASE("harness catches a missing gradient", "[gradcheck]") {
  Generator gen = generator_for("harness catches a missing gradient");
  Tensor a = random_normal({3}, gen).set_requires_grad();
  Tensor b = random_normal({3}, gen).set_requires_grad();
  // a * b whose backward gives b no gradient at all.
  auto broken = [](const std::vector<Tensor>& in) {
    Tensor y = mul(in[0].detach(), in[1].detach());
    Tensor saved_b = in[1].detach();
    return record("broken_mul", y, {in[0], in[1]},
                  [saved_b](const Tensor& g) -> TensorList { return {mul(g, saved_b), Tensor()}; });
  };
  REQUIRE_FALSE(check_gradients(broken, {a, b}, kDefault).passed);
}

TEST_CASE("harness fails inputs sitting on kinks", "[gradcheck]") {
  // All-zero input to relu: every element is on the kink, far more than the allowed fraction.
  Tensor x = zeros({5}, kFloat64).set_requires_grad();
  const GradcheckResult result = check_gradients([](const std::vector<Tensor>& in) { return relu(in[0]); }, {x}, kDefault);
  REQUIRE_FALSE(result.passed);
  REQUIRE(result.skipped == 5);
}
