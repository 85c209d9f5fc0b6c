// CUDA twins of kernels/cpu/indexing.h (which specifies what they compute).
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/cpu/indexing.h"

namespace visrep::kernels::cuda {

// Position of the first index (device memory) outside [0, size), or -1. Waits for the
// stream: the answer decides whether the op may run at all.
int64_t first_out_of_range(const int64_t* indices, int64_t count, int64_t size, cudaStream_t stream);

template <class T>
void index_select(const T* x, int64_t outer, int64_t size, int64_t inner, const int64_t* indices, int64_t count,
                  T* out, cudaStream_t stream);

template <class T>
void index_add(const T* src, int64_t outer, int64_t count, int64_t inner, const int64_t* indices, int64_t size, T* dst,
               cudaStream_t stream);

template <class T>
void gather(const T* x, int64_t outer, int64_t size, int64_t inner, const int64_t* indices, int64_t count, T* out,
            cudaStream_t stream);

template <class T>
void scatter_add(const T* src, int64_t outer, int64_t count, int64_t inner, const int64_t* indices, int64_t size,
                 T* dst, cudaStream_t stream);

template <class T>
void one_hot(const int64_t* labels, int64_t count, int64_t classes, T* out, cudaStream_t stream);

}  // namespace visrep::kernels::cuda
