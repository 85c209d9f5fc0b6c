// Batch normalisation on the CPU, the fast kernel of the training step: float32 training
// forward and backward, and SyncBatchNorm's pieces of them (kernels/cpu/batch_norm.h specifies
// them and lists the family's files; kernels/cpu/reference/batch_norm.cpp is the double
// reference, which evaluation mode's entry points, float64, and any call under
// ScopedReferenceKernels still run).
//
// One channel per OpenMP iteration, its N planes of S elements visited in order; a channel of
// a CIFAR ResNet-18 at batch 64 is 64 x 1024 floats (256 KiB) at most, so the second pass
// re-reads it from cache and the memory traffic is what it has to be: forward, x read once
// and y written once; backward, x and dy read once and dx written once.
//
//   forward   pass 1  statistics: sum and sum of squares of d = x - x0 in double (x0 the
//                     channel's first element: the values the statistics are taken of stay
//                     small, and d is exact in double), giving the mean and
//                     M2 = sum (x - mean)^2 = sum d^2 - (sum d)^2 / count;
//             pass 2  normalise: y = (x - m) * scale + shift in float, m = the mean rounded to
//                     float, scale = gamma * invstd and shift = beta - (mean - m) * scale
//                     formed in double.
//   backward  pass 1  sums: sum dy and sum dy * xhat in double, xhat = (x - mean) * invstd in
//                     float from the saved float statistics;
//             pass 2  dx = a * dy + b + k * (x - mean), the reference's
//                     gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)) with its
//                     per-channel constants folded (in double, then rounded to float).
// SyncBatchNorm's pieces (batch_norm.h) are these passes run apart, the statistics and sums
// merged over the ranks in between, so one rank and P ranks on the same global batch do the
// same float arithmetic per element and differ only in how the double sums were cut.
// The loops are `omp simd` reductions: the double accumulators are split across vector lanes,
// a fixed order for a given build, independent of the thread count. Each pass visits the
// (n, c) planes of its channel c, n in order, with the plane's size in a local, so that no
// store in the loop can alias it and the inner loops vectorise.
#include "kernels/cpu/batch_norm.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "kernels/cpu/reference/reference_kernels.h"

namespace visrep::kernels::cpu {
namespace {

constexpr int64_t kParallelThreshold = 32768;  // elements; below this, threads cost more than they save

bool parallel(const BatchNormShape& s) { return s.batch * s.channels * s.spatial >= kParallelThreshold; }

struct ChannelStatistics {
  double mean = 0.0;
  double squares = 0.0;  // M2 = sum of (x - mean)^2
};

// Forward pass 1 for channel c (0 and 0 for an empty batch).
ChannelStatistics channel_statistics(const BatchNormShape& s, const float* x, int64_t c) {
  const double count = static_cast<double>(s.batch * s.spatial);
  if (count == 0) return {};
  const double x0 = static_cast<double>(x[c * s.spatial]);
  const int64_t spatial = s.spatial;
  double sum = 0.0, squares = 0.0;
  for (int64_t n = 0; n < s.batch; ++n) {
    const float* plane = x + (n * s.channels + c) * spatial;
#pragma omp simd reduction(+ : sum, squares)
    for (int64_t i = 0; i < spatial; ++i) {
      const double d = static_cast<double>(plane[i]) - x0;
      sum += d;
      squares += d * d;
    }
  }
  return {x0 + sum / count, std::max(squares - sum * (sum / count), 0.0)};
}

// Forward pass 2 for channel c with the statistics of `count` elements (this batch's, or the
// global batch's for SyncBatchNorm): y, the saved mean and invstd, the running statistics
// (move_running_statistics, batch_norm.h), as the reference's normalise_channel. `a` is
// BatchNormForwardTraining<float> or BatchNormForwardWithStatistics<float>.
template <class Arguments>
void normalise_channel(const Arguments& a, int64_t c, ChannelStatistics statistics, double count) {
  const double variance = count > 0 ? statistics.squares / count : 0.0;
  const double invstd = 1.0 / std::sqrt(variance + a.eps);
  const float m = static_cast<float>(statistics.mean);
  const double scale = invstd * (a.gamma != nullptr ? static_cast<double>(a.gamma[c]) : 1.0);
  const double shift = (a.beta != nullptr ? static_cast<double>(a.beta[c]) : 0.0) -
                       (statistics.mean - static_cast<double>(m)) * scale;
  const float scale_f = static_cast<float>(scale), shift_f = static_cast<float>(shift);
  const int64_t spatial = a.shape.spatial;
  for (int64_t n = 0; n < a.shape.batch; ++n) {
    const float* x = a.x + (n * a.shape.channels + c) * spatial;
    float* y = a.y + (n * a.shape.channels + c) * spatial;
#pragma omp simd
    for (int64_t i = 0; i < spatial; ++i) y[i] = (x[i] - m) * scale_f + shift_f;
  }
  a.saved_mean[c] = m;
  a.saved_invstd[c] = static_cast<float>(invstd);
  move_running_statistics(a, c, statistics.mean, statistics.squares, count, variance);
}

struct ChannelSums {
  double dy = 0.0;       // sum dy
  double dy_xhat = 0.0;  // sum dy * xhat
};

// Backward pass 1 for channel c.
ChannelSums channel_sums(const BatchNormShape& s, const float* grad_y, const float* x, float mu, float is, int64_t c) {
  const int64_t spatial = s.spatial;
  double sum_dy = 0.0, sum_dy_xhat = 0.0;
  for (int64_t n = 0; n < s.batch; ++n) {
    const int64_t base = (n * s.channels + c) * spatial;
    const float* xs = x + base;
    const float* dy = grad_y + base;
#pragma omp simd reduction(+ : sum_dy, sum_dy_xhat)
    for (int64_t i = 0; i < spatial; ++i) {
      sum_dy += static_cast<double>(dy[i]);
      sum_dy_xhat += static_cast<double>(dy[i] * ((xs[i] - mu) * is));
    }
  }
  return {sum_dy, sum_dy_xhat};
}

// Backward pass 2 for channel c: grad_x from the sums over `count` elements (0: evaluation
// mode, where the statistics are constants and only gamma * invstd * dy remains).
void channel_grad_x(const BatchNormShape& s, const float* grad_y, const float* x, const float* gamma, float mu, float is,
                    ChannelSums sums, double count, int64_t c, float* grad_x) {
  const double scale = static_cast<double>(is) * (gamma != nullptr ? static_cast<double>(gamma[c]) : 1.0);
  const double mean_dy = count > 0 ? sums.dy / count : 0.0;
  const double mean_dy_xhat = count > 0 ? sums.dy_xhat / count : 0.0;
  const float gain = static_cast<float>(scale), offset = static_cast<float>(-scale * mean_dy);
  const float slope = static_cast<float>(-scale * mean_dy_xhat * static_cast<double>(is));
  const int64_t spatial = s.spatial;
  for (int64_t n = 0; n < s.batch; ++n) {
    const int64_t base = (n * s.channels + c) * spatial;
    const float* xs = x + base;
    const float* dy = grad_y + base;
    float* dx = grad_x + base;
#pragma omp simd
    for (int64_t i = 0; i < spatial; ++i) dx[i] = gain * dy[i] + offset + slope * (xs[i] - mu);
  }
}

void forward_training_float(const BatchNormForwardTraining<float>& a) {
  const double count = static_cast<double>(a.shape.batch * a.shape.spatial);
#pragma omp parallel for schedule(static) if (parallel(a.shape))
  for (int64_t c = 0; c < a.shape.channels; ++c) normalise_channel(a, c, channel_statistics(a.shape, a.x, c), count);
}

void backward_float(const BatchNormBackward<float>& a) {
  const BatchNormShape& s = a.shape;
  const double count = a.training ? static_cast<double>(s.batch * s.spatial) : 0.0;
#pragma omp parallel for schedule(static) if (parallel(s))
  for (int64_t c = 0; c < s.channels; ++c) {
    const ChannelSums sums = channel_sums(s, a.grad_y, a.x, a.mean[c], a.invstd[c], c);
    if (a.grad_gamma != nullptr) a.grad_gamma[c] = static_cast<float>(sums.dy_xhat);
    if (a.grad_beta != nullptr) a.grad_beta[c] = static_cast<float>(sums.dy);
    if (a.grad_x != nullptr) channel_grad_x(s, a.grad_y, a.x, a.gamma, a.mean[c], a.invstd[c], sums, count, c, a.grad_x);
  }
}

void statistics_float(const BatchNormStatistics<float>& a) {
#pragma omp parallel for schedule(static) if (parallel(a.shape))
  for (int64_t c = 0; c < a.shape.channels; ++c) {
    const ChannelStatistics statistics = channel_statistics(a.shape, a.x, c);
    a.mean[c] = statistics.mean;
    a.squares[c] = statistics.squares;
  }
}

void forward_with_statistics_float(const BatchNormForwardWithStatistics<float>& a) {
#pragma omp parallel for schedule(static) if (parallel(a.shape))
  for (int64_t c = 0; c < a.shape.channels; ++c) normalise_channel(a, c, {a.mean[c], a.squares[c]}, a.count);
}

void backward_sums_float(const BatchNormBackwardSums<float>& a) {
#pragma omp parallel for schedule(static) if (parallel(a.shape))
  for (int64_t c = 0; c < a.shape.channels; ++c) {
    const ChannelSums sums = channel_sums(a.shape, a.grad_y, a.x, a.mean[c], a.invstd[c], c);
    a.sum_dy[c] = sums.dy;
    a.sum_dy_xhat[c] = sums.dy_xhat;
  }
}

void backward_with_sums_float(const BatchNormBackwardWithSums<float>& a) {
#pragma omp parallel for schedule(static) if (parallel(a.shape))
  for (int64_t c = 0; c < a.shape.channels; ++c) {
    channel_grad_x(a.shape, a.grad_y, a.x, a.gamma, a.mean[c], a.invstd[c], {a.sum_dy[c], a.sum_dy_xhat[c]}, a.count,
                   c, a.grad_x);
  }
}

}  // namespace

// float32 takes the fast kernel unless the reference kernels are asked for; float64 and
// evaluation mode's entry points always run the reference.
#define VISREP_FAST_OR_REFERENCE(entry, Arguments, fast)                      \
  template <class T>                                                          \
  void entry(const Arguments<T>& arguments) {                                 \
    if constexpr (std::is_same_v<T, float>) {                                 \
      if (!reference_kernels_enabled()) return fast(arguments);               \
    }                                                                         \
    reference::entry(arguments);                                              \
  }

VISREP_FAST_OR_REFERENCE(batch_norm_forward_training, BatchNormForwardTraining, forward_training_float)
VISREP_FAST_OR_REFERENCE(batch_norm_backward, BatchNormBackward, backward_float)
VISREP_FAST_OR_REFERENCE(batch_norm_statistics, BatchNormStatistics, statistics_float)
VISREP_FAST_OR_REFERENCE(batch_norm_forward_with_statistics, BatchNormForwardWithStatistics,
                         forward_with_statistics_float)
VISREP_FAST_OR_REFERENCE(batch_norm_backward_sums, BatchNormBackwardSums, backward_sums_float)
VISREP_FAST_OR_REFERENCE(batch_norm_backward_with_sums, BatchNormBackwardWithSums, backward_with_sums_float)
#undef VISREP_FAST_OR_REFERENCE

template <class T>
void batch_norm_forward_inference(const BatchNormForwardInference<T>& arguments) {
  reference::batch_norm_forward_inference(arguments);
}
template <class T>
void batch_norm_inference_statistics(const BatchNormInferenceStatistics<T>& arguments) {
  reference::batch_norm_inference_statistics(arguments);
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
