// CUDA twins of kernels/cpu/group_norm.h (which specifies what they compute and lists the
// family's files), for float32, bfloat16 (statistics and arithmetic in float32) and
// float64. All pointers are device pointers. kernels/cuda/group_norm.cu explains how the
// work is shaped.
#pragma once

#include "kernels/cpu/group_norm.h"
#include "kernels/cuda/stream.h"

namespace visrep::kernels::cuda {

template <class T>
void group_norm_forward(const GroupNormForward<T>& arguments, cudaStream_t stream);

template <class T>
void group_norm_backward(const GroupNormBackward<T>& arguments, cudaStream_t stream);

// Whether group_norm_forward / _backward keep a whole group on chip (one read of x forward,
// one read of x and dy backward) for this shape and dtype on the current device; the
// others stream the group from memory twice (Welford statistics forward). For tests and
// benchmarks that want to say which path they exercise.
template <class T>
bool group_norm_group_fits_on_chip(const GroupNormShape& shape, bool backward);

}  // namespace visrep::kernels::cuda
