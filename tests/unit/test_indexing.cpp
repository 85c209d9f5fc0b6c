// Forward values of joining, indexing and padding.
// Expected values are hand-computed or come from the double-precision loops in
// tests/support/reference.h, never from the engine's own output.
// Where to look for the rest of the family: kernels/cpu/indexing.h.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>

#include "engine/ops.h"
#include "tests/support/reference.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

TEST_CASE("concat stack split", "[unit]") {
  Tensor a = from_vector<float>({1, 2, 3, 4}, {2, 2});
  Tensor b = from_vector<float>({5, 6}, {2, 1});
  CHECK(concat({a, b}, 1).to_vector<float>() == std::vector<float>{1, 2, 5, 3, 4, 6});
  CHECK(concat({a, b.t()}, 0).to_vector<float>() == std::vector<float>{1, 2, 3, 4, 5, 6});
  CHECK(concat({a.t(), b.t()}, -2).to_vector<float>() == std::vector<float>{1, 3, 2, 4, 5, 6});
  CHECK(stack({a, a}, 0).shape() == Shape{2, 2, 2});
  CHECK(stack({a, mul(a, 10.0)}, 2).to_vector<float>() == std::vector<float>{1, 10, 2, 20, 3, 30, 4, 40});
  CHECK(stack({a, mul(a, 10.0)}, 1).to_vector<float>() == std::vector<float>{1, 2, 10, 20, 3, 4, 30, 40});
  Tensor x = arange(0.0, 7.0, 1.0, kFloat32);
  std::vector<Tensor> pieces = split(x, 3);
  REQUIRE(pieces.size() == 3);
  CHECK(pieces[0].to_vector<float>() == std::vector<float>{0, 1, 2});
  CHECK(pieces[2].to_vector<float>() == std::vector<float>{6});
  CHECK(pieces[1].storage() == x.storage());  // views
  std::vector<Tensor> sized = split(x, std::vector<int64_t>{2, 0, 5});
  REQUIRE(sized.size() == 3);
  CHECK(sized[1].numel() == 0);
  CHECK(sized[2].to_vector<float>() == std::vector<float>{2, 3, 4, 5, 6});
}

TEST_CASE("index_select gather one_hot", "[unit]") {
  Tensor x = from_vector<float>({1, 2, 3, 4, 5, 6}, {3, 2});
  CHECK(index_select(x, 0, from_vector<int64_t>({2, 0, 2})).to_vector<float>() == std::vector<float>{5, 6, 1, 2, 5, 6});
  CHECK(index_select(x, 1, from_vector<int64_t>({1})).to_vector<float>() == std::vector<float>{2, 4, 6});
  CHECK(index_select(x.t(), 1, from_vector<int64_t>({1})).to_vector<float>() == std::vector<float>{3, 4});
  CHECK(gather(x, 1, from_vector<int64_t>({1, 0, 0, 0, 1, 1}, {3, 2})).to_vector<float>() ==
        std::vector<float>{2, 1, 3, 3, 6, 6});
  CHECK(gather(x, 0, from_vector<int64_t>({2, 0}, {1, 2})).to_vector<float>() == std::vector<float>{5, 2});
  CHECK(one_hot(from_vector<int64_t>({2, 0}), 3).to_vector<float>() == std::vector<float>{0, 0, 1, 1, 0, 0});
  CHECK(one_hot(from_vector<int64_t>({1, 0, 1, 1}, {2, 2}), 2, kInt64).shape() == Shape{2, 2, 2});
}

TEST_CASE("pad positive and negative", "[unit]") {
  Tensor x = from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(pad(x, {1, 0}, -1.0).to_vector<float>() == std::vector<float>{-1, 1, 2, 3, -1, 4, 5, 6});
  CHECK(pad(x, {0, 0, 1, 1}).to_vector<float>() == std::vector<float>{0, 0, 0, 1, 2, 3, 4, 5, 6, 0, 0, 0});
  CHECK(pad(x, {-1, -1}).to_vector<float>() == std::vector<float>{2, 5});
  CHECK(pad(x, {1, -2, -1, 0}, 9.0).to_vector<float>() == std::vector<float>{9, 4});
  CHECK(pad(x, {-3, 0}).shape() == Shape{2, 0});
  CHECK(pad(zeros({1, 1, 2, 2}), {1, 1, 1, 1}).shape() == Shape{1, 1, 4, 4});
}
