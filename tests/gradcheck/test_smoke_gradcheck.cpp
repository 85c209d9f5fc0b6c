#include <catch2/catch.hpp>

#include "engine/ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

TEST_CASE("conv2d stride 2 padding 1 groups 2", "[gradcheck]") {
  Generator gen = generator_for("conv2d");
  Tensor x = random_normal({2, 4, 5, 6}, gen).set_requires_grad();
  Tensor w = random_normal({6, 2, 3, 3}, gen).set_requires_grad();
  Tensor b = random_normal({6}, gen).set_requires_grad();
  VISREP_REQUIRE_GRADIENTS(
      [](const std::vector<Tensor>& in) {
        return conv2d(in[0], in[1], in[2], {.stride = {2, 2}, .padding = {1, 1}, .groups = 2});
      },
      std::vector<Tensor>({x, w, b}));
}

TEST_CASE("relu kink skip", "[gradcheck]") {
  Generator gen = generator_for("relu");
  Tensor x = random_away_from_zero({3, 4}, 0.1, gen).set_requires_grad();
  VISREP_REQUIRE_GRADIENTS([](const std::vector<Tensor>& in) { return relu(in[0]); }, std::vector<Tensor>({x}));
}

TEST_CASE("a wrong gradient fails", "[gradcheck]") {
  Generator gen = generator_for("wrong");
  Tensor x = random_normal({3}, gen).set_requires_grad();
  // exp with a deliberately wrong backward (2x too large)
  auto broken = [](const std::vector<Tensor>& in) {
    Tensor y = exp(in[0].detach());
    return record("broken_exp", y, {in[0]}, [y](const Tensor& g) -> TensorList { return {mul(mul(g, y), 2.0)}; });
  };
  REQUIRE_FALSE(check_gradients(broken, {x}).passed);
}
