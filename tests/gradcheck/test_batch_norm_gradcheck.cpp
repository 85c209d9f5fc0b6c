// Gradient checks of batch_norm, normalize, the softmax family and the classification losses.
#include <catch2/catch.hpp>

#include "engine/ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

namespace {

// Smooth compositions of exp/log/sqrt on O(1) inputs: truncation ~ f''' eps^2 ~ 1e-12,
// rounding ~ 1e-16 |L| / eps ~ 1e-9.
constexpr GradcheckTolerance kSmooth{.eps = 1e-6, .atol = 1e-7, .rtol = 1e-5};
// batch_norm's training-mode gradient goes through 1 / sqrt(var + eps) of a small batch;
// still smooth, the same tolerance holds (stated separately so it can be tuned alone).
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

TEST_CASE("normalize", "[gradcheck]") {
  Generator gen = generator_for("normalize");
  Tensor x = leaf(random_normal({3, 4}, gen));
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return normalize(in[0]); }, x);
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return normalize(in[0], 0); }, x);
  Tensor y = leaf(random_normal({2, 3, 4}, gen));
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return normalize(in[0], 1); }, y);
}

TEST_CASE("log_softmax", "[gradcheck]") {
  Generator gen = generator_for("log_softmax");
  Tensor x = leaf(random_normal({3, 5}, gen));
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return log_softmax(in[0]); }, x);
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return log_softmax(in[0], 0); }, x);
  Tensor y = leaf(random_normal({2, 4, 3}, gen));  // a middle dim: inner stride > 1
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return log_softmax(in[0], 1); }, y);
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return log_softmax(in[0].transpose(0, 2), -1); }, y);
}

TEST_CASE("softmax", "[gradcheck]") {
  Generator gen = generator_for("softmax");
  Tensor x = leaf(random_normal({3, 5}, gen));
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return softmax(in[0]); }, x);
  Tensor y = leaf(random_normal({2, 4, 3}, gen));
  VISREP_CHECK_GRADIENTS(kSmooth, [](const TensorList& in) { return softmax(in[0], 1); }, y);
}

TEST_CASE("cross_entropy class indices", "[gradcheck]") {
  Generator gen = generator_for("cross_entropy class indices");
  Tensor logits = leaf(random_normal({5, 4}, gen));
  Tensor targets = randint(0, 4, {5}, kInt64, gen);
  for (Reduction reduction : {Reduction::Mean, Reduction::Sum, Reduction::None}) {
    for (double smoothing : {0.0, 0.2}) {
      INFO("reduction " << static_cast<int>(reduction) << " label_smoothing " << smoothing);
      const CrossEntropyOptions options{.label_smoothing = smoothing, .reduction = reduction};
      VISREP_CHECK_GRADIENTS(
          kSmooth, [&](const TensorList& in) { return cross_entropy(in[0], targets, options); }, logits);
    }
  }
}

TEST_CASE("cross_entropy ignore_index", "[gradcheck]") {
  Generator gen = generator_for("cross_entropy ignore_index");
  Tensor logits = leaf(random_normal({5, 4}, gen));
  Tensor targets = from_vector<int64_t>({2, -100, 0, 3, -100});
  for (Reduction reduction : {Reduction::Mean, Reduction::Sum, Reduction::None}) {
    for (double smoothing : {0.0, 0.3}) {
      INFO("reduction " << static_cast<int>(reduction) << " label_smoothing " << smoothing);
      const CrossEntropyOptions options{.label_smoothing = smoothing, .reduction = reduction};
      VISREP_CHECK_GRADIENTS(
          kSmooth, [&](const TensorList& in) { return cross_entropy(in[0], targets, options); }, logits);
    }
  }
  // A custom ignore_index that is a valid class.
  Tensor targets_with_one = from_vector<int64_t>({1, 2, 1, 0, 3});
  const CrossEntropyOptions options{.ignore_index = 1};
  VISREP_CHECK_GRADIENTS(kSmooth, [&](const TensorList& in) { return cross_entropy(in[0], targets_with_one, options); },
                  logits);
}

TEST_CASE("cross_entropy soft targets", "[gradcheck]") {
  Generator gen = generator_for("cross_entropy soft targets");
  Tensor logits = leaf(random_normal({4, 5}, gen));
  // Each row a distribution; they also get a gradient (the loss is linear in them).
  Tensor targets = leaf(softmax(random_normal({4, 5}, gen), 1).detach());
  for (Reduction reduction : {Reduction::Mean, Reduction::Sum, Reduction::None}) {
    for (double smoothing : {0.0, 0.1}) {
      INFO("reduction " << static_cast<int>(reduction) << " label_smoothing " << smoothing);
      const CrossEntropyOptions options{.label_smoothing = smoothing, .reduction = reduction};
      VISREP_CHECK_GRADIENTS(
          kSmooth, [&](const TensorList& in) { return cross_entropy(in[0], in[1], options); }, logits, targets);
    }
  }
}

TEST_CASE("nll_loss", "[gradcheck]") {
  Generator gen = generator_for("nll_loss");
  // Any values work as "log-probabilities" for the gradient: the loss is linear in them.
  Tensor log_probs = leaf(random_normal({5, 3}, gen));
  Tensor targets = from_vector<int64_t>({0, 2, 1, 2, -100});
  for (Reduction reduction : {Reduction::Mean, Reduction::Sum, Reduction::None}) {
    INFO("reduction " << static_cast<int>(reduction));
    const CrossEntropyOptions options{.reduction = reduction};
    VISREP_CHECK_GRADIENTS(kSmooth, [&](const TensorList& in) { return nll_loss(in[0], targets, options); }, log_probs);
  }
  VISREP_CHECK_GRADIENTS(
      kSmooth, [&](const TensorList& in) { return nll_loss(log_softmax(in[0], 1), targets); }, log_probs);
}
