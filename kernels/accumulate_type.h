// The type a kernel keeps its statistics and sums in for elements of type T: float for
// float32 and bfloat16 (PyTorch's "opmath" type: bfloat16 is a storage format, its
// arithmetic is float32), double for float64. One trait for every family that saves
// statistics between its forward and backward pass (group normalisation, weight
// standardisation, the contrastive losses): the saved tensors are allocated by the engine
// in this type, written by one pass and read by the other, on either device.
#pragma once

#include <type_traits>

namespace visrep::kernels {

template <class T>
using AccumulateType = std::conditional_t<std::is_same_v<T, double>, double, float>;

}  // namespace visrep::kernels
