#include "recipes/mixup.h"

#include <cmath>

#include "engine/error.h"
#include "engine/ops.h"

namespace visrep::recipes {
namespace {

// Philox streams of the two draws carry these tags in their top byte, apart from the streams
// a Generator counts up from 0 (the training order) and the augmentation's (0xA6).
constexpr uint64_t kLambdaStreamTag = 0xB1ull << 56;
constexpr uint64_t kPartnerStreamTag = 0xB2ull << 56;

Generator generator_for_step(uint64_t seed, uint64_t tag, int64_t step) {
  VISREP_CHECK(step >= 0 && static_cast<uint64_t>(step) < (uint64_t{1} << 56), "mixup: step {} out of range", step);
  Generator generator(seed);
  generator.set_state(seed, tag | static_cast<uint64_t>(step));
  return generator;
}

}  // namespace

double mixup_lambda(double alpha, uint64_t seed, int64_t step) {
  VISREP_CHECK(std::isfinite(alpha) && alpha >= 0, "mixup: alpha must be >= 0, got {}", alpha);
  if (alpha == 0.0) return 1.0;
  Generator generator = generator_for_step(seed, kLambdaStreamTag, step);
  return sample_beta(alpha, alpha, generator);
}

Tensor mixup_partners(int64_t batch_size, uint64_t seed, int64_t step, Device device) {
  Generator generator = generator_for_step(seed, kPartnerStreamTag, step);
  return permutation(batch_size, device, generator);
}

MixedBatch mix_batch(const Tensor& images, const Tensor& labels, const Tensor& partners, double lambda) {
  VISREP_CHECK(lambda >= 0 && lambda <= 1, "mixup: lambda must lie in [0, 1], got {}", lambda);
  VISREP_CHECK(images.dim() >= 1 && labels.dim() == 1 && partners.dim() == 1 && images.size(0) == labels.size(0) &&
                   partners.size(0) == labels.size(0),
               "mixup: images {}, labels {} and partners {} must share their first dimension", images.description(),
               labels.description(), partners.description());
  NoGradGuard no_grad;
  MixedBatch mixed;
  mixed.images = add(mul(images, lambda), mul(index_select(images, 0, partners), 1.0 - lambda));
  mixed.labels = labels;
  mixed.partner_labels = index_select(labels, 0, partners);
  mixed.lambda = lambda;
  return mixed;
}

Tensor mixup_cross_entropy(const Tensor& logits, const Tensor& labels, const Tensor& partner_labels, double lambda) {
  VISREP_CHECK(lambda >= 0 && lambda <= 1, "mixup: lambda must lie in [0, 1], got {}", lambda);
  if (lambda == 1.0) return cross_entropy(logits, labels);
  return add(mul(cross_entropy(logits, labels), lambda), mul(cross_entropy(logits, partner_labels), 1.0 - lambda));
}

}  // namespace visrep::recipes
