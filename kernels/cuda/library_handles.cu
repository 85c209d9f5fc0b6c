#include "kernels/cuda/library_handles.h"

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/library_status.h"
#include "kernels/cuda/runtime.h"

namespace visrep::kernels::cuda {
namespace {

struct DeviceHandles {
  std::mutex cublas_mutex;
  cublasHandle_t cublas = nullptr;
  std::mutex cudnn_mutex;
  cudnnHandle_t cudnn = nullptr;
};

// The handles of the current device (which runtime.h's stream(device) sets).
DeviceHandles& current_device_handles() {
  static const std::vector<std::unique_ptr<DeviceHandles>> all = [] {
    std::vector<std::unique_ptr<DeviceHandles>> result;
    for (int device = 0; device < device_count(); ++device) result.push_back(std::make_unique<DeviceHandles>());
    return result;
  }();
  const int device = current_device();
  if (device < 0 || device >= static_cast<int>(all.size())) {
    throw std::runtime_error("library handles: no CUDA device " + std::to_string(device));
  }
  return *all[static_cast<size_t>(device)];
}

}  // namespace

CublasLease::CublasLease(cudaStream_t stream) {
  DeviceHandles& handles = current_device_handles();
  lock_ = std::unique_lock<std::mutex>(handles.cublas_mutex);
  if (handles.cublas == nullptr) {
    cublasHandle_t created = nullptr;
    VISREP_CUBLAS_CHECK(cublasCreate(&created));
    handles.cublas = created;
    VISREP_CUBLAS_CHECK(cublasSetPointerMode(created, CUBLAS_POINTER_MODE_HOST));
    VISREP_CUBLAS_CHECK(cublasSetMathMode(created, CUBLAS_DEFAULT_MATH));
  }
  handle_ = handles.cublas;
  VISREP_CUBLAS_CHECK(cublasSetStream(handle_, stream));
}

CudnnLease::CudnnLease(cudaStream_t stream) {
  DeviceHandles& handles = current_device_handles();
  lock_ = std::unique_lock<std::mutex>(handles.cudnn_mutex);
  if (handles.cudnn == nullptr) {
    cudnnHandle_t created = nullptr;
    VISREP_CUDNN_CHECK(cudnnCreate(&created));
    handles.cudnn = created;
  }
  handle_ = handles.cudnn;
  VISREP_CUDNN_CHECK(cudnnSetStream(handle_, stream));
}

}  // namespace visrep::kernels::cuda
