// Weight standardisation, the normalisation of BiT's convolution weights (Kolesnikov et al.
// 2020, "Big Transfer", sec. 4.3), on the CPU and CUDA, for float32, bfloat16 (float32
// statistics) and float64. kernels/cpu/weight_standardization.h specifies what the kernels
// compute and lists the family's files (tests, parity cases, benchmark).
#pragma once

#include <vector>

#include "engine/tensor.h"

namespace visrep {

// Weight standardisation (Qiao et al. 2019, eq. 5), as big_transfer's StdConv2d
// (bit_pytorch/models.py): weight (C_out, ...) with each output channel standardised over
// its fan-in (every dimension after the first),
//   w_hat = (w - mean) / sqrt(var + eps),   biased variance.
// eps = 1e-10 as in big_transfer (timm's BiT models use 1e-8). Differentiable in weight.
Tensor weight_standardization(const Tensor& weight, double eps = 1e-10);

// The same for a list of weights (a whole model's convolutions), in one kernel call
// forward and one backward. All weights must share dtype and device. Returns one
// standardised tensor per weight, in order: the outputs of one autograd node, which runs
// once per backward pass with the gradients of every output that received one. A weight
// whose output received no gradient gets none, as if it had not been used.
std::vector<Tensor> weight_standardization(const std::vector<Tensor>& weights, double eps = 1e-10);

}  // namespace visrep
