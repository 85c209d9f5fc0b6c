// CUDA twins of kernels/cpu/cross_entropy.h (which specifies what they compute).
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/cpu/cross_entropy.h"

namespace visrep::kernels::cuda {

template <class T>
void log_softmax_forward(const T* x, int64_t outer, int64_t classes, int64_t inner, T* y, cudaStream_t stream);

template <class T>
void log_softmax_backward(const T* grad_y, const T* y, int64_t outer, int64_t classes, int64_t inner, T* grad_x,
                          cudaStream_t stream);

template <class T>
void nll_loss_forward(const T* log_probs, const int64_t* targets, int64_t batch, int64_t classes,
                      int64_t ignore_index, double label_smoothing, T* losses, cudaStream_t stream);

template <class T>
void nll_loss_backward(const T* grad_losses, const int64_t* targets, int64_t batch, int64_t classes,
                       int64_t ignore_index, double label_smoothing, T* grad_log_probs, cudaStream_t stream);

}  // namespace visrep::kernels::cuda
