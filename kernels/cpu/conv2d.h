// 2-D convolution (cross-correlation, as in every deep-learning library) over NCHW tensors,
// with stride, zero padding, dilation and groups, by im2col + GEMM.
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

}  // namespace visrep::kernels

namespace visrep::kernels::cpu {

// output (N, C_out, H_out, W_out) = conv(input (N, C_in, H, W), weight (C_out, C_in/groups,
// kH, kW)) + bias (C_out, or null). float, double.
template <class T>
void conv2d_forward(const Conv2dGeometry& geometry, const T* input, const T* weight, const T* bias, T* output);

// Gradients of the forward pass given grad_output; any of grad_input, grad_weight and
// grad_bias may be null when that gradient is not wanted. All are overwritten, not added to.
template <class T>
void conv2d_backward(const Conv2dGeometry& geometry, const T* grad_output, const T* input, const T* weight,
                     T* grad_input, T* grad_weight, T* grad_bias);

}  // namespace visrep::kernels::cpu
