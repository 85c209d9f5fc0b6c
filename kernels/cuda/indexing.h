// CUDA twins of kernels/cpu/indexing.h (which specifies what they compute and lists the
// family's files). Pointers are device pointers.
//
// mark_first_out_of_range marks a deferred check's slot (kernels/cuda/deferred_errors.h),
// queued on the stream: nothing waits, so the kernels below may run before the host has
// looked at the slot, and they never follow a bad index: index_select and gather read it as
// 0, index_add and scatter_add add nothing for it, one_hot writes a row of zeros.
#pragma once

#include "kernels/cpu/indexing.h"
#include "kernels/cuda/stream.h"

namespace visrep::kernels::cuda {

void mark_first_out_of_range(const MarkFirstOutOfRange& arguments, cudaStream_t stream);
template <class T>
void index_select(const IndexSelect<T>& arguments, cudaStream_t stream);
template <class T>
void index_add(const IndexAdd<T>& arguments, cudaStream_t stream);
template <class T>
void gather(const Gather<T>& arguments, cudaStream_t stream);
template <class T>
void scatter_add(const ScatterAdd<T>& arguments, cudaStream_t stream);
template <class T>
void one_hot(const OneHot<T>& arguments, cudaStream_t stream);

}  // namespace visrep::kernels::cuda
