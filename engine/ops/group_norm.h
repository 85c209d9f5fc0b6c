// Group normalisation, the normalisation of BiT's activations (Kolesnikov et al. 2020, "Big
// Transfer", sec. 2.1 and 4.3), on the CPU and CUDA, for float32, bfloat16 (float32
// statistics and arithmetic) and float64. kernels/cpu/group_norm.h specifies what the
// kernels compute and lists the family's files (tests, parity cases, benchmark).
#pragma once

#include "engine/tensor.h"

namespace visrep {

// Group normalisation (Wu & He 2018, eq. 1-3 and 6-7) of x (N, C, ...) with C split into
// `groups` groups of C / groups consecutive channels, each (sample, group) normalised over
// its channels and all positions after C:
//   y = gamma_c * (x - mean) / sqrt(var + eps) + beta_c,   biased variance,
// then max(0, y) when relu is set (BiT's pre-activation GN -> ReLU, fused: one read of x
// and one write of y instead of two of each). gamma and beta (C) may be undefined (no
// affine transform). Differentiable in x, gamma and beta.
Tensor group_norm(const Tensor& x, int64_t groups, const Tensor& gamma = Tensor(), const Tensor& beta = Tensor(),
                  double eps = 1e-5, bool relu = false);

}  // namespace visrep
