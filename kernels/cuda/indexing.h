// CUDA twins of kernels/cpu/indexing.h (which specifies what they compute).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <optional>

#include "kernels/cpu/indexing.h"

namespace visrep::kernels::cuda {

// Marks `slot` (a deferred check, deferred_errors.h) with the position of the first index
// outside [0, size) (one equal to `ignored` is not bad) and that index's value; queued on the
// stream, nothing waits. The kernels below never follow such an index: index_select and
// gather read it as 0, index_add and scatter_add add nothing for it, one_hot writes a row of
// zeros; so the op may run before the host has looked at the slot.
void mark_first_out_of_range(const int64_t* indices, int64_t count, int64_t size, std::optional<int64_t> ignored,
                             long long* slot, cudaStream_t stream);

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
