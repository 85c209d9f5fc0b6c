// Batch normalisation on the CPU, the reference: the specification the fast CPU kernel
// (kernels/cpu/batch_norm.cpp) and the CUDA twins are held to (kernels/cpu/batch_norm.h
// specifies them and lists the family's files). Plain loops over each channel in double:
// exact two-pass statistics, every element's arithmetic in double.
#include "kernels/cpu/batch_norm.h"

#include <cmath>
#include <type_traits>

namespace visrep::kernels::cpu::reference {
namespace {

// Calls body(plane) for every (n, c) plane of channel c.
template <class Body>
void for_each_plane_of_channel(const BatchNormShape& s, int64_t c, Body&& body) {
  for (int64_t n = 0; n < s.batch; ++n) body((n * s.channels + c) * s.spatial);
}

struct ChannelStatistics {
  double mean = 0.0;
  double squares = 0.0;  // sum of (x - mean)^2: the exact two-pass M2
};

// Mean and M2 of channel c over its count = N * S elements (0 and 0 for an empty batch).
template <class T>
ChannelStatistics channel_statistics(const BatchNormShape& s, const T* x, int64_t c) {
  const double count = static_cast<double>(s.batch * s.spatial);
  double total = 0.0;
  for_each_plane_of_channel(s, c, [&](int64_t base) {
    for (int64_t i = 0; i < s.spatial; ++i) total += static_cast<double>(x[base + i]);
  });
  ChannelStatistics statistics;
  statistics.mean = count > 0 ? total / count : 0.0;
  for_each_plane_of_channel(s, c, [&](int64_t base) {
    for (int64_t i = 0; i < s.spatial; ++i) {
      const double d = static_cast<double>(x[base + i]) - statistics.mean;
      statistics.squares += d * d;
    }
  });
  return statistics;
}

// Normalises channel c with the mean and M2 of `count` elements (this batch's, or the global
// batch's for SyncBatchNorm), saves mean and invstd, and moves the running statistics toward
// them (the running variance unbiased: M2 / (count - 1)). `a` is BatchNormForwardTraining or
// BatchNormForwardWithStatistics, which name these fields alike.
template <class Arguments>
void normalise_channel(const Arguments& a, int64_t c, ChannelStatistics statistics, double count) {
  using T = std::remove_cvref_t<decltype(*a.y)>;
  const BatchNormShape& s = a.shape;
  const double variance = statistics.squares / count;
  const double invstd = 1.0 / std::sqrt(variance + a.eps);
  const double scale = invstd * (a.gamma ? static_cast<double>(a.gamma[c]) : 1.0);
  const double shift = (a.beta ? static_cast<double>(a.beta[c]) : 0.0) - statistics.mean * scale;
  for_each_plane_of_channel(s, c, [&](int64_t base) {
    for (int64_t i = 0; i < s.spatial; ++i) a.y[base + i] = static_cast<T>(static_cast<double>(a.x[base + i]) * scale + shift);
  });
  a.saved_mean[c] = static_cast<T>(statistics.mean);
  a.saved_invstd[c] = static_cast<T>(invstd);
  move_running_statistics(a, c, statistics.mean, statistics.squares, count, variance);
}

}  // namespace

template <class T>
void batch_norm_forward_training(const BatchNormForwardTraining<T>& arguments) {
  const BatchNormShape& s = arguments.shape;
  const double count = static_cast<double>(s.batch * s.spatial);
#pragma omp parallel for schedule(static) if (s.batch * s.channels * s.spatial >= 32768)
  for (int64_t c = 0; c < s.channels; ++c) {
    normalise_channel(arguments, c, channel_statistics(s, arguments.x, c), count);
  }
}

template <class T>
void batch_norm_forward_inference(const BatchNormForwardInference<T>& arguments) {
  const BatchNormShape& s = arguments.shape;
  const T* x = arguments.x;
  const T* gamma = arguments.gamma;
  const T* beta = arguments.beta;
  const T* running_mean = arguments.running_mean;
  const T* running_var = arguments.running_var;
  const double eps = arguments.eps;
  T* y = arguments.y;
#pragma omp parallel for schedule(static) if (s.batch * s.channels * s.spatial >= 32768)
  for (int64_t c = 0; c < s.channels; ++c) {
    const double invstd = 1.0 / std::sqrt(static_cast<double>(running_var[c]) + eps);
    const double scale = invstd * (gamma ? static_cast<double>(gamma[c]) : 1.0);
    const double shift = (beta ? static_cast<double>(beta[c]) : 0.0) - static_cast<double>(running_mean[c]) * scale;
    for_each_plane_of_channel(s, c, [&](int64_t base) {
      for (int64_t i = 0; i < s.spatial; ++i) y[base + i] = static_cast<T>(static_cast<double>(x[base + i]) * scale + shift);
    });
  }
}

template <class T>
void batch_norm_inference_statistics(const BatchNormInferenceStatistics<T>& arguments) {
  const int64_t channels = arguments.channels;
  const T* running_mean = arguments.running_mean;
  const T* running_var = arguments.running_var;
  const double eps = arguments.eps;
  T* mean = arguments.mean;
  T* invstd = arguments.invstd;
  for (int64_t c = 0; c < channels; ++c) {
    mean[c] = running_mean[c];
    invstd[c] = static_cast<T>(1.0 / std::sqrt(static_cast<double>(running_var[c]) + eps));
  }
}

// With xhat = (x - mean) * invstd and M = N * S elements per channel:
//   grad_beta  = sum dy,   grad_gamma = sum dy * xhat
//   training:  grad_x = gamma * invstd * (dy - grad_beta / M - xhat * grad_gamma / M)
//   inference: grad_x = gamma * invstd * dy           (mean and invstd are constants)
template <class T>
void batch_norm_backward(const BatchNormBackward<T>& arguments) {
  const BatchNormShape& s = arguments.shape;
  const bool training = arguments.training;
  const T* grad_y = arguments.grad_y;
  const T* x = arguments.x;
  const T* gamma = arguments.gamma;
  const T* mean = arguments.mean;
  const T* invstd = arguments.invstd;
  T* grad_x = arguments.grad_x;
  T* grad_gamma = arguments.grad_gamma;
  T* grad_beta = arguments.grad_beta;
  const double count = static_cast<double>(s.batch * s.spatial);
#pragma omp parallel for schedule(static) if (s.batch * s.channels * s.spatial >= 32768)
  for (int64_t c = 0; c < s.channels; ++c) {
    const double mu = static_cast<double>(mean[c]);
    const double is = static_cast<double>(invstd[c]);
    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    for_each_plane_of_channel(s, c, [&](int64_t base) {
      for (int64_t i = 0; i < s.spatial; ++i) {
        const double dy = static_cast<double>(grad_y[base + i]);
        sum_dy += dy;
        sum_dy_xhat += dy * (static_cast<double>(x[base + i]) - mu) * is;
      }
    });
    if (grad_gamma != nullptr) grad_gamma[c] = static_cast<T>(sum_dy_xhat);
    if (grad_beta != nullptr) grad_beta[c] = static_cast<T>(sum_dy);
    if (grad_x == nullptr) continue;
    const double scale = is * (gamma ? static_cast<double>(gamma[c]) : 1.0);
    const double mean_dy = training ? sum_dy / count : 0.0;
    const double mean_dy_xhat = training ? sum_dy_xhat / count : 0.0;
    for_each_plane_of_channel(s, c, [&](int64_t base) {
      for (int64_t i = 0; i < s.spatial; ++i) {
        const double xhat = (static_cast<double>(x[base + i]) - mu) * is;
        grad_x[base + i] = static_cast<T>(scale * (static_cast<double>(grad_y[base + i]) - mean_dy - xhat * mean_dy_xhat));
      }
    });
  }
}

// ---- SyncBatchNorm's pieces: the same loops, cut where the ranks exchange their sums --------------

template <class T>
void batch_norm_statistics(const BatchNormStatistics<T>& arguments) {
  const BatchNormShape& s = arguments.shape;
#pragma omp parallel for schedule(static) if (s.batch * s.channels * s.spatial >= 32768)
  for (int64_t c = 0; c < s.channels; ++c) {
    const ChannelStatistics statistics = channel_statistics(s, arguments.x, c);
    arguments.mean[c] = statistics.mean;
    arguments.squares[c] = statistics.squares;
  }
}

template <class T>
void batch_norm_forward_with_statistics(const BatchNormForwardWithStatistics<T>& arguments) {
  const BatchNormShape& s = arguments.shape;
#pragma omp parallel for schedule(static) if (s.batch * s.channels * s.spatial >= 32768)
  for (int64_t c = 0; c < s.channels; ++c) {
    normalise_channel(arguments, c, {arguments.mean[c], arguments.squares[c]}, arguments.count);
  }
}

template <class T>
void batch_norm_backward_sums(const BatchNormBackwardSums<T>& arguments) {
  const BatchNormShape& s = arguments.shape;
  const T* grad_y = arguments.grad_y;
  const T* x = arguments.x;
#pragma omp parallel for schedule(static) if (s.batch * s.channels * s.spatial >= 32768)
  for (int64_t c = 0; c < s.channels; ++c) {
    const double mu = static_cast<double>(arguments.mean[c]);
    const double is = static_cast<double>(arguments.invstd[c]);
    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    for_each_plane_of_channel(s, c, [&](int64_t base) {
      for (int64_t i = 0; i < s.spatial; ++i) {
        const double dy = static_cast<double>(grad_y[base + i]);
        sum_dy += dy;
        sum_dy_xhat += dy * (static_cast<double>(x[base + i]) - mu) * is;
      }
    });
    arguments.sum_dy[c] = sum_dy;
    arguments.sum_dy_xhat[c] = sum_dy_xhat;
  }
}

template <class T>
void batch_norm_backward_with_sums(const BatchNormBackwardWithSums<T>& arguments) {
  const BatchNormShape& s = arguments.shape;
  const T* grad_y = arguments.grad_y;
  const T* x = arguments.x;
  const T* gamma = arguments.gamma;
  T* grad_x = arguments.grad_x;
#pragma omp parallel for schedule(static) if (s.batch * s.channels * s.spatial >= 32768)
  for (int64_t c = 0; c < s.channels; ++c) {
    const double mu = static_cast<double>(arguments.mean[c]);
    const double is = static_cast<double>(arguments.invstd[c]);
    const double scale = is * (gamma ? static_cast<double>(gamma[c]) : 1.0);
    const double mean_dy = arguments.sum_dy[c] / arguments.count;
    const double mean_dy_xhat = arguments.sum_dy_xhat[c] / arguments.count;
    for_each_plane_of_channel(s, c, [&](int64_t base) {
      for (int64_t i = 0; i < s.spatial; ++i) {
        const double xhat = (static_cast<double>(x[base + i]) - mu) * is;
        grad_x[base + i] = static_cast<T>(scale * (static_cast<double>(grad_y[base + i]) - mean_dy - xhat * mean_dy_xhat));
      }
    });
  }
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

}  // namespace visrep::kernels::cpu::reference
