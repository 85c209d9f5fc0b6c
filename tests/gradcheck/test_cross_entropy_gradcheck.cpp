// Gradient checks of log_softmax, softmax, nll_loss and cross_entropy (engine/ops/cross_entropy.h)
// on the CPU kernels in float64 (kernels/cpu/cross_entropy.h lists the family's files).
#include <catch2/catch.hpp>

#include "engine/ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

namespace {

// Smooth compositions of exp/log on O(1) inputs: truncation ~ f''' eps^2 ~ 1e-12,
// rounding ~ 1e-16 |L| / eps ~ 1e-9.
constexpr GradcheckTolerance kSmooth{.eps = 1e-6, .atol = 1e-7, .rtol = 1e-5};

}  // namespace

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
