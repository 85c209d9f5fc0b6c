// 2-D pooling over NCHW planes: max (remembering where each maximum came from, for the
// backward pass), average with zero padding, and adaptive average (PyTorch's bins).
// float32 and float64. This header is the specification; kernels/cpu/pool.cpp computes it
// with plain loops.
//
// Where to look, pooling:
//   op               engine/ops/pool.{h,cpp}   max_pool2d, avg_pool2d, adaptive_avg_pool2d,
//                    global_avg_pool2d; the modules nn::MaxPool2d, nn::GlobalAvgPool2d in engine/nn/layers.h
//   CPU reference    kernels/cpu/pool.{h,cpp}  this header and its loops
//   CUDA twin        kernels/cuda/pool.{h,cu}
//   unit tests       tests/unit/test_pool.cpp
//   gradient check   tests/gradcheck/test_pool_gradcheck.cpp
//   parity cases     tests/parity/test_parity_pool.cpp
//   benchmark        none of its own; pooling is part of the training steps of benchmarks/bench_train.cpp
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

// output = max over each window (padding never wins); argmax = the flat index (ih * W + iw)
// of the winner within its input plane. NaN wins, as in PyTorch.
template <class T>
struct MaxPool2dForward {
  Pool2dGeometry geometry;
  const T* input = nullptr;
  T* output = nullptr;
  int64_t* argmax = nullptr;
};

// grad_input (zeroed first) += grad_output routed to each window's argmax.
template <class T>
struct MaxPool2dBackward {
  Pool2dGeometry geometry;
  const T* grad_output = nullptr;
  const int64_t* argmax = nullptr;
  T* grad_input = nullptr;
};

// Average over each window. count_include_pad: divide by the full window (PyTorch's
// default) or only by the in-bounds elements.
template <class T>
struct AvgPool2dForward {
  Pool2dGeometry geometry;
  bool count_include_pad = true;
  const T* input = nullptr;
  T* output = nullptr;
};

template <class T>
struct AvgPool2dBackward {
  Pool2dGeometry geometry;
  bool count_include_pad = true;
  const T* grad_output = nullptr;
  T* grad_input = nullptr;
};

// Adaptive average pooling of `planes` planes of (in_height, in_width) to (out_height,
// out_width): output cell i covers input rows [floor(i * H / H_out), ceil((i + 1) * H /
// H_out)), likewise for columns.
template <class T>
struct AdaptiveAvgPool2dForward {
  int64_t planes = 0;
  int64_t in_height = 0;
  int64_t in_width = 0;
  int64_t out_height = 0;
  int64_t out_width = 0;
  const T* input = nullptr;
  T* output = nullptr;
};

template <class T>
struct AdaptiveAvgPool2dBackward {
  int64_t planes = 0;
  int64_t in_height = 0;
  int64_t in_width = 0;
  int64_t out_height = 0;
  int64_t out_width = 0;
  const T* grad_output = nullptr;
  T* grad_input = nullptr;
};

}  // namespace visrep::kernels

namespace visrep::kernels::cpu {

template <class T>
void max_pool2d_forward(const MaxPool2dForward<T>& arguments);
template <class T>
void max_pool2d_backward(const MaxPool2dBackward<T>& arguments);
template <class T>
void avg_pool2d_forward(const AvgPool2dForward<T>& arguments);
template <class T>
void avg_pool2d_backward(const AvgPool2dBackward<T>& arguments);
template <class T>
void adaptive_avg_pool2d_forward(const AdaptiveAvgPool2dForward<T>& arguments);
template <class T>
void adaptive_avg_pool2d_backward(const AdaptiveAvgPool2dBackward<T>& arguments);

}  // namespace visrep::kernels::cpu
