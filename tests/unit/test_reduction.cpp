// Forward values of the reductions.
// Expected values are hand-computed or come from the double-precision loops in
// tests/support/reference.h, never from the engine's own output.
// Where to look for the rest of the family: kernels/cpu/reduction.h.
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

TEST_CASE("reductions against loops", "[unit]") {
  Generator gen = generator_for("reductions against loops");
  const std::vector<Dims> dim_lists = {{}, {0}, {1}, {-1}, {0, 2}, {1, 2}, {2, 0, 1}};
  for (DType dtype : {kFloat32, kFloat64}) {
    const double tolerance = dtype == kFloat32 ? 1e-5 : kFloat64Tolerance;
    Tensor x = random_normal({3, 4, 5}, gen, dtype);
    const Array xv(x);
    for (const Dims& dims : dim_lists) {
      for (bool keepdim : {false, true}) {
        INFO("dtype " << dtype_name(dtype) << " dims " << shape_string(dims) << " keepdim " << keepdim);
        require_close(sum(x, dims, keepdim), reduce_reference(xv, dims, keepdim, total), tolerance);
        require_close(mean(x, dims, keepdim), reduce_reference(xv, dims, keepdim, average), tolerance);
        require_close(max(x, dims, keepdim), reduce_reference(xv, dims, keepdim, largest), tolerance);
        require_close(min(x, dims, keepdim), reduce_reference(xv, dims, keepdim, smallest), tolerance);
        for (int64_t correction : {0, 1}) {
          require_close(var(x, dims, correction, keepdim), reduce_reference(xv, dims, keepdim, variance_with(correction)),
                        tolerance);
        }
      }
    }
    // Over everything: 0-dim results.
    CHECK(sum(x).dim() == 0);
    CHECK(sum(x).item() == Approx(total(xv.values)).epsilon(tolerance));
    CHECK(max(x).item() == largest(xv.values));
    CHECK(min(x).item() == smallest(xv.values));
    CHECK(var(x).item() == Approx(variance_with(1)(xv.values)).epsilon(tolerance));
  }
}

TEST_CASE("var correction", "[unit]") {
  Tensor x = from_vector<double>({1, 2, 3, 4});
  CHECK(var(x).item() == Approx(5.0 / 3.0));          // unbiased: sum (x - 2.5)^2 = 5, over n - 1
  CHECK(var(x, 0).item() == Approx(1.25));            // biased: over n
  CHECK(var(x, 2).item() == Approx(2.5));             // any correction: over n - 2
  CHECK(std::isnan(var(from_vector<double>({3.0})).item()));  // 0 / (n - 1) = 0 / 0, as in PyTorch
  Tensor m = from_vector<double>({1, 2, 3, 5, 7, 9}, {2, 3});
  CHECK(var(m, {1}).to_vector<double>() == std::vector<double>{1.0, 4.0});
  CHECK(var(m, {0}, 0).to_vector<double>() == std::vector<double>{4.0, 6.25, 9.0});
}

TEST_CASE("max and min with NaN, argmax and argmin", "[unit]") {
  Tensor x = from_vector<double>({1.0, kNaN, 3.0, 2.0, 5.0, -1.0}, {2, 3});
  std::vector<double> row_max = max(x, {1}).to_vector<double>();
  CHECK(std::isnan(row_max[0]));  // NaN propagates, as in PyTorch
  CHECK(row_max[1] == 5.0);
  CHECK(std::isnan(max(x).item()));
  CHECK(std::isnan(min(x).item()));
  CHECK(min(x, {1}).to_vector<double>()[1] == -1.0);
  Tensor y = from_vector<float>({3, 7, 7, 1, 0, 9}, {2, 3});
  CHECK(argmax(y, 1).to_vector<int64_t>() == std::vector<int64_t>{1, 2});  // first maximum on ties
  CHECK(argmin(y, 1).to_vector<int64_t>() == std::vector<int64_t>{0, 1});
  CHECK(argmax(y, 0, true).shape() == Shape{1, 3});
  CHECK(argmax(y).item() == 5.0);
  CHECK(argmin(y).item() == 4.0);
  CHECK(argmax(x, 1).to_vector<int64_t>() == std::vector<int64_t>{1, 1});  // NaN counts as the maximum
}

TEST_CASE("max over all splits the gradient between ties", "[unit]") {
  Tensor x = from_vector<double>({1.0, 4.0, 4.0, 2.0}).set_requires_grad();
  max(x).backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{0.0, 0.5, 0.5, 0.0});
}

TEST_CASE("sum_to undoes a broadcast", "[unit]") {
  Tensor x = from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(sum_to(x, {3}).to_vector<float>() == std::vector<float>{5, 7, 9});
  CHECK(sum_to(x, {2, 1}).to_vector<float>() == std::vector<float>{6, 15});
  CHECK(sum_to(x, {}).item() == 21.0);
  CHECK(sum_to(x, {2, 3}).to_vector<float>() == x.to_vector<float>());
}
