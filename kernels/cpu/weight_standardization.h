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
//
// Where to look, weight standardisation:
//   op               engine/ops/weight_standardization.{h,cpp}   weight_standardization() of one weight or a
//                    list; the module nn::StdConv2d and standardized_weights() are in engine/nn/layers.h
//   CPU reference    kernels/cpu/weight_standardization.{h,cpp}  this header and its loops
//   CUDA twin        kernels/cuda/weight_standardization.{h,cu}
//   unit tests       tests/unit/test_weight_standardization.cpp
//   gradient check   tests/gradcheck/test_weight_standardization_gradcheck.cpp
//   parity cases     tests/parity/test_parity_weight_standardization.cpp
//   benchmark        benchmarks/bench_weight_standardization.cpp
//                    (PyTorch eager: benchmarks/torch_weight_standardization.py)
#pragma once

#include <cstdint>

#include "kernels/accumulate_type.h"
#include "kernels/bfloat16.h"

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
  AccumulateType<T>* mean = nullptr;
  AccumulateType<T>* invstd = nullptr;
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
  const AccumulateType<T>* mean = nullptr;
  const AccumulateType<T>* invstd = nullptr;
  int64_t rows = 0;
  int64_t fan_in = 0;
};

}  // namespace visrep::kernels

// float32, bfloat16 (statistics in float32) and float64.
namespace visrep::kernels::cpu {

// Standardises tensors[0 .. count): each row over its fan_in, with variance + eps under
// the square root.
template <class T>
void weight_standardization_forward(const WeightStandardizationForward<T>* tensors, int64_t count, double eps);

template <class T>
void weight_standardization_backward(const WeightStandardizationBackward<T>* tensors, int64_t count);

}  // namespace visrep::kernels::cpu
