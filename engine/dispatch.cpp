#include "engine/dispatch.h"

#if VISREP_WITH_CUDA
#include <utility>

#include "kernels/cuda/deferred_errors.h"
#include "kernels/cuda/indexing.h"
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

void check_cpu(std::string_view op, const Tensor& tensor) {
  VISREP_CHECK(tensor.device().is_cpu(), "{}: runs on the cpu only; the tensor is on {} (copy it with .cpu())", op,
               tensor.device().str());
}

#if VISREP_WITH_CUDA
cudaStream_t cuda_stream(const Tensor& tensor) {
  cudaStream_t result = nullptr;
  run_on_cuda("cuda_stream", [&] { result = kernels::cuda::stream(tensor.device().index); });
  return result;
}

long long* defer_cuda_check(std::string_view op, const Tensor& tensor, kernels::DeferredMessage message) {
  long long* slot = nullptr;
  run_on_cuda(op, [&] {
    slot = kernels::cuda::defer_check(tensor.device().index, cuda_stream(tensor), std::move(message));
  });
  return slot;
}

void check_cuda_indices_deferred(std::string_view op, const Tensor& index, int64_t size,
                                 std::optional<int64_t> ignored,
                                 std::function<std::string(int64_t value, int64_t position)> message) {
  long long* slot = defer_cuda_check(op, index, [message = std::move(message)](long long position, long long value) {
    return message(value, position);
  });
  run_on_cuda(op, [&] {
    kernels::cuda::mark_first_out_of_range(static_cast<const int64_t*>(index.raw_data()), index.numel(), size,
                                           ignored, slot, cuda_stream(index));
  });
}
#endif

}  // namespace visrep
