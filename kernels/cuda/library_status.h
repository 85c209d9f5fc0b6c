// Status checks for the CUDA libraries (cuBLAS, cuDNN), in the manner of runtime.h's
// VISREP_CUDA_CHECK: a failed call throws std::runtime_error naming the call, its
// file:line and the library's message, e.g.
//   "cudnnConvolutionForward(...) failed at kernels/cuda/conv2d.cu:210: CUDNN_STATUS_BAD_PARAM (...)".
// Include only from .cu/.cpp files under kernels/cuda (it pulls in the libraries' headers).
#pragma once

#include <cublas_v2.h>
#include <cudnn.h>

namespace visrep::kernels::cuda {

void check_cublas(cublasStatus_t status, const char* what, const char* file, int line);
void check_cudnn(cudnnStatus_t status, const char* what, const char* file, int line);

#define VISREP_CUBLAS_CHECK(call) ::visrep::kernels::cuda::check_cublas((call), #call, __FILE__, __LINE__)
#define VISREP_CUDNN_CHECK(call) ::visrep::kernels::cuda::check_cudnn((call), #call, __FILE__, __LINE__)

}  // namespace visrep::kernels::cuda
