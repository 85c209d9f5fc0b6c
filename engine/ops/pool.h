// 2-D pooling over NCHW tensors. kernels/cpu/pool.h specifies the kernels and lists the
// family's files (tests, parity cases).
#pragma once

#include "engine/tensor.h"

namespace visrep {

struct Pool2dOptions {
  Pair kernel = {2, 2};
  Pair stride = {0, 0};   // {0, 0}: same as the kernel, as in PyTorch
  Pair padding = {0, 0};  // at most half the kernel
};

// Max over each window (padding is never the maximum); the gradient goes to the maximum.
Tensor max_pool2d(const Tensor& x, const Pool2dOptions& options);
// Mean over each window; count_include_pad divides by the whole window (PyTorch's default).
Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& options, bool count_include_pad = true);
// Mean over PyTorch's adaptive bins to an output of `size`.
Tensor adaptive_avg_pool2d(const Tensor& x, Pair size);
// Mean over H and W: (N, C, H, W) -> (N, C).
Tensor global_avg_pool2d(const Tensor& x);

}  // namespace visrep
