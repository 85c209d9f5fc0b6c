// CUDA twins of kernels/cpu/conv2d.h on cuDNN (forward, backward data, backward filter),
// with the algorithm chosen once per geometry and cached, and workspace from the caching
// allocator. float32 uses TF32 only when runtime.h's tf32_enabled() is set.
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/cpu/conv2d.h"

namespace visrep::kernels::cuda {

template <class T>
void conv2d_forward(const Conv2dGeometry& geometry, const T* input, const T* weight, const T* bias, T* output,
                    cudaStream_t stream);

template <class T>
void conv2d_backward(const Conv2dGeometry& geometry, const T* grad_output, const T* input, const T* weight,
                     T* grad_input, T* grad_weight, T* grad_bias, cudaStream_t stream);

}  // namespace visrep::kernels::cuda
