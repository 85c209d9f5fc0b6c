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

namespace visrep::kernels::cpu {
namespace {

constexpr int64_t kParallelThreshold = 32768;  // elements; below this, threads cost more than they save

// y = d * scale + shift with d = x - x0: the channel's affine transform of the normalised value.
struct ChannelAffine {
  float scale, shift;
};

ChannelAffine channel_affine(float mean, float invstd, const float* gamma, const float* beta, int64_t c) {
  const float scale = invstd * (gamma != nullptr ? gamma[c] : 1.0f);
  return {scale, (beta != nullptr ? beta[c] : 0.0f) - mean * scale};
}

// ReLU that keeps a NaN a NaN, as the reference does.
inline float relu_keeping_nan(float value) { return value > 0.0f || value != value ? value : 0.0f; }

void forward_float(const GroupNormForward<float>& a) {
  const GroupNormShape& s = a.shape;
  const int64_t per_group = s.group_size(), cpg = s.channels_per_group(), spatial = s.spatial;
  const double count = static_cast<double>(per_group);
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
    for (int64_t k = 0; k < cpg; ++k) {
      const ChannelAffine affine = channel_affine(mean_f, invstd_f, a.gamma, a.beta, g * cpg + k);
      const float* xc = xg + k * spatial;
      float* yc = yg + k * spatial;
      if (a.relu) {
#pragma omp simd
        for (int64_t i = 0; i < spatial; ++i) yc[i] = relu_keeping_nan((xc[i] - x0) * affine.scale + affine.shift);
      } else {
#pragma omp simd
        for (int64_t i = 0; i < spatial; ++i) yc[i] = (xc[i] - x0) * affine.scale + affine.shift;
      }
    }
  }
}

void backward_float(const GroupNormBackward<float>& a) {
  const GroupNormShape& s = a.shape;
  const int64_t per_group = s.group_size(), cpg = s.channels_per_group(), spatial = s.spatial;
  const double count = static_cast<double>(per_group);
  const bool parameter_gradients = a.grad_gamma != nullptr || a.grad_beta != nullptr;
  // Per (sample, channel): sum d and sum d * xhat, for the parameter gradients.
  std::vector<double> sum_d(parameter_gradients ? static_cast<size_t>(s.batch * s.channels) : 0);
  std::vector<double> sum_d_xhat(sum_d.size());

#pragma omp parallel for schedule(static) if (s.batch * s.channels * s.spatial >= kParallelThreshold)
  for (int64_t group = 0; group < s.group_count(); ++group) {
    const int64_t n = group / s.groups, g = group % s.groups;
    const float* xg = a.x + group * per_group;
    const float* dyg = a.grad_y + group * per_group;
    const float x0 = per_group > 0 ? xg[0] : 0.0f;
    const float mean = a.mean[group], invstd = a.invstd[group];
    double group_sum_g = 0.0, group_sum_g_xhat = 0.0;  // sums of gamma * d and gamma * d * xhat
    for (int64_t k = 0; k < cpg; ++k) {
      const int64_t c = g * cpg + k;
      const ChannelAffine affine = channel_affine(mean, invstd, a.gamma, a.beta, c);
      const float* xc = xg + k * spatial;
      const float* dyc = dyg + k * spatial;
      float channel_d = 0.0f, channel_d_xhat = 0.0f;
#pragma omp simd reduction(+ : channel_d, channel_d_xhat)
      for (int64_t i = 0; i < spatial; ++i) {
        const float centered = xc[i] - x0;
        const float xhat = (centered - mean) * invstd;
        const float d = a.relu && !(centered * affine.scale + affine.shift > 0.0f) ? 0.0f : dyc[i];
        channel_d += d;
        channel_d_xhat += d * xhat;
      }
      if (parameter_gradients) {
        sum_d[static_cast<size_t>(n * s.channels + c)] = channel_d;
        sum_d_xhat[static_cast<size_t>(n * s.channels + c)] = channel_d_xhat;
      }
      const double gamma_c = a.gamma != nullptr ? a.gamma[c] : 1.0;
      group_sum_g += gamma_c * channel_d;
      group_sum_g_xhat += gamma_c * channel_d_xhat;
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
    for (int64_t k = 0; k < cpg; ++k) {
      const int64_t c = g * cpg + k;
      const ChannelAffine affine = channel_affine(mean, invstd, a.gamma, a.beta, c);
      const float gain = invstd * (a.gamma != nullptr ? a.gamma[c] : 1.0f);
      const float* xc = xg + k * spatial;
      const float* dyc = dyg + k * spatial;
      float* dxc = dxg + k * spatial;
#pragma omp simd
      for (int64_t i = 0; i < spatial; ++i) {
        const float centered = xc[i] - x0;
        const float xhat = (centered - mean) * invstd;
        const float d = a.relu && !(centered * affine.scale + affine.shift > 0.0f) ? 0.0f : dyc[i];
        dxc[i] = gain * d + offset + slope * xhat;
      }
    }
  }

  if (!parameter_gradients) return;
  for (int64_t c = 0; c < s.channels; ++c) {
    double total_d = 0.0, total_d_xhat = 0.0;
    for (int64_t n = 0; n < s.batch; ++n) {
      total_d += sum_d[static_cast<size_t>(n * s.channels + c)];
      total_d_xhat += sum_d_xhat[static_cast<size_t>(n * s.channels + c)];
    }
    if (a.grad_gamma != nullptr) a.grad_gamma[c] = static_cast<float>(total_d_xhat);
    if (a.grad_beta != nullptr) a.grad_beta[c] = static_cast<float>(total_d);
  }
}

}  // namespace

template <class T>
void group_norm_forward(const GroupNormForward<T>& arguments) {
  if constexpr (std::is_same_v<T, float>) {
    if (!reference_kernels_enabled()) return forward_float(arguments);
  }
  reference::group_norm_forward(arguments);
}

template <class T>
void group_norm_backward(const GroupNormBackward<T>& arguments) {
  if constexpr (std::is_same_v<T, float>) {
    if (!reference_kernels_enabled()) return backward_float(arguments);
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
