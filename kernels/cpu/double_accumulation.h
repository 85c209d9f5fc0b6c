// Conversions for the CPU references that accumulate in double (group_norm.cpp, contrastive.cpp,
// weight_standardization.cpp): every stored type widens exactly to double, and results
// narrow back the way the GPU narrows them (bfloat16 rounds from float, so a CPU value and
// a GPU value of the same float agree bit for bit).
#pragma once

#include <type_traits>

#include "kernels/bfloat16.h"

namespace visrep::kernels::cpu {

template <class T>
inline double to_double(T value) {
  if constexpr (std::is_same_v<T, double>) {
    return value;
  } else {
    return static_cast<double>(static_cast<float>(value));  // float, bfloat16
  }
}

template <class T>
inline T from_double(double value) {
  if constexpr (std::is_same_v<T, bfloat16>) {
    return bfloat16(static_cast<float>(value));
  } else {
    return static_cast<T>(value);
  }
}

}  // namespace visrep::kernels::cpu
