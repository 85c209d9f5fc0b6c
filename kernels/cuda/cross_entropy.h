// CUDA twins of kernels/cpu/cross_entropy.h (which specifies what they compute and lists
// the family's files). Pointers are device pointers.
#pragma once

#include "kernels/cpu/cross_entropy.h"
#include "kernels/cuda/stream.h"

namespace visrep::kernels::cuda {

template <class T>
void log_softmax_forward(const LogSoftmaxForward<T>& arguments, cudaStream_t stream);
template <class T>
void log_softmax_backward(const LogSoftmaxBackward<T>& arguments, cudaStream_t stream);
template <class T>
void nll_loss_forward(const NllLossForward<T>& arguments, cudaStream_t stream);
template <class T>
void nll_loss_backward(const NllLossBackward<T>& arguments, cudaStream_t stream);

}  // namespace visrep::kernels::cuda
