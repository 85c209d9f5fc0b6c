// Turning a runtime dtype into a compile-time type for the kernel call:
//   visit_floating(x.dtype(), "exp", [&](auto tag) { using T = typename decltype(tag)::type; ... });
// and the device checks ops make before touching memory.
#pragma once

#include <string_view>
#include <type_traits>

#include "engine/tensor.h"

namespace visrep {

template <class F>
decltype(auto) visit_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::Float32: return f(std::type_identity<float>{});
    case DType::Float64: return f(std::type_identity<double>{});
    case DType::BFloat16: return f(std::type_identity<bfloat16>{});
    case DType::Int32: return f(std::type_identity<int32_t>{});
    case DType::Int64: return f(std::type_identity<int64_t>{});
    case DType::UInt8: return f(std::type_identity<uint8_t>{});
  }
  VISREP_FAIL("unknown dtype");
}

// float32 and float64: the types the arithmetic kernels are written for. bfloat16 inputs
// are converted to float32 by the ops before they get here.
template <class F>
decltype(auto) visit_floating(DType dtype, std::string_view op, F&& f) {
  switch (dtype) {
    case DType::Float32: return f(std::type_identity<float>{});
    case DType::Float64: return f(std::type_identity<double>{});
    default: VISREP_FAIL("{}: expected a float32 or float64 tensor, got {}", op, dtype_name(dtype));
  }
}

// Every type with arithmetic kernels: the floating ones and the integers.
template <class F>
decltype(auto) visit_arithmetic(DType dtype, std::string_view op, F&& f) {
  switch (dtype) {
    case DType::Float32: return f(std::type_identity<float>{});
    case DType::Float64: return f(std::type_identity<double>{});
    case DType::Int32: return f(std::type_identity<int32_t>{});
    case DType::Int64: return f(std::type_identity<int64_t>{});
    case DType::UInt8: return f(std::type_identity<uint8_t>{});
    default: VISREP_FAIL("{}: no arithmetic on {} tensors (convert with .to(kFloat32))", op, dtype_name(dtype));
  }
}

// Every op runs on the device of its inputs; mixing devices is an error naming both.
void check_same_device(std::string_view op, const Tensor& a, const Tensor& b);

// The CPU kernels are the only ones in this build stage: an op given a CUDA tensor without
// a CUDA kernel says so instead of reading device memory from the host.
void check_cpu(std::string_view op, const Tensor& tensor);

void check_same_dtype(std::string_view op, const Tensor& a, const Tensor& b);
void check_defined(std::string_view op, const Tensor& tensor, std::string_view argument);

}  // namespace visrep
