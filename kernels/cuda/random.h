// CUDA twins of kernels/cpu/random.h (which specifies them and lists the family's files):
// element i of a draw is philox(seed, stream, i) on both backends (kernels/philox.h), so
// the numbers are the same. Pointers are device pointers.
#pragma once

#include "kernels/cpu/random.h"
#include "kernels/cuda/stream.h"

namespace visrep::kernels::cuda {

template <class T>
void random_uniform(const RandomUniform<T>& arguments, cudaStream_t stream);
template <class T>
void random_normal(const RandomNormal<T>& arguments, cudaStream_t stream);
void random_integers(const RandomIntegers& arguments, cudaStream_t stream);
void random_permutation(const RandomPermutation& arguments, cudaStream_t stream);

}  // namespace visrep::kernels::cuda
