// Gradient checks of joining, splitting, indexing and padding (engine/ops/indexing.h) on the
// CPU kernels in float64 (kernels/cpu/indexing.h lists the family's files). These are
// linear maps, so any error is a routing error (a gradient landing on the wrong element,
// dropped, or counted twice), which the random projection exposes.
#include <catch2/catch.hpp>

#include "engine/ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

namespace {

// Linear maps: the central difference is exact up to rounding (~1e-10 here).
constexpr GradcheckTolerance kLinear{.eps = 1e-6, .atol = 1e-7, .rtol = 1e-5};

}  // namespace

TEST_CASE("concat", "[gradcheck]") {
  Generator gen = generator_for("concat");
  Tensor a = leaf(random_normal({2, 3}, gen)), b = leaf(random_normal({2, 1}, gen)), c = leaf(random_normal({2, 4}, gen));
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return concat({in[0], in[1], in[2]}, 1); }, a, b, c);
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return concat({in[0].t(), in[1].t()}, 0); }, a, c);
  // The same tensor twice: both copies' gradients add up.
  VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return concat({in[0], in[0]}, -1); }, a);
}

TEST_CASE("stack", "[gradcheck]") {
  Generator gen = generator_for("stack");
  Tensor a = leaf(random_normal({2, 3}, gen)), b = leaf(random_normal({2, 3}, gen));
  for (int64_t dim : {0, 1, 2, -1}) {
    INFO("dim " << dim);
    VISREP_CHECK_GRADIENTS(kLinear, [dim](const TensorList& in) { return stack({in[0], in[1]}, dim); }, a, b);
  }
}

TEST_CASE("split", "[gradcheck]") {
  Generator gen = generator_for("split");
  Tensor x = leaf(random_normal({3, 7}, gen));
  // Pieces come back scaled differently, so a gradient routed to the wrong piece shows.
  VISREP_CHECK_GRADIENTS(
      kLinear,
      [](const TensorList& in) {
        std::vector<Tensor> pieces = split(in[0], 3, 1);  // 3, 3, 1
        return concat({mul(pieces[2], 3.0), pieces[0], mul(pieces[1], -2.0)}, 1);
      },
      x);
  VISREP_CHECK_GRADIENTS(
      kLinear,
      [](const TensorList& in) {
        std::vector<Tensor> pieces = split(in[0], std::vector<int64_t>{1, 2}, 0);
        return add(mul(pieces[0], 5.0), pieces[1]);  // (1, 7) broadcast against (2, 7)
      },
      x);
}

TEST_CASE("index_select", "[gradcheck]") {
  Generator gen = generator_for("index_select");
  Tensor x = leaf(random_normal({4, 3, 2}, gen));
  Tensor repeated = from_vector<int64_t>({2, 0, 2, 3, 2});  // repeated indices add up
  VISREP_CHECK_GRADIENTS(kLinear, [&](const TensorList& in) { return index_select(in[0], 0, repeated); }, x);
  Tensor middle = from_vector<int64_t>({1, 1, 0});
  VISREP_CHECK_GRADIENTS(kLinear, [&](const TensorList& in) { return index_select(in[0], 1, middle); }, x);
  VISREP_CHECK_GRADIENTS(kLinear, [&](const TensorList& in) { return index_select(in[0].transpose(0, 2), -1, repeated); }, x);
}

TEST_CASE("gather", "[gradcheck]") {
  Generator gen = generator_for("gather");
  Tensor x = leaf(random_normal({3, 4}, gen));
  Tensor along_columns = randint(0, 4, {3, 6}, kInt64, gen);  // more picks than columns: repeats
  VISREP_CHECK_GRADIENTS(kLinear, [&](const TensorList& in) { return gather(in[0], 1, along_columns); }, x);
  Tensor along_rows = randint(0, 3, {2, 4}, kInt64, gen);
  VISREP_CHECK_GRADIENTS(kLinear, [&](const TensorList& in) { return gather(in[0], 0, along_rows); }, x);
  Tensor cube = leaf(random_normal({2, 3, 4}, gen));
  Tensor middle = randint(0, 3, {2, 5, 4}, kInt64, gen);
  VISREP_CHECK_GRADIENTS(kLinear, [&](const TensorList& in) { return gather(in[0], 1, middle); }, cube);
}

TEST_CASE("pad", "[gradcheck]") {
  Generator gen = generator_for("pad");
  Tensor x = leaf(random_normal({2, 3, 4}, gen));
  SECTION("positive") {
    VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return pad(in[0], {1, 2}, 0.5); }, x);
    VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return pad(in[0], {0, 1, 2, 0, 1, 1}); }, x);
  }
  SECTION("negative") {
    VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return pad(in[0], {-1, -2}); }, x);
    VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return pad(in[0], {0, 0, -1, 0}); }, x);
  }
  SECTION("mixed") {
    VISREP_CHECK_GRADIENTS(kLinear, [](const TensorList& in) { return pad(in[0], {-1, 2, 1, -2}, -3.0); }, x);
  }
}
