// Parity cases of the elementwise ops, views and copies.
#include <catch2/catch.hpp>

#include "tests/parity/parity.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

namespace {

using Inputs = std::vector<Tensor>;

Tensor leaf_f32(Tensor t) { return t.to(kFloat32).set_requires_grad(); }

}  // namespace

TEST_CASE("add broadcast odd sizes", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {leaf_f32(random_normal({7, 1, 5}, g)), leaf_f32(random_normal({3, 1}, g))};
                },
                .function = [](const Inputs& in) { return add(in[0], in[1]); },
                .tolerance = 1e-12});
}

TEST_CASE("mul of a transposed view", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {leaf_f32(random_normal({33, 17}, g)), leaf_f32(random_normal({17, 33}, g))};
                },
                .function = [](const Inputs& in) { return mul(in[0].t(), in[1]); },
                .tolerance = 1e-12});
}

TEST_CASE("exp log relu chain", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs { return {leaf_f32(random_away_from_zero({1000, 3}, 0.05, g))}; },
                .function = [](const Inputs& in) { return relu(log(add(exp(in[0]), 0.5))); },
                .tolerance = 1e-10});
}
