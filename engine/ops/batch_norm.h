// Batch normalisation (kernels/cpu/batch_norm.h specifies the kernels and lists the
// family's files).
#pragma once

#include "engine/distributed/collectives.h"
#include "engine/tensor.h"

namespace visrep {

struct BatchNormOptions {
  bool training = true;
  double momentum = 0.1;  // running = (1 - momentum) running + momentum batch (PyTorch's convention)
  double eps = 1e-5;
};

// x (N, C) or (N, C, H, W). Training: normalise by the batch's per-channel mean and biased
// variance and, when running_mean/running_var are given, update them in place (unbiased
// variance). Evaluation: normalise by the running statistics. weight/bias (C) may be
// undefined (no affine transform).
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, const BatchNormOptions& options = {});

// SyncBatchNorm (PyTorch's nn.SyncBatchNorm; google-research/simclr's global_bn, the BN of its
// cross-replica training): batch_norm whose training mode normalises each rank's x with the
// statistics of the batch over every rank of `ranks`, as if their batches were one:
//   - forward: each rank's per-channel count, mean and sum of squared deviations M2 are
//     gathered and merged in rank order (Chan, Golub & LeVeque 1979: n = n_a + n_b,
//     mean = mean_a + delta n_b / n, M2 = M2_a + M2_b + delta^2 n_a n_b / n), exact for
//     unequal counts; a rank whose batch is empty (N = 0) takes part and adds nothing. The
//     running statistics move with the global mean and the unbiased global variance
//     M2 / (n - 1), as PyTorch's SyncBatchNorm moves them;
//   - backward: the sums of dy and dy * xhat over every rank (an all-reduce) give grad_x, with
//     the global count; grad_weight and grad_bias are this rank's own sums, which
//     data-parallel training averages with the other gradients.
// The gradients are those of the sum of every rank's loss, the convention of the cross-rank
// losses (engine/ops/contrastive.h). Evaluation mode is batch_norm's: the running statistics,
// no collective. Every rank calls it, and runs the backward pass through it, in the same
// order; `ranks` must outlive the graph.
Tensor sync_batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                       const Tensor& bias, const BatchNormOptions& options, distributed::Collectives& ranks);

}  // namespace visrep
