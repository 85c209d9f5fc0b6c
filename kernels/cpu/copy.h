// Strided copy with type conversion, and fill: what contiguous(), to(dtype), clone(),
// concatenation, padding and slice assignment are made of.
#pragma once

#include <cstdint>

#include "kernels/bfloat16.h"
#include "kernels/strided_layout.h"

namespace visrep::kernels::cpu {

// dst[i] = convert(src[i]) for every element, both sides strided with the same sizes.
// Float to integer truncates toward zero (NaN -> 0, out of range saturates); float to
// bfloat16 rounds to nearest even: kernels/convert.h, shared with the CUDA twin.
// Types: float, double, bfloat16, int32_t, int64_t, uint8_t in any pair.
template <class Source, class Destination>
void copy(const Source* src, const StridedLayout& src_layout, Destination* dst, const StridedLayout& dst_layout);

// dst[i] = value.
template <class T>
void fill(T* dst, const StridedLayout& dst_layout, T value);

}  // namespace visrep::kernels::cpu
