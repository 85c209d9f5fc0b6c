#include <catch2/catch.hpp>

#include <iostream>

#include "engine/ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_data.h"

using namespace visrep;

TEST_CASE("smoke: add and backward", "[unit]") {
  Tensor a = from_vector<float>({1, 2, 3, 4}, {2, 2});
  a.set_requires_grad();
  Tensor b = from_vector<float>({10, 20}, {2});
  Tensor y = sum(mul(add(a, b), a));
  y.backward();
  std::cout << a.grad() << std::endl;
  auto g = a.grad().to_vector<float>();
  // d/da sum((a+b)*a) = 2a + b
  REQUIRE(g == std::vector<float>{12, 24, 16, 28});
}
