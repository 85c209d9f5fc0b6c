// Softmax and the classification losses: log_softmax, nll_loss and their composition
// cross_entropy (kernels/cpu/cross_entropy.h specifies the kernels and lists the family's
// files).
#pragma once

#include "engine/tensor.h"

namespace visrep {

// log(softmax(x)) along dim, computed with the max shift (no overflow).
Tensor log_softmax(const Tensor& x, int64_t dim = -1);
Tensor softmax(const Tensor& x, int64_t dim = -1);

enum class Reduction { Mean, Sum, None };

struct CrossEntropyOptions {
  double label_smoothing = 0.0;  // in [0, 1]: targets become (1 - s) one_hot + s / C
  int64_t ignore_index = -100;   // rows with this class index add nothing (index targets only)
  Reduction reduction = Reduction::Mean;  // Mean: over the rows that are not ignored
};

// Negative log-likelihood of class-index targets (N) under log-probabilities (N, C).
Tensor nll_loss(const Tensor& log_probs, const Tensor& targets, const CrossEntropyOptions& options = {});

// Cross-entropy of logits (N, C) against class indices (int64, N) or against soft targets
// (float, (N, C), each row a distribution), as torch.nn.functional.cross_entropy.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, const CrossEntropyOptions& options = {});

}  // namespace visrep
