// Forward values of log_softmax, softmax, nll_loss and cross_entropy
// (engine/ops/cross_entropy.h); kernels/cpu/cross_entropy.h lists the family's files.
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
