// Batch normalisation (Ioffe & Szegedy 2015) over x viewed as (N, C, S), S = H * W:
// statistics per channel over N and S, accumulated in double. float32 and float64. This
// header is the specification; kernels/cpu/reference/batch_norm.cpp computes it with plain
// loops in double, and kernels/cpu/batch_norm.cpp is the fast float32 kernel of the training
// step (forward, backward and SyncBatchNorm's pieces; evaluation mode and float64 run the
// reference):
// kernels/cpu/reference/reference_kernels.h says how the two are related.
//
// SyncBatchNorm (sync_batch_norm: the statistics of the batch over every rank of a job) is the
// same arithmetic cut where the ranks exchange numbers: each rank's per-channel mean and sum
// of squared deviations (batch_norm_statistics), merged over the ranks by the op, then the
// normalisation with the merged ones (batch_norm_forward_with_statistics); backward, each
// rank's sums of dy and dy * xhat (batch_norm_backward_sums), summed over the ranks by the op,
// then grad_x from the sums (batch_norm_backward_with_sums). With the statistics and sums of
// one rank they compute exactly what batch_norm_forward_training and batch_norm_backward do,
// in the reference and in the fast float32 kernel alike (which agree with each other to
// rounding).
//
// Where to look, batch normalisation:
//   op               engine/ops/batch_norm.{h,cpp}   batch_norm(), sync_batch_norm(); the modules
//                    nn::BatchNorm2d/1d are in engine/nn/layers.h
//   CPU kernel       kernels/cpu/batch_norm.cpp      float32 training forward and backward
//   CPU reference    kernels/cpu/reference/batch_norm.cpp  this header's loops, in double
//   CUDA twin        kernels/cuda/batch_norm.{h,cu}
//   unit tests       tests/unit/test_batch_norm.cpp (the op; the fast kernel against the reference)
//   gradient check   tests/gradcheck/test_batch_norm_gradcheck.cpp
//   parity cases     tests/parity/test_parity_batch_norm.cpp
//   benchmark        none of its own; it is part of the training steps of benchmarks/bench_train.cpp
#pragma once

#include <cstdint>
#include <type_traits>

namespace visrep::kernels {

struct BatchNormShape {
  int64_t batch = 0;
  int64_t channels = 0;
  int64_t spatial = 1;  // H * W (1 for (N, C) inputs)
};

// Training: mean and biased variance of the batch normalise x; saved_mean and saved_invstd
// (= 1 / sqrt(var + eps)) keep them for the backward pass. When running_mean/running_var
// are given they move toward the batch statistics: r = (1 - momentum) r + momentum b,
// with the unbiased variance, as PyTorch does. gamma and beta may be null (no affine).
template <class T>
struct BatchNormForwardTraining {
  BatchNormShape shape;
  const T* x = nullptr;
  const T* gamma = nullptr;
  const T* beta = nullptr;
  double eps = 1e-5;
  double momentum = 0.1;
  T* running_mean = nullptr;
  T* running_var = nullptr;
  T* y = nullptr;
  T* saved_mean = nullptr;
  T* saved_invstd = nullptr;
};

// Inference: normalise with the running statistics.
template <class T>
struct BatchNormForwardInference {
  BatchNormShape shape;
  const T* x = nullptr;
  const T* gamma = nullptr;
  const T* beta = nullptr;
  const T* running_mean = nullptr;
  const T* running_var = nullptr;
  double eps = 1e-5;
  T* y = nullptr;
};

// The statistics evaluation mode normalises with, in the form batch_norm_backward takes
// them: mean = running_mean and invstd = 1 / sqrt(running_var + eps), per channel.
template <class T>
struct BatchNormInferenceStatistics {
  int64_t channels = 0;
  const T* running_mean = nullptr;
  const T* running_var = nullptr;
  double eps = 1e-5;
  T* mean = nullptr;
  T* invstd = nullptr;
};

// Gradients given the statistics used forward (saved batch statistics when training, the
// running ones otherwise, then the statistics are constants). Any output may be null.
template <class T>
struct BatchNormBackward {
  BatchNormShape shape;
  bool training = true;
  const T* grad_y = nullptr;
  const T* x = nullptr;
  const T* gamma = nullptr;
  const T* mean = nullptr;
  const T* invstd = nullptr;
  T* grad_x = nullptr;
  T* grad_gamma = nullptr;
  T* grad_beta = nullptr;
};

// ---- SyncBatchNorm's pieces (see the top of this file) --------------------------------------------

// Per channel, over this rank's N * S elements: mean[c] and squares[c] = sum (x - mean[c])^2
// (exact two passes, in double). Both 0 for an empty batch (N = 0).
template <class T>
struct BatchNormStatistics {
  BatchNormShape shape;
  const T* x = nullptr;
  double* mean = nullptr;
  double* squares = nullptr;
};

// Training forward with the batch's statistics given, those of every rank merged: `count`
// elements per channel, their mean and sum of squared deviations. Normalises this rank's x
// with the biased variance squares / count, saves mean and invstd for the backward pass and
// moves the running statistics with the unbiased variance squares / (count - 1), as
// batch_norm_forward_training does with its own.
template <class T>
struct BatchNormForwardWithStatistics {
  BatchNormShape shape;
  const T* x = nullptr;
  const T* gamma = nullptr;
  const T* beta = nullptr;
  const double* mean = nullptr;
  const double* squares = nullptr;
  double count = 0;
  double eps = 1e-5;
  double momentum = 0.1;
  T* running_mean = nullptr;
  T* running_var = nullptr;
  T* y = nullptr;
  T* saved_mean = nullptr;
  T* saved_invstd = nullptr;
};

// Per channel, over this rank's elements: sum_dy[c] = sum dy and sum_dy_xhat[c] = sum dy * xhat,
// xhat = (x - mean) * invstd (in double; 0 for an empty batch).
template <class T>
struct BatchNormBackwardSums {
  BatchNormShape shape;
  const T* grad_y = nullptr;
  const T* x = nullptr;
  const T* mean = nullptr;
  const T* invstd = nullptr;
  double* sum_dy = nullptr;
  double* sum_dy_xhat = nullptr;
};

// grad_x = gamma * invstd * (dy - sum_dy / count - xhat * sum_dy_xhat / count) with the sums and
// the count of every rank: the training-mode grad_x of batch_norm_backward, whose sums are
// this rank's alone.
template <class T>
struct BatchNormBackwardWithSums {
  BatchNormShape shape;
  const T* grad_y = nullptr;
  const T* x = nullptr;
  const T* gamma = nullptr;
  const T* mean = nullptr;
  const T* invstd = nullptr;
  const double* sum_dy = nullptr;
  const double* sum_dy_xhat = nullptr;
  double count = 0;
  T* grad_x = nullptr;
};

}  // namespace visrep::kernels

namespace visrep::kernels::cpu {

template <class T>
void batch_norm_forward_training(const BatchNormForwardTraining<T>& arguments);
template <class T>
void batch_norm_forward_inference(const BatchNormForwardInference<T>& arguments);
template <class T>
void batch_norm_inference_statistics(const BatchNormInferenceStatistics<T>& arguments);
template <class T>
void batch_norm_backward(const BatchNormBackward<T>& arguments);
template <class T>
void batch_norm_statistics(const BatchNormStatistics<T>& arguments);
template <class T>
void batch_norm_forward_with_statistics(const BatchNormForwardWithStatistics<T>& arguments);
template <class T>
void batch_norm_backward_sums(const BatchNormBackwardSums<T>& arguments);
template <class T>
void batch_norm_backward_with_sums(const BatchNormBackwardWithSums<T>& arguments);

// The running statistics' update of a training forward pass, which the fast kernel and the
// reference share: r = (1 - momentum) r + momentum b per channel, b the batch's mean and its
// unbiased variance M2 / (count - 1) (the biased `variance` for a count of 1 or less), as
// PyTorch does. `a` is BatchNormForwardTraining<T> or BatchNormForwardWithStatistics<T>.
template <class Arguments>
void move_running_statistics(const Arguments& a, int64_t c, double mean, double squares, double count, double variance) {
  using T = std::remove_pointer_t<decltype(a.y)>;  // the Arguments' T
  if (a.running_mean != nullptr) {
    T& running = a.running_mean[c];
    running = static_cast<T>((1.0 - a.momentum) * static_cast<double>(running) + a.momentum * mean);
  }
  if (a.running_var != nullptr) {
    const double unbiased = count > 1 ? squares / (count - 1) : variance;
    T& running = a.running_var[c];
    running = static_cast<T>((1.0 - a.momentum) * static_cast<double>(running) + a.momentum * unbiased);
  }
}

}  // namespace visrep::kernels::cpu

// The references: every entry point and dtype, in double.
namespace visrep::kernels::cpu::reference {

template <class T>
void batch_norm_forward_training(const BatchNormForwardTraining<T>& arguments);
template <class T>
void batch_norm_forward_inference(const BatchNormForwardInference<T>& arguments);
template <class T>
void batch_norm_inference_statistics(const BatchNormInferenceStatistics<T>& arguments);
template <class T>
void batch_norm_backward(const BatchNormBackward<T>& arguments);
template <class T>
void batch_norm_statistics(const BatchNormStatistics<T>& arguments);
template <class T>
void batch_norm_forward_with_statistics(const BatchNormForwardWithStatistics<T>& arguments);
template <class T>
void batch_norm_backward_sums(const BatchNormBackwardSums<T>& arguments);
template <class T>
void batch_norm_backward_with_sums(const BatchNormBackwardWithSums<T>& arguments);

}  // namespace visrep::kernels::cpu::reference
