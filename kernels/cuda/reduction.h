// CUDA twins of kernels/cpu/reduction.h (which specifies what they compute).
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/cpu/reduction.h"

namespace visrep::kernels::cuda {

template <class T>
void reduce(ReduceOp op, const T* x, int64_t outer, int64_t reduced, int64_t inner, T* out, cudaStream_t stream);

template <class T>
void sum_integer(const T* x, int64_t outer, int64_t reduced, int64_t inner, int64_t* out, cudaStream_t stream);

template <class T>
void variance(const T* x, int64_t outer, int64_t reduced, int64_t inner, int64_t correction, T* out,
              cudaStream_t stream);

template <class T>
void arg_extremum(bool maximum, const T* x, int64_t outer, int64_t reduced, int64_t inner, int64_t* out,
                  cudaStream_t stream);

}  // namespace visrep::kernels::cuda
