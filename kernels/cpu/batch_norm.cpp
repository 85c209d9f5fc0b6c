// Batch normalisation on the CPU, the fast kernel of the training step: float32 training
// forward and backward (kernels/cpu/batch_norm.h specifies them and lists the family's files;
// kernels/cpu/reference/batch_norm.cpp is the double reference, which every other entry point,
// float64, and any call under ScopedReferenceKernels still run).
//
// One channel per OpenMP iteration, its N planes of S elements visited in order; a channel of
// a CIFAR ResNet-18 at batch 64 is 64 x 1024 floats (256 KiB) at most, so the second pass
// re-reads it from cache and the memory traffic is what it has to be: forward, x read once
// and y written once; backward, x and dy read once and dx written once.
//
//   forward   pass 1  sum and sum of squares of d = x - x0 in double (x0 the channel's first
//                     element: the values the statistics are taken of stay small, and d is
//                     exact in double), so var = E[d^2] - E[d]^2 keeps its digits;
//             pass 2  y = d * scale + shift in float, scale = gamma * invstd and
//                     shift = beta - E[d] * scale formed in double.
//   backward  pass 1  sum dy and sum dy * xhat in double, xhat = (x - mean) * invstd in float
//                     from the saved float statistics;
//             pass 2  dx = a * dy + b + k * (x - mean), the reference's
//                     gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)) with its
//                     per-channel constants folded (in double, then rounded to float).
// The loops are `omp simd` reductions: the double accumulators are split across vector lanes,
// a fixed order for a given build, independent of the thread count.
#include "kernels/cpu/batch_norm.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "kernels/cpu/reference/reference_kernels.h"

namespace visrep::kernels::cpu {
namespace {

constexpr int64_t kParallelThreshold = 32768;  // elements; below this, threads cost more than they save

void forward_training_float(const BatchNormForwardTraining<float>& a) {
  const BatchNormShape& s = a.shape;
  const int64_t spatial = s.spatial, channels = s.channels;
  const double count = static_cast<double>(s.batch * spatial);
#pragma omp parallel for schedule(static) if (s.batch * channels * spatial >= kParallelThreshold)
  for (int64_t c = 0; c < channels; ++c) {
    const float x0 = count > 0 ? a.x[c * spatial] : 0.0f;
    double sum = 0.0, squares = 0.0;
    for (int64_t n = 0; n < s.batch; ++n) {
      const float* x = a.x + (n * channels + c) * spatial;
#pragma omp simd reduction(+ : sum, squares)
      for (int64_t i = 0; i < spatial; ++i) {
        const double d = static_cast<double>(x[i]) - static_cast<double>(x0);
        sum += d;
        squares += d * d;
      }
    }
    const double mean_d = count > 0 ? sum / count : 0.0;  // relative to x0
    const double variance = count > 0 ? std::max(squares / count - mean_d * mean_d, 0.0) : 0.0;
    const double invstd = 1.0 / std::sqrt(variance + a.eps);
    const double scale = invstd * (a.gamma != nullptr ? static_cast<double>(a.gamma[c]) : 1.0);
    const double shift = (a.beta != nullptr ? static_cast<double>(a.beta[c]) : 0.0) - mean_d * scale;
    const float scale_f = static_cast<float>(scale), shift_f = static_cast<float>(shift);
    for (int64_t n = 0; n < s.batch; ++n) {
      const float* x = a.x + (n * channels + c) * spatial;
      float* y = a.y + (n * channels + c) * spatial;
#pragma omp simd
      for (int64_t i = 0; i < spatial; ++i) y[i] = (x[i] - x0) * scale_f + shift_f;
    }
    const double mean = static_cast<double>(x0) + mean_d;
    a.saved_mean[c] = static_cast<float>(mean);
    a.saved_invstd[c] = static_cast<float>(invstd);
    if (a.running_mean != nullptr) {
      float& running = a.running_mean[c];
      running = static_cast<float>((1.0 - a.momentum) * static_cast<double>(running) + a.momentum * mean);
    }
    if (a.running_var != nullptr) {
      const double unbiased = count > 1 ? variance * count / (count - 1) : variance;
      float& running = a.running_var[c];
      running = static_cast<float>((1.0 - a.momentum) * static_cast<double>(running) + a.momentum * unbiased);
    }
  }
}

void backward_float(const BatchNormBackward<float>& a) {
  const BatchNormShape& s = a.shape;
  const int64_t spatial = s.spatial, channels = s.channels;
  const double count = static_cast<double>(s.batch * spatial);
#pragma omp parallel for schedule(static) if (s.batch * channels * spatial >= kParallelThreshold)
  for (int64_t c = 0; c < channels; ++c) {
    const float mu = a.mean[c], is = a.invstd[c];
    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    for (int64_t n = 0; n < s.batch; ++n) {
      const int64_t base = (n * channels + c) * spatial;
      const float* x = a.x + base;
      const float* dy = a.grad_y + base;
#pragma omp simd reduction(+ : sum_dy, sum_dy_xhat)
      for (int64_t i = 0; i < spatial; ++i) {
        sum_dy += static_cast<double>(dy[i]);
        sum_dy_xhat += static_cast<double>(dy[i] * ((x[i] - mu) * is));
      }
    }
    if (a.grad_gamma != nullptr) a.grad_gamma[c] = static_cast<float>(sum_dy_xhat);
    if (a.grad_beta != nullptr) a.grad_beta[c] = static_cast<float>(sum_dy);
    if (a.grad_x == nullptr) continue;
    const double scale = static_cast<double>(is) * (a.gamma != nullptr ? static_cast<double>(a.gamma[c]) : 1.0);
    const double mean_dy = a.training && count > 0 ? sum_dy / count : 0.0;
    const double mean_dy_xhat = a.training && count > 0 ? sum_dy_xhat / count : 0.0;
    const float gain = static_cast<float>(scale), offset = static_cast<float>(-scale * mean_dy);
    const float slope = static_cast<float>(-scale * mean_dy_xhat * static_cast<double>(is));
    for (int64_t n = 0; n < s.batch; ++n) {
      const int64_t base = (n * channels + c) * spatial;
      const float* x = a.x + base;
      const float* dy = a.grad_y + base;
      float* dx = a.grad_x + base;
#pragma omp simd
      for (int64_t i = 0; i < spatial; ++i) dx[i] = gain * dy[i] + offset + slope * (x[i] - mu);
    }
  }
}

}  // namespace

template <class T>
void batch_norm_forward_training(const BatchNormForwardTraining<T>& arguments) {
  if constexpr (std::is_same_v<T, float>) {
    if (!reference_kernels_enabled()) return forward_training_float(arguments);
  }
  reference::batch_norm_forward_training(arguments);
}

template <class T>
void batch_norm_backward(const BatchNormBackward<T>& arguments) {
  if constexpr (std::is_same_v<T, float>) {
    if (!reference_kernels_enabled()) return backward_float(arguments);
  }
  reference::batch_norm_backward(arguments);
}

// The rest have one implementation, the reference's.
template <class T>
void batch_norm_forward_inference(const BatchNormForwardInference<T>& arguments) {
  reference::batch_norm_forward_inference(arguments);
}
template <class T>
void batch_norm_inference_statistics(const BatchNormInferenceStatistics<T>& arguments) {
  reference::batch_norm_inference_statistics(arguments);
}
template <class T>
void batch_norm_statistics(const BatchNormStatistics<T>& arguments) {
  reference::batch_norm_statistics(arguments);
}
template <class T>
void batch_norm_forward_with_statistics(const BatchNormForwardWithStatistics<T>& arguments) {
  reference::batch_norm_forward_with_statistics(arguments);
}
template <class T>
void batch_norm_backward_sums(const BatchNormBackwardSums<T>& arguments) {
  reference::batch_norm_backward_sums(arguments);
}
template <class T>
void batch_norm_backward_with_sums(const BatchNormBackwardWithSums<T>& arguments) {
  reference::batch_norm_backward_with_sums(arguments);
}

#define VISREP_INSTANTIATE_BATCH_NORM(T)                                                              \
  template void batch_norm_forward_training<T>(const BatchNormForwardTraining<T>&);                   \
  template void batch_norm_forward_inference<T>(const BatchNormForwardInference<T>&);                 \
  template void batch_norm_inference_statistics<T>(const BatchNormInferenceStatistics<T>&);           \
  template void batch_norm_backward<T>(const BatchNormBackward<T>&);                                  \
  template void batch_norm_statistics<T>(const BatchNormStatistics<T>&);                              \
  template void batch_norm_forward_with_statistics<T>(const BatchNormForwardWithStatistics<T>&);      \
  template void batch_norm_backward_sums<T>(const BatchNormBackwardSums<T>&);                         \
  template void batch_norm_backward_with_sums<T>(const BatchNormBackwardWithSums<T>&);

VISREP_INSTANTIATE_BATCH_NORM(float)
VISREP_INSTANTIATE_BATCH_NORM(double)
#undef VISREP_INSTANTIATE_BATCH_NORM

}  // namespace visrep::kernels::cpu
