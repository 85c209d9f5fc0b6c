#include "engine/dispatch.h"

#if VISREP_WITH_CUDA
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
#endif

}  // namespace visrep
