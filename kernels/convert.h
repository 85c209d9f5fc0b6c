// Element type conversion, one definition for the CPU copy (kernels/cpu/copy.cpp) and its
// CUDA twin (kernels/cuda/copy.cu), so that both devices give the same bits for every pair
// of dtypes:
//   - float to integer truncates toward zero; NaN gives 0, and values beyond the
//     destination's range give its minimum or maximum. C++ leaves those cases undefined and
//     the two devices disagree on them (x86-64's cvttss2si returns INT_MIN for all of them,
//     CUDA's cvt.rzi saturates), so they are decided here, by the rule of Java's d2i (JLS
//     5.1.3) and Rust's `as`: saturation, NaN to 0. uint8 saturates to [0, 255] too.
//   - to bfloat16 rounds to nearest even (kernels/bfloat16.h); from bfloat16 widens exactly
//     to float first.
//   - integer to integer keeps the low bits (two's complement wrap, defined since C++20);
//     integer to float and float64 to float32 round to nearest on both devices.
#pragma once

#include <cstdint>
#include <limits>
#include <type_traits>

#include "kernels/bfloat16.h"
#include "kernels/host_device.h"

namespace visrep::kernels {

// value truncated toward zero, NaN -> 0, beyond the range -> the nearest end of it.
template <class Integer, class Float>
VISREP_HOST_DEVICE VISREP_FORCE_INLINE Integer saturating_truncate(Float value) {
  static_assert(std::is_integral_v<Integer> && std::is_floating_point_v<Float>);
  using Limits = std::numeric_limits<Integer>;
  // 2^digits is the first integer above the range (2^31 for int32, 2^8 for uint8); powers
  // of two are exact in float and double, so both comparisons are exact.
  constexpr Float upper = static_cast<Float>(uint64_t{1} << Limits::digits);
  constexpr Float lower = Limits::is_signed ? -upper : Float(0);
  if (!(value == value)) return 0;  // NaN
  if (value >= upper) return Limits::max();
  // At or below the lower end (for signed types -2^digits, whose truncation is the minimum
  // itself; for unsigned ones 0, which (-1, 0] truncates to anyway).
  if (value <= lower) return Limits::min();
  return static_cast<Integer>(value);
}

template <class Destination, class Source>
VISREP_HOST_DEVICE VISREP_FORCE_INLINE Destination convert(Source value) {
  if constexpr (std::is_same_v<Source, Destination>) {
    return value;
  } else if constexpr (std::is_same_v<Source, bfloat16>) {
    return convert<Destination>(static_cast<float>(value));
  } else if constexpr (std::is_same_v<Destination, bfloat16>) {
    return bfloat16(static_cast<float>(value));
  } else if constexpr (std::is_floating_point_v<Source> && std::is_integral_v<Destination>) {
    return saturating_truncate<Destination>(value);
  } else {
    return static_cast<Destination>(value);
  }
}

}  // namespace visrep::kernels
