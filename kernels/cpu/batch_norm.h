// Batch normalisation (Ioffe & Szegedy 2015) over x viewed as (N, C, S), S = H * W:
// statistics per channel over N and S, accumulated in double. float32 and float64. This
// header is the specification; kernels/cpu/batch_norm.cpp computes it with plain loops.
//
// Where to look, batch normalisation:
//   op               engine/ops/batch_norm.{h,cpp}   batch_norm(); the modules nn::BatchNorm2d/1d are in
//                    engine/nn/layers.h
//   CPU reference    kernels/cpu/batch_norm.{h,cpp}  this header and its loops
//   CUDA twin        kernels/cuda/batch_norm.{h,cu}
//   unit tests       tests/unit/test_batch_norm.cpp
//   gradient check   tests/gradcheck/test_batch_norm_gradcheck.cpp
//   parity cases     tests/parity/test_parity_batch_norm.cpp
//   benchmark        none of its own; it is part of the training steps of benchmarks/bench_train.cpp
#pragma once

#include <cstdint>

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

}  // namespace visrep::kernels::cpu
