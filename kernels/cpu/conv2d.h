// 2-D convolution (cross-correlation, as in every deep-learning library) over NCHW tensors,
// with stride, zero padding, dilation and groups, by im2col + GEMM (kernels/cpu/conv2d.cpp
// explains the work), and for float32 3x3 stride-1 padding-1 convolutions the forward pass and
// both gradients by Winograd's F(2x2, 3x3) (kernels/cpu/conv2d_winograd.cpp); the CUDA twin
// runs cuDNN. float32 and float64.
//
// Where to look, conv2d:
//   op               engine/ops/conv2d.{h,cpp}   conv2d(); the module nn::Conv2d is in engine/nn/layers.h
//   CPU reference    kernels/cpu/conv2d.{h,cpp}  this header; the GEMMs are kernels/cpu/linear_algebra.h's
//   CPU fast path    kernels/cpu/conv2d_winograd.{h,cpp}  Winograd, off under ScopedReferenceKernels
//   CUDA twin        kernels/cuda/conv2d.{h,cu}
//   unit tests       tests/unit/test_conv2d.cpp (the op), tests/unit/test_conv2d_kernels.cpp (the CPU
//                    kernel against direct loops, its threading and edge cases)
//   gradient check   tests/gradcheck/test_conv2d_gradcheck.cpp
//   parity cases     tests/parity/test_parity_conv2d.cpp
//   benchmark        benchmarks/bench_cpu_ops.cpp (the CPU kernel against sgemm of the same FLOPs);
//                    on the GPU inside the training steps of benchmarks/bench_train.cpp
#pragma once

#include <cstdint>

namespace visrep::kernels {

struct Conv2dGeometry {
  int64_t batch = 0;
  int64_t in_channels = 0;
  int64_t in_height = 0;
  int64_t in_width = 0;
  int64_t out_channels = 0;
  int64_t kernel_height = 0;
  int64_t kernel_width = 0;
  int64_t stride_height = 1;
  int64_t stride_width = 1;
  int64_t padding_height = 0;
  int64_t padding_width = 0;
  int64_t dilation_height = 1;
  int64_t dilation_width = 1;
  int64_t groups = 1;

  int64_t out_height() const {
    return (in_height + 2 * padding_height - dilation_height * (kernel_height - 1) - 1) / stride_height + 1;
  }
  int64_t out_width() const {
    return (in_width + 2 * padding_width - dilation_width * (kernel_width - 1) - 1) / stride_width + 1;
  }
};

// output (N, C_out, H_out, W_out) = conv(input (N, C_in, H, W), weight (C_out, C_in/groups,
// kH, kW)) + bias (C_out, or null).
template <class T>
struct Conv2dForward {
  Conv2dGeometry geometry;
  const T* input = nullptr;
  const T* weight = nullptr;
  const T* bias = nullptr;
  T* output = nullptr;
};

// Gradients of the forward pass given grad_output; any of grad_input, grad_weight and
// grad_bias may be null when that gradient is not wanted. All are overwritten, not added to.
template <class T>
struct Conv2dBackward {
  Conv2dGeometry geometry;
  const T* grad_output = nullptr;
  const T* input = nullptr;
  const T* weight = nullptr;
  T* grad_input = nullptr;
  T* grad_weight = nullptr;
  T* grad_bias = nullptr;
};

}  // namespace visrep::kernels

namespace visrep::kernels::cpu {

template <class T>
void conv2d_forward(const Conv2dForward<T>& arguments);

template <class T>
void conv2d_backward(const Conv2dBackward<T>& arguments);

}  // namespace visrep::kernels::cpu
