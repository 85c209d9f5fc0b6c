// CUDA twins of kernels/cpu/random.h: element i of a draw is philox(seed, stream, i) on
// both backends (kernels/philox.h), so the numbers are the same.
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/cpu/random.h"

namespace visrep::kernels::cuda {

template <class T>
void random_uniform(uint64_t seed, uint64_t philox_stream, int64_t count, double low, double high, T* out,
                    cudaStream_t stream);

template <class T>
void random_normal(uint64_t seed, uint64_t philox_stream, int64_t count, double mean, double std, T* out,
                   cudaStream_t stream);

void random_integers(uint64_t seed, uint64_t philox_stream, int64_t count, int64_t low, int64_t high, int64_t* out,
                     cudaStream_t stream);

void random_permutation(uint64_t seed, uint64_t philox_stream, int64_t count, int64_t* out, cudaStream_t stream);

}  // namespace visrep::kernels::cuda
