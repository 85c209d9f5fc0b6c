// Batch normalisation (Ioffe & Szegedy 2015), the CUDA twins of kernels/cpu/batch_norm.h,
// which specifies what they compute: x viewed as (N, C, S), statistics per channel over
// its M = N * S elements, accumulated in double as on the CPU.
//
// Why our own kernels and not cuDNN's batch normalisation: cuDNN needs a scale and a bias
// (ours may be absent, affine = false), its legacy API is deprecated in cuDNN 9, and it
// accumulates in float with a formula of its own; these kernels follow the CPU reference
// step by step (two-pass variance, the same double expressions), so the two devices agree
// to the rounding of the float results.
//
// Shape of the work. Per-channel sums are a two-level reduction: a grid of
// (channel, chunk) blocks each sums one contiguous chunk of the channel's elements into a
// partial (fixed order, so results are reproducible), then one thread per channel adds
// its chunks' partials and finishes that channel's arithmetic. The elementwise passes run
// one thread per element. Memory traffic:
//   training forward:  x read three times (sum, squared deviations, normalise), y written
//   inference forward: x read once, y written
//   backward:          dy and x read twice (sums, grad_x), grad_x written
#include "kernels/cuda/batch_norm.h"

#include <algorithm>
#include <climits>
#include <stdexcept>
#include <string>

#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/runtime.h"

namespace visrep::kernels::cuda {
namespace {

constexpr int kReduceThreads = 256;  // a power of two: the block reduction halves it

struct SumPair {
  double first;
  double second;
};

// Element j (0 <= j < N * S) of channel c.
__device__ __forceinline__ int64_t element_of_channel(int64_t channels, int64_t spatial, int64_t c, int64_t j) {
  const int64_t n = j / spatial, i = j - n * spatial;
  return (n * channels + c) * spatial + i;
}

// ---- per-channel sums -----------------------------------------------------------------------

// Block (c, chunk) sums term(element, c) over elements [chunk * chunk_length, + chunk_length)
// of channel c into partials[c * chunks + chunk].
template <class Term>
__global__ void channel_partial_sums_kernel(int64_t channels, int64_t spatial, int64_t count, int64_t chunk_length,
                                            Term term, SumPair* partials) {
  const int64_t c = blockIdx.x, chunk = blockIdx.y;
  const int64_t begin = chunk * chunk_length;
  const int64_t end = begin + chunk_length < count ? begin + chunk_length : count;
  double first = 0.0, second = 0.0;
  for (int64_t j = begin + threadIdx.x; j < end; j += blockDim.x) {
    const SumPair value = term(element_of_channel(channels, spatial, c, j), c);
    first += value.first;
    second += value.second;
  }
  __shared__ double shared_first[kReduceThreads];
  __shared__ double shared_second[kReduceThreads];
  shared_first[threadIdx.x] = first;
  shared_second[threadIdx.x] = second;
  __syncthreads();
  for (unsigned int width = kReduceThreads / 2; width > 0; width /= 2) {
    if (threadIdx.x < width) {
      shared_first[threadIdx.x] += shared_first[threadIdx.x + width];
      shared_second[threadIdx.x] += shared_second[threadIdx.x + width];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) partials[c * gridDim.y + chunk] = SumPair{shared_first[0], shared_second[0]};
}

// The terms summed: x; (x - mean)^2; and (dy, dy * xhat) for the backward pass.
template <class T>
struct ValueTerm {
  const T* x;
  __device__ SumPair operator()(int64_t index, int64_t) const { return {static_cast<double>(x[index]), 0.0}; }
};

template <class T>
struct SquaredDeviationTerm {
  const T* x;
  const double* mean;
  __device__ SumPair operator()(int64_t index, int64_t c) const {
    const double d = static_cast<double>(x[index]) - mean[c];
    return {d * d, 0.0};
  }
};

template <class T>
struct GradientTerm {
  const T* grad_y;
  const T* x;
  const T* mean;
  const T* invstd;
  __device__ SumPair operator()(int64_t index, int64_t c) const {
    const double dy = static_cast<double>(grad_y[index]);
    const double xhat = (static_cast<double>(x[index]) - static_cast<double>(mean[c])) * static_cast<double>(invstd[c]);
    return {dy, dy * xhat};
  }
};

// How a channel's elements are split into chunks: enough blocks to fill the GPU
// (about kTargetBlocks in all), but at least kMinChunk elements per chunk.
struct Reduction {
  int64_t chunks = 1;
  int64_t chunk_length = 0;
};

Reduction plan_reduction(const BatchNormShape& s) {
  constexpr int64_t kTargetBlocks = 1024, kMinChunk = 8 * kReduceThreads, kMaxChunks = 65535;  // gridDim.y
  if (s.channels > INT_MAX) {
    throw std::runtime_error("batch_norm: " + std::to_string(s.channels) + " channels are more than a grid holds");
  }
  const int64_t count = s.batch * s.spatial;
  Reduction plan;
  plan.chunks = std::min((kTargetBlocks + s.channels - 1) / s.channels, (count + kMinChunk - 1) / kMinChunk);
  plan.chunks = std::clamp<int64_t>(plan.chunks, 1, kMaxChunks);
  plan.chunk_length = (count + plan.chunks - 1) / plan.chunks;
  return plan;
}

template <class Term>
void channel_partial_sums(const BatchNormShape& s, const Reduction& plan, Term term, SumPair* partials,
                          cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned int>(s.channels), static_cast<unsigned int>(plan.chunks));
  channel_partial_sums_kernel<<<grid, kReduceThreads, 0, stream>>>(s.channels, s.spatial, s.batch * s.spatial,
                                                                   plan.chunk_length, term, partials);
  VISREP_CUDA_CHECK_LAUNCH("channel_partial_sums_kernel");
}

__device__ SumPair channel_total(const SumPair* partials, int64_t c, int64_t chunks) {
  SumPair total{0.0, 0.0};
  for (int64_t k = 0; k < chunks; ++k) {
    total.first += partials[c * chunks + k].first;
    total.second += partials[c * chunks + k].second;
  }
  return total;
}

// One thread per channel, grid-stride.
#define VISREP_FOR_EACH_CHANNEL(c, channels)                                                     \
  for (int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < (channels); \
       c += static_cast<int64_t>(blockDim.x) * gridDim.x)

// ---- per-channel arithmetic ---------------------------------------------------------------------

__global__ void finalize_mean_kernel(int64_t channels, int64_t chunks, double count, const SumPair* partials,
                                     double* mean) {
  VISREP_FOR_EACH_CHANNEL(c, channels) { mean[c] = channel_total(partials, c, chunks).first / count; }
}

// partials hold the squared deviations from mean. Writes the saved statistics, moves the
// running ones, and leaves y = x * scale + shift's coefficients.
template <class T>
__global__ void finalize_training_kernel(int64_t channels, int64_t chunks, double count, const SumPair* partials,
                                         const double* mean, const T* gamma, const T* beta, double eps,
                                         double momentum, T* running_mean, T* running_var, T* saved_mean,
                                         T* saved_invstd, double* scale, double* shift) {
  VISREP_FOR_EACH_CHANNEL(c, channels) {
    const double squares = channel_total(partials, c, chunks).first;
    const double variance = squares / count;  // biased: the one that normalises
    const double invstd = 1.0 / sqrt(variance + eps);
    const double channel_scale = invstd * (gamma != nullptr ? static_cast<double>(gamma[c]) : 1.0);
    scale[c] = channel_scale;
    shift[c] = (beta != nullptr ? static_cast<double>(beta[c]) : 0.0) - mean[c] * channel_scale;
    saved_mean[c] = static_cast<T>(mean[c]);
    saved_invstd[c] = static_cast<T>(invstd);
    if (running_mean != nullptr) {
      running_mean[c] =
          static_cast<T>((1.0 - momentum) * static_cast<double>(running_mean[c]) + momentum * mean[c]);
    }
    if (running_var != nullptr) {
      const double unbiased = count > 1 ? squares / (count - 1) : variance;
      running_var[c] = static_cast<T>((1.0 - momentum) * static_cast<double>(running_var[c]) + momentum * unbiased);
    }
  }
}

template <class T>
__global__ void inference_coefficients_kernel(int64_t channels, const T* gamma, const T* beta, const T* running_mean,
                                              const T* running_var, double eps, double* scale, double* shift) {
  VISREP_FOR_EACH_CHANNEL(c, channels) {
    const double invstd = 1.0 / sqrt(static_cast<double>(running_var[c]) + eps);
    const double channel_scale = invstd * (gamma != nullptr ? static_cast<double>(gamma[c]) : 1.0);
    scale[c] = channel_scale;
    shift[c] = (beta != nullptr ? static_cast<double>(beta[c]) : 0.0) -
               static_cast<double>(running_mean[c]) * channel_scale;
  }
}

template <class T>
__global__ void inference_statistics_kernel(int64_t channels, const T* running_mean, const T* running_var, double eps,
                                            T* mean, T* invstd) {
  VISREP_FOR_EACH_CHANNEL(c, channels) {
    mean[c] = running_mean[c];
    invstd[c] = static_cast<T>(1.0 / sqrt(static_cast<double>(running_var[c]) + eps));
  }
}

// partials hold (sum dy, sum dy * xhat). grad_x = scale * (dy - mean_dy - xhat * mean_dy_xhat),
// with the two means 0 in evaluation mode (the statistics are constants there).
template <class T>
__global__ void finalize_backward_kernel(int64_t channels, int64_t chunks, double count, bool training,
                                         const SumPair* partials, const T* gamma, const T* invstd, T* grad_gamma,
                                         T* grad_beta, double* scale, double* mean_dy, double* mean_dy_xhat) {
  VISREP_FOR_EACH_CHANNEL(c, channels) {
    const SumPair total = channel_total(partials, c, chunks);
    const double sum_dy = total.first, sum_dy_xhat = total.second;
    if (grad_gamma != nullptr) grad_gamma[c] = static_cast<T>(sum_dy_xhat);
    if (grad_beta != nullptr) grad_beta[c] = static_cast<T>(sum_dy);
    scale[c] = static_cast<double>(invstd[c]) * (gamma != nullptr ? static_cast<double>(gamma[c]) : 1.0);
    mean_dy[c] = training ? sum_dy / count : 0.0;
    mean_dy_xhat[c] = training ? sum_dy_xhat / count : 0.0;
  }
}

// ---- SyncBatchNorm's per-channel arithmetic ----

// partials hold sum x; an empty batch (count 0) has mean 0.
__global__ void statistics_mean_kernel(int64_t channels, int64_t chunks, double count, const SumPair* partials,
                                       double* mean) {
  VISREP_FOR_EACH_CHANNEL(c, channels) {
    mean[c] = count > 0 ? channel_total(partials, c, chunks).first / count : 0.0;
  }
}

// partials hold (a, b) sums: first[c] = sum a, and second[c] = sum b unless second is null.
__global__ void store_sums_kernel(int64_t channels, int64_t chunks, const SumPair* partials, double* first,
                                  double* second) {
  VISREP_FOR_EACH_CHANNEL(c, channels) {
    const SumPair total = channel_total(partials, c, chunks);
    first[c] = total.first;
    if (second != nullptr) second[c] = total.second;
  }
}

// finalize_training_kernel's arithmetic with the statistics of every rank given.
template <class T>
__global__ void finalize_with_statistics_kernel(int64_t channels, double count, const double* mean,
                                                const double* squares, const T* gamma, const T* beta, double eps,
                                                double momentum, T* running_mean, T* running_var, T* saved_mean,
                                                T* saved_invstd, double* scale, double* shift) {
  VISREP_FOR_EACH_CHANNEL(c, channels) {
    const double variance = squares[c] / count;
    const double invstd = 1.0 / sqrt(variance + eps);
    const double channel_scale = invstd * (gamma != nullptr ? static_cast<double>(gamma[c]) : 1.0);
    scale[c] = channel_scale;
    shift[c] = (beta != nullptr ? static_cast<double>(beta[c]) : 0.0) - mean[c] * channel_scale;
    saved_mean[c] = static_cast<T>(mean[c]);
    saved_invstd[c] = static_cast<T>(invstd);
    if (running_mean != nullptr) {
      running_mean[c] =
          static_cast<T>((1.0 - momentum) * static_cast<double>(running_mean[c]) + momentum * mean[c]);
    }
    if (running_var != nullptr) {
      const double unbiased = count > 1 ? squares[c] / (count - 1) : variance;
      running_var[c] = static_cast<T>((1.0 - momentum) * static_cast<double>(running_var[c]) + momentum * unbiased);
    }
  }
}

// finalize_backward_kernel's grad_x coefficients (training mode) with the sums of every rank given.
template <class T>
__global__ void coefficients_with_sums_kernel(int64_t channels, double count, const double* sum_dy,
                                              const double* sum_dy_xhat, const T* gamma, const T* invstd,
                                              double* scale, double* mean_dy, double* mean_dy_xhat) {
  VISREP_FOR_EACH_CHANNEL(c, channels) {
    scale[c] = static_cast<double>(invstd[c]) * (gamma != nullptr ? static_cast<double>(gamma[c]) : 1.0);
    mean_dy[c] = sum_dy[c] / count;
    mean_dy_xhat[c] = sum_dy_xhat[c] / count;
  }
}

#undef VISREP_FOR_EACH_CHANNEL

// ---- elementwise passes -------------------------------------------------------------------------

#define VISREP_FOR_EACH_ELEMENT(index, total)                                                         \
  for (int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; index < (total); \
       index += static_cast<int64_t>(blockDim.x) * gridDim.x)

template <class T>
__global__ void normalize_kernel(int64_t total, int64_t channels, int64_t spatial, const T* x, const double* scale,
                                 const double* shift, T* y) {
  VISREP_FOR_EACH_ELEMENT(index, total) {
    const int64_t c = (index / spatial) % channels;
    y[index] = static_cast<T>(static_cast<double>(x[index]) * scale[c] + shift[c]);
  }
}

template <class T>
__global__ void grad_input_kernel(int64_t total, int64_t channels, int64_t spatial, const T* grad_y, const T* x,
                                  const T* mean, const T* invstd, const double* scale, const double* mean_dy,
                                  const double* mean_dy_xhat, T* grad_x) {
  VISREP_FOR_EACH_ELEMENT(index, total) {
    const int64_t c = (index / spatial) % channels;
    const double xhat = (static_cast<double>(x[index]) - static_cast<double>(mean[c])) * static_cast<double>(invstd[c]);
    grad_x[index] =
        static_cast<T>(scale[c] * (static_cast<double>(grad_y[index]) - mean_dy[c] - xhat * mean_dy_xhat[c]));
  }
}

#undef VISREP_FOR_EACH_ELEMENT

int64_t numel(const BatchNormShape& s) { return s.batch * s.channels * s.spatial; }

void check_shape(const BatchNormShape& s) {
  if (s.batch < 0 || s.channels < 0 || s.spatial < 1) {
    throw std::runtime_error("batch_norm kernel: invalid shape (" + std::to_string(s.batch) + ", " +
                             std::to_string(s.channels) + ", " + std::to_string(s.spatial) + ")");
  }
}

// y = x * scale[c] + shift[c].
template <class T>
void normalize(const BatchNormShape& s, const T* x, const double* scale, const double* shift, T* y,
               cudaStream_t stream) {
  const int64_t total = numel(s);
  if (total == 0) return;
  normalize_kernel<T><<<grid_size_for(total), kThreadsPerBlock, 0, stream>>>(total, s.channels, s.spatial, x, scale,
                                                                             shift, y);
  VISREP_CUDA_CHECK_LAUNCH("normalize_kernel");
}

}  // namespace

template <class T>
void batch_norm_forward_training(const BatchNormForwardTraining<T>& a, cudaStream_t stream) {
  const BatchNormShape& s = a.shape;
  const T* x = a.x;
  const T* gamma = a.gamma;
  const T* beta = a.beta;
  const double eps = a.eps;
  const double momentum = a.momentum;
  T* running_mean = a.running_mean;
  T* running_var = a.running_var;
  T* y = a.y;
  T* saved_mean = a.saved_mean;
  T* saved_invstd = a.saved_invstd;
  check_shape(s);
  if (s.channels == 0) return;
  const int device = current_device();
  const double count = static_cast<double>(s.batch * s.spatial);
  const Reduction plan = plan_reduction(s);
  DeviceBuffer partials(sizeof(SumPair) * s.channels * plan.chunks, device, stream);
  DeviceBuffer coefficients(sizeof(double) * 3 * s.channels, device, stream);  // mean, scale, shift
  double* mean = coefficients.get<double>();
  double* scale = mean + s.channels;
  double* shift = scale + s.channels;
  const unsigned int channel_blocks = grid_size_for(s.channels);

  channel_partial_sums(s, plan, ValueTerm<T>{x}, partials.get<SumPair>(), stream);
  finalize_mean_kernel<<<channel_blocks, kThreadsPerBlock, 0, stream>>>(s.channels, plan.chunks, count,
                                                                       partials.get<SumPair>(), mean);
  VISREP_CUDA_CHECK_LAUNCH("finalize_mean_kernel");
  // Two passes, as on the CPU: the squared deviations from the mean, not E[x^2] - E[x]^2.
  channel_partial_sums(s, plan, SquaredDeviationTerm<T>{x, mean}, partials.get<SumPair>(), stream);
  finalize_training_kernel<T><<<channel_blocks, kThreadsPerBlock, 0, stream>>>(
      s.channels, plan.chunks, count, partials.get<SumPair>(), mean, gamma, beta, eps, momentum, running_mean,
      running_var, saved_mean, saved_invstd, scale, shift);
  VISREP_CUDA_CHECK_LAUNCH("finalize_training_kernel");
  normalize(s, x, scale, shift, y, stream);
}

template <class T>
void batch_norm_forward_inference(const BatchNormForwardInference<T>& a, cudaStream_t stream) {
  check_shape(a.shape);
  if (a.shape.channels == 0) return;
  DeviceBuffer coefficients(sizeof(double) * 2 * a.shape.channels, current_device(), stream);  // scale, shift
  double* scale = coefficients.get<double>();
  double* shift = scale + a.shape.channels;
  inference_coefficients_kernel<T><<<grid_size_for(a.shape.channels), kThreadsPerBlock, 0, stream>>>(
      a.shape.channels, a.gamma, a.beta, a.running_mean, a.running_var, a.eps, scale, shift);
  VISREP_CUDA_CHECK_LAUNCH("inference_coefficients_kernel");
  normalize(a.shape, a.x, scale, shift, a.y, stream);
}

template <class T>
void batch_norm_inference_statistics(const BatchNormInferenceStatistics<T>& a, cudaStream_t stream) {
  if (a.channels <= 0) return;
  inference_statistics_kernel<T><<<grid_size_for(a.channels), kThreadsPerBlock, 0, stream>>>(
      a.channels, a.running_mean, a.running_var, a.eps, a.mean, a.invstd);
  VISREP_CUDA_CHECK_LAUNCH("inference_statistics_kernel");
}

template <class T>
void batch_norm_backward(const BatchNormBackward<T>& a, cudaStream_t stream) {
  const BatchNormShape& s = a.shape;
  const bool training = a.training;
  const T* grad_y = a.grad_y;
  const T* x = a.x;
  const T* gamma = a.gamma;
  const T* mean = a.mean;
  const T* invstd = a.invstd;
  T* grad_x = a.grad_x;
  T* grad_gamma = a.grad_gamma;
  T* grad_beta = a.grad_beta;
  check_shape(s);
  if (s.channels == 0 || (grad_x == nullptr && grad_gamma == nullptr && grad_beta == nullptr)) return;
  const int device = current_device();
  const double count = static_cast<double>(s.batch * s.spatial);
  const Reduction plan = plan_reduction(s);
  DeviceBuffer partials(sizeof(SumPair) * s.channels * plan.chunks, device, stream);
  DeviceBuffer coefficients(sizeof(double) * 3 * s.channels, device, stream);  // scale, mean_dy, mean_dy_xhat
  double* scale = coefficients.get<double>();
  double* mean_dy = scale + s.channels;
  double* mean_dy_xhat = mean_dy + s.channels;

  channel_partial_sums(s, plan, GradientTerm<T>{grad_y, x, mean, invstd}, partials.get<SumPair>(), stream);
  finalize_backward_kernel<T><<<grid_size_for(s.channels), kThreadsPerBlock, 0, stream>>>(
      s.channels, plan.chunks, count, training, partials.get<SumPair>(), gamma, invstd, grad_gamma, grad_beta, scale,
      mean_dy, mean_dy_xhat);
  VISREP_CUDA_CHECK_LAUNCH("finalize_backward_kernel");
  const int64_t total = numel(s);
  if (grad_x == nullptr || total == 0) return;
  grad_input_kernel<T><<<grid_size_for(total), kThreadsPerBlock, 0, stream>>>(
      total, s.channels, s.spatial, grad_y, x, mean, invstd, scale, mean_dy, mean_dy_xhat, grad_x);
  VISREP_CUDA_CHECK_LAUNCH("grad_input_kernel");
}

// ---- SyncBatchNorm's pieces (kernels/cpu/batch_norm.h) --------------------------------------------
// The same reductions and elementwise passes as above, with the per-channel arithmetic split
// where the op exchanges the statistics and sums between ranks.

template <class T>
void batch_norm_statistics(const BatchNormStatistics<T>& a, cudaStream_t stream) {
  const BatchNormShape& s = a.shape;
  check_shape(s);
  if (s.channels == 0) return;
  const double count = static_cast<double>(s.batch * s.spatial);
  const Reduction plan = plan_reduction(s);
  DeviceBuffer partials(sizeof(SumPair) * s.channels * plan.chunks, current_device(), stream);
  const unsigned int channel_blocks = grid_size_for(s.channels);
  // Two passes (sum, then squared deviations from the mean); an empty batch sums nothing.
  channel_partial_sums(s, plan, ValueTerm<T>{a.x}, partials.get<SumPair>(), stream);
  statistics_mean_kernel<<<channel_blocks, kThreadsPerBlock, 0, stream>>>(s.channels, plan.chunks, count,
                                                                         partials.get<SumPair>(), a.mean);
  VISREP_CUDA_CHECK_LAUNCH("statistics_mean_kernel");
  channel_partial_sums(s, plan, SquaredDeviationTerm<T>{a.x, a.mean}, partials.get<SumPair>(), stream);
  store_sums_kernel<<<channel_blocks, kThreadsPerBlock, 0, stream>>>(s.channels, plan.chunks,
                                                                    partials.get<SumPair>(), a.squares, nullptr);
  VISREP_CUDA_CHECK_LAUNCH("store_sums_kernel (squares)");
}

template <class T>
void batch_norm_forward_with_statistics(const BatchNormForwardWithStatistics<T>& a, cudaStream_t stream) {
  const BatchNormShape& s = a.shape;
  check_shape(s);
  if (s.channels == 0) return;
  DeviceBuffer coefficients(sizeof(double) * 2 * s.channels, current_device(), stream);  // scale, shift
  double* scale = coefficients.get<double>();
  double* shift = scale + s.channels;
  finalize_with_statistics_kernel<T><<<grid_size_for(s.channels), kThreadsPerBlock, 0, stream>>>(
      s.channels, a.count, a.mean, a.squares, a.gamma, a.beta, a.eps, a.momentum, a.running_mean, a.running_var,
      a.saved_mean, a.saved_invstd, scale, shift);
  VISREP_CUDA_CHECK_LAUNCH("finalize_with_statistics_kernel");
  normalize(s, a.x, scale, shift, a.y, stream);
}

template <class T>
void batch_norm_backward_sums(const BatchNormBackwardSums<T>& a, cudaStream_t stream) {
  const BatchNormShape& s = a.shape;
  check_shape(s);
  if (s.channels == 0) return;
  const Reduction plan = plan_reduction(s);
  DeviceBuffer partials(sizeof(SumPair) * s.channels * plan.chunks, current_device(), stream);
  channel_partial_sums(s, plan, GradientTerm<T>{a.grad_y, a.x, a.mean, a.invstd}, partials.get<SumPair>(), stream);
  store_sums_kernel<<<grid_size_for(s.channels), kThreadsPerBlock, 0, stream>>>(
      s.channels, plan.chunks, partials.get<SumPair>(), a.sum_dy, a.sum_dy_xhat);
  VISREP_CUDA_CHECK_LAUNCH("store_sums_kernel (dy, dy * xhat)");
}

template <class T>
void batch_norm_backward_with_sums(const BatchNormBackwardWithSums<T>& a, cudaStream_t stream) {
  const BatchNormShape& s = a.shape;
  check_shape(s);
  const int64_t total = numel(s);
  if (total == 0) return;
  DeviceBuffer coefficients(sizeof(double) * 3 * s.channels, current_device(), stream);  // scale, mean_dy, mean_dy_xhat
  double* scale = coefficients.get<double>();
  double* mean_dy = scale + s.channels;
  double* mean_dy_xhat = mean_dy + s.channels;
  coefficients_with_sums_kernel<T><<<grid_size_for(s.channels), kThreadsPerBlock, 0, stream>>>(
      s.channels, a.count, a.sum_dy, a.sum_dy_xhat, a.gamma, a.invstd, scale, mean_dy, mean_dy_xhat);
  VISREP_CUDA_CHECK_LAUNCH("coefficients_with_sums_kernel");
  grad_input_kernel<T><<<grid_size_for(total), kThreadsPerBlock, 0, stream>>>(
      total, s.channels, s.spatial, a.grad_y, a.x, a.mean, a.invstd, scale, mean_dy, mean_dy_xhat, a.grad_x);
  VISREP_CUDA_CHECK_LAUNCH("grad_input_kernel");
}

#define VISREP_INSTANTIATE_BATCH_NORM(T)                                                                        \
  template void batch_norm_forward_training<T>(const BatchNormForwardTraining<T>&, cudaStream_t);               \
  template void batch_norm_forward_inference<T>(const BatchNormForwardInference<T>&, cudaStream_t);             \
  template void batch_norm_inference_statistics<T>(const BatchNormInferenceStatistics<T>&, cudaStream_t);       \
  template void batch_norm_backward<T>(const BatchNormBackward<T>&, cudaStream_t);                              \
  template void batch_norm_statistics<T>(const BatchNormStatistics<T>&, cudaStream_t);                          \
  template void batch_norm_forward_with_statistics<T>(const BatchNormForwardWithStatistics<T>&, cudaStream_t);  \
  template void batch_norm_backward_sums<T>(const BatchNormBackwardSums<T>&, cudaStream_t);                     \
  template void batch_norm_backward_with_sums<T>(const BatchNormBackwardWithSums<T>&, cudaStream_t);

VISREP_INSTANTIATE_BATCH_NORM(float)
VISREP_INSTANTIATE_BATCH_NORM(double)
#undef VISREP_INSTANTIATE_BATCH_NORM

}  // namespace visrep::kernels::cuda
