// Forward values of batch_norm (engine/ops/batch_norm.h), training and evaluation;
// kernels/cpu/batch_norm.h lists the family's files. Expected values are hand-computed or
// come from the double-precision loops in tests/support/reference.h, never from the
// engine's own output.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <numeric>

#include "engine/nn/layers.h"
#include "engine/ops.h"
#include "kernels/cpu/reference/reference_kernels.h"
#include "tests/support/mirrored_ranks.h"
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

// ---- SyncBatchNorm -------------------------------------------------------------------------------
// Single-process checks; the MPI tests (tests/data_parallel) run it across real ranks with
// unequal and empty batches.

namespace {

// Counts the collectives a job's ranks were asked for, passing them to the mirrored job.
class CountingRanks final : public distributed::Collectives {
 public:
  CountingRanks(int rank, int size) : mirror_(rank, size) {}
  int rank() const override { return mirror_.rank(); }
  int size() const override { return mirror_.size(); }
  void all_reduce(const Tensor& t, distributed::ReduceOp op) override { ++calls, mirror_.all_reduce(t, op); }
  Tensor all_gather(const Tensor& t) override { return ++calls, mirror_.all_gather(t); }
  Tensor reduce_scatter(const Tensor& t, distributed::ReduceOp op) override {
    return ++calls, mirror_.reduce_scatter(t, op);
  }
  void broadcast(const Tensor& t, int root) override { ++calls, mirror_.broadcast(t, root); }
  int calls = 0;

 private:
  MirroredRanks mirror_;
};

struct NormResult {
  Tensor y, grad_x, grad_weight, grad_bias, running_mean, running_var;
};

template <class Norm>
NormResult run_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& direction, Norm&& norm) {
  Tensor x_leaf = x.clone().set_requires_grad(), w = weight.clone().set_requires_grad(),
         b = bias.clone().set_requires_grad();
  Tensor running_mean = zeros({x.size(1)}, x.dtype()), running_var = ones({x.size(1)}, x.dtype());
  Tensor y = norm(x_leaf, running_mean, running_var, w, b);
  sum(mul(y, direction)).backward();
  return {y.detach(), x_leaf.grad(), w.grad(), b.grad(), running_mean, running_var};
}

}  // namespace

TEST_CASE("sync_batch_norm on one rank is batch_norm", "[unit]") {
  Generator gen = generator_for("sync_batch_norm on one rank is batch_norm");
  for (const Shape& shape : {Shape{7, 3}, Shape{4, 3, 2, 5}}) {
    INFO("shape " << shape_string(shape));
    const Tensor x = add(mul(random_normal(shape, gen), 2.0), 1.0), direction = random_normal(shape, gen);
    const Tensor weight = random_normal({3}, gen), bias = random_normal({3}, gen);
    const BatchNormOptions options{.momentum = 0.3, .eps = 1e-3};
    MirroredRanks alone(0, 1);
    const NormResult local = run_norm(x, weight, bias, direction, [&](auto&&... a) { return batch_norm(a..., options); });
    const NormResult synced =
        run_norm(x, weight, bias, direction, [&](auto&&... a) { return sync_batch_norm(a..., options, alone); });
    CHECK(max_abs_difference(synced.y, local.y) <= 1e-14);
    CHECK(max_abs_difference(synced.grad_x, local.grad_x) <= 1e-14);
    CHECK(max_abs_difference(synced.grad_weight, local.grad_weight) <= 1e-14);
    CHECK(max_abs_difference(synced.grad_bias, local.grad_bias) <= 1e-14);
    CHECK(max_abs_difference(synced.running_mean, local.running_mean) <= 1e-15);
    CHECK(max_abs_difference(synced.running_var, local.running_var) <= 1e-15);
  }
}

TEST_CASE("sync_batch_norm over mirrored ranks normalises by the global statistics", "[unit]") {
  // Rank 1 of 3 ranks holding the same batch: the global batch is three copies, with the same
  // mean and biased variance as one (so y and the gradients are batch_norm's), but three times
  // the count, which the unbiased variance of the running statistics shows.
  Generator gen = generator_for("sync_batch_norm over mirrored ranks");
  const Shape shape{3, 2, 2, 2};
  const Tensor x = add(mul(random_normal(shape, gen), 1.5), -0.5), direction = random_normal(shape, gen);
  const Tensor weight = random_normal({2}, gen), bias = random_normal({2}, gen);
  const BatchNormOptions options{.momentum = 0.5};
  CountingRanks job(1, 3);
  const NormResult local = run_norm(x, weight, bias, direction, [&](auto&&... a) { return batch_norm(a..., options); });
  const NormResult synced =
      run_norm(x, weight, bias, direction, [&](auto&&... a) { return sync_batch_norm(a..., options, job); });
  CHECK(job.calls == 3);  // forward: the counts and the statistics; backward: the sums
  CHECK(max_abs_difference(synced.y, local.y) <= 1e-13);
  CHECK(max_abs_difference(synced.grad_x, local.grad_x) <= 1e-13);
  CHECK(max_abs_difference(synced.grad_weight, local.grad_weight) <= 1e-13);
  CHECK(max_abs_difference(synced.running_mean, local.running_mean) <= 1e-15);
  const std::vector<double> biased = var(x, {0, 2, 3}, 0).to_vector<double>();
  const std::vector<double> running_var = synced.running_var.to_vector<double>();
  const double count = 3.0 * 12;  // 3 ranks of 3 x 2 x 2 values per channel
  for (int c = 0; c < 2; ++c) {
    CHECK(running_var[c] == Approx(0.5 * 1.0 + 0.5 * biased[c] * count / (count - 1)).epsilon(1e-12));
  }
}

TEST_CASE("sync_batch_norm makes no collective in evaluation mode", "[unit]") {
  Generator gen = generator_for("sync_batch_norm makes no collective in evaluation mode");
  CountingRanks job(0, 2);
  nn::BatchNorm2d layer(3);
  REQUIRE(nn::synchronize_batch_norm(layer, &job) == 1);
  const Tensor x = random_normal({4, 3, 2, 2}, gen, kFloat32);
  layer.train();
  sum(layer(x.clone().set_requires_grad())).backward();
  CHECK(job.calls == 3);
  layer.eval();
  const Tensor y = layer(x);
  CHECK(job.calls == 3);
  CHECK(max_abs_difference(y, batch_norm(x, layer.running_mean, layer.running_var, layer.weight, layer.bias,
                                         {.training = false})) == 0.0);
  REQUIRE(nn::synchronize_batch_norm(layer, nullptr) == 1);
  layer.train();
  layer(x);
  CHECK(job.calls == 3);
}

TEST_CASE("sync_batch_norm refuses a global batch of one value per channel", "[unit]") {
  MirroredRanks alone(0, 1);
  CHECK_THROWS_WITH(sync_batch_norm(ones({1, 3}), Tensor(), Tensor(), Tensor(), Tensor(), {}, alone),
                    Catch::Contains("sync_batch_norm: training needs more than one value per channel over all 1 ranks, "
                                    "got 1"));
}

namespace {

// float32 through the fast kernel and through the reference (kernels::cpu::ScopedReferenceKernels),
// same inputs. Tolerances, relative to the largest reference value of each output: y 2e-6,
// dx, dgamma, dbeta and the running statistics 1e-5 (float elementwise arithmetic, sums in
// double of float terms).
void check_fast_batch_norm_against_reference(const Shape& shape, bool affine, double offset, Generator& gen) {
  INFO("batch_norm " << shape_string(shape) << (affine ? " affine" : "") << " offset " << offset);
  const int64_t channels = shape[1];
  const Tensor x = add(random_normal(shape, gen), offset).to(kFloat32);
  const Tensor weight = affine ? random_uniform({channels}, 0.5, 1.5, gen, kFloat32) : Tensor();
  const Tensor bias = affine ? random_uniform({channels}, -0.5, 0.5, gen, kFloat32) : Tensor();
  const Tensor direction = random_normal(shape, gen, kFloat32);
  auto run = [&] {
    Tensor x_leaf = x.clone().set_requires_grad();
    Tensor w = affine ? weight.clone().set_requires_grad() : Tensor();
    Tensor b = affine ? bias.clone().set_requires_grad() : Tensor();
    Tensor running_mean = zeros({channels}, kFloat32), running_var = ones({channels}, kFloat32);
    Tensor y = batch_norm(x_leaf, running_mean, running_var, w, b, BatchNormOptions{});
    sum(mul(y, direction)).backward();
    return NormResult{y.detach(), x_leaf.grad(), affine ? w.grad() : Tensor(), affine ? b.grad() : Tensor(),
                      running_mean, running_var};
  };
  const NormResult fast = run();
  NormResult reference;
  {
    const kernels::cpu::ScopedReferenceKernels use_reference;
    reference = run();
  }
  auto largest = [](const Tensor& t) { return std::max(max_abs_difference(t, zeros_like(t)), 1e-30); };
  CHECK(max_abs_difference(fast.y, reference.y) <= 2e-6 * largest(reference.y));
  CHECK(max_abs_difference(fast.grad_x, reference.grad_x) <= 1e-5 * largest(reference.grad_x));
  CHECK(max_abs_difference(fast.running_mean, reference.running_mean) <= 1e-5 * largest(reference.running_mean));
  CHECK(max_abs_difference(fast.running_var, reference.running_var) <= 1e-5 * largest(reference.running_var));
  if (affine) {
    CHECK(max_abs_difference(fast.grad_weight, reference.grad_weight) <= 1e-5 * largest(reference.grad_weight));
    CHECK(max_abs_difference(fast.grad_bias, reference.grad_bias) <= 1e-5 * largest(reference.grad_bias));
  }
}

}  // namespace

TEST_CASE("sync_batch_norm on one rank is batch_norm in float32, through the fast kernel too", "[unit]") {
  // The fast float32 kernel's SyncBatchNorm pieces are its training passes run apart, so one
  // rank and P ranks do the same arithmetic per element (the distributed tests compare whole
  // runs of both); with one rank's statistics nothing is merged, and the results are equal.
  Generator gen = generator_for("sync_batch_norm on one rank is batch_norm in float32");
  for (bool reference : {false, true}) {
    INFO((reference ? "reference kernels" : "fast kernel"));
    std::optional<kernels::cpu::ScopedReferenceKernels> use_reference;
    if (reference) use_reference.emplace();
    const Shape shape{6, 5, 7, 3};
    const Tensor x = add(mul(random_normal(shape, gen), 2.0), 3.0).to(kFloat32);
    const Tensor direction = random_normal(shape, gen, kFloat32);
    const Tensor weight = random_normal({5}, gen, kFloat32), bias = random_normal({5}, gen, kFloat32);
    const BatchNormOptions options{.momentum = 0.3, .eps = 1e-3};
    MirroredRanks alone(0, 1);
    const NormResult local = run_norm(x, weight, bias, direction, [&](auto&&... a) { return batch_norm(a..., options); });
    const NormResult synced =
        run_norm(x, weight, bias, direction, [&](auto&&... a) { return sync_batch_norm(a..., options, alone); });
    CHECK(max_abs_difference(synced.y, local.y) == 0.0);
    CHECK(max_abs_difference(synced.grad_x, local.grad_x) == 0.0);
    CHECK(max_abs_difference(synced.grad_weight, local.grad_weight) <= 1e-6);
    CHECK(max_abs_difference(synced.grad_bias, local.grad_bias) <= 1e-6);
    CHECK(max_abs_difference(synced.running_mean, local.running_mean) == 0.0);
    CHECK(max_abs_difference(synced.running_var, local.running_var) == 0.0);
  }
}

TEST_CASE("batch_norm: the fast float32 kernel follows the reference", "[unit]") {
  Generator gen = generator_for("batch_norm: the fast float32 kernel follows the reference");
  // ResNet-18 CIFAR's maps (32x32 to 4x4) and the projection head's (N, C) input.
  check_fast_batch_norm_against_reference({8, 16, 32, 32}, true, 0.0, gen);
  check_fast_batch_norm_against_reference({8, 32, 8, 8}, true, 0.0, gen);
  check_fast_batch_norm_against_reference({16, 64, 4, 4}, true, 0.0, gen);
  check_fast_batch_norm_against_reference({64, 96}, true, 0.0, gen);
  // Maps that are no multiple of a vector, batch 1, no affine, inputs offset by 1e4.
  check_fast_batch_norm_against_reference({1, 5, 3, 7}, true, 0.0, gen);
  check_fast_batch_norm_against_reference({3, 6, 5, 5}, false, 0.0, gen);
  check_fast_batch_norm_against_reference({4, 8, 6, 6}, true, 1e4, gen);
}
