// CUDA twins of kernels/cpu/copy.h (which specifies what they compute and lists the
// family's files). Pointers are device pointers; layouts describe them exactly as on the
// CPU.
#pragma once

#include "kernels/cpu/copy.h"
#include "kernels/cuda/stream.h"

namespace visrep::kernels::cuda {

template <class Source, class Destination>
void copy(const Copy<Source, Destination>& arguments, cudaStream_t stream);
template <class T>
void fill(const Fill<T>& arguments, cudaStream_t stream);

}  // namespace visrep::kernels::cuda
