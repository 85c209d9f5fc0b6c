// CUDA twins of kernels/cpu/batch_norm.h (which specifies what they compute): our own
// kernels, with per-channel statistics accumulated in double like the CPU reference
// (kernels/cuda/batch_norm.cu says why not cuDNN's batch normalisation).
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/cpu/batch_norm.h"

namespace visrep::kernels::cuda {

template <class T>
void batch_norm_forward_training(const BatchNormShape& shape, const T* x, const T* gamma, const T* beta, double eps,
                                 double momentum, T* running_mean, T* running_var, T* y, T* saved_mean,
                                 T* saved_invstd, cudaStream_t stream);

template <class T>
void batch_norm_forward_inference(const BatchNormShape& shape, const T* x, const T* gamma, const T* beta,
                                  const T* running_mean, const T* running_var, double eps, T* y, cudaStream_t stream);

template <class T>
void batch_norm_inference_statistics(int64_t channels, const T* running_mean, const T* running_var, double eps,
                                     T* mean, T* invstd, cudaStream_t stream);

template <class T>
void batch_norm_backward(const BatchNormShape& shape, bool training, const T* grad_y, const T* x, const T* gamma,
                         const T* mean, const T* invstd, T* grad_x, T* grad_gamma, T* grad_beta, cudaStream_t stream);

}  // namespace visrep::kernels::cuda
