// CUDA twins of kernels/cpu/group_norm.h (which specifies what they compute), for
// float32, bfloat16 (statistics and arithmetic in float32) and float64. All pointers are
// device pointers; the statistics are NormalizationStatistic<T> (float, or double for
// float64). kernels/cuda/group_norm.cu explains how the work is shaped.
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/cpu/group_norm.h"

namespace visrep::kernels::cuda {

template <class T>
void group_norm_forward(const GroupNormShape& shape, const T* x, const T* gamma, const T* beta, double eps, bool relu,
                        T* y, NormalizationStatistic<T>* mean, NormalizationStatistic<T>* invstd, cudaStream_t stream);

template <class T>
void group_norm_backward(const GroupNormShape& shape, bool relu, const T* grad_y, const T* x, const T* gamma,
                         const T* beta, const NormalizationStatistic<T>* mean, const NormalizationStatistic<T>* invstd,
                         T* grad_x, T* grad_gamma, T* grad_beta, cudaStream_t stream);

// Whether group_norm_forward / _backward keep a whole group on chip (one read of x forward,
// one read of x and dy backward) for this shape and dtype on the current device; the
// others stream the group from memory twice (Welford statistics forward). For tests and
// benchmarks that want to say which path they exercise.
template <class T>
bool group_norm_group_fits_on_chip(const GroupNormShape& shape, bool backward);

}  // namespace visrep::kernels::cuda
