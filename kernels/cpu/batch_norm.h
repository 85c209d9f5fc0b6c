// Batch normalisation (Ioffe & Szegedy 2015) over x viewed as (N, C, S), S = H * W:
// statistics per channel over N and S. Statistics accumulate in double.
#pragma once

#include <cstdint>

namespace visrep::kernels {

struct BatchNormShape {
  int64_t batch = 0;
  int64_t channels = 0;
  int64_t spatial = 1;  // H * W (1 for (N, C) inputs)
};

}  // namespace visrep::kernels

namespace visrep::kernels::cpu {

// Training: mean and biased variance of the batch normalise x; saved_mean and saved_invstd
// (= 1 / sqrt(var + eps)) keep them for the backward pass. When running_mean/running_var
// are given they move toward the batch statistics: r = (1 - momentum) r + momentum b,
// with the unbiased variance, as PyTorch does. gamma and beta may be null (no affine).
template <class T>
void batch_norm_forward_training(const BatchNormShape& shape, const T* x, const T* gamma, const T* beta, double eps,
                                 double momentum, T* running_mean, T* running_var, T* y, T* saved_mean,
                                 T* saved_invstd);

// Inference: normalise with the running statistics.
template <class T>
void batch_norm_forward_inference(const BatchNormShape& shape, const T* x, const T* gamma, const T* beta,
                                  const T* running_mean, const T* running_var, double eps, T* y);

// The statistics evaluation mode normalises with, in the form batch_norm_backward takes
// them: mean = running_mean and invstd = 1 / sqrt(running_var + eps), per channel.
template <class T>
void batch_norm_inference_statistics(int64_t channels, const T* running_mean, const T* running_var, double eps,
                                     T* mean, T* invstd);

// Gradients given the statistics used forward (saved batch statistics when training, the
// running ones otherwise, then the statistics are constants). Any output may be null.
template <class T>
void batch_norm_backward(const BatchNormShape& shape, bool training, const T* grad_y, const T* x, const T* gamma,
                         const T* mean, const T* invstd, T* grad_x, T* grad_gamma, T* grad_beta);

}  // namespace visrep::kernels::cpu
