// Forward values of batch_norm, normalize, softmax and the losses.
// Expected values are hand-computed or come from the double-precision loops in
// tests/support/reference.h, never from the engine's own output.
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

// ---- normalization ------------------------------------------------------------------------------------------

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

TEST_CASE("normalize gives unit rows", "[unit]") {
  Generator gen = generator_for("normalize gives unit rows");
  Tensor x = random_normal({5, 8}, gen, kFloat32);
  Tensor y = normalize(x);
  const Array xv(x), yv(y);
  for (int64_t i = 0; i < 5; ++i) {
    double norm = 0;
    for (int64_t j = 0; j < 8; ++j) norm += xv({i, j}) * xv({i, j});
    norm = std::sqrt(norm);
    for (int64_t j = 0; j < 8; ++j) CHECK(yv({i, j}) == Approx(xv({i, j}) / norm).epsilon(1e-6));
  }
  // A zero row stays zero (divided by eps, not by 0).
  Tensor zero_row = normalize(zeros({2, 3}));
  CHECK(zero_row.to_vector<float>() == std::vector<float>(6, 0.0f));
  CHECK(normalize(from_vector<double>({3, 4, 0, 5}, {2, 2}), 1).to_vector<double>() ==
        std::vector<double>{0.6, 0.8, 0.0, 1.0});
  CHECK(normalize(from_vector<double>({3, 0, 4, 5}, {2, 2}), 0).to_vector<double>() ==
        std::vector<double>{0.6, 0.0, 0.8, 1.0});
}

// ---- softmax and losses ---------------------------------------------------------------------------------------

TEST_CASE("log_softmax against the formula", "[unit]") {
  Generator gen = generator_for("log_softmax against the formula");
  Tensor x = mul(random_normal({4, 6}, gen, kFloat32), 3.0);
  const Array xv(x);
  Array expected({4, 6}, 0.0);
  for (int64_t i = 0; i < 4; ++i) {
    double total = 0;
    for (int64_t j = 0; j < 6; ++j) total += std::exp(xv({i, j}));
    for (int64_t j = 0; j < 6; ++j) expected({i, j}) = xv({i, j}) - std::log(total);
  }
  require_close(log_softmax(x), expected, 1e-6);
  // Rows of softmax sum to 1; along dim 0 too.
  for (float s : sum(exp(log_softmax(x, 1)), {1}).to_vector<float>()) CHECK(s == Approx(1.0).epsilon(1e-6));
  for (float s : sum(softmax(x, 0), {0}).to_vector<float>()) CHECK(s == Approx(1.0).epsilon(1e-6));
  // A middle dimension.
  Tensor cube = random_normal({2, 5, 3}, gen, kFloat64);
  for (double s : sum(softmax(cube, 1), {1}).to_vector<double>()) CHECK(s == Approx(1.0).epsilon(1e-12));
  // Huge logits do not overflow: the max shift.
  Tensor huge = from_vector<float>({1000.0f, 1000.0f, -1000.0f});
  std::vector<float> out = log_softmax(huge).to_vector<float>();
  CHECK(out[0] == Approx(-std::log(2.0)).epsilon(1e-6));
  CHECK(out[1] == Approx(-std::log(2.0)).epsilon(1e-6));
  CHECK(out[2] == Approx(-2000.0 - std::log(2.0)).epsilon(1e-6));
  // -inf logits get probability 0, not NaN.
  std::vector<double> masked = softmax(from_vector<double>({-INFINITY, 0.0, 0.0})).to_vector<double>();
  CHECK(masked[0] == 0.0);
  CHECK(masked[1] == Approx(0.5).epsilon(1e-15));
  CHECK(masked[2] == Approx(0.5).epsilon(1e-15));
}

namespace {

// -(1 - s) log p[t] - (s / C) sum_c log p[c], with p = softmax(logits row).
double reference_cross_entropy(const std::vector<double>& row, int64_t target, double smoothing) {
  double maximum = *std::max_element(row.begin(), row.end()), total = 0;
  for (double v : row) total += std::exp(v - maximum);
  const double log_total = maximum + std::log(total);
  double sum_log_p = 0;
  for (double v : row) sum_log_p += v - log_total;
  const double classes = static_cast<double>(row.size());
  return -(1 - smoothing) * (row[target] - log_total) - smoothing / classes * sum_log_p;
}

}  // namespace

TEST_CASE("cross_entropy against the formula", "[unit]") {
  Generator gen = generator_for("cross_entropy against the formula");
  const int64_t batch = 6, classes = 5;
  Tensor logits = random_normal({batch, classes}, gen, kFloat64);
  Tensor targets = from_vector<int64_t>({4, 0, -100, 2, 2, 1});
  const Array lv(logits);
  auto row = [&](int64_t i) {
    return std::vector<double>(lv.values.begin() + i * classes, lv.values.begin() + (i + 1) * classes);
  };
  const std::vector<int64_t> t = targets.to_vector<int64_t>();
  for (double smoothing : {0.0, 0.1, 0.5}) {
    INFO("label_smoothing " << smoothing);
    std::vector<double> per_row;
    double total = 0;
    int64_t counted = 0;
    for (int64_t i = 0; i < batch; ++i) {
      const double loss = t[i] == -100 ? 0.0 : reference_cross_entropy(row(i), t[i], smoothing);
      per_row.push_back(loss);
      total += loss;
      counted += t[i] != -100;
    }
    CHECK(cross_entropy(logits, targets, {.label_smoothing = smoothing}).item() ==
          Approx(total / static_cast<double>(counted)).epsilon(1e-12));  // mean over non-ignored rows
    CHECK(cross_entropy(logits, targets, {.label_smoothing = smoothing, .reduction = Reduction::Sum}).item() ==
          Approx(total).epsilon(1e-12));
    Tensor none = cross_entropy(logits, targets, {.label_smoothing = smoothing, .reduction = Reduction::None});
    REQUIRE(none.shape() == Shape{batch});
    std::vector<double> values = none.to_vector<double>();
    for (int64_t i = 0; i < batch; ++i) CHECK(values[i] == Approx(per_row[i]).epsilon(1e-12).margin(1e-15));
  }
  // Soft targets: -sum_c t'_c log p_c with t' = (1 - s) t + s / C; mean over all rows.
  Tensor soft = softmax(random_normal({batch, classes}, gen, kFloat64), 1);
  const Array sv(soft);
  for (double smoothing : {0.0, 0.2}) {
    double total = 0;
    for (int64_t i = 0; i < batch; ++i) {
      std::vector<double> r = row(i);
      const double maximum = *std::max_element(r.begin(), r.end());
      double z = 0;
      for (double v : r) z += std::exp(v - maximum);
      for (int64_t c = 0; c < classes; ++c) {
        const double target = (1 - smoothing) * sv({i, c}) + smoothing / classes;
        total -= target * (r[c] - maximum - std::log(z));
      }
    }
    CHECK(cross_entropy(logits, soft, {.label_smoothing = smoothing}).item() ==
          Approx(total / batch).epsilon(1e-12));
  }
  // One-hot soft targets give the same loss as the class indices.
  Tensor indices = from_vector<int64_t>({4, 0, 1, 2, 2, 1});
  CHECK(cross_entropy(logits, one_hot(indices, classes, kFloat64)).item() ==
        Approx(cross_entropy(logits, indices).item()).epsilon(1e-12));
}

TEST_CASE("nll_loss picks the target log-probabilities", "[unit]") {
  Tensor log_probs = from_vector<double>({-0.1, -2.0, -3.0, -1.5, -0.7, -0.9}, {2, 3});
  CHECK(nll_loss(log_probs, from_vector<int64_t>({0, 2})).item() == Approx((0.1 + 0.9) / 2));
  CHECK(nll_loss(log_probs, from_vector<int64_t>({1, 1}), {.reduction = Reduction::Sum}).item() == Approx(2.7));
  CHECK(nll_loss(log_probs, from_vector<int64_t>({1, -100})).item() == Approx(2.0));
  // Every row ignored: the mean is 0 / 0 = NaN, as in PyTorch.
  CHECK(std::isnan(nll_loss(log_probs, from_vector<int64_t>({-100, -100})).item()));
}
