// 2-D convolution over NCHW tensors. kernels/cpu/conv2d.h specifies the kernel and lists
// the family's files (tests, parity cases, benchmark).
#pragma once

#include "engine/tensor.h"

namespace visrep {

struct Conv2dOptions {
  Pair stride = {1, 1};
  Pair padding = {0, 0};  // zeros on each side
  Pair dilation = {1, 1};
  int64_t groups = 1;
};

// x (N, C_in, H, W), weight (C_out, C_in / groups, kH, kW), bias (C_out) or undefined.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), const Conv2dOptions& options = {});

}  // namespace visrep
