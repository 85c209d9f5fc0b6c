// CUDA twins of kernels/cpu/reduction.h (which specifies what they compute and lists the
// family's files). Pointers are device pointers.
#pragma once

#include "kernels/cpu/reduction.h"
#include "kernels/cuda/stream.h"

namespace visrep::kernels::cuda {

template <class T>
void reduce(const Reduce<T>& arguments, cudaStream_t stream);
template <class T>
void sum_integer(const SumInteger<T>& arguments, cudaStream_t stream);
template <class T>
void variance(const Variance<T>& arguments, cudaStream_t stream);
template <class T>
void arg_extremum(const ArgExtremum<T>& arguments, cudaStream_t stream);

}  // namespace visrep::kernels::cuda
