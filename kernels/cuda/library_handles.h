// The cuBLAS and cuDNN handles of each device. A handle holds state (the stream it queues
// on, cuBLAS's math mode) and may not be used by two threads at once, so a kernel takes a
// lease: the current device's handle, bound to the kernel's stream, held exclusively until
// the lease goes out of scope. The calls queue work and return, so a lease is short.
// Handles are created on first use and kept for the life of the process (destroying them
// at exit would race the CUDA driver's own teardown).
// Include only from .cu/.cpp files under kernels/cuda (it pulls in the libraries' headers).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <mutex>

namespace visrep::kernels::cuda {

// cuBLAS: host pointer mode (alpha and beta are host values), CUBLAS_DEFAULT_MATH; the
// caller picks TF32 or not through the compute type of each call.
class CublasLease {
 public:
  explicit CublasLease(cudaStream_t stream);
  CublasLease(const CublasLease&) = delete;
  CublasLease& operator=(const CublasLease&) = delete;
  cublasHandle_t get() const { return handle_; }

 private:
  std::unique_lock<std::mutex> lock_;
  cublasHandle_t handle_ = nullptr;
};

class CudnnLease {
 public:
  explicit CudnnLease(cudaStream_t stream);
  CudnnLease(const CudnnLease&) = delete;
  CudnnLease& operator=(const CudnnLease&) = delete;
  cudnnHandle_t get() const { return handle_; }

 private:
  std::unique_lock<std::mutex> lock_;
  cudnnHandle_t handle_ = nullptr;
};

}  // namespace visrep::kernels::cuda
