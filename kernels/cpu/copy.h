// Strided copy with type conversion, and fill: what contiguous(), to(dtype), clone(),
// concatenation, padding and slice assignment are made of. This header is the
// specification; kernels/cpu/copy.cpp computes it with plain loops.
//
// Where to look, copy and fill:
//   op               engine/tensor.{h,cpp}   Tensor::copy_ and Tensor::fill_ (and through them contiguous(),
//                    to(), clone(), concat, pad)
//   CPU reference    kernels/cpu/copy.{h,cpp}  this header and its loops
//   CUDA twin        kernels/cuda/copy.{h,cu}
//   unit tests       tests/unit/test_tensor.cpp (conversions, bfloat16 rounding, views)
//   gradient check   tests/gradcheck/test_tensor_gradcheck.cpp (views, clone, to)
//   parity cases     tests/parity/test_parity_copy.cpp
//   benchmark        benchmarks/bench_elementwise.cpp (its device-to-device copy baseline)
#pragma once

#include <cstdint>

#include "kernels/bfloat16.h"
#include "kernels/strided_layout.h"

namespace visrep::kernels {

// dst[i] = convert(src[i]) for every element, both sides strided with the same sizes.
// Float to integer truncates toward zero (NaN -> 0, out of range saturates); float to
// bfloat16 rounds to nearest even: kernels/convert.h, shared with the CUDA twin.
// Types: float, double, bfloat16, int32_t, int64_t, uint8_t in any pair.
template <class Source, class Destination>
struct Copy {
  const Source* src = nullptr;
  StridedLayout src_layout;
  Destination* dst = nullptr;
  StridedLayout dst_layout;
};

// dst[i] = value.
template <class T>
struct Fill {
  T* dst = nullptr;
  StridedLayout dst_layout;
  T value = T();
};

}  // namespace visrep::kernels

namespace visrep::kernels::cpu {

template <class Source, class Destination>
void copy(const Copy<Source, Destination>& arguments);
template <class T>
void fill(const Fill<T>& arguments);

}  // namespace visrep::kernels::cpu
