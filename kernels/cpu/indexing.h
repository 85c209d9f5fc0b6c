// Indexing kernels over (outer, size, inner) views of contiguous tensors, the axis being
// indexed in the middle. Indices are int64 and must be in [0, size): the engine checks them
// with first_out_of_range before calling, so these loops stay branch-free. This header is
// the specification; kernels/cpu/indexing.cpp computes it with plain loops.
//
// Where to look, indexing:
//   op               engine/ops/indexing.{h,cpp}   index_select, gather, one_hot, concat, stack, split, pad
//   CPU reference    kernels/cpu/indexing.{h,cpp}  this header and its loops
//   CUDA twin        kernels/cuda/indexing.{h,cu}
//   unit tests       tests/unit/test_indexing.cpp
//   gradient check   tests/gradcheck/test_indexing_gradcheck.cpp
//   parity cases     tests/parity/test_parity_indexing.cpp
//   benchmark        none
#pragma once

#include <cstdint>

namespace visrep::kernels::cpu {

// Position of the first index outside [0, size), or -1 if all are valid.
int64_t first_out_of_range(const int64_t* indices, int64_t count, int64_t size);

// out (outer, count, inner)[o, k, i] = x (outer, size, inner)[o, indices[k], i].
template <class T>
void index_select(const T* x, int64_t outer, int64_t size, int64_t inner, const int64_t* indices, int64_t count,
                  T* out);

// dst (outer, size, inner)[o, indices[k], i] += src (outer, count, inner)[o, k, i]:
// the adjoint of index_select (repeated indices add up).
template <class T>
void index_add(const T* src, int64_t outer, int64_t count, int64_t inner, const int64_t* indices, int64_t size, T* dst);

// out[o, k, i] = x[o, indices[o, k, i], i], indices shaped (outer, count, inner).
template <class T>
void gather(const T* x, int64_t outer, int64_t size, int64_t inner, const int64_t* indices, int64_t count, T* out);

// dst[o, indices[o, k, i], i] += src[o, k, i]: the adjoint of gather.
template <class T>
void scatter_add(const T* src, int64_t outer, int64_t count, int64_t inner, const int64_t* indices, int64_t size,
                 T* dst);

// out (count, classes) = 1 at [k, labels[k]], 0 elsewhere.
template <class T>
void one_hot(const int64_t* labels, int64_t count, int64_t classes, T* out);

}  // namespace visrep::kernels::cpu
