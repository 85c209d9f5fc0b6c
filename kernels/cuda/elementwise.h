// CUDA twins of kernels/cpu/elementwise.h (which specifies what they compute and lists the
// family's files). Pointers are device pointers; layouts describe them exactly as on the
// CPU.
#pragma once

#include "kernels/cpu/elementwise.h"
#include "kernels/cuda/stream.h"

namespace visrep::kernels::cuda {

template <class T>
void unary(const Unary<T>& arguments, cudaStream_t stream);
template <class T>
void binary(const Binary<T>& arguments, cudaStream_t stream);
template <class T>
void compare(const Compare<T>& arguments, cudaStream_t stream);
template <class T>
void where(const Where<T>& arguments, cudaStream_t stream);

}  // namespace visrep::kernels::cuda
