// CUDA twins of kernels/cpu/conv2d.h (the specification, with the family's files) on cuDNN
// (forward, backward data, backward filter), with the algorithm chosen once per geometry
// and cached, and workspace from the caching allocator. float32 uses TF32 only when
// runtime.h's tf32_enabled() is set. Pointers are device pointers.
#pragma once

#include "kernels/cpu/conv2d.h"
#include "kernels/cuda/stream.h"

namespace visrep::kernels::cuda {

template <class T>
void conv2d_forward(const Conv2dForward<T>& arguments, cudaStream_t stream);

template <class T>
void conv2d_backward(const Conv2dBackward<T>& arguments, cudaStream_t stream);

}  // namespace visrep::kernels::cuda
