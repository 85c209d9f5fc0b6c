// 2-D convolution and pooling over NCHW tensors.
#pragma once

#include <array>

#include "engine/tensor.h"

namespace visrep {

using Pair = std::array<int64_t, 2>;  // (height, width)

struct Conv2dOptions {
  Pair stride = {1, 1};
  Pair padding = {0, 0};  // zeros on each side
  Pair dilation = {1, 1};
  int64_t groups = 1;
};

// x (N, C_in, H, W), weight (C_out, C_in / groups, kH, kW), bias (C_out) or undefined.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), const Conv2dOptions& options = {});

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
