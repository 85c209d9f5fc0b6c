// Weight Standardization (Qiao et al. 2019, eq. 5; BiT, Kolesnikov et al. 2020, sec. 4.3):
// every convolution weight (C_out, C_in, kH, kW) is viewed as (rows = C_out, fan_in =
// C_in * kH * kW), and each row is standardised over its fan-in before the convolution,
//   w_hat = (w - mean_row) / sqrt(var_row + eps),   biased variance,
// exactly big_transfer's StdConv2d (bit_pytorch/models.py; eps = 1e-10 there, 1e-8 in
// timm's BiT models). Backward, with K = fan_in and g = dL/dw_hat:
//   dL/dw = invstd * (g - mean_row(g) - w_hat * mean_row(g * w_hat)).
//
// The kernels take a list of tensors, so that a model can standardise all of its
// convolution weights in one launch forward and one backward (BiT-R50x1 has 53); one
// tensor is a list of one. Each tensor is described by plain pointers and sizes, a small
// struct that the CUDA twin passes to the kernel by value (kernels/cuda/weight_standardization.h).
// This header is the specification; kernels/cpu/weight_standardization.cpp computes it in
// double.
#pragma once

#include <cstdint>

#include "kernels/cpu/group_norm.h"  // NormalizationStatistic<T>

namespace visrep::kernels {

// One weight standardised forward: weight and standardized are (rows, fan_in), contiguous.
// mean and invstd (rows) receive the statistics for the backward pass; both may be null
// (inference: nothing is kept). As in group_norm (kernels/cpu/group_norm.h), the mean is
// kept relative to the row's first value w0 (mean - w0), and the backward pass evaluates
// w_hat as ((w - w0) - saved mean) * invstd, so large offsets keep their float32 digits.
template <class T>
struct WeightStandardizationForward {
  const T* weight = nullptr;
  T* standardized = nullptr;
  NormalizationStatistic<T>* mean = nullptr;
  NormalizationStatistic<T>* invstd = nullptr;
  int64_t rows = 0;
  int64_t fan_in = 0;
};

// One weight's backward: grad_standardized is dL/dw_hat, grad_weight receives dL/dw; mean
// and invstd are what the forward pass stored for this weight.
template <class T>
struct WeightStandardizationBackward {
  const T* weight = nullptr;
  const T* grad_standardized = nullptr;
  T* grad_weight = nullptr;
  const NormalizationStatistic<T>* mean = nullptr;
  const NormalizationStatistic<T>* invstd = nullptr;
  int64_t rows = 0;
  int64_t fan_in = 0;
};

}  // namespace visrep::kernels

namespace visrep::kernels::cpu {

// Standardises tensors[0 .. count): each row over its fan_in, with variance + eps under
// the square root.
template <class T>
void weight_standardization_forward(const WeightStandardizationForward<T>* tensors, int64_t count, double eps);

template <class T>
void weight_standardization_backward(const WeightStandardizationBackward<T>* tensors, int64_t count);

}  // namespace visrep::kernels::cpu
