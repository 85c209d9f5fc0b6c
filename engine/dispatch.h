// How an op reaches its kernel: the runtime dtype turned into a compile-time type,
//   visit_floating(x.dtype(), "exp", [&](auto tag) { using T = typename decltype(tag)::type; ... });
// the checks ops make before touching memory, and the one place that picks the CPU kernel
// or its CUDA twin (VISREP_RUN_KERNEL, below).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

#include "engine/tensor.h"
#include "kernels/cuda/stream.h"
#include "kernels/deferred_error_list.h"

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

// float32, float64 and bfloat16: the types the kernels that keep float32 statistics for
// bfloat16 take natively (group normalisation, weight standardisation, the contrastive
// losses on CUDA), with no conversion pass over the tensor.
template <class F>
decltype(auto) visit_floating_or_bfloat16(DType dtype, std::string_view op, F&& f) {
  switch (dtype) {
    case DType::Float32: return f(std::type_identity<float>{});
    case DType::Float64: return f(std::type_identity<double>{});
    case DType::BFloat16: return f(std::type_identity<bfloat16>{});
    default: VISREP_FAIL("{}: expected a float32, bfloat16 or float64 tensor, got {}", op, dtype_name(dtype));
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
void check_same_dtype(std::string_view op, const Tensor& a, const Tensor& b);
void check_defined(std::string_view op, const Tensor& tensor, std::string_view argument);

// `tensor` is float32, bfloat16 or float64 (the types of visit_floating_or_bfloat16).
void check_floating_or_bfloat16(std::string_view op, const Tensor& tensor, std::string_view argument);
// x is a 4-D (N, C, H, W) tensor.
void check_nchw(std::string_view op, const Tensor& x);
// Both values of a window size, stride or padding are at least `minimum`.
void check_pair_at_least(std::string_view op, std::string_view what, Pair value, int64_t minimum);
// An eps added under a square root: positive and finite.
void check_eps(std::string_view op, double eps);

// Where the statistics of kernels::AccumulateType<T> go for tensors like `like`: float32
// for float32 and bfloat16, float64 for float64, on like's device.
TensorOptions accumulate_options(const Tensor& like);

// The first element of a tensor on either device, typed (the op has checked the dtype), or
// null for an undefined tensor (an optional argument such as a missing bias).
template <class T>
T* data_or_null(const Tensor& tensor) {
  return tensor.defined() ? static_cast<T*>(tensor.raw_data()) : nullptr;
}

// ---- running a kernel on the device of its tensors -----------------------------------------
// Every kernel has a CPU reference, kernels::cpu::NAME(arguments), and a CUDA twin,
// kernels::cuda::NAME(arguments, stream), with the same arguments (an argument struct,
// declared once in kernels/cpu/<family>.h, the family's specification). An op runs the one
// for the device of its tensors with
//   VISREP_RUN_KERNEL("conv2d", x.device(), conv2d_forward, arguments);
// which calls the CPU kernel on the CPU, and otherwise the CUDA twin on the stream of the
// tensor's device, with the op's name in front of any CUDA, cuBLAS or cuDNN failure (the
// kernels report those as std::runtime_error naming the call and its file:line). It returns
// what the kernel returns. In a build without CUDA the CUDA branch is an error naming the op
// (no tensor can be on a CUDA device there anyway) and the twin is never referenced. A
// macro, because it names the kernel in both namespaces and one of them has no definitions
// in a build without CUDA.
#if VISREP_WITH_CUDA
#define VISREP_RUN_KERNEL(op, device, kernel, ...)                                                 \
  ::visrep::run_kernel(                                                                            \
      op, device, [&]() { return ::visrep::kernels::cpu::kernel(__VA_ARGS__); },                    \
      [&](cudaStream_t visrep_stream) { return ::visrep::kernels::cuda::kernel(__VA_ARGS__, visrep_stream); })
#else
#define VISREP_RUN_KERNEL(op, device, kernel, ...) \
  ::visrep::run_kernel(op, device, [&]() { return ::visrep::kernels::cpu::kernel(__VA_ARGS__); }, nullptr)
#endif

#if VISREP_WITH_CUDA
// The stream a device runs every op on.
cudaStream_t cuda_stream(const Device& device);
inline cudaStream_t cuda_stream(const Tensor& tensor) { return cuda_stream(tensor.device()); }
#endif

// Runs body(), reporting a CUDA failure (std::runtime_error from kernels/cuda) as an Error
// that names the op; errors of the engine's own checks pass through unchanged.
template <class Body>
decltype(auto) run_on_cuda(std::string_view op, Body&& body) {
  try {
    return body();
  } catch (const Error&) {
    throw;
  } catch (const std::runtime_error& error) {
    VISREP_FAIL("{}: {}", op, error.what());
  }
}

// What VISREP_RUN_KERNEL expands to: on_cpu() on the CPU, on_cuda(stream) on a CUDA device.
template <class OnCpu, class OnCuda>
decltype(auto) run_kernel(std::string_view op, const Device& device, OnCpu&& on_cpu, OnCuda&& on_cuda) {
  if (device.is_cpu()) return on_cpu();
#if VISREP_WITH_CUDA
  return run_on_cuda(op, [&]() -> decltype(auto) { return on_cuda(cuda_stream(device)); });
#else
  VISREP_FAIL("{}: visrep was built without the CUDA backend", op);
#endif
}

// For CUDA runtime calls outside a kernel family (the data loader's pinned staging
// buffers): VISREP_ON_CUDA("DataLoader", statements) runs them with the op's name in front
// of a failure; in a build without CUDA it is an error naming the op.
#if VISREP_WITH_CUDA
#define VISREP_ON_CUDA(op, ...) ::visrep::run_on_cuda(op, [&] { __VA_ARGS__; })
#else
#define VISREP_ON_CUDA(op, ...) VISREP_FAIL("{}: visrep was built without the CUDA backend", op)
#endif

// ---- bad input that the kernel finds ---------------------------------------------------------
// Some input errors are found by the kernel itself (an index out of range, a NaN embedding).
// The kernel marks a slot, two int64 (kernels/deferred_error_list.h): the position of the
// first bad element and a detail (the bad value), kNoError until marked. On the CPU the slot
// is here and report() throws message(position, detail) as soon as the kernel has run. On
// CUDA it is a deferred check's (kernels/cuda/deferred_errors.h): reading it at once would
// make the host wait in the middle of every training step, so the next synchronisation
// (item(), a copy to the host, cuda::synchronize()) throws the message instead, and
// report() does nothing. `message` may run later, so it must use only what it captured.
class InputCheck {
 public:
  InputCheck(std::string_view op, const Device& device, kernels::DeferredMessage message);
  InputCheck(const InputCheck&) = delete;
  InputCheck& operator=(const InputCheck&) = delete;

  // Where the kernel marks (the argument structs' `slot` / `first_non_finite_row`).
  long long* slot() const { return slot_; }
  // On the CPU: throws the message if the kernel marked the slot.
  void report() const;

 private:
  kernels::DeferredMessage message_;
  long long host_slot_[2] = {kernels::kNoError, 0};
  long long* slot_ = host_slot_;
  bool on_cpu_ = true;
};

// The range check of a contiguous int64 index tensor, by the mark_first_out_of_range
// kernels: every value in [0, size) (or equal to `ignored`), else message(value, position)
// for the first other one, thrown as InputCheck says (at once on the CPU, at the next
// synchronisation on CUDA).
void check_indices_in_range(std::string_view op, const Tensor& index, int64_t size, std::optional<int64_t> ignored,
                            const std::function<std::string(int64_t value, int64_t position)>& message);

}  // namespace visrep
