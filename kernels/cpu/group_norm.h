// Group normalisation (Wu & He 2018, "Group Normalization", eq. 1-3 and 6-7), the
// normalisation of BiT (Kolesnikov et al. 2020, sec. 2.1 / 4.3): x (N, C, S) with S the
// product of the dimensions after C (H * W), channels split into G groups of C / G; each
// (sample, group) is normalised over its (C / G) * S elements, which are contiguous in
// NCHW memory:
//   y = gamma_c * (x - mean_ng) / sqrt(var_ng + eps) + beta_c,   biased variance,
// optionally followed by a ReLU (BiT's pre-activation units apply GN then ReLU; fusing
// them saves a full read and write of the activation, and its backward only needs the
// mask (pre-activation > 0), which the backward pass recomputes from x and the statistics).
//
// This header is the specification: kernels/cpu/reference/group_norm.cpp computes it with
// plain loops accumulating in double; the CUDA twin must agree within the parity tolerances.
// kernels/cpu/group_norm.cpp is the fast float32 kernel training runs (one read of a group
// for its statistics and one more, from cache, for the output; the same backward), held to
// the reference by the unit tests; kernels/cpu/reference/reference_kernels.h says how the two
// are chosen.
//
// Where to look, GroupNorm:
//   op               engine/ops/group_norm.{h,cpp}   group_norm(); the module nn::GroupNorm is in engine/nn/layers.h
//   CPU kernel       kernels/cpu/group_norm.cpp      float32; other dtypes go to the reference
//   CPU reference    kernels/cpu/reference/group_norm.cpp  this header's loops, in double
//   CUDA twin        kernels/cuda/group_norm.{h,cu}
//   unit tests       tests/unit/test_group_norm.cpp (the op against loops written there; the fast kernel
//                    against the reference)
//   gradient check   tests/gradcheck/test_group_norm_gradcheck.cpp
//   parity cases     tests/parity/test_parity_group_norm.cpp
//   benchmark        benchmarks/bench_group_norm.cpp (PyTorch eager: benchmarks/torch_group_norm.py)
#pragma once

#include <cstdint>

#include "kernels/accumulate_type.h"
#include "kernels/bfloat16.h"

namespace visrep::kernels {

struct GroupNormShape {
  int64_t batch = 0;
  int64_t channels = 0;
  int64_t spatial = 1;  // product of the dimensions after C (1 for (N, C) inputs)
  int64_t groups = 1;   // divides channels

  int64_t channels_per_group() const { return channels / groups; }
  // Elements normalised together: one (sample, group), contiguous in memory.
  int64_t group_size() const { return channels_per_group() * spatial; }
  int64_t group_count() const { return batch * groups; }
};

// Forward. gamma and beta (C) may be null (no affine transform). relu: y = max(0, ...).
// mean and invstd (N * G, in (sample, group) order) keep the statistics for the backward
// pass: invstd = 1 / sqrt(var + eps), and the mean relative to the group's first element
// x0, mean - x0. Relative, because a float32 cannot hold a mean like 1e4 + 0.0123 to better
// than 5e-4, which would shift every xhat of the backward pass; x - x0 is exact for nearby
// values (Sterbenz) and mean - x0 is small, so (x - x0) - (mean - x0) keeps the digits.
// y is computed from the unrounded double statistics.
template <class T>
struct GroupNormForward {
  GroupNormShape shape;
  const T* x = nullptr;
  const T* gamma = nullptr;
  const T* beta = nullptr;
  double eps = 1e-5;
  bool relu = false;
  T* y = nullptr;
  AccumulateType<T>* mean = nullptr;
  AccumulateType<T>* invstd = nullptr;
};

// Backward, given the statistics the forward pass saved. With xhat = (x - mean) * invstd
// (evaluated as ((x - x0) - saved mean) * invstd),
// d = dy masked by (gamma * xhat + beta > 0) when relu (else dy), g = gamma * d and
// M = (C / G) * S elements per group:
//   grad_beta_c  = sum over n, s of d          grad_gamma_c = sum over n, s of d * xhat
//   grad_x       = invstd * (g - mean_group(g) - xhat * mean_group(g * xhat))
// Any of grad_x, grad_gamma, grad_beta may be null (not wanted). beta is read only for the
// ReLU mask (null: 0).
template <class T>
struct GroupNormBackward {
  GroupNormShape shape;
  bool relu = false;
  const T* grad_y = nullptr;
  const T* x = nullptr;
  const T* gamma = nullptr;
  const T* beta = nullptr;
  const AccumulateType<T>* mean = nullptr;
  const AccumulateType<T>* invstd = nullptr;
  T* grad_x = nullptr;
  T* grad_gamma = nullptr;
  T* grad_beta = nullptr;
};

}  // namespace visrep::kernels

// float32, bfloat16 and float64. The fast kernels compute float32 (statistics summed in
// double, the element arithmetic in float) and run the reference for the other dtypes and
// while reference kernels are enabled.
namespace visrep::kernels::cpu {

template <class T>
void group_norm_forward(const GroupNormForward<T>& arguments);

template <class T>
void group_norm_backward(const GroupNormBackward<T>& arguments);

}  // namespace visrep::kernels::cpu

// The references: every dtype in double (bfloat16 and float32 inputs widened exactly).
namespace visrep::kernels::cpu::reference {

template <class T>
void group_norm_forward(const GroupNormForward<T>& arguments);

template <class T>
void group_norm_backward(const GroupNormBackward<T>& arguments);

}  // namespace visrep::kernels::cpu::reference
