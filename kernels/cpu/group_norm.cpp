// Group normalisation on the CPU, the fast kernel training runs (kernels/cpu/group_norm.h
// specifies it and lists the family's files; kernels/cpu/reference/group_norm.cpp is the
// double-accumulating reference, which float64 and bfloat16 still run).
//
// float32, one (sample, group) per OpenMP iteration: a group is one contiguous run of
// M = (C / G) * S elements (a few hundred in bit-tiny, 25k in BiT-R50 at 224 px: L1 or L2
// sized), so each pass below re-reads it from cache and the memory traffic is what it has
// to be: forward, x read once and y written once; backward, x and dy read once, dx written
// once. The ReLU that follows every GroupNorm in BiT is fused into both directions.
//
//   forward   pass 1  sum and sum of squares of d = x - x0 in double (x0 the group's first
//                     element: the values the statistics are taken of stay small, and d is
//                     exact in double), so var = E[d^2] - E[d]^2 keeps its digits;
//             pass 2  y = relu(d * scale_c + shift_c) per channel, in float.
//   backward  pass 1  per channel: sum d and sum d * xhat of the masked gradient, in float
//                     over one channel (S elements), then in double over the channels;
//             pass 2  dx = a_c * d + b + c * xhat, the reference's formula with its
//                     per-group constants folded.
// The statistics are rounded to float before either pass uses them (the saved mean and
// invstd are what the backward pass reads), and scale_c and shift_c are formed from those
// floats by one function, so the backward pass recomputes each pre-activation bit for bit as
// the forward pass computed it and its ReLU mask agrees with the forward's output.
// Parameter gradients are summed per (sample, channel), then over the samples in order: the
// result does not depend on the thread count.
#include "kernels/cpu/group_norm.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "kernels/cpu/reference/reference_kernels.h"
#include "kernels/cpu/scratch.h"

namespace visrep::kernels::cpu {
namespace {

constexpr int64_t kParallelThreshold = 32768;  // elements; below this, threads cost more than they save
// Maps smaller than this (bit-tiny's 4x4, 2x2 and 1x1) are too short for a loop per channel:
// a group is then one flat loop with each element's gamma and beta read from copies of them
// spread over the map (C x S floats, shared by every sample).
constexpr int64_t kShortMap = 16;

// Each element's parameters when a group is one flat loop: gamma and beta of its channel,
// [c * S + s], for the kShortMap path (null otherwise), in the calling thread's scratch.
struct SpreadParameters {
  const float* gamma = nullptr;
  const float* beta = nullptr;

  SpreadParameters(const GroupNormShape& s, const float* gamma_in, const float* beta_in) {
    if (s.spatial >= kShortMap) return;
    const int64_t count = s.channels * s.spatial;
    float* spread = thread_scratch<float>(ScratchSlot::kGroupNormSpread, 2 * count);
    for (int64_t c = 0; c < s.channels; ++c)
      for (int64_t i = 0; i < s.spatial; ++i) {
        spread[c * s.spatial + i] = gamma_in != nullptr ? gamma_in[c] : 1.0f;
        spread[count + c * s.spatial + i] = beta_in != nullptr ? beta_in[c] : 0.0f;
      }
    gamma = spread;
    beta = spread + count;
  }
};

// The pre-activation gamma * xhat + beta of an element at d = x - x0 from the group's float
// statistics, in the one form both passes use: d * scale + (beta - mean * scale), scale =
// invstd * gamma.
inline float pre_activation(float centered, float mean, float invstd, float gamma, float beta) {
  const float scale = invstd * gamma;
  return centered * scale + (beta - mean * scale);
}

// ReLU that keeps a NaN a NaN, as the reference does.
inline float relu_keeping_nan(float value) { return value > 0.0f || value != value ? value : 0.0f; }

// y over `count` elements of one channel (gamma, beta: one value, step 0) or of a whole group
// (one value per element, step 1).
template <int kStep>
void normalize_run(const float* x, float x0, float mean, float invstd, const float* gamma, const float* beta,
                   bool relu, int64_t count, float* y) {
  if (relu) {
#pragma omp simd
    for (int64_t i = 0; i < count; ++i)
      y[i] = relu_keeping_nan(pre_activation(x[i] - x0, mean, invstd, gamma[i * kStep], beta[i * kStep]));
  } else {
#pragma omp simd
    for (int64_t i = 0; i < count; ++i)
      y[i] = pre_activation(x[i] - x0, mean, invstd, gamma[i * kStep], beta[i * kStep]);
  }
}

void group_norm_forward_float(const GroupNormForward<float>& a) {
  const GroupNormShape& s = a.shape;
  const int64_t per_group = s.group_size(), cpg = s.channels_per_group(), spatial = s.spatial;
  const double count = static_cast<double>(per_group);
  const SpreadParameters spread(s, a.gamma, a.beta);
  const float one = 1.0f, zero = 0.0f;
#pragma omp parallel for schedule(static) if (s.batch * s.channels * s.spatial >= kParallelThreshold)
  for (int64_t group = 0; group < s.group_count(); ++group) {
    const int64_t g = group % s.groups;
    const float* xg = a.x + group * per_group;
    float* yg = a.y + group * per_group;
    const float x0 = per_group > 0 ? xg[0] : 0.0f;
    double sum = 0.0, squares = 0.0;
#pragma omp simd reduction(+ : sum, squares)
    for (int64_t i = 0; i < per_group; ++i) {
      const double d = static_cast<double>(xg[i]) - static_cast<double>(x0);
      sum += d;
      squares += d * d;
    }
    const double mean = per_group > 0 ? sum / count : 0.0;  // relative to x0
    const double variance = per_group > 0 ? std::max(squares / count - mean * mean, 0.0) : 0.0;
    const float mean_f = static_cast<float>(mean);
    const float invstd_f = static_cast<float>(1.0 / std::sqrt(variance + a.eps));
    a.mean[group] = mean_f;
    a.invstd[group] = invstd_f;
    if (spatial < kShortMap) {
      normalize_run<1>(xg, x0, mean_f, invstd_f, spread.gamma + g * per_group,
                       spread.beta + g * per_group, a.relu, per_group, yg);
      continue;
    }
    for (int64_t k = 0; k < cpg; ++k) {
      const int64_t c = g * cpg + k;
      normalize_run<0>(xg + k * spatial, x0, mean_f, invstd_f, a.gamma != nullptr ? a.gamma + c : &one,
                       a.beta != nullptr ? a.beta + c : &zero, a.relu, spatial, yg + k * spatial);
    }
  }
}

// The masked gradient d of the backward pass: dy, or 0 where the fused ReLU was off.
inline float masked_gradient(bool relu, float dy, float centered, float mean, float invstd, float gamma, float beta) {
  return !relu || pre_activation(centered, mean, invstd, gamma, beta) > 0.0f ? dy : 0.0f;
}

// Over `count` elements of one channel (step 0) or of a whole group (step 1): the sums of d
// and d * xhat, and of gamma * d and gamma * d * xhat. With `spread_d` (step 1) each d and
// d * xhat is also kept there (2 x count floats), for the per-channel sums.
struct RunSums {
  float d = 0.0f, d_xhat = 0.0f, g = 0.0f, g_xhat = 0.0f;
};

template <int kStep>
RunSums sum_run(const float* x, const float* dy, float x0, float mean, float invstd, const float* gamma,
                const float* beta, bool relu, int64_t count, float* spread_d) {
  float sum_d = 0.0f, sum_d_xhat = 0.0f, sum_g = 0.0f, sum_g_xhat = 0.0f;
#pragma omp simd reduction(+ : sum_d, sum_d_xhat, sum_g, sum_g_xhat)
  for (int64_t i = 0; i < count; ++i) {
    const float centered = x[i] - x0;
    const float d = masked_gradient(relu, dy[i], centered, mean, invstd, gamma[i * kStep], beta[i * kStep]);
    const float d_xhat = d * ((centered - mean) * invstd);
    if constexpr (kStep == 1) {
      spread_d[i] = d;
      spread_d[count + i] = d_xhat;
    }
    sum_d += d;
    sum_d_xhat += d_xhat;
    sum_g += gamma[i * kStep] * d;
    sum_g_xhat += gamma[i * kStep] * d_xhat;
  }
  return {sum_d, sum_d_xhat, sum_g, sum_g_xhat};
}

// dx = invstd * gamma * d + offset + slope * xhat over one channel (step 0) or a group (step 1).
template <int kStep>
void input_gradient_run(const float* x, const float* dy, float x0, float mean, float invstd, const float* gamma,
                        const float* beta, bool relu, float offset, float slope, int64_t count, float* dx) {
#pragma omp simd
  for (int64_t i = 0; i < count; ++i) {
    const float centered = x[i] - x0;
    const float d = masked_gradient(relu, dy[i], centered, mean, invstd, gamma[i * kStep], beta[i * kStep]);
    dx[i] = (invstd * gamma[i * kStep]) * d + offset + slope * ((centered - mean) * invstd);
  }
}

void group_norm_backward_float(const GroupNormBackward<float>& a) {
  const GroupNormShape& s = a.shape;
  const int64_t per_group = s.group_size(), cpg = s.channels_per_group(), spatial = s.spatial;
  const double count = static_cast<double>(per_group);
  const bool relu = a.relu;
  const bool parameter_gradients = a.grad_gamma != nullptr || a.grad_beta != nullptr;
  const bool flat = spatial < kShortMap;
  const SpreadParameters spread(s, a.gamma, a.beta);
  const float one = 1.0f, zero = 0.0f;
  // Per (sample, channel): sum d and sum d * xhat, for the parameter gradients.
  const int64_t sample_channels = parameter_gradients ? s.batch * s.channels : 0;
  double* sum_d = thread_scratch<double>(ScratchSlot::kGroupNormSums, 2 * sample_channels);
  double* sum_d_xhat = sum_d + sample_channels;

#pragma omp parallel if (s.batch * s.channels * s.spatial >= kParallelThreshold)
  {
    // d, then d * xhat, of this thread's current group.
    float* spread_d = flat ? thread_scratch<float>(ScratchSlot::kGroupNormGroup, 2 * per_group) : nullptr;
#pragma omp for schedule(static)
    for (int64_t group = 0; group < s.group_count(); ++group) {
      const int64_t n = group / s.groups, g = group % s.groups;
      const float* xg = a.x + group * per_group;
      const float* dyg = a.grad_y + group * per_group;
      const float x0 = per_group > 0 ? xg[0] : 0.0f;
      const float mean = a.mean[group], invstd = a.invstd[group];
      const float* spread_gamma = flat ? spread.gamma + g * per_group : nullptr;
      const float* spread_beta = flat ? spread.beta + g * per_group : nullptr;
      double group_sum_g = 0.0, group_sum_g_xhat = 0.0;  // sums of gamma * d and gamma * d * xhat
      if (flat) {
        const RunSums sums = sum_run<1>(xg, dyg, x0, mean, invstd, spread_gamma, spread_beta, relu, per_group,
                                        spread_d);
        group_sum_g = sums.g;
        group_sum_g_xhat = sums.g_xhat;
        for (int64_t k = 0; parameter_gradients && k < cpg; ++k) {
          float channel_d = 0.0f, channel_d_xhat = 0.0f;
          for (int64_t i = k * spatial; i < (k + 1) * spatial; ++i) {
            channel_d += spread_d[i];
            channel_d_xhat += spread_d[per_group + i];
          }
          sum_d[n * s.channels + g * cpg + k] = channel_d;
          sum_d_xhat[n * s.channels + g * cpg + k] = channel_d_xhat;
        }
      } else {
        for (int64_t k = 0; k < cpg; ++k) {
          const int64_t c = g * cpg + k;
          const RunSums sums = sum_run<0>(xg + k * spatial, dyg + k * spatial, x0, mean, invstd,
                                          a.gamma != nullptr ? a.gamma + c : &one,
                                          a.beta != nullptr ? a.beta + c : &zero, relu, spatial, nullptr);
          if (parameter_gradients) {
            sum_d[n * s.channels + c] = sums.d;
            sum_d_xhat[n * s.channels + c] = sums.d_xhat;
          }
          group_sum_g += sums.g;
          group_sum_g_xhat += sums.g_xhat;
        }
      }
      if (a.grad_x == nullptr) continue;
      float* dxg = a.grad_x + group * per_group;
      if (per_group == 1) {  // xhat = 0 and g is its own mean: dx = 0 exactly, as the reference has it
        dxg[0] = 0.0f;
        continue;
      }
      // dx = invstd * (gamma_c * d - mean_group(g) - xhat * mean_group(g * xhat)).
      const float offset = static_cast<float>(-invstd * (group_sum_g / count));
      const float slope = static_cast<float>(-invstd * (group_sum_g_xhat / count));
      if (flat) {
        input_gradient_run<1>(xg, dyg, x0, mean, invstd, spread_gamma, spread_beta, relu, offset, slope, per_group,
                              dxg);
        continue;
      }
      for (int64_t k = 0; k < cpg; ++k) {
        const int64_t c = g * cpg + k;
        input_gradient_run<0>(xg + k * spatial, dyg + k * spatial, x0, mean, invstd,
                              a.gamma != nullptr ? a.gamma + c : &one, a.beta != nullptr ? a.beta + c : &zero, relu,
                              offset, slope, spatial, dxg + k * spatial);
      }
    }
  }

  if (!parameter_gradients) return;
  // Over the samples in order for every channel (rows of sum_d read in turn).
  std::vector<double> total_d(static_cast<size_t>(s.channels), 0.0), total_d_xhat(total_d.size(), 0.0);
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t c = 0; c < s.channels; ++c) {
      total_d[static_cast<size_t>(c)] += sum_d[n * s.channels + c];
      total_d_xhat[static_cast<size_t>(c)] += sum_d_xhat[n * s.channels + c];
    }
  for (int64_t c = 0; c < s.channels; ++c) {
    if (a.grad_gamma != nullptr) a.grad_gamma[c] = static_cast<float>(total_d_xhat[static_cast<size_t>(c)]);
    if (a.grad_beta != nullptr) a.grad_beta[c] = static_cast<float>(total_d[static_cast<size_t>(c)]);
  }
}

}  // namespace

template <class T>
void group_norm_forward(const GroupNormForward<T>& arguments) {
  if constexpr (std::is_same_v<T, float>) {
    if (!reference_kernels_enabled()) return group_norm_forward_float(arguments);
  }
  reference::group_norm_forward(arguments);
}

template <class T>
void group_norm_backward(const GroupNormBackward<T>& arguments) {
  if constexpr (std::is_same_v<T, float>) {
    if (!reference_kernels_enabled()) return group_norm_backward_float(arguments);
  }
  reference::group_norm_backward(arguments);
}

template void group_norm_forward<float>(const GroupNormForward<float>&);
template void group_norm_forward<double>(const GroupNormForward<double>&);
template void group_norm_forward<bfloat16>(const GroupNormForward<bfloat16>&);
template void group_norm_backward<float>(const GroupNormBackward<float>&);
template void group_norm_backward<double>(const GroupNormBackward<double>&);
template void group_norm_backward<bfloat16>(const GroupNormBackward<bfloat16>&);

}  // namespace visrep::kernels::cpu
