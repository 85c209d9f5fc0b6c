// Group normalisation, the CUDA twins of kernels/cpu/group_norm.h (which specifies what
// they compute and lists the family's files): y = gamma_c (x - mean) / sqrt(var + eps) +
// beta_c per (sample, group), optionally followed by a ReLU, and its backward (dx, dgamma,
// dbeta). float32, bfloat16 and float64 tensors; statistics and arithmetic in float32
// (float64 for float64). The reductions and Welford's statistics are kernels/cuda/
// device_utils.cuh's.
//
// Shape of the work: one thread block per (sample, group). In NCHW memory a group is one
// contiguous run of M = (C / G) * H * W elements, so a block streams it with 16-byte packs
// (float4-sized) when its pointers are aligned and M is a multiple of the pack, and one
// element at a time otherwise.
//
// Forward, group on chip (M elements fit in shared memory, up to ~227 KB on an H100: every
// BiT-R50 group at 224 px, 100 KB at most in float32): the block copies the group into
// shared memory while summing it, then computes the exact two-pass variance from shared
// memory and writes y from it. Memory traffic: x read once, y written once, which is the
// floor. The sums are taken around a shift, the group's first element (sum of x - x0, then
// of (x - x0 - mean')^2): x - x0 is exact for nearby values (Sterbenz), so inputs offset by
// 1e4 keep all their float32 digits and the statistics match the float64 reference.
// Forward, group too large (BiT at 480 px): each thread keeps a Welford (count, mean, M2)
// of its elements minus the same shift, the block combines them (Chan et al.'s pairwise
// update, in a fixed order), and a second pass over x writes y: x read twice, y written once.
//
// Backward: with xhat = (x - mean) * invstd and d = dy (masked by the ReLU when fused),
// evaluated as ((x - x0) - saved mean) * invstd (the mean is saved relative to the group's
// first element x0, as the CPU reference specifies),
//   per channel (dgamma, dbeta):  sum d * xhat, sum d over each (sample, channel)
//   per group:                    sum g, sum g * xhat with g = gamma_c d
//   dx = invstd * (g - mean_group(g) - xhat * mean_group(g * xhat)).
// On chip (x and dy of the group fit together): the block stages x and dy in shared
// memory, its warps take the channels (several warps share a channel when there are fewer
// channels than warps), and dx is written from shared memory: x and dy read once, dx
// written once. Too large: the same two phases read x and dy from memory twice. The
// per-(sample, channel) sums go to a scratch buffer, and a small kernel adds them over the
// samples in a fixed order (dgamma, dbeta), so every result is reproducible run to run.
// The ReLU mask is recomputed from x and the statistics (gamma_c xhat + beta_c > 0), so the
// fused forward need not keep its output or a mask.
#include "kernels/cuda/group_norm.h"

#include <cuda_runtime.h>

#include <climits>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/bfloat16.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/runtime.h"

namespace visrep::kernels::cuda {
namespace {

// Shared memory the kernels declare statically (reduction scratch), kept free when
// deciding whether a group fits on chip.
constexpr size_t kStaticSharedBytes = 4096;

template <class A>
__device__ __forceinline__ A relu_of(A value) {
  return value > A(0) || value != value ? value : A(0);  // NaN propagates, as on the CPU
}

// dy where the fused ReLU let the value through, else 0 (the CPU's expression).
template <class A>
__device__ __forceinline__ A masked_gradient(A dy, A xhat, A gamma_c, A beta_c, bool relu) {
  return relu && !(gamma_c * xhat + beta_c > A(0)) ? A(0) : dy;
}

// Per-channel parameters, 1 and 0 when the transform has no weight or bias.
template <class T>
__device__ __forceinline__ AccumulateType<T> parameter_or(const T* values, int64_t c,
                                                                  AccumulateType<T> otherwise) {
  return values != nullptr ? widen(values[c]) : otherwise;
}

// ---- forward --------------------------------------------------------------------------------------

// One block per (sample, group) = blockIdx.x. kOnChip: the group is staged in dynamic
// shared memory (M * sizeof(T) bytes). V: elements per pack (M % V == 0 and x, y aligned).
template <class T, int V, bool kOnChip>
__global__ void __launch_bounds__(kMaxThreadsPerBlock)
    group_norm_forward_kernel(GroupNormShape shape, const T* __restrict__ x, const T* __restrict__ gamma,
                              const T* __restrict__ beta, AccumulateType<T> eps, bool relu,
                              T* __restrict__ y, AccumulateType<T>* __restrict__ mean_out,
                              AccumulateType<T>* __restrict__ invstd_out) {
  using A = AccumulateType<T>;
  using P = Pack<T, V>;
  // On chip the group is under 227 KB, so 32-bit indices within it are enough (and much
  // cheaper to divide); streamed groups may be larger.
  using Index = std::conditional_t<kOnChip, int, int64_t>;
  __shared__ SumPair<A> sum_scratch[kMaxWarpsPerBlock];
  __shared__ Welford<A> welford_scratch[kMaxWarpsPerBlock + 1];

  const int64_t group = blockIdx.x;
  const Index channels_per_group = static_cast<Index>(shape.channels / shape.groups);
  const Index spatial = static_cast<Index>(shape.spatial);
  const Index per_group = channels_per_group * spatial;
  const Index packs = per_group / V;
  const int64_t first_channel = (group % shape.groups) * channels_per_group;
  const int64_t offset = group * static_cast<int64_t>(per_group);
  const P* x_packs = reinterpret_cast<const P*>(x + offset);
  [[maybe_unused]] P* staged = dynamic_shared_memory<P>();
  const A count = static_cast<A>(per_group);

  // y = (x - shift - center) * invstd * gamma_c + beta_c, with mean = shift + center.
  A shift, center, invstd;
  if constexpr (kOnChip) {
    shift = widen(x[offset]);
    A partial = A(0);
    for (Index p = threadIdx.x; p < packs; p += blockDim.x) {
      const P v = x_packs[p];
      staged[p] = v;
#pragma unroll
      for (int j = 0; j < V; ++j) partial += widen(v.lane[j]) - shift;
    }
    center = block_sum(SumPair<A>{partial, A(0)}, sum_scratch).first / count;
    // Each thread reads back only the packs it staged itself: no barrier needed before.
    A squares = A(0);
    for (Index p = threadIdx.x; p < packs; p += blockDim.x) {
      const P v = staged[p];
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A d = widen(v.lane[j]) - shift - center;
        squares += d * d;
      }
    }
    const A variance = block_sum(SumPair<A>{squares, A(0)}, sum_scratch).first / count;
    invstd = A(1) / sqrt(variance + eps);
  } else {
    // Welford over x - shift, the same shift as above: the running means stay near zero,
    // so their rounding does not grow with the offset of the input.
    shift = widen(x[offset]);
    Welford<A> running{A(0), A(0), A(0)};
    for (Index p = threadIdx.x; p < packs; p += blockDim.x) {
      const P v = x_packs[p];
#pragma unroll
      for (int j = 0; j < V; ++j) welford_add(running, widen(v.lane[j]) - shift);
    }
    const Welford<A> total = block_welford(running, welford_scratch);
    center = total.mean;
    invstd = A(1) / sqrt(total.m2 / count + eps);
  }
  if (threadIdx.x == 0) {
    mean_out[group] = center;  // relative to the group's first element, as the CPU keeps it
    invstd_out[group] = invstd;
  }

  P* y_packs = reinterpret_cast<P*>(y + offset);
  for (Index p = threadIdx.x; p < packs; p += blockDim.x) {
    P v;
    if constexpr (kOnChip) {
      v = staged[p];
    } else {
      v = x_packs[p];
    }
    // The channel of the pack's first element; the loop steps into the next channel when
    // the pack crosses one (only when H * W is not a multiple of V).
    const Index first = p * V;
    Index k = first / spatial;
    Index r = first - k * spatial;
    A scale = invstd * parameter_or(gamma, first_channel + k, A(1));
    A bias = parameter_or(beta, first_channel + k, A(0));
    P out;
#pragma unroll
    for (int j = 0; j < V; ++j) {
      if (r == spatial) {
        r = 0;
        ++k;
        scale = invstd * parameter_or(gamma, first_channel + k, A(1));
        bias = parameter_or(beta, first_channel + k, A(0));
      }
      A value = (widen(v.lane[j]) - shift - center) * scale + bias;
      if (relu) value = relu_of(value);
      out.lane[j] = narrow<T>(value);
      ++r;
    }
    y_packs[p] = out;
  }
}

// ---- backward -------------------------------------------------------------------------------------

// One block per (sample, group). Writes dx (when grad_x is not null) and, when
// channel_sum_d is not null, the per-(sample, channel) sums of d and d * xhat at
// [n * C + c]. kOnChip: x and dy are staged in dynamic shared memory (2 M sizeof(T) bytes).
template <class T, int V, bool kOnChip>
__global__ void __launch_bounds__(kMaxThreadsPerBlock)
    group_norm_backward_kernel(GroupNormShape shape, bool relu, const T* __restrict__ grad_y,
                               const T* __restrict__ x, const T* __restrict__ gamma, const T* __restrict__ beta,
                               const AccumulateType<T>* __restrict__ mean_in,
                               const AccumulateType<T>* __restrict__ invstd_in, T* __restrict__ grad_x,
                               AccumulateType<T>* __restrict__ channel_sum_d,
                               AccumulateType<T>* __restrict__ channel_sum_d_xhat) {
  using A = AccumulateType<T>;
  using P = Pack<T, V>;
  using Index = std::conditional_t<kOnChip, int, int64_t>;
  __shared__ SumPair<A> sum_scratch[kMaxWarpsPerBlock];
  __shared__ SumPair<A> part_scratch[kMaxWarpsPerBlock];

  const int64_t group = blockIdx.x;
  const int64_t n = group / shape.groups;
  const Index channels_per_group = static_cast<Index>(shape.channels / shape.groups);
  const Index spatial = static_cast<Index>(shape.spatial);
  const Index per_group = channels_per_group * spatial;
  const Index packs = per_group / V;
  const int64_t first_channel = (group % shape.groups) * channels_per_group;
  const int64_t offset = group * static_cast<int64_t>(per_group);
  // xhat = (x - shift - center) * invstd: the saved mean is relative to the group's first
  // element (kernels/cpu/group_norm.h), so x - shift is exact for inputs with a large mean.
  const A shift = widen(x[offset]);
  const A center = mean_in[group], invstd = invstd_in[group];
  const A count = static_cast<A>(per_group);

  // Where the group's x and dy are read from: shared memory once staged, else memory.
  const P* x_packs = reinterpret_cast<const P*>(x + offset);
  const P* dy_packs = reinterpret_cast<const P*>(grad_y + offset);
  if constexpr (kOnChip) {
    P* staged_x = dynamic_shared_memory<P>();
    P* staged_dy = staged_x + packs;
    for (Index p = threadIdx.x; p < packs; p += blockDim.x) {
      staged_x[p] = x_packs[p];
      staged_dy[p] = dy_packs[p];
    }
    x_packs = staged_x;
    dy_packs = staged_dy;
    __syncthreads();  // the channel phase reads elements other threads staged
  }
  const T* x_elements = reinterpret_cast<const T*>(x_packs);
  const T* dy_elements = reinterpret_cast<const T*>(dy_packs);

  // Phase 1, per channel: warp `warp` takes channel slot warp / warps_per_channel and
  // part warp % warps_per_channel of its H * W positions. With at least as many channels
  // as warps, each warp takes whole channels k = warp, warp + warps, ...
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int warps = blockDim.x / kWarpSize;
  const int warps_per_channel = channels_per_group < warps ? warps / static_cast<int>(channels_per_group) : 1;
  const int slots = warps / warps_per_channel;  // >= channels_per_group when warps_per_channel > 1
  const int slot = warp / warps_per_channel, part = warp % warps_per_channel;
  // This thread's share of the group sums of g = gamma_c d and g * xhat.
  A share_g = A(0), share_g_xhat = A(0);
  for (Index k = slot; k < channels_per_group; k += slots) {
    const int64_t c = first_channel + k;
    const A gamma_c = parameter_or(gamma, c, A(1)), beta_c = parameter_or(beta, c, A(0));
    A sum_d = A(0), sum_d_xhat = A(0);
    for (Index i = static_cast<Index>(part) * kWarpSize + lane; i < spatial;
         i += static_cast<Index>(warps_per_channel) * kWarpSize) {
      const Index e = k * spatial + i;
      const A xhat = (widen(x_elements[e]) - shift - center) * invstd;
      const A d = masked_gradient(widen(dy_elements[e]), xhat, gamma_c, beta_c, relu);
      sum_d += d;
      sum_d_xhat += d * xhat;
    }
    sum_d = warp_sum(sum_d);  // the k loop is uniform across the warp: all lanes are here
    sum_d_xhat = warp_sum(sum_d_xhat);
    if (lane == 0) {
      if (warps_per_channel == 1) {
        if (channel_sum_d != nullptr) {
          channel_sum_d[n * shape.channels + c] = sum_d;
          channel_sum_d_xhat[n * shape.channels + c] = sum_d_xhat;
        }
        share_g += gamma_c * sum_d;
        share_g_xhat += gamma_c * sum_d_xhat;
      } else {
        part_scratch[warp] = SumPair<A>{sum_d, sum_d_xhat};  // warp == slot * warps_per_channel + part
      }
    }
  }
  if (warps_per_channel > 1) {  // uniform over the block
    __syncthreads();
    if (static_cast<Index>(threadIdx.x) < channels_per_group) {  // here channels_per_group < warps <= 32: warp 0
      const Index k = static_cast<Index>(threadIdx.x);
      const int64_t c = first_channel + k;
      A sum_d = A(0), sum_d_xhat = A(0);
      for (int j = 0; j < warps_per_channel; ++j) {
        const SumPair<A> partial = part_scratch[k * warps_per_channel + j];
        sum_d += partial.first;
        sum_d_xhat += partial.second;
      }
      if (channel_sum_d != nullptr) {
        channel_sum_d[n * shape.channels + c] = sum_d;
        channel_sum_d_xhat[n * shape.channels + c] = sum_d_xhat;
      }
      const A gamma_c = parameter_or(gamma, c, A(1));
      share_g += gamma_c * sum_d;
      share_g_xhat += gamma_c * sum_d_xhat;
    }
  }
  const SumPair<A> totals = block_sum(SumPair<A>{share_g, share_g_xhat}, sum_scratch);
  const A mean_g = totals.first / count, mean_g_xhat = totals.second / count;
  if (grad_x == nullptr) return;  // uniform; no barrier follows

  // Phase 2: dx, pack by pack.
  P* dx_packs = reinterpret_cast<P*>(grad_x + offset);
  for (Index p = threadIdx.x; p < packs; p += blockDim.x) {
    const P xv = x_packs[p];
    const P dyv = dy_packs[p];
    const Index first = p * V;
    Index k = first / spatial;
    Index r = first - k * spatial;
    A gamma_c = parameter_or(gamma, first_channel + k, A(1));
    A beta_c = parameter_or(beta, first_channel + k, A(0));
    P out;
#pragma unroll
    for (int j = 0; j < V; ++j) {
      if (r == spatial) {
        r = 0;
        ++k;
        gamma_c = parameter_or(gamma, first_channel + k, A(1));
        beta_c = parameter_or(beta, first_channel + k, A(0));
      }
      const A xhat = (widen(xv.lane[j]) - shift - center) * invstd;
      const A g = gamma_c * masked_gradient(widen(dyv.lane[j]), xhat, gamma_c, beta_c, relu);
      out.lane[j] = narrow<T>(invstd * (g - mean_g - xhat * mean_g_xhat));
      ++r;
    }
    dx_packs[p] = out;
  }
}

// dgamma_c = sum_n channel_sum_d_xhat[n, c], dbeta_c = sum_n channel_sum_d[n, c]. Blocks of
// 32 x 8 threads: 32 consecutive channels (coalesced), the 8 rows take every 8th sample,
// and row 0 adds the 8 partials in order.
constexpr int kParameterRows = 8;

template <class T>
__global__ void __launch_bounds__(kWarpSize* kParameterRows)
    group_norm_parameter_gradients_kernel(int64_t batch, int64_t channels,
                                          const AccumulateType<T>* __restrict__ channel_sum_d,
                                          const AccumulateType<T>* __restrict__ channel_sum_d_xhat,
                                          T* __restrict__ grad_gamma, T* __restrict__ grad_beta) {
  using A = AccumulateType<T>;
  __shared__ A partial_d[kParameterRows][kWarpSize];
  __shared__ A partial_d_xhat[kParameterRows][kWarpSize];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kWarpSize + threadIdx.x;
  A sum_d = A(0), sum_d_xhat = A(0);
  if (c < channels) {
    for (int64_t n = threadIdx.y; n < batch; n += kParameterRows) {
      sum_d += channel_sum_d[n * channels + c];
      sum_d_xhat += channel_sum_d_xhat[n * channels + c];
    }
  }
  partial_d[threadIdx.y][threadIdx.x] = sum_d;
  partial_d_xhat[threadIdx.y][threadIdx.x] = sum_d_xhat;
  __syncthreads();
  if (threadIdx.y != 0 || c >= channels) return;
  for (int row = 1; row < kParameterRows; ++row) {
    sum_d += partial_d[row][threadIdx.x];
    sum_d_xhat += partial_d_xhat[row][threadIdx.x];
  }
  if (grad_gamma != nullptr) grad_gamma[c] = narrow<T>(sum_d_xhat);
  if (grad_beta != nullptr) grad_beta[c] = narrow<T>(sum_d);
}

// ---- host side ------------------------------------------------------------------------------------

void check_shape(const GroupNormShape& s) {
  if (s.batch < 0 || s.channels < 1 || s.spatial < 0 || s.groups < 1 || s.channels % s.groups != 0) {
    throw std::runtime_error("group_norm kernel: invalid shape (batch " + std::to_string(s.batch) + ", channels " +
                             std::to_string(s.channels) + ", spatial " + std::to_string(s.spatial) + ", groups " +
                             std::to_string(s.groups) + ")");
  }
  if (s.group_count() > INT_MAX) {
    throw std::runtime_error("group_norm kernel: " + std::to_string(s.group_count()) +
                             " (sample, group) pairs are more than one grid holds");
  }
}

// Threads per block: about four packs per thread, from 128 to 1024 (a multiple of 32, as
// block_sum requires).
int threads_for(int64_t packs) {
  int threads = 128;
  while (threads < kMaxThreadsPerBlock && static_cast<int64_t>(threads) * 4 < packs) threads *= 2;
  return threads;
}

bool fits_on_chip(size_t staged_bytes) { return staged_bytes + kStaticSharedBytes <= shared_memory_limit(); }

template <class T, int V>
void launch_forward(const GroupNormShape& s, const T* x, const T* gamma, const T* beta, double eps, bool relu, T* y,
                    AccumulateType<T>* mean, AccumulateType<T>* invstd, cudaStream_t stream) {
  using A = AccumulateType<T>;
  const int64_t per_group = s.group_size();
  const unsigned int blocks = static_cast<unsigned int>(s.group_count());
  const int threads = threads_for(per_group / V);
  const size_t staged_bytes = static_cast<size_t>(per_group) * sizeof(T);
  if (fits_on_chip(staged_bytes)) {
    auto* kernel = group_norm_forward_kernel<T, V, true>;
    allow_dynamic_shared_memory(kernel, staged_bytes);
    kernel<<<blocks, threads, staged_bytes, stream>>>(s, x, gamma, beta, static_cast<A>(eps), relu, y, mean, invstd);
    VISREP_CUDA_CHECK_LAUNCH("group_norm_forward_kernel (group on chip)");
  } else {
    group_norm_forward_kernel<T, V, false>
        <<<blocks, threads, 0, stream>>>(s, x, gamma, beta, static_cast<A>(eps), relu, y, mean, invstd);
    VISREP_CUDA_CHECK_LAUNCH("group_norm_forward_kernel (streamed)");
  }
}

template <class T, int V>
void launch_backward(const GroupNormShape& s, bool relu, const T* grad_y, const T* x, const T* gamma, const T* beta,
                     const AccumulateType<T>* mean, const AccumulateType<T>* invstd, T* grad_x,
                     AccumulateType<T>* channel_sum_d, AccumulateType<T>* channel_sum_d_xhat,
                     cudaStream_t stream) {
  const int64_t per_group = s.group_size();
  const unsigned int blocks = static_cast<unsigned int>(s.group_count());
  const int threads = threads_for(per_group / V);
  const size_t staged_bytes = 2 * static_cast<size_t>(per_group) * sizeof(T);
  if (fits_on_chip(staged_bytes)) {
    auto* kernel = group_norm_backward_kernel<T, V, true>;
    allow_dynamic_shared_memory(kernel, staged_bytes);
    kernel<<<blocks, threads, staged_bytes, stream>>>(s, relu, grad_y, x, gamma, beta, mean, invstd, grad_x,
                                                      channel_sum_d, channel_sum_d_xhat);
    VISREP_CUDA_CHECK_LAUNCH("group_norm_backward_kernel (group on chip)");
  } else {
    group_norm_backward_kernel<T, V, false><<<blocks, threads, 0, stream>>>(
        s, relu, grad_y, x, gamma, beta, mean, invstd, grad_x, channel_sum_d, channel_sum_d_xhat);
    VISREP_CUDA_CHECK_LAUNCH("group_norm_backward_kernel (streamed)");
  }
}

}  // namespace

template <class T>
bool group_norm_group_fits_on_chip(const GroupNormShape& shape, bool backward) {
  return fits_on_chip((backward ? 2 : 1) * static_cast<size_t>(shape.group_size()) * sizeof(T));
}

template <class T>
void group_norm_forward(const GroupNormForward<T>& a, cudaStream_t stream) {
  const GroupNormShape& s = a.shape;
  const T *x = a.x, *gamma = a.gamma, *beta = a.beta;
  const double eps = a.eps;
  const bool relu = a.relu;
  T* y = a.y;
  AccumulateType<T>* mean = a.mean;
  AccumulateType<T>* invstd = a.invstd;
  check_shape(s);
  if (s.group_count() == 0 || s.group_size() == 0) return;  // nothing to normalise (the engine never asks)
  constexpr int V = pack_width<T>();
  if (s.group_size() % V == 0 && aligned_to_pack(x) && aligned_to_pack(y)) {
    launch_forward<T, V>(s, x, gamma, beta, eps, relu, y, mean, invstd, stream);
  } else {
    launch_forward<T, 1>(s, x, gamma, beta, eps, relu, y, mean, invstd, stream);
  }
}

template <class T>
void group_norm_backward(const GroupNormBackward<T>& a, cudaStream_t stream) {
  using A = AccumulateType<T>;
  const GroupNormShape& s = a.shape;
  const bool relu = a.relu;
  const T *grad_y = a.grad_y, *x = a.x, *gamma = a.gamma, *beta = a.beta;
  const A *mean = a.mean, *invstd = a.invstd;
  T *grad_x = a.grad_x, *grad_gamma = a.grad_gamma, *grad_beta = a.grad_beta;
  check_shape(s);
  if (s.group_count() == 0 || s.group_size() == 0) {
    // No elements (batch 0 or no pixels): grad_x is empty, but the parameter gradients are
    // sums over nothing, zeros, as on the CPU; the op allocates them without initialising.
    const size_t parameter_bytes = static_cast<size_t>(s.channels) * sizeof(T);  // bfloat16 0 is all-zero bits too
    if (grad_gamma != nullptr) VISREP_CUDA_CHECK(cudaMemsetAsync(grad_gamma, 0, parameter_bytes, stream));
    if (grad_beta != nullptr) VISREP_CUDA_CHECK(cudaMemsetAsync(grad_beta, 0, parameter_bytes, stream));
    return;
  }
  const bool parameter_gradients = grad_gamma != nullptr || grad_beta != nullptr;
  if (grad_x == nullptr && !parameter_gradients) return;
  const size_t sums = parameter_gradients ? static_cast<size_t>(s.batch * s.channels) : 0;
  DeviceBuffer scratch(2 * sums * sizeof(A), current_device(), stream);
  A* channel_sum_d = parameter_gradients ? scratch.get<A>() : nullptr;
  A* channel_sum_d_xhat = parameter_gradients ? scratch.get<A>() + sums : nullptr;

  constexpr int V = pack_width<T>();
  if (s.group_size() % V == 0 && aligned_to_pack(x) && aligned_to_pack(grad_y) && aligned_to_pack(grad_x)) {
    launch_backward<T, V>(s, relu, grad_y, x, gamma, beta, mean, invstd, grad_x, channel_sum_d, channel_sum_d_xhat,
                          stream);
  } else {
    launch_backward<T, 1>(s, relu, grad_y, x, gamma, beta, mean, invstd, grad_x, channel_sum_d, channel_sum_d_xhat,
                          stream);
  }
  if (!parameter_gradients) return;
  const unsigned int blocks = static_cast<unsigned int>((s.channels + kWarpSize - 1) / kWarpSize);
  group_norm_parameter_gradients_kernel<T><<<blocks, dim3(kWarpSize, kParameterRows), 0, stream>>>(
      s.batch, s.channels, channel_sum_d, channel_sum_d_xhat, grad_gamma, grad_beta);
  VISREP_CUDA_CHECK_LAUNCH("group_norm_parameter_gradients_kernel");
}

#define VISREP_INSTANTIATE_GROUP_NORM(T)                                           \
  template void group_norm_forward<T>(const GroupNormForward<T>&, cudaStream_t);   \
  template void group_norm_backward<T>(const GroupNormBackward<T>&, cudaStream_t); \
  template bool group_norm_group_fits_on_chip<T>(const GroupNormShape&, bool);

VISREP_INSTANTIATE_GROUP_NORM(float)
VISREP_INSTANTIATE_GROUP_NORM(double)
VISREP_INSTANTIATE_GROUP_NORM(bfloat16)
#undef VISREP_INSTANTIATE_GROUP_NORM

}  // namespace visrep::kernels::cuda
