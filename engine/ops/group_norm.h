// The two normalisations of BiT (Kolesnikov et al. 2020, "Big Transfer", sec. 2.1 and 4.3):
// group normalisation of activations and weight standardisation of convolution weights.
// Both run on the CPU and CUDA, for float32, bfloat16 (float32 statistics and arithmetic)
// and float64; kernels/cpu/group_norm.h and kernels/cpu/weight_standardization.h specify
// what the kernels compute.
#pragma once

#include <vector>

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

// Weight standardisation (Qiao et al. 2019, eq. 5), as big_transfer's StdConv2d
// (bit_pytorch/models.py): weight (C_out, ...) with each output channel standardised over
// its fan-in (every dimension after the first),
//   w_hat = (w - mean) / sqrt(var + eps),   biased variance.
// eps = 1e-10 as in big_transfer (timm's BiT models use 1e-8). Differentiable in weight.
Tensor weight_standardization(const Tensor& weight, double eps = 1e-10);

// The same for a list of weights (a whole model's convolutions), in one kernel call
// forward and, when the outputs' gradients arrive, one kernel call backward. All weights
// must share dtype and device. Returns one standardised tensor per weight, in order.
//
// How one backward call serves many outputs: each output's backward node only records
// its incoming gradient and passes an empty gradient on to a shared node, which the
// autograd engine runs after all of them (it depends on every output); that node computes
// every weight's gradient in one call. A weight whose output received no gradient gets
// none, as if it had not been used.
std::vector<Tensor> weight_standardization(const std::vector<Tensor>& weights, double eps = 1e-10);

}  // namespace visrep
