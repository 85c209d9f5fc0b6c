// Group normalisation on the CPU, the reference: the specification the fast CPU kernel
// (kernels/cpu/group_norm.cpp) and the CUDA twin are held to (kernels/cpu/group_norm.h
// specifies it and lists the family's files).
// Each (sample, group) is one contiguous run of M = (C / G) * S elements; statistics are
// an exact two-pass mean and biased variance in double, so inputs offset far from zero
// (1e4 + N(0, 1)) lose nothing. Groups run in parallel (OpenMP); the per-channel parameter
// gradients are summed per (sample, channel) first and then over the samples in a fixed
// order, so results do not depend on the thread count.
#include "kernels/cpu/group_norm.h"

#include <cmath>
#include <vector>

#include "kernels/cpu/double_accumulation.h"

namespace visrep::kernels::cpu::reference {
namespace {

template <class T>
double parameter_or(const T* values, int64_t index, double otherwise) {
  return values != nullptr ? to_double(values[index]) : otherwise;
}

constexpr int64_t kParallelThreshold = 32768;  // elements; below this, threads cost more than they save

}  // namespace

template <class T>
void group_norm_forward(const GroupNormForward<T>& arguments) {
  using Statistic = AccumulateType<T>;
  const GroupNormShape& s = arguments.shape;
  const T* x = arguments.x;
  const T* gamma = arguments.gamma;
  const T* beta = arguments.beta;
  const double eps = arguments.eps;
  const bool relu = arguments.relu;
  T* y = arguments.y;
  Statistic* mean_out = arguments.mean;
  Statistic* invstd_out = arguments.invstd;
  const int64_t per_group = s.group_size(), cpg = s.channels_per_group();
  const double count = static_cast<double>(per_group);
#pragma omp parallel for schedule(static) if (s.batch * s.channels * s.spatial >= kParallelThreshold)
  for (int64_t group = 0; group < s.group_count(); ++group) {
    const int64_t g = group % s.groups;
    const T* xg = x + group * per_group;
    T* yg = y + group * per_group;
    double total = 0.0;
    for (int64_t i = 0; i < per_group; ++i) total += to_double(xg[i]);
    const double mean = per_group > 0 ? total / count : 0.0;
    double squares = 0.0;  // exact two-pass: squared deviations from the mean
    for (int64_t i = 0; i < per_group; ++i) {
      const double d = to_double(xg[i]) - mean;
      squares += d * d;
    }
    const double variance = per_group > 0 ? squares / count : 0.0;
    const double invstd = 1.0 / std::sqrt(variance + eps);
    const double first = per_group > 0 ? to_double(xg[0]) : 0.0;  // x0: the saved mean is mean - x0
    for (int64_t k = 0; k < cpg; ++k) {
      const int64_t c = g * cpg + k;
      const double scale = invstd * parameter_or(gamma, c, 1.0);
      const double shift = parameter_or(beta, c, 0.0);
      for (int64_t i = k * s.spatial; i < (k + 1) * s.spatial; ++i) {
        double value = (to_double(xg[i]) - mean) * scale + shift;
        if (relu && !(value > 0.0)) value = value != value ? value : 0.0;  // ReLU; NaN stays NaN
        yg[i] = from_double<T>(value);
      }
    }
    mean_out[group] = static_cast<Statistic>(mean - first);
    invstd_out[group] = static_cast<Statistic>(invstd);
  }
}

template <class T>
void group_norm_backward(const GroupNormBackward<T>& arguments) {
  const GroupNormShape& s = arguments.shape;
  const bool relu = arguments.relu;
  const T* grad_y = arguments.grad_y;
  const T* x = arguments.x;
  const T* gamma = arguments.gamma;
  const T* beta = arguments.beta;
  const AccumulateType<T>* mean_in = arguments.mean;
  const AccumulateType<T>* invstd_in = arguments.invstd;
  T* grad_x = arguments.grad_x;
  T* grad_gamma = arguments.grad_gamma;
  T* grad_beta = arguments.grad_beta;
  const int64_t per_group = s.group_size(), cpg = s.channels_per_group();
  const double count = static_cast<double>(per_group);
  // Per (sample, channel): sum d and sum d * xhat, for the parameter gradients.
  const bool parameter_gradients = grad_gamma != nullptr || grad_beta != nullptr;
  std::vector<double> sum_d(parameter_gradients ? static_cast<size_t>(s.batch * s.channels) : 0);
  std::vector<double> sum_d_xhat(sum_d.size());

#pragma omp parallel for schedule(static) if (s.batch * s.channels * s.spatial >= kParallelThreshold)
  for (int64_t group = 0; group < s.group_count(); ++group) {
    const int64_t n = group / s.groups, g = group % s.groups;
    const T* xg = x + group * per_group;
    const T* dyg = grad_y + group * per_group;
    // The saved mean is relative to the group's first element (see the header).
    const double first = per_group > 0 ? to_double(xg[0]) : 0.0;
    const double center = static_cast<double>(mean_in[group]);
    const double invstd = static_cast<double>(invstd_in[group]);
    // The masked gradient d of element i in channel c (0 where the ReLU was off).
    const auto masked = [&](int64_t i, double xhat, double gamma_c, double beta_c) {
      const double dy = to_double(dyg[i]);
      return relu && !(gamma_c * xhat + beta_c > 0.0) ? 0.0 : dy;
    };
    double group_sum_g = 0.0, group_sum_g_xhat = 0.0;
    for (int64_t k = 0; k < cpg; ++k) {
      const int64_t c = g * cpg + k;
      const double gamma_c = parameter_or(gamma, c, 1.0), beta_c = parameter_or(beta, c, 0.0);
      double channel_d = 0.0, channel_d_xhat = 0.0;
      for (int64_t i = k * s.spatial; i < (k + 1) * s.spatial; ++i) {
        const double xhat = (to_double(xg[i]) - first - center) * invstd;
        const double d = masked(i, xhat, gamma_c, beta_c);
        channel_d += d;
        channel_d_xhat += d * xhat;
      }
      if (parameter_gradients) {
        sum_d[static_cast<size_t>(n * s.channels + c)] = channel_d;
        sum_d_xhat[static_cast<size_t>(n * s.channels + c)] = channel_d_xhat;
      }
      group_sum_g += gamma_c * channel_d;
      group_sum_g_xhat += gamma_c * channel_d_xhat;
    }
    if (grad_x == nullptr) continue;
    const double mean_g = group_sum_g / count, mean_g_xhat = group_sum_g_xhat / count;
    T* dxg = grad_x + group * per_group;
    for (int64_t k = 0; k < cpg; ++k) {
      const int64_t c = g * cpg + k;
      const double gamma_c = parameter_or(gamma, c, 1.0), beta_c = parameter_or(beta, c, 0.0);
      for (int64_t i = k * s.spatial; i < (k + 1) * s.spatial; ++i) {
        const double xhat = (to_double(xg[i]) - first - center) * invstd;
        const double g_i = gamma_c * masked(i, xhat, gamma_c, beta_c);
        dxg[i] = from_double<T>(invstd * (g_i - mean_g - xhat * mean_g_xhat));
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
    if (grad_gamma != nullptr) grad_gamma[c] = from_double<T>(total_d_xhat);
    if (grad_beta != nullptr) grad_beta[c] = from_double<T>(total_d);
  }
}

#define VISREP_INSTANTIATE_GROUP_NORM(T)                             \
  template void group_norm_forward<T>(const GroupNormForward<T>&); \
  template void group_norm_backward<T>(const GroupNormBackward<T>&);

VISREP_INSTANTIATE_GROUP_NORM(float)
VISREP_INSTANTIATE_GROUP_NORM(double)
VISREP_INSTANTIATE_GROUP_NORM(bfloat16)
#undef VISREP_INSTANTIATE_GROUP_NORM

}  // namespace visrep::kernels::cpu::reference
