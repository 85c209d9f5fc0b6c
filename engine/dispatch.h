// Turning a runtime dtype into a compile-time type for the kernel call:
//   visit_floating(x.dtype(), "exp", [&](auto tag) { using T = typename decltype(tag)::type; ... });
// and the device checks ops make before touching memory.
#pragma once

#include <stdexcept>
#include <string_view>
#include <type_traits>

#include "engine/tensor.h"

#if VISREP_WITH_CUDA
#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "kernels/deferred_error_list.h"
#endif

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

// For the few ops that have no CUDA twin: says so instead of reading device memory from
// the host.
void check_cpu(std::string_view op, const Tensor& tensor);

// ---- running the CUDA twin of a kernel ---------------------------------------------------
//   if (x.device().is_cuda()) {
//     VISREP_ON_CUDA("exp", kernels::cuda::unary<T>(..., cuda_stream(x)));
//   } else {
//     kernels::cpu::unary<T>(...);
//   }
// The kernels report CUDA, cuBLAS and cuDNN failures as std::runtime_error with the call
// and its file:line; VISREP_ON_CUDA prefixes the op's name. In a build without CUDA the
// branch compiles to an error (no tensor can be on a CUDA device there anyway).
#if VISREP_WITH_CUDA
// The stream the tensor's device runs every op on.
cudaStream_t cuda_stream(const Tensor& tensor);

template <class Body>
void run_on_cuda(std::string_view op, Body&& body) {
  try {
    body();
  } catch (const Error&) {
    throw;
  } catch (const std::runtime_error& error) {
    VISREP_FAIL("{}: {}", op, error.what());
  }
}
#define VISREP_ON_CUDA(op, ...) ::visrep::run_on_cuda(op, [&] { __VA_ARGS__; })

// ---- checks of CUDA inputs that do not wait for the device ---------------------------------
// Reading a verdict back from the GPU (is every index in range?) would make the host wait in
// the middle of every training step. Instead the op takes a slot, its kernel marks it on bad
// input, and the next synchronisation (item(), a copy to the host, cuda::synchronize()) throws
// message(position, detail) for the first marked one (kernels/cuda/deferred_errors.h): the
// same message as the CPU's immediate check, plus where it was found. The CPU keeps checking
// at once. `message` runs later and must use only what it captured.
long long* defer_cuda_check(std::string_view op, const Tensor& tensor, kernels::DeferredMessage message);

// The range check of a contiguous CUDA int64 index tensor: every value in [0, size), or equal
// to `ignored`; the first other one is reported as message(value, position). The CUDA
// kernels never follow a bad index (kernels/cuda/indexing.h), so the op runs meanwhile.
void check_cuda_indices_deferred(std::string_view op, const Tensor& index, int64_t size,
                                 std::optional<int64_t> ignored,
                                 std::function<std::string(int64_t value, int64_t position)> message);
#else
#define VISREP_ON_CUDA(op, ...) VISREP_FAIL("{}: visrep was built without the CUDA backend", op)
#endif

void check_same_dtype(std::string_view op, const Tensor& a, const Tensor& b);
void check_defined(std::string_view op, const Tensor& tensor, std::string_view argument);

}  // namespace visrep
