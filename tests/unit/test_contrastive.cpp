// The fused contrastive losses on the CPU (engine/ops/contrastive.h): hand-computed values,
// agreement with a direct float64 reference written out in plain loops (the loss) and with
// the unfused formulation built from the engine's own ops (normalize, matmul,
// masking, log_softmax: the full 2N x C matrix, differentiated by autograd), the identities
// the definitions promise, the fast float32 CPU kernel against the double-loop reference, and
// bad input. Where to look for the rest of the family: kernels/cpu/contrastive.h.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "engine/ops.h"
#include "kernels/cpu/reference/reference_kernels.h"
#include "kernels/cpu/vector_math.h"
#include "tests/support/mirrored_ranks.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

namespace {

// The usual, unfused way (SupContrast's losses.py written with this engine's ops). classes:
// the class of every row of h (R values), or empty for NT-Xent (row j is of class j mod N).
Tensor unfused_contrastive(const Tensor& h, const Tensor& extra, std::vector<int64_t> classes, double tau,
                           double scale, int64_t anchors) {
  const int64_t rows = h.size(0), images = rows / 2;
  const Tensor all = extra.defined() ? concat({h, extra}, 0) : h;
  const int64_t columns = all.size(0);
  if (classes.empty())
    for (int64_t j = 0; j < rows; ++j) classes.push_back(j % images);
  std::vector<double> self(static_cast<size_t>(anchors * columns), 0.0), positive(self.size(), 0.0);
  for (int64_t i = 0; i < anchors; ++i)
    for (int64_t j = 0; j < columns; ++j) {
      self[i * columns + j] = i == j ? 1.0 : 0.0;
      positive[i * columns + j] = j < rows && j != i && classes[j] == classes[i] ? 1.0 : 0.0;
    }
  const TensorOptions options(h.dtype(), h.device());
  const Tensor self_mask = from_vector(self, {anchors, columns}, options);
  const Tensor positive_mask = from_vector(positive, {anchors, columns}, options);
  const Tensor z = normalize(all, 1);
  const Tensor logits = div(matmul(z.slice(0, 0, anchors), z.t()), tau);
  // simclr's objective.py masks the self term with -LARGE_NUM (1e9).
  const Tensor log_probs = log_softmax(sub(logits, mul(self_mask, 1e9)), 1);
  const Tensor count = sum(positive_mask, {1});
  const Tensor mean_positive = div(sum(mul(positive_mask, log_probs), {1}), clamp_min(count, 1.0));
  const Tensor counted = clamp_max(count, 1.0);  // 1 for anchors with a positive, else 0
  const Tensor losses = mul(mul(mean_positive, -scale), counted);
  const double k = sum(counted).item();
  return div(sum(losses), std::max(k, 1.0));
}

// Loss and gradients of `loss_of` for h (and extra when defined) as fresh leaves.
struct Evaluated {
  double loss;
  Tensor grad_h, grad_extra;
};

template <class F>
Evaluated evaluate(const Tensor& h, const Tensor& extra, F loss_of) {
  Tensor h_leaf = h.detach().clone().set_requires_grad();
  Tensor extra_leaf = extra.defined() ? extra.detach().clone().set_requires_grad() : Tensor();
  Tensor loss = loss_of(h_leaf, extra_leaf);
  loss.backward();
  return {loss.item(), h_leaf.grad(), extra_leaf.defined() ? extra_leaf.grad() : Tensor()};
}

void require_same(const Evaluated& fused, const Evaluated& unfused, double tolerance) {
  REQUIRE(std::isfinite(fused.loss));
  CHECK(fused.loss == Approx(unfused.loss).epsilon(tolerance).margin(tolerance));
  REQUIRE(fused.grad_h.defined());
  CHECK(max_abs_difference(fused.grad_h, unfused.grad_h) <= tolerance);
  if (unfused.grad_extra.defined()) {
    REQUIRE(fused.grad_extra.defined());
    CHECK(max_abs_difference(fused.grad_extra, unfused.grad_extra) <= tolerance);
  }
}

Tensor per_row_labels(const std::vector<int64_t>& values) { return from_vector(values); }

// The losses written out literally in plain double loops over the materialised matrix, as
// HobbitLong/SupContrast losses.py computes them: logits = z z^T / tau, logits_mask drops the
// self term, log_prob = logits - log sum_j logits_mask exp(logits), mean_log_prob_pos over the
// positives, times -(tau / base_tau); anchors without positives are left out of the mean
// (kernels/cpu/contrastive.h's rule, where SupContrast would divide 0 by 0). Shares no code with the op or with the
// engine's ops: h and extra as plain vectors, row j of class classes[j] (R values).
double direct_reference_loss(const std::vector<double>& h, const std::vector<double>& extra, int64_t dim,
                             const std::vector<int64_t>& classes, double tau, double base_tau, int64_t anchors) {
  const int64_t rows = static_cast<int64_t>(classes.size());
  const int64_t columns = rows + static_cast<int64_t>(extra.size()) / dim;
  std::vector<double> z(static_cast<size_t>(columns * dim));
  for (int64_t j = 0; j < columns; ++j) {
    const double* source = j < rows ? &h[j * dim] : &extra[(j - rows) * dim];
    double squares = 0.0;
    for (int64_t d = 0; d < dim; ++d) squares += source[d] * source[d];
    for (int64_t d = 0; d < dim; ++d) z[j * dim + d] = source[d] / std::sqrt(squares);
  }
  std::vector<double> logits(static_cast<size_t>(anchors * columns));
  for (int64_t i = 0; i < anchors; ++i)
    for (int64_t j = 0; j < columns; ++j) {
      double dot = 0.0;
      for (int64_t d = 0; d < dim; ++d) dot += z[i * dim + d] * z[j * dim + d];
      logits[i * columns + j] = dot / tau;
    }
  double total = 0.0;
  int64_t counted = 0;
  for (int64_t i = 0; i < anchors; ++i) {
    double denominator = 0.0;  // logits are at most 1 / tau = 100 here: no shift needed in double
    for (int64_t j = 0; j < columns; ++j)
      if (j != i) denominator += std::exp(logits[i * columns + j]);
    double positive_log_probs = 0.0;
    int64_t positives = 0;
    for (int64_t j = 0; j < rows; ++j)
      if (j != i && classes[j] == classes[i]) {
        positive_log_probs += logits[i * columns + j] - std::log(denominator);
        ++positives;
      }
    if (positives == 0) continue;
    total += -(tau / base_tau) * positive_log_probs / static_cast<double>(positives);
    ++counted;
  }
  return counted > 0 ? total / static_cast<double>(counted) : 0.0;
}

}  // namespace

// ---- hand-computed values --------------------------------------------------------------------------------

TEST_CASE("nt_xent_loss of orthogonal views, by hand", "[unit]") {
  // z = [1,0], [0,1], [1,0], [0,1] (rows scaled: the loss sees only directions). For anchor 0
  // the logits over j != 0 are s01 = 0, s02 = 1 (its view), s03 = 0 at tau = 1:
  //   loss_0 = -(1 - log(e + 2)), and by symmetry every row gives the same.
  const Tensor h = from_vector(std::vector<double>{3, 0, 0, 0.5, 2, 0, 0, 7}, {4, 2});
  const double expected = std::log(std::exp(1.0) + 2.0) - 1.0;
  CHECK(nt_xent_loss(h, 1.0).item() == Approx(expected).epsilon(1e-14));
  // At tau = 0.5 the logits double: -(2 - log(e^2 + 2)).
  CHECK(nt_xent_loss(h, 0.5).item() == Approx(std::log(std::exp(2.0) + 2.0) - 2.0).epsilon(1e-14));
}

TEST_CASE("supcon_loss of one class, by hand", "[unit]") {
  // The same rows, all of class 0: anchor 0 has positives {1, 2, 3} with logits 0, 1, 0, so
  //   loss_0 = -(tau/base_tau) (1/3 - log(e + 2)), the same for every row by symmetry.
  const Tensor h = from_vector(std::vector<double>{3, 0, 0, 0.5, 2, 0, 0, 7}, {4, 2});
  const Tensor one_class = from_vector(std::vector<int64_t>{0, 0});
  const double base = std::log(std::exp(1.0) + 2.0) - 1.0 / 3.0;
  CHECK(supcon_loss(h, one_class, 1.0, 1.0).item() == Approx(base).epsilon(1e-14));
  CHECK(supcon_loss(h, one_class, 1.0, 0.5).item() == Approx(2.0 * base).epsilon(1e-14));
  // Mode 'one': anchors 0 and 1 only, which give the same loss here.
  CHECK(supcon_loss(h, one_class, 1.0, 1.0, ContrastMode::One).item() == Approx(base).epsilon(1e-14));
}

TEST_CASE("nt_xent_loss of one image is zero", "[unit]") {
  // 2N = 2: each row's only other column is its positive, so the softmax is exactly 1.
  Generator gen = generator_for("nt_xent_loss of one image is zero");
  const Evaluated result = evaluate(random_normal({2, 5}, gen), Tensor(),
                                    [](const Tensor& h, const Tensor&) { return nt_xent_loss(h, 0.1); });
  CHECK(result.loss == Approx(0.0).margin(1e-15));
  CHECK(max_abs_difference(result.grad_h, zeros({2, 5}, kFloat64)) <= 1e-15);
}

// ---- against the direct reference ------------------------------------------------------------------------

TEST_CASE("contrastive losses match the direct float64 reference", "[unit]") {
  Generator gen = generator_for("contrastive losses match the direct float64 reference");
  for (const int64_t images : {1, 3, 65}) {
    const int64_t rows = 2 * images;
    for (const int64_t dim : {3, 100}) {
      for (const double tau : {0.05, 1.0}) {
        INFO("2N " << rows << ", D " << dim << ", tau " << tau);
        const Tensor h = random_normal({rows, dim}, gen), extra = random_normal({5, dim}, gen);
        const std::vector<double> h_values = h.to_vector<double>(), extra_values = extra.to_vector<double>();
        std::vector<int64_t> own_image(static_cast<size_t>(rows)), image_labels(static_cast<size_t>(images));
        for (int64_t j = 0; j < rows; ++j) own_image[j] = j % images;
        for (int64_t n = 0; n < images; ++n) image_labels[n] = n % 4;  // classes shared by several images
        std::vector<int64_t> image_classes(static_cast<size_t>(rows)), singletons(static_cast<size_t>(rows));
        for (int64_t j = 0; j < rows; ++j) {
          image_classes[j] = image_labels[j % images];
          singletons[j] = j % 3 == 0 ? 1000 + j : j % 2;  // every third row alone in its class
        }
        // Relative, and absolute near 0 (2N = 2 gives losses of ~1e-16).
        const auto matches = [&](const Tensor& loss, const std::vector<double>& extra_rows,
                                 const std::vector<int64_t>& classes, double base_tau, int64_t anchors) {
          const double expected = direct_reference_loss(h_values, extra_rows, dim, classes, tau, base_tau, anchors);
          INFO("fused " << loss.item() << ", direct " << expected);
          CHECK(std::abs(loss.item() - expected) <= 1e-12 * std::max(1.0, std::abs(expected)));
        };
        matches(nt_xent_loss(h, tau), {}, own_image, tau, rows);
        matches(nt_xent_loss(h, tau, extra), extra_values, own_image, tau, rows);
        matches(supcon_loss(h, from_vector(image_labels), tau, 0.07), {}, image_classes, 0.07, rows);
        matches(supcon_loss(h, from_vector(image_labels), tau, 0.07, ContrastMode::One), {}, image_classes, 0.07,
                images);
        matches(supcon_loss(h, from_vector(singletons), tau, 0.1), {}, singletons, 0.1, rows);
        matches(supcon_loss(h, zeros({images}, kInt64), tau, 0.07), {}, std::vector<int64_t>(rows, 0), 0.07, rows);
      }
    }
  }
}

// ---- against the unfused formulation ---------------------------------------------------------------------

TEST_CASE("nt_xent_loss matches the unfused losses", "[unit]") {
  Generator gen = generator_for("nt_xent_loss matches the unfused losses");
  for (const int64_t rows : {4, 6, 10, 30}) {
    for (const int64_t dim : {1, 3, 17}) {
      for (const double tau : {0.05, 0.5, 10.0}) {
        INFO("2N " << rows << ", D " << dim << ", tau " << tau);
        const Tensor h = random_normal({rows, dim}, gen);
        const auto fused = evaluate(h, Tensor(), [&](const Tensor& x, const Tensor&) { return nt_xent_loss(x, tau); });
        const auto unfused = evaluate(h, Tensor(), [&](const Tensor& x, const Tensor&) {
          return unfused_contrastive(x, Tensor(), {}, tau, 1.0, rows);
        });
        require_same(fused, unfused, 1e-11);
      }
    }
  }
}

TEST_CASE("nt_xent_loss with extra negatives", "[unit]") {
  Generator gen = generator_for("nt_xent_loss with extra negatives");
  const Tensor h = random_normal({8, 5}, gen), extra = random_normal({7, 5}, gen);
  SECTION("loss and the gradients of both inputs") {
    const auto fused =
        evaluate(h, extra, [](const Tensor& x, const Tensor& e) { return nt_xent_loss(x, 0.2, e); });
    const auto unfused = evaluate(h, extra, [](const Tensor& x, const Tensor& e) {
      return unfused_contrastive(x, e, {}, 0.2, 1.0, 8);
    });
    require_same(fused, unfused, 1e-12);
    // More negatives, larger denominators: the loss can only grow.
    CHECK(fused.loss > nt_xent_loss(h, 0.2).item());
  }
  SECTION("without a gradient for the extra rows") {
    Tensor x = h.clone().set_requires_grad();
    const Tensor e = extra.clone();  // no requires_grad
    nt_xent_loss(x, 0.2, e).backward();
    CHECK(x.grad().defined());
    CHECK_FALSE(e.grad().defined());
    const auto unfused = evaluate(h, extra, [](const Tensor& a, const Tensor& b) {
      return unfused_contrastive(a, b, {}, 0.2, 1.0, 8);
    });
    CHECK(max_abs_difference(x.grad(), unfused.grad_h) <= 1e-12);
  }
  SECTION("an empty block of extra rows changes nothing") {
    CHECK(nt_xent_loss(h, 0.2, zeros({0, 5}, kFloat64)).item() == Approx(nt_xent_loss(h, 0.2).item()).epsilon(1e-15));
  }
}

TEST_CASE("supcon_loss matches the unfused losses", "[unit]") {
  Generator gen = generator_for("supcon_loss matches the unfused losses");
  const int64_t images = 6, rows = 12, dim = 9;
  const Tensor h = random_normal({rows, dim}, gen);
  const std::vector<int64_t> image_labels = {3, 1, 3, 0, 1, 3};
  std::vector<int64_t> row_classes;
  for (int64_t j = 0; j < rows; ++j) row_classes.push_back(image_labels[j % images]);
  for (const double tau : {0.07, 0.5}) {
    for (const ContrastMode mode : {ContrastMode::All, ContrastMode::One}) {
      INFO("tau " << tau << ", mode " << (mode == ContrastMode::All ? "all" : "one"));
      const int64_t anchors = mode == ContrastMode::All ? rows : images;
      const auto fused = evaluate(h, Tensor(), [&](const Tensor& x, const Tensor&) {
        return supcon_loss(x, from_vector(image_labels), tau, 0.07, mode);
      });
      const auto unfused = evaluate(h, Tensor(), [&](const Tensor& x, const Tensor&) {
        return unfused_contrastive(x, Tensor(), row_classes, tau, tau / 0.07, anchors);
      });
      require_same(fused, unfused, 1e-11);
      // Per-row labels that repeat the per-image ones are the same problem.
      const auto per_row = evaluate(h, Tensor(), [&](const Tensor& x, const Tensor&) {
        return supcon_loss(x, from_vector(row_classes), tau, 0.07, mode);
      });
      require_same(per_row, fused, 1e-14);
    }
  }
}

TEST_CASE("supcon_loss without labels equals nt_xent_loss", "[unit]") {
  Generator gen = generator_for("supcon_loss without labels equals nt_xent_loss");
  const Tensor h = random_normal({10, 4}, gen);
  for (const double tau : {0.05, 1.0}) {
    const auto supcon =
        evaluate(h, Tensor(), [&](const Tensor& x, const Tensor&) { return supcon_loss(x, Tensor(), tau, tau); });
    const auto nt_xent = evaluate(h, Tensor(), [&](const Tensor& x, const Tensor&) { return nt_xent_loss(x, tau); });
    require_same(supcon, nt_xent, 1e-14);
    // Labels 0..N-1 (every image its own class) are the same thing.
    const auto distinct = evaluate(h, Tensor(), [&](const Tensor& x, const Tensor&) {
      return supcon_loss(x, arange(5), tau, tau);
    });
    require_same(distinct, nt_xent, 1e-14);
  }
}

TEST_CASE("supcon_loss with anchors that have no positive", "[unit]") {
  Generator gen = generator_for("supcon_loss with anchors that have no positive");
  const Tensor h = random_normal({6, 5}, gen);
  SECTION("singleton rows are left out of the mean") {
    // Per-row labels: rows 2 (class 1), 3 (class 2) and 5 (class 3) have no other row of
    // their class. SupContrast would count them as zeros in the mean; here K = 3.
    const std::vector<int64_t> classes = {0, 0, 1, 2, 0, 3};
    const auto fused = evaluate(h, Tensor(), [&](const Tensor& x, const Tensor&) {
      return supcon_loss(x, per_row_labels(classes), 0.1, 0.1);
    });
    const auto unfused = evaluate(h, Tensor(), [&](const Tensor& x, const Tensor&) {
      return unfused_contrastive(x, Tensor(), classes, 0.1, 1.0, 6);
    });
    require_same(fused, unfused, 1e-12);
  }
  SECTION("no anchor with a positive: loss 0 and gradient 0, no NaN") {
    const auto fused = evaluate(h, Tensor(), [&](const Tensor& x, const Tensor&) {
      return supcon_loss(x, per_row_labels({5, 4, 3, 2, 1, 0}), 0.1, 0.1);
    });
    CHECK(fused.loss == 0.0);
    CHECK(max_abs_difference(fused.grad_h, zeros({6, 5}, kFloat64)) == 0.0);
  }
}

// ---- identities of the definitions -----------------------------------------------------------------------

TEST_CASE("contrastive losses see only directions", "[unit]") {
  Generator gen = generator_for("contrastive losses see only directions");
  const Tensor h = random_normal({8, 6}, gen);
  const Tensor scales = random_uniform({8, 1}, 0.1, 10.0, gen);
  const Tensor labels = from_vector(std::vector<int64_t>{0, 1, 0, 2});
  CHECK(nt_xent_loss(mul(h, scales), 0.3).item() == Approx(nt_xent_loss(h, 0.3).item()).epsilon(1e-13));
  CHECK(supcon_loss(mul(h, scales), labels, 0.3).item() == Approx(supcon_loss(h, labels, 0.3).item()).epsilon(1e-13));
  // So the gradient of each row is orthogonal to the row itself.
  const auto result = evaluate(h, Tensor(), [&](const Tensor& x, const Tensor&) { return supcon_loss(x, labels, 0.3); });
  const std::vector<double> g = result.grad_h.to_vector<double>(), x = h.to_vector<double>();
  for (int64_t i = 0; i < 8; ++i) {
    double along = 0.0, size = 0.0;
    for (int64_t d = 0; d < 6; ++d) {
      along += g[i * 6 + d] * x[i * 6 + d];
      size += g[i * 6 + d] * g[i * 6 + d];
    }
    CHECK(std::abs(along) <= 1e-13 * (1.0 + std::sqrt(size)));
  }
}

TEST_CASE("contrastive losses in float32 and bfloat16 follow float64", "[unit]") {
  // The reference's property (it computes in double whatever the dtype); the fast float32
  // kernel is held to the reference below.
  const kernels::cpu::ScopedReferenceKernels reference;
  Generator gen = generator_for("contrastive losses in float32 and bfloat16 follow float64");
  const Tensor h = random_normal({12, 16}, gen);
  const Tensor labels = from_vector(std::vector<int64_t>{0, 1, 0, 2, 2, 1});
  for (const DType dtype : {kFloat32, kBFloat16}) {
    INFO(dtype_name(dtype));
    // The float64 reference sees the same (rounded) inputs.
    const Tensor rounded = h.to(dtype).to(kFloat64);
    const auto exact = evaluate(rounded, Tensor(), [&](const Tensor& x, const Tensor&) { return supcon_loss(x, labels, 0.1); });
    Tensor x = h.to(dtype).set_requires_grad();
    Tensor loss = supcon_loss(x, labels, 0.1);
    CHECK(loss.dtype() == kFloat32);  // the loss of bfloat16 embeddings is float32
    loss.backward();
    CHECK(x.grad().dtype() == dtype);
    CHECK(loss.item() == Approx(exact.loss).epsilon(1e-6));
    // float32: the double computation rounded once; bfloat16: the gradient rounded to 8 bits.
    const double tolerance = dtype == kFloat32 ? 1e-7 : 4e-3 * (1.0 + max_abs_difference(exact.grad_h, zeros_like(exact.grad_h)));
    CHECK(max_abs_difference(x.grad().to(kFloat64), exact.grad_h) <= tolerance);
  }
}

TEST_CASE("larger problems stay finite at small temperatures", "[unit]") {
  // tau = 0.01 makes logits of up to 100: the max-shifted log-sum-exp must not overflow.
  Generator gen = generator_for("larger problems stay finite at small temperatures");
  const Tensor h = random_normal({130, 3}, gen, kFloat32);
  Tensor x = h.clone().set_requires_grad();
  Tensor loss = nt_xent_loss(x, 0.01);
  loss.backward();
  CHECK(std::isfinite(loss.item()));
  const std::vector<float> g = x.grad().to_vector<float>();
  for (float v : g) REQUIRE(std::isfinite(v));
}

// ---- the fast float32 kernel against the reference ----------------------------------------------------------

TEST_CASE("exp_float, the fast kernels' exponential, is within 2 ulp of exp", "[unit]") {
  double worst_ulps = 0.0;
  for (double x = -87.0; x <= 88.0; x += 0.001) {
    const float argument = static_cast<float>(x);
    const double exact = std::exp(static_cast<double>(argument));
    const float rounded = static_cast<float>(exact);
    const double ulp = std::nextafter(rounded, INFINITY) - rounded;
    worst_ulps = std::max(worst_ulps, std::abs(kernels::cpu::exp_float(argument) - exact) / ulp);
  }
  CHECK(worst_ulps <= 2.0);
  CHECK(kernels::cpu::exp_float(-100.0f) == 0.0f);
  CHECK(kernels::cpu::exp_float(0.0f) == 1.0f);
  CHECK(std::isfinite(kernels::cpu::exp_float(1000.0f)));
}

namespace {

// The loss and gradients of `loss_of` in float32 by the fast kernel and by the reference
// (kernels::cpu::ScopedReferenceKernels), on the same leaves. Tolerances: the loss within
// 1e-6 relative; every gradient within 1e-5 of the largest reference gradient (the
// similarities come from float32 GEMMs and the exponentials from exp_float; measured: the
// loss rounds to the same float32 or 3e-7 off, the gradients 2e-7 to 6e-7 of the largest).
template <class F>
void check_fast_against_reference(const std::string& name, const Tensor& h, const Tensor& extra, F loss_of) {
  INFO(name << ", h " << shape_string(h.shape()));
  const Evaluated fast = evaluate(h, extra, loss_of);
  Evaluated reference;
  {
    const kernels::cpu::ScopedReferenceKernels use_reference;
    reference = evaluate(h, extra, loss_of);
  }
  REQUIRE(std::isfinite(fast.loss));
  CHECK(fast.loss == Approx(reference.loss).epsilon(1e-6).margin(1e-7));
  const double scale = std::max(max_abs_difference(reference.grad_h, zeros_like(reference.grad_h)), 1e-30);
  CHECK(max_abs_difference(fast.grad_h, reference.grad_h) <= 1e-5 * scale);
  if (reference.grad_extra.defined()) {
    REQUIRE(fast.grad_extra.defined());
    CHECK(max_abs_difference(fast.grad_extra, reference.grad_extra) <= 1e-5 * scale);
  }
}

}  // namespace

TEST_CASE("contrastive losses: the fast float32 kernel follows the reference", "[unit]") {
  Generator gen = generator_for("contrastive losses: the fast float32 kernel follows the reference");
  const auto nt_xent = [](double tau) {
    return [tau](const Tensor& x, const Tensor& extra) { return nt_xent_loss(x, tau, extra); };
  };
  // The main job's step (2N = 512, D = 128, tau 0.1), blocks of 64 anchors with a remainder
  // (2N = 130), odd embedding widths, one image, large logits (tau 0.01).
  check_fast_against_reference("main job", random_normal({512, 128}, gen, kFloat32), Tensor(), nt_xent(0.1));
  check_fast_against_reference("2N = 130, D = 17", random_normal({130, 17}, gen, kFloat32), Tensor(), nt_xent(0.5));
  check_fast_against_reference("one image", random_normal({2, 5}, gen, kFloat32), Tensor(), nt_xent(0.1));
  check_fast_against_reference("tau 0.01", random_normal({70, 3}, gen, kFloat32), Tensor(), nt_xent(0.01));
  check_fast_against_reference("extra negatives", random_normal({66, 9}, gen, kFloat32),
                               random_normal({75, 9}, gen, kFloat32), nt_xent(0.2));
  // SupCon: labels per image and per row (with anchors that have no positive), mode 'one'.
  const Tensor image_labels = randint(0, 5, {65}, TensorOptions(kInt64), gen);
  check_fast_against_reference("supcon, labels per image", random_normal({130, 12}, gen, kFloat32), Tensor(),
                               [&](const Tensor& x, const Tensor&) { return supcon_loss(x, image_labels, 0.1); });
  const Tensor row_labels = per_row_labels({0, 1, 2, 3, 0, 5, 6, 1});
  check_fast_against_reference("supcon, labels per row, singletons", random_normal({8, 4}, gen, kFloat32), Tensor(),
                               [&](const Tensor& x, const Tensor&) { return supcon_loss(x, row_labels, 0.1); });
  check_fast_against_reference("supcon, mode one", random_normal({130, 12}, gen, kFloat32), Tensor(),
                               [&](const Tensor& x, const Tensor&) {
                                 return supcon_loss(x, image_labels, 0.1, 0.07, ContrastMode::One);
                               });
  // The cross-rank form: labelled extra rows (other ranks' views), positives of their class
  // (per-column labels, Q = C), in modes 'all' and 'one'.
  const Tensor extra_labels = randint(0, 5, {75}, TensorOptions(kInt64), gen);
  for (const ContrastMode mode : {ContrastMode::All, ContrastMode::One}) {
    check_fast_against_reference(mode == ContrastMode::All ? "supcon, labelled extra rows" : "supcon, labelled extra rows, mode one",
                                 random_normal({130, 12}, gen, kFloat32), random_normal({75, 12}, gen, kFloat32),
                                 [&](const Tensor& x, const Tensor& extra) {
                                   return supcon_loss(x, image_labels, 0.1, 0.07, mode, extra, extra_labels);
                                 });
  }
}

// ---- bad input -------------------------------------------------------------------------------------------

namespace {

void require_error(const std::function<void()>& call, const std::vector<std::string>& parts) {
  try {
    call();
  } catch (const Error& error) {
    const std::string message = error.what();
    for (const std::string& part : parts) {
      INFO("message: " << message);
      CHECK(message.find(part) != std::string::npos);
    }
    return;
  }
  FAIL("no visrep::Error was thrown");
}

}  // namespace

TEST_CASE("contrastive losses reject bad input", "[unit]") {
  Generator gen = generator_for("contrastive losses reject bad input");
  const Tensor h = random_normal({6, 4}, gen, kFloat32);
  require_error([&] { nt_xent_loss(random_normal({5, 4}, gen, kFloat32), 0.1); }, {"nt_xent_loss", "even", "5 rows"});
  require_error([&] { nt_xent_loss(random_normal({6}, gen, kFloat32), 0.1); }, {"nt_xent_loss", "(2N, D)", "[6]"});
  require_error([&] { nt_xent_loss(zeros({6, 4}, kInt64), 0.1); }, {"nt_xent_loss", "int64"});
  require_error([&] { nt_xent_loss(zeros({6, 0}), 0.1); }, {"nt_xent_loss", "dimension 0"});
  require_error([&] { nt_xent_loss(h, 0.0); }, {"nt_xent_loss", "temperature", "positive"});
  require_error([&] { nt_xent_loss(h, -0.5); }, {"nt_xent_loss", "temperature", "-0.5"});
  require_error([&] { nt_xent_loss(h, std::nan("")); }, {"nt_xent_loss", "temperature"});
  require_error([&] { supcon_loss(h, arange(3), 0.1, 0.0); }, {"supcon_loss", "base temperature"});
  require_error([&] { supcon_loss(h, arange(3), -1.0); }, {"supcon_loss", "temperature", "-1"});
  require_error([&] { supcon_loss(h, arange(3), INFINITY); }, {"supcon_loss", "temperature"});
  require_error([&] { supcon_loss(random_normal({7, 4}, gen, kFloat32), arange(3), 0.1); },
                {"supcon_loss", "even", "7 rows"});
  require_error([&] { supcon_loss(h, arange(4), 0.1); }, {"supcon_loss", "labels of shape [4]", "6 rows", "(3)", "(6)"});
  require_error([&] { supcon_loss(h, zeros({3}), 0.1); }, {"supcon_loss", "labels must be int64", "float32"});
  require_error([&] { supcon_loss(h, zeros({3, 1}, kInt64), 0.1); }, {"supcon_loss", "labels of shape [3, 1]"});
  require_error([&] { nt_xent_loss(h, 0.1, zeros({2, 5})); }, {"nt_xent_loss", "extra_negatives", "(M, 4)", "[2, 5]"});
  require_error([&] { nt_xent_loss(h, 0.1, zeros({2, 4}, kFloat64)); }, {"nt_xent_loss", "float32", "float64"});
  SECTION("non-finite embeddings name the row") {
    Tensor bad = h.clone();
    bad.data<float>()[9] = std::nanf("");  // row 2
    require_error([&] { nt_xent_loss(bad, 0.1); }, {"nt_xent_loss", "h row 2", "NaN or Inf"});
    Tensor infinite_extra = zeros({3, 4});
    infinite_extra.data<float>()[4] = INFINITY;  // extra row 1
    require_error([&] { nt_xent_loss(h, 0.1, infinite_extra); }, {"nt_xent_loss", "extra_negatives row 1"});
    require_error([&] { supcon_loss(bad, arange(3), 0.1); }, {"supcon_loss", "h row 2"});
  }
}

// ---- across ranks: local anchors against every rank's columns -------------------------------------------------
//
// A global batch of P * n images, view-major as one device holds it (rows [0, Pn) the first
// views, [Pn, 2Pn) the second), cut the way a job of P ranks holds it: rank k's h is its n
// images' first views, then their second views; the other ranks' rows are its extra columns.
// Each rank's mean over its K_k anchors, weighted K_k / K, must add up to the one-device loss,
// and the gradients (summed over every rank's use of each row, which autograd does here since
// every piece is cut from one global leaf) to the one-device gradients.

namespace {

struct RankSplit {
  int ranks;
  int64_t images_per_rank;
};

// Rank k's 2n rows of the view-major global batch `global`, view-major within the rank.
Tensor rank_rows(const Tensor& global, const RankSplit& split, int k) {
  const int64_t n = split.images_per_rank, total = split.ranks * n;
  return concat({global.narrow(0, k * n, n), global.narrow(0, total + k * n, n)});
}

// Every rank's rows but rank r's, in rank order: what the cross-rank losses gather.
Tensor other_ranks(const std::function<Tensor(int)>& rows_of, const RankSplit& split, int r) {
  std::vector<Tensor> pieces;
  for (int k = 0; k < split.ranks; ++k)
    if (k != r) pieces.push_back(rows_of(k));
  return concat(pieces);
}

}  // namespace

TEST_CASE("contrastive losses of rank slices add up to the one-device loss", "[unit]") {
  Generator gen = generator_for("contrastive losses of rank slices add up to the one-device loss");
  for (const RankSplit split : {RankSplit{2, 3}, RankSplit{3, 2}, RankSplit{4, 1}}) {
    const int64_t n = split.images_per_rank, images = split.ranks * n, dim = 5;
    INFO(split.ranks << " ranks of " << n << " images");
    const Tensor global = random_normal({2 * images, dim}, gen).set_requires_grad();
    // Labels shared across ranks: every class has members on several ranks, so positives sit
    // in other ranks' blocks.
    const Tensor image_labels = randint(0, 3, {images}, kInt64, gen);
    const auto row_labels_of = [&](int k) { return image_labels.narrow(0, k * n, n); };
    const auto rows_of = [&](int k) { return rank_rows(global, split, k); };
    const auto view_labels_of = [&](int k) { return concat({row_labels_of(k), row_labels_of(k)}); };

    SECTION("NT-Xent: positives in the rank's own block, every other rank's rows negatives") {
      const Tensor one_device = nt_xent_loss(global, 0.3);
      Tensor shares;
      for (int r = 0; r < split.ranks; ++r) {
        // Every anchor has its positive: K_r / K = 1 / P.
        const Tensor share = div(nt_xent_loss(rows_of(r), 0.3, other_ranks(rows_of, split, r)), split.ranks);
        shares = shares.defined() ? add(shares, share) : share;
      }
      CHECK(shares.item() == Approx(one_device.item()).epsilon(1e-12));
      const TensorList expected = gradients({one_device}, {global}, {Tensor()});
      const TensorList got = gradients({shares}, {global}, {Tensor()});
      CHECK(max_abs_difference(got[0], expected[0]) <= 1e-12);
    }
    SECTION("SupCon: positives on other ranks through the extra rows' labels") {
      for (const ContrastMode mode : {ContrastMode::All, ContrastMode::One}) {
        INFO("mode " << (mode == ContrastMode::All ? "all" : "one"));
        const Tensor one_device = supcon_loss(global, image_labels, 0.2, 0.07, mode);
        Tensor shares;
        for (int r = 0; r < split.ranks; ++r) {
          const Tensor extra = other_ranks(rows_of, split, r), extra_labels = other_ranks(view_labels_of, split, r);
          // Two views and per-image labels: every anchor has a positive, K_r / K = 1 / P.
          const Tensor local = supcon_loss(rows_of(r), row_labels_of(r), 0.2, 0.07, mode, extra, extra_labels);
          const Tensor share = div(local, split.ranks);
          shares = shares.defined() ? add(shares, share) : share;
        }
        CHECK(shares.item() == Approx(one_device.item()).epsilon(1e-12));
        const TensorList expected = gradients({one_device}, {global}, {Tensor()});
        const TensorList got = gradients({shares}, {global}, {Tensor()});
        CHECK(max_abs_difference(got[0], expected[0]) <= 1e-12);
      }
    }
    SECTION("SupCon with extra rows but labels only for h: the extra rows are negatives, not positives") {
      // Without extra_labels the extra rows could only be negatives; the op refuses to guess.
      const Tensor extra = other_ranks(rows_of, split, 0);
      CHECK_THROWS_WITH(supcon_loss(rows_of(0), row_labels_of(0), 0.2, 0.07, ContrastMode::All, extra),
                        Catch::Contains("need their labels (extra_labels)"));
    }
  }
}

TEST_CASE("cross-rank contrastive losses on one rank are the one-device losses", "[unit]") {
  Generator gen = generator_for("cross-rank contrastive losses on one rank are the one-device losses");
  MirroredRanks alone(0, 1);
  const Tensor h = random_normal({8, 3}, gen), labels = randint(0, 2, {4}, kInt64, gen);
  const auto plain = evaluate(h, Tensor(), [](const Tensor& x, const Tensor&) { return nt_xent_loss(x, 0.5); });
  const auto ranked = evaluate(h, Tensor(), [&](const Tensor& x, const Tensor&) { return nt_xent_loss(x, 0.5, alone); });
  require_same(ranked, plain, 1e-15);
  const auto supcon_plain = evaluate(h, Tensor(), [&](const Tensor& x, const Tensor&) {
    return supcon_loss(x, labels, 0.1, 0.07);
  });
  const auto supcon_ranked = evaluate(h, Tensor(), [&](const Tensor& x, const Tensor&) {
    return supcon_loss(x, labels, 0.1, 0.07, ContrastMode::All, alone);
  });
  require_same(supcon_ranked, supcon_plain, 1e-15);
}

TEST_CASE("cross-rank contrastive losses over mirrored ranks are the losses of the copied batch", "[unit]") {
  // Rank r of P ranks that all hold h: the global batch is P copies of h (view-major: the
  // first views of every copy, then the second views), labels repeated with them. The
  // rank's share is the global loss, and its gradient that of the global loss with respect
  // to h, which appears in every copy.
  Generator gen = generator_for("cross-rank contrastive losses over mirrored ranks");
  const int64_t n = 3, dim = 4;
  const Tensor h = random_normal({2 * n, dim}, gen), labels = from_vector(std::vector<int64_t>{1, 0, 1});
  for (const int ranks : {2, 3}) {
    for (int rank = 0; rank < ranks; ++rank) {
      INFO("rank " << rank << " of " << ranks);
      MirroredRanks job(rank, ranks);
      const auto copies = [&](const Tensor& x) {
        std::vector<Tensor> first(static_cast<size_t>(ranks), x.narrow(0, 0, n)),
            second(static_cast<size_t>(ranks), x.narrow(0, n, n));
        first.insert(first.end(), second.begin(), second.end());
        return concat(first);
      };
      const Tensor copied_labels = concat(std::vector<Tensor>(static_cast<size_t>(ranks), labels));
      const auto nt_xent_global = evaluate(h, Tensor(), [&](const Tensor& x, const Tensor&) {
        return nt_xent_loss(copies(x), 0.4);
      });
      const auto nt_xent_ranked = evaluate(h, Tensor(), [&](const Tensor& x, const Tensor&) {
        return nt_xent_loss(x, 0.4, job);
      });
      require_same(nt_xent_ranked, nt_xent_global, 1e-12);
      const auto supcon_global = evaluate(h, Tensor(), [&](const Tensor& x, const Tensor&) {
        return supcon_loss(copies(x), copied_labels, 0.2, 0.1, ContrastMode::One);
      });
      const auto supcon_ranked = evaluate(h, Tensor(), [&](const Tensor& x, const Tensor&) {
        return supcon_loss(x, labels, 0.2, 0.1, ContrastMode::One, job);
      });
      require_same(supcon_ranked, supcon_global, 1e-12);
    }
  }
}
