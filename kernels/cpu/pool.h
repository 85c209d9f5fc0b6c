// 2-D pooling over NCHW planes: max (remembering where each maximum came from, for the
// backward pass), average with zero padding, and adaptive average (PyTorch's bins).
#pragma once

#include <cstdint>

namespace visrep::kernels {

struct Pool2dGeometry {
  int64_t planes = 0;  // N * C: pooling treats every (sample, channel) plane alike
  int64_t in_height = 0;
  int64_t in_width = 0;
  int64_t kernel_height = 1;
  int64_t kernel_width = 1;
  int64_t stride_height = 1;
  int64_t stride_width = 1;
  int64_t padding_height = 0;
  int64_t padding_width = 0;

  int64_t out_height() const { return (in_height + 2 * padding_height - kernel_height) / stride_height + 1; }
  int64_t out_width() const { return (in_width + 2 * padding_width - kernel_width) / stride_width + 1; }
};

}  // namespace visrep::kernels

namespace visrep::kernels::cpu {

// output = max over each window (padding never wins); argmax = the flat index (ih * W + iw)
// of the winner within its input plane. NaN wins, as in PyTorch.
template <class T>
void max_pool2d_forward(const Pool2dGeometry& geometry, const T* input, T* output, int64_t* argmax);

// grad_input (zeroed here) += grad_output routed to each window's argmax.
template <class T>
void max_pool2d_backward(const Pool2dGeometry& geometry, const T* grad_output, const int64_t* argmax,
                         T* grad_input);

// Average over each window. count_include_pad: divide by the full window (PyTorch's
// default) or only by the in-bounds elements.
template <class T>
void avg_pool2d_forward(const Pool2dGeometry& geometry, bool count_include_pad, const T* input, T* output);

template <class T>
void avg_pool2d_backward(const Pool2dGeometry& geometry, bool count_include_pad, const T* grad_output,
                         T* grad_input);

// Adaptive average pooling to (out_height, out_width): output cell i covers input rows
// [floor(i * H / H_out), ceil((i + 1) * H / H_out)), likewise for columns.
template <class T>
void adaptive_avg_pool2d_forward(int64_t planes, int64_t in_height, int64_t in_width, int64_t out_height,
                                 int64_t out_width, const T* input, T* output);

template <class T>
void adaptive_avg_pool2d_backward(int64_t planes, int64_t in_height, int64_t in_width, int64_t out_height,
                                  int64_t out_width, const T* grad_output, T* grad_input);

}  // namespace visrep::kernels::cpu
