// CUDA twins of kernels/cpu/pool.h (which specifies what they compute).
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/cpu/pool.h"

namespace visrep::kernels::cuda {

template <class T>
void max_pool2d_forward(const Pool2dGeometry& geometry, const T* input, T* output, int64_t* argmax,
                        cudaStream_t stream);

template <class T>
void max_pool2d_backward(const Pool2dGeometry& geometry, const T* grad_output, const int64_t* argmax, T* grad_input,
                         cudaStream_t stream);

template <class T>
void avg_pool2d_forward(const Pool2dGeometry& geometry, bool count_include_pad, const T* input, T* output,
                        cudaStream_t stream);

template <class T>
void avg_pool2d_backward(const Pool2dGeometry& geometry, bool count_include_pad, const T* grad_output, T* grad_input,
                         cudaStream_t stream);

template <class T>
void adaptive_avg_pool2d_forward(int64_t planes, int64_t in_height, int64_t in_width, int64_t out_height,
                                 int64_t out_width, const T* input, T* output, cudaStream_t stream);

template <class T>
void adaptive_avg_pool2d_backward(int64_t planes, int64_t in_height, int64_t in_width, int64_t out_height,
                                  int64_t out_width, const T* grad_output, T* grad_input, cudaStream_t stream);

}  // namespace visrep::kernels::cuda
