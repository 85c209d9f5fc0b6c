// CUDA twins of kernels/cpu/pool.h (which specifies what they compute and lists the
// family's files). Pointers are device pointers.
#pragma once

#include "kernels/cpu/pool.h"
#include "kernels/cuda/stream.h"

namespace visrep::kernels::cuda {

template <class T>
void max_pool2d_forward(const MaxPool2dForward<T>& arguments, cudaStream_t stream);
template <class T>
void max_pool2d_backward(const MaxPool2dBackward<T>& arguments, cudaStream_t stream);
template <class T>
void avg_pool2d_forward(const AvgPool2dForward<T>& arguments, cudaStream_t stream);
template <class T>
void avg_pool2d_backward(const AvgPool2dBackward<T>& arguments, cudaStream_t stream);
template <class T>
void adaptive_avg_pool2d_forward(const AdaptiveAvgPool2dForward<T>& arguments, cudaStream_t stream);
template <class T>
void adaptive_avg_pool2d_backward(const AdaptiveAvgPool2dBackward<T>& arguments, cudaStream_t stream);

}  // namespace visrep::kernels::cuda
