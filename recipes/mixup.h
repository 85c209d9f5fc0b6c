// MixUp (Zhang et al., "mixup: Beyond Empirical Risk Minimization", ICLR 2018) as BiT's
// fine-tuning uses it (google-research/big_transfer bit_pytorch/train.py, mixup_data and
// mixup_criterion): one weight lambda ~ Beta(alpha, alpha) per optimizer step, every image
// of the batch blended with a partner from the same batch (a random permutation), and the
// loss blended with the same weight:
//   x'   = lambda x + (1 - lambda) x[partner]
//   loss = lambda CE(f(x'), y) + (1 - lambda) CE(f(x'), y[partner])
// With alpha = 0 there is no mixing at all (train.py's lambda = 1).
//
// Both random choices are keyed by (seed, step) on Philox streams of their own, so a
// resumed run redraws them exactly.
#pragma once

#include <cstdint>

#include "engine/tensor.h"

namespace visrep::recipes {

// The weight of `step`: Beta(alpha, alpha) (engine/random.h sample_beta), or 1 when alpha is 0.
double mixup_lambda(double alpha, uint64_t seed, int64_t step);

// The partner of each of the `batch_size` images of `step`: a random permutation (int64) on `device`.
Tensor mixup_partners(int64_t batch_size, uint64_t seed, int64_t step, Device device);

struct MixedBatch {
  Tensor images;          // lambda x + (1 - lambda) x[partners], no gradient
  Tensor labels;          // y
  Tensor partner_labels;  // y[partners]
  double lambda = 1.0;
};

// images (N, ...) float, labels (N) int64 and partners (N) int64, all on one device.
MixedBatch mix_batch(const Tensor& images, const Tensor& labels, const Tensor& partners, double lambda);

// lambda CE(logits, labels) + (1 - lambda) CE(logits, partner_labels), each cross-entropy the
// mean over the rows (torch.nn.CrossEntropyLoss()); differentiable in the logits. With
// lambda = 1 it is the plain cross-entropy.
Tensor mixup_cross_entropy(const Tensor& logits, const Tensor& labels, const Tensor& partner_labels, double lambda);

}  // namespace visrep::recipes
