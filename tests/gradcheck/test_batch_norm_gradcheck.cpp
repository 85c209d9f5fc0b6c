// Gradient checks of batch_norm (engine/ops/batch_norm.h), training and evaluation, on the
// CPU kernels in float64 (kernels/cpu/batch_norm.h lists the family's files).
#include <catch2/catch.hpp>

#include "engine/ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/mirrored_ranks.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

namespace {

// batch_norm's training-mode gradient goes through 1 / sqrt(var + eps) of a small batch: a
// smooth composition on O(1) inputs, truncation ~ f''' eps^2 ~ 1e-12, rounding ~ 1e-16 |L| /
// eps ~ 1e-9.
constexpr GradcheckTolerance kBatchNorm{.eps = 1e-6, .atol = 1e-7, .rtol = 1e-5};

}  // namespace

TEST_CASE("batch_norm training", "[gradcheck]") {
  Generator gen = generator_for("batch_norm training");
  for (const Shape& shape : {Shape{6, 3}, Shape{2, 3, 2, 3}}) {
    INFO("input " << shape_string(shape));
    Tensor x = leaf(random_normal(shape, gen));
    Tensor weight = leaf(random_normal({3}, gen)), bias = leaf(random_normal({3}, gen));
    // Running statistics are updated in place by every call; they do not affect training output.
    Tensor running_mean = zeros({3}, kFloat64), running_var = ones({3}, kFloat64);
    SECTION("affine with running statistics " + shape_string(shape)) {
      VISREP_CHECK_GRADIENTS(
          kBatchNorm,
          [&](const TensorList& in) { return batch_norm(in[0], running_mean, running_var, in[1], in[2]); }, x,
          weight, bias);
    }
    SECTION("no affine, no running statistics " + shape_string(shape)) {
      VISREP_CHECK_GRADIENTS(kBatchNorm,
                      [](const TensorList& in) { return batch_norm(in[0], Tensor(), Tensor(), Tensor(), Tensor()); },
                      x);
    }
    SECTION("weight only " + shape_string(shape)) {
      VISREP_CHECK_GRADIENTS(kBatchNorm,
                      [](const TensorList& in) { return batch_norm(in[0], Tensor(), Tensor(), in[1], Tensor()); },
                      x, weight);
    }
  }
}

TEST_CASE("batch_norm eval", "[gradcheck]") {
  Generator gen = generator_for("batch_norm eval");
  const BatchNormOptions eval{.training = false};
  for (const Shape& shape : {Shape{4, 3}, Shape{2, 3, 2, 3}}) {
    INFO("input " << shape_string(shape));
    Tensor x = leaf(random_normal(shape, gen));
    Tensor weight = leaf(random_normal({3}, gen)), bias = leaf(random_normal({3}, gen));
    Tensor running_mean = random_normal({3}, gen), running_var = random_uniform({3}, 0.5, 2.0, gen);
    VISREP_CHECK_GRADIENTS(
        kBatchNorm,
        [&](const TensorList& in) { return batch_norm(in[0], running_mean, running_var, in[1], in[2], eval); }, x,
        weight, bias);
    VISREP_CHECK_GRADIENTS(
        kBatchNorm,
        [&](const TensorList& in) { return batch_norm(in[0], running_mean, running_var, Tensor(), Tensor(), eval); },
        x);
  }
}

TEST_CASE("batch_norm non-contiguous input", "[gradcheck]") {
  Generator gen = generator_for("batch_norm non-contiguous input");
  Tensor x = leaf(random_normal({3, 5}, gen));  // read transposed as (N, C) = (5, 3)
  Tensor weight = leaf(random_normal({3}, gen)), bias = leaf(random_normal({3}, gen));
  VISREP_CHECK_GRADIENTS(
      kBatchNorm, [](const TensorList& in) { return batch_norm(in[0].t(), Tensor(), Tensor(), in[1], in[2]); }, x,
      weight, bias);
}

TEST_CASE("sync_batch_norm training", "[gradcheck]") {
  // Over mirrored ranks (tests/support/mirrored_ranks.h): the merged statistics, the
  // all-reduced sums and the global count all take part; across real ranks it is
  // tests/data_parallel's.
  Generator gen = generator_for("sync_batch_norm training");
  for (const int ranks : {1, 3}) {
    MirroredRanks job(ranks - 1, ranks);
    Tensor x = leaf(random_normal({2, 3, 2, 2}, gen));
    Tensor weight = leaf(random_normal({3}, gen)), bias = leaf(random_normal({3}, gen));
    Tensor running_mean = zeros({3}, kFloat64), running_var = ones({3}, kFloat64);
    INFO(ranks << " rank(s)");
    VISREP_CHECK_GRADIENTS(
        kBatchNorm,
        [&](const TensorList& in) {
          return sync_batch_norm(in[0], running_mean, running_var, in[1], in[2], {}, job);
        },
        x, weight, bias);
  }
}
