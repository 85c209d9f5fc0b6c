// Cross-entropy as its two halves: log_softmax along one axis and the negative
// log-likelihood loss on its output (the engine's cross_entropy is their composition).
// float32 and float64. This header is the specification; kernels/cpu/cross_entropy.cpp
// computes it with plain loops accumulating in double.
//
// Where to look, cross-entropy:
//   op               engine/ops/cross_entropy.{h,cpp}   log_softmax, softmax, nll_loss, cross_entropy
//   CPU reference    kernels/cpu/cross_entropy.{h,cpp}  this header and its loops
//   CUDA twin        kernels/cuda/cross_entropy.{h,cu}
//   unit tests       tests/unit/test_cross_entropy.cpp
//   gradient check   tests/gradcheck/test_cross_entropy_gradcheck.cpp
//   parity cases     tests/parity/test_parity_cross_entropy.cpp
//   benchmark        none of its own; it is part of the training steps of benchmarks/bench_train.cpp
#pragma once

#include <cstdint>

namespace visrep::kernels {

// x viewed as (outer, classes, inner): y = x - max - log(sum exp(x - max)) along classes.
// The max shift keeps exp from overflowing (the usual log-sum-exp trick).
template <class T>
struct LogSoftmaxForward {
  const T* x = nullptr;
  int64_t outer = 0;
  int64_t classes = 0;
  int64_t inner = 0;
  T* y = nullptr;
};

// grad_x = grad_y - softmax * sum(grad_y) along classes, with softmax = exp(y).
template <class T>
struct LogSoftmaxBackward {
  const T* grad_y = nullptr;
  const T* y = nullptr;
  int64_t outer = 0;
  int64_t classes = 0;
  int64_t inner = 0;
  T* grad_x = nullptr;
};

// Per-sample NLL on log-probabilities (N, C) with class-index targets and label smoothing s
// (PyTorch's CrossEntropyLoss): loss_i = -(1 - s) * lp[i, t_i] - (s / C) * sum_c lp[i, c].
// A row whose target equals ignore_index gets loss 0. Targets must be in [0, C) otherwise.
template <class T>
struct NllLossForward {
  const T* log_probs = nullptr;
  const int64_t* targets = nullptr;
  int64_t batch = 0;
  int64_t classes = 0;
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;
  T* losses = nullptr;
};

// grad_log_probs[i, c] = -grad_losses[i] * ((1 - s) * [c == t_i] + s / C); 0 on ignored rows.
template <class T>
struct NllLossBackward {
  const T* grad_losses = nullptr;
  const int64_t* targets = nullptr;
  int64_t batch = 0;
  int64_t classes = 0;
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;
  T* grad_log_probs = nullptr;
};

}  // namespace visrep::kernels

namespace visrep::kernels::cpu {

template <class T>
void log_softmax_forward(const LogSoftmaxForward<T>& arguments);
template <class T>
void log_softmax_backward(const LogSoftmaxBackward<T>& arguments);
template <class T>
void nll_loss_forward(const NllLossForward<T>& arguments);
template <class T>
void nll_loss_backward(const NllLossBackward<T>& arguments);

}  // namespace visrep::kernels::cpu
