// Indexing kernels over (outer, size, inner) views of contiguous tensors, the axis being
// indexed in the middle. Indices are int64 and must be in [0, size): the engine checks them
// with mark_first_out_of_range first (engine/dispatch.h, check_indices_in_range), so the
// CPU loops stay branch-free (the CUDA twins, which run before the host has seen the
// check, never follow a bad index). This header is the specification;
// kernels/cpu/indexing.cpp computes it with plain loops.
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

namespace visrep::kernels {

// Marks `slot` (two int64: kernels/deferred_error_list.h) with the position of the first
// index outside [0, size), not counting one equal to `ignored` when has_ignored, and that
// index's value: slot[0] = position, slot[1] = value. Leaves the slot as it is (kNoError)
// when every index is good.
struct MarkFirstOutOfRange {
  const int64_t* indices = nullptr;
  int64_t count = 0;
  int64_t size = 0;
  bool has_ignored = false;
  int64_t ignored = 0;
  long long* slot = nullptr;
};

// out (outer, count, inner)[o, k, i] = x (outer, size, inner)[o, indices[k], i].
template <class T>
struct IndexSelect {
  const T* x = nullptr;
  int64_t outer = 1;
  int64_t size = 0;
  int64_t inner = 1;
  const int64_t* indices = nullptr;
  int64_t count = 0;
  T* out = nullptr;
};

// dst (outer, size, inner)[o, indices[k], i] += src (outer, count, inner)[o, k, i]:
// the adjoint of index_select (repeated indices add up).
template <class T>
struct IndexAdd {
  const T* src = nullptr;
  int64_t outer = 1;
  int64_t count = 0;
  int64_t inner = 1;
  const int64_t* indices = nullptr;
  int64_t size = 0;
  T* dst = nullptr;
};

// out[o, k, i] = x[o, indices[o, k, i], i], indices shaped (outer, count, inner).
template <class T>
struct Gather {
  const T* x = nullptr;
  int64_t outer = 1;
  int64_t size = 0;
  int64_t inner = 1;
  const int64_t* indices = nullptr;
  int64_t count = 0;
  T* out = nullptr;
};

// dst[o, indices[o, k, i], i] += src[o, k, i]: the adjoint of gather.
template <class T>
struct ScatterAdd {
  const T* src = nullptr;
  int64_t outer = 1;
  int64_t count = 0;
  int64_t inner = 1;
  const int64_t* indices = nullptr;
  int64_t size = 0;
  T* dst = nullptr;
};

// out (count, classes) = 1 at [k, labels[k]], 0 elsewhere.
template <class T>
struct OneHot {
  const int64_t* labels = nullptr;
  int64_t count = 0;
  int64_t classes = 0;
  T* out = nullptr;
};

}  // namespace visrep::kernels

namespace visrep::kernels::cpu {

void mark_first_out_of_range(const MarkFirstOutOfRange& arguments);
template <class T>
void index_select(const IndexSelect<T>& arguments);
template <class T>
void index_add(const IndexAdd<T>& arguments);
template <class T>
void gather(const Gather<T>& arguments);
template <class T>
void scatter_add(const ScatterAdd<T>& arguments);
template <class T>
void one_hot(const OneHot<T>& arguments);

}  // namespace visrep::kernels::cpu
