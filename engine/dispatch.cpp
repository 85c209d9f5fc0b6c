#include "engine/dispatch.h"

#include <cmath>
#include <utility>

#include "kernels/cpu/indexing.h"
#include "kernels/cuda/indexing.h"
#if VISREP_WITH_CUDA
#include "kernels/cuda/deferred_errors.h"
#include "kernels/cuda/runtime.h"
#endif

namespace visrep {

void check_defined(std::string_view op, const Tensor& tensor, std::string_view argument) {
  VISREP_CHECK(tensor.defined(), "{}: argument '{}' is an undefined tensor", op, argument);
}

void check_same_device(std::string_view op, const Tensor& a, const Tensor& b) {
  VISREP_CHECK(a.device() == b.device(), "{}: tensors on different devices ({} and {}); move one with .to()", op,
               a.device().str(), b.device().str());
}

void check_same_dtype(std::string_view op, const Tensor& a, const Tensor& b) {
  VISREP_CHECK(a.dtype() == b.dtype(), "{}: dtype mismatch, {} vs {}", op, dtype_name(a.dtype()),
               dtype_name(b.dtype()));
}

void check_floating_or_bfloat16(std::string_view op, const Tensor& tensor, std::string_view argument) {
  VISREP_CHECK(tensor.dtype() == kFloat32 || tensor.dtype() == kFloat64 || tensor.dtype() == kBFloat16,
               "{}: {} must be float32, bfloat16 or float64, got {}", op, argument, tensor.description());
}

void check_nchw(std::string_view op, const Tensor& x) {
  check_defined(op, x, "x");
  VISREP_CHECK(x.dim() == 4, "{}: expected an (N, C, H, W) input, got shape {}", op, shape_string(x.shape()));
}

void check_pair_at_least(std::string_view op, std::string_view what, Pair value, int64_t minimum) {
  VISREP_CHECK(value[0] >= minimum && value[1] >= minimum, "{}: {} must be >= {}, got ({}, {})", op, what, minimum,
               value[0], value[1]);
}

void check_eps(std::string_view op, double eps) {
  VISREP_CHECK(eps > 0 && std::isfinite(eps), "{}: eps must be positive and finite, got {}", op, eps);
}

TensorOptions accumulate_options(const Tensor& like) {
  return TensorOptions(like.dtype() == kFloat64 ? kFloat64 : kFloat32, like.device());
}

#if VISREP_WITH_CUDA
cudaStream_t cuda_stream(const Device& device) {
  return run_on_cuda("cuda_stream", [&] { return kernels::cuda::stream(device.index); });
}
#endif

InputCheck::InputCheck(std::string_view op, const Device& device, kernels::DeferredMessage message)
    : on_cpu_(device.is_cpu()) {
  if (on_cpu_) {
    message_ = std::move(message);
    return;
  }
#if VISREP_WITH_CUDA
  slot_ = run_on_cuda(
      op, [&] { return kernels::cuda::defer_check(device.index, cuda_stream(device), std::move(message)); });
#else
  VISREP_FAIL("{}: visrep was built without the CUDA backend", op);
#endif
}

void InputCheck::report() const {
  if (on_cpu_ && host_slot_[0] != kernels::kNoError) VISREP_FAIL("{}", message_(host_slot_[0], host_slot_[1]));
}

void check_indices_in_range(std::string_view op, const Tensor& index, int64_t size, std::optional<int64_t> ignored,
                            const std::function<std::string(int64_t value, int64_t position)>& message) {
  const InputCheck check(op, index.device(),
                         [message](long long position, long long value) { return message(value, position); });
  VISREP_RUN_KERNEL(op, index.device(), mark_first_out_of_range,
                    kernels::MarkFirstOutOfRange{.indices = data_or_null<const int64_t>(index),
                                                 .count = index.numel(),
                                                 .size = size,
                                                 .has_ignored = ignored.has_value(),
                                                 .ignored = ignored.value_or(0),
                                                 .slot = check.slot()});
  check.report();
}

}  // namespace visrep
