// Forward values of batch_norm (engine/ops/batch_norm.h), training and evaluation;
// kernels/cpu/batch_norm.h lists the family's files. Expected values are hand-computed or
// come from the double-precision loops in tests/support/reference.h, never from the
// engine's own output.
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

TEST_CASE("batch_norm training against the formula", "[unit]") {
  Generator gen = generator_for("batch_norm training against the formula");
  for (const Shape& shape : {Shape{8, 3}, Shape{4, 3, 2, 5}}) {
    INFO("shape " << shape_string(shape));
    Tensor x = add(mul(random_normal(shape, gen, kFloat64), 2.0), 1.5);
    Tensor weight = random_normal({3}, gen, kFloat64), bias = random_normal({3}, gen, kFloat64);
    Tensor running_mean = random_normal({3}, gen, kFloat64);
    Tensor running_var = random_uniform({3}, 0.5, 1.5, gen, kFloat64);
    const Array rm0(running_mean), rv0(running_var), xv(x), wv(weight), bv(bias);
    const double momentum = 0.3, eps = 1e-3;
    Tensor y = batch_norm(x, running_mean, running_var, weight, bias, {.momentum = momentum, .eps = eps});
    Array expected(shape, 0.0);
    const int64_t count = shape_numel(shape) / 3;
    for (int64_t c = 0; c < 3; ++c) {
      std::vector<double> values;
      for_each_index(shape, [&](const std::vector<int64_t>& i) {
        if (i[1] == c) values.push_back(xv(i));
      });
      const double m = average(values);
      const double biased = variance_with(0)(values), unbiased = variance_with(1)(values);
      for_each_index(shape, [&](const std::vector<int64_t>& i) {
        if (i[1] == c) expected(i) = (xv(i) - m) / std::sqrt(biased + eps) * wv({c}) + bv({c});
      });
      // PyTorch: running = (1 - momentum) running + momentum batch, with the unbiased variance.
      CHECK(running_mean.to_vector<double>()[c] == Approx((1 - momentum) * rm0({c}) + momentum * m).epsilon(1e-12));
      CHECK(running_var.to_vector<double>()[c] ==
            Approx((1 - momentum) * rv0({c}) + momentum * unbiased).epsilon(1e-12));
      CHECK(count > 1);
    }
    require_close(y, expected, 1e-12);
  }
}

TEST_CASE("batch_norm normalises each channel", "[unit]") {
  Generator gen = generator_for("batch_norm normalises each channel");
  Tensor x = add(mul(random_normal({16, 4, 3, 3}, gen, kFloat32), 5.0), -2.0);
  Tensor y = batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor());
  std::vector<double> means = mean(y, {0, 2, 3}).to_vector<double>();
  std::vector<double> variances = var(y, {0, 2, 3}, 0).to_vector<double>();
  for (int64_t c = 0; c < 4; ++c) {
    CHECK(means[c] == Approx(0.0).margin(1e-5));
    CHECK(variances[c] == Approx(1.0).margin(1e-3));  // var / (var + 1e-5) with var ~ 25
  }
}

TEST_CASE("batch_norm eval uses the running statistics", "[unit]") {
  Tensor x = from_vector<double>({1, 2, 3, 4, 5, 6}, {3, 2});
  Tensor running_mean = from_vector<double>({1.0, -1.0}), running_var = from_vector<double>({4.0, 0.25});
  Tensor weight = from_vector<double>({2.0, 1.0}), bias = from_vector<double>({0.0, 10.0});
  Tensor y = batch_norm(x, running_mean, running_var, weight, bias, {.training = false, .eps = 0.0001});
  // channel 0: 2 (x - 1) / sqrt(4.0001); channel 1: (x + 1) / sqrt(0.2501) + 10.
  const std::vector<double> xs = {1, 2, 3, 4, 5, 6};
  std::vector<double> out = y.to_vector<double>();
  for (size_t i = 0; i < 6; ++i) {
    const double expected = i % 2 == 0 ? 2 * (xs[i] - 1) / std::sqrt(4.0001) : (xs[i] + 1) / std::sqrt(0.2501) + 10;
    CHECK(out[i] == Approx(expected).epsilon(1e-12));
  }
  // Evaluation leaves the running statistics alone.
  CHECK(running_mean.to_vector<double>() == std::vector<double>{1.0, -1.0});
  CHECK(running_var.to_vector<double>() == std::vector<double>{4.0, 0.25});
}
