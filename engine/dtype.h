// Element types of a tensor. float32 is the default; float64 exists for gradient checks
// and the reference; bfloat16 is a storage format whose arithmetic runs in float32;
// int64 holds labels and indices; uint8 holds images and masks (comparisons return it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "kernels/bfloat16.h"

namespace visrep {

enum class DType : uint8_t { Float32, Float64, BFloat16, Int32, Int64, UInt8 };

inline constexpr DType kFloat32 = DType::Float32;
inline constexpr DType kFloat64 = DType::Float64;
inline constexpr DType kBFloat16 = DType::BFloat16;
inline constexpr DType kInt32 = DType::Int32;
inline constexpr DType kInt64 = DType::Int64;
inline constexpr DType kUInt8 = DType::UInt8;

size_t element_size(DType dtype);
std::string_view dtype_name(DType dtype);  // "float32", "bfloat16", ...
bool is_floating(DType dtype);              // float32, float64, bfloat16

template <class T>
constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::Float32; }
template <> constexpr DType dtype_of<double>() { return DType::Float64; }
template <> constexpr DType dtype_of<bfloat16>() { return DType::BFloat16; }
template <> constexpr DType dtype_of<int32_t>() { return DType::Int32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::Int64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::UInt8; }

}  // namespace visrep
