// Weight standardisation, the CUDA twins of kernels/cpu/weight_standardization.h (which
// specifies what they compute and lists the family's files): each row (output channel) of
// each weight in a list is standardised over its fan-in, forward and backward, one launch
// for up to kWeightStandardizationTensorsPerLaunch weights.
//
// Why one launch for many tensors: a convolution weight is small (BiT-R50x1's 53 weights
// hold 23.5 M values in all, 9.4 k to 2.4 M each), so a launch per weight costs more in
// launch latency and tail effect than in memory traffic; PyTorch's eager StdConv2d takes
// 70-100 us per convolution. Here the descriptors (pointers, rows, fan-in) travel as one
// kernel argument, the way PyTorch's and apex's multi_tensor_apply do, so there is no
// host-to-device copy either; the grid covers every row of every tensor, and each block
// finds its tensor by a binary search over the tensors' first blocks.
//
// Shape of the work: one warp per row, 8 rows per block. The fan-in of a BiT row is 64 to
// 4608 values (256 B to 18 KB in float32), read with 16-byte packs when the tensor's
// pointers are aligned and the fan-in is a multiple of the pack (all of BiT's but the
// 7x7x3 root). Forward, three passes over the row: the sum around a shift (the row's first
// value), the exact squared deviations, then the output; backward, two (the sums of g and
// g * w_hat, then dw). Only the first pass of each reaches HBM: the row was read a few
// microseconds earlier and the later passes hit L1/L2. Memory traffic: w read and w_hat
// written (forward); w and g read, dw written (backward).
#include "kernels/cuda/weight_standardization.h"

#include <cuda_runtime.h>

#include <climits>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/bfloat16.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/runtime.h"

namespace visrep::kernels::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;  // rows per block
constexpr int kThreads = kWarpsPerBlock * kWarpSize;
constexpr int kMaxTensors = kWeightStandardizationTensorsPerLaunch;

// Up to kMaxTensors descriptors and where each tensor's blocks start: tensor t owns blocks
// [first_block[t], first_block[t + 1]), and its row r is warp r % 8 of block first_block[t] + r / 8.
template <class Descriptor>
struct Batch {
  Descriptor tensors[kMaxTensors];
  int first_block[kMaxTensors + 1];
  int count;
};
// Kernel arguments are limited to 4 KiB on every CUDA version this code builds with.
static_assert(sizeof(Batch<WeightStandardizationBackward<double>>) + 64 <= 4096, "descriptors exceed 4 KiB");
static_assert(sizeof(Batch<WeightStandardizationForward<double>>) + 64 <= 4096, "descriptors exceed 4 KiB");

// The tensor whose blocks include `block`: the last t with first_block[t] <= block (the
// host leaves out empty tensors, so first_block is strictly increasing).
template <class Descriptor>
__device__ __forceinline__ int tensor_of_block(const Batch<Descriptor>& batch, int block) {
  int low = 0, high = batch.count - 1;
  while (low < high) {
    const int middle = (low + high + 1) / 2;
    if (batch.first_block[middle] <= block) {
      low = middle;
    } else {
      high = middle - 1;
    }
  }
  return low;
}

// ---- forward --------------------------------------------------------------------------------------

// One row of `fan_in` values: statistics, then the standardised row. V: values per pack
// (fan_in % V == 0 and both pointers aligned).
template <class T, int V>
__device__ __forceinline__ void standardize_row(const T* w, T* out, int64_t fan_in, AccumulateType<T> eps,
                                                int lane, AccumulateType<T>* mean_out,
                                                AccumulateType<T>* invstd_out) {
  using A = AccumulateType<T>;
  using P = Pack<T, V>;
  const int64_t packs = fan_in / V;
  const P* w_packs = reinterpret_cast<const P*>(w);
  const A count = static_cast<A>(fan_in);
  const A shift = widen(w[0]);  // the same address for every lane: one broadcast load
  A partial = A(0);
  for (int64_t p = lane; p < packs; p += kWarpSize) {
    const P v = w_packs[p];
#pragma unroll
    for (int j = 0; j < V; ++j) partial += widen(v.lane[j]) - shift;
  }
  const A center = warp_sum(partial) / count;
  A squares = A(0);
  for (int64_t p = lane; p < packs; p += kWarpSize) {
    const P v = w_packs[p];
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const A d = widen(v.lane[j]) - shift - center;
      squares += d * d;
    }
  }
  const A invstd = A(1) / sqrt(warp_sum(squares) / count + eps);
  P* out_packs = reinterpret_cast<P*>(out);
  for (int64_t p = lane; p < packs; p += kWarpSize) {
    const P v = w_packs[p];
    P result;
#pragma unroll
    for (int j = 0; j < V; ++j) result.lane[j] = narrow<T>((widen(v.lane[j]) - shift - center) * invstd);
    out_packs[p] = result;
  }
  if (lane == 0) {
    if (mean_out != nullptr) *mean_out = center;  // relative to w[0], as the CPU keeps it
    if (invstd_out != nullptr) *invstd_out = invstd;
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    weight_standardization_forward_kernel(const __grid_constant__ Batch<WeightStandardizationForward<T>> batch,
                                          AccumulateType<T> eps) {
  const int t = tensor_of_block(batch, static_cast<int>(blockIdx.x));
  const WeightStandardizationForward<T>& tensor = batch.tensors[t];
  const int64_t row = static_cast<int64_t>(static_cast<int>(blockIdx.x) - batch.first_block[t]) * kWarpsPerBlock +
                      threadIdx.x / kWarpSize;
  if (row >= tensor.rows) return;  // the whole warp: the tensor's last block may be partly empty
  const int lane = threadIdx.x % kWarpSize;
  const int64_t fan_in = tensor.fan_in;
  const T* w = tensor.weight + row * fan_in;
  T* out = tensor.standardized + row * fan_in;
  AccumulateType<T>* mean = tensor.mean != nullptr ? tensor.mean + row : nullptr;
  AccumulateType<T>* invstd = tensor.invstd != nullptr ? tensor.invstd + row : nullptr;
  constexpr int V = pack_width<T>();
  // Uniform over the warp (it depends on the tensor only): every row start is aligned when
  // the tensor's first is and fan_in is a multiple of V.
  if (fan_in % V == 0 && aligned_to_pack(tensor.weight) && aligned_to_pack(tensor.standardized)) {
    standardize_row<T, V>(w, out, fan_in, eps, lane, mean, invstd);
  } else {
    standardize_row<T, 1>(w, out, fan_in, eps, lane, mean, invstd);
  }
}

// ---- backward -------------------------------------------------------------------------------------

template <class T, int V>
__device__ __forceinline__ void standardize_row_backward(const T* w, const T* g, T* dw, int64_t fan_in,
                                                         AccumulateType<T> center,
                                                         AccumulateType<T> invstd, int lane) {
  using A = AccumulateType<T>;
  using P = Pack<T, V>;
  const int64_t packs = fan_in / V;
  const P* w_packs = reinterpret_cast<const P*>(w);
  const P* g_packs = reinterpret_cast<const P*>(g);
  const A count = static_cast<A>(fan_in);
  const A shift = widen(w[0]);  // the saved mean, `center`, is relative to the row's first value
  A sum_g = A(0), sum_g_what = A(0);
  for (int64_t p = lane; p < packs; p += kWarpSize) {
    const P wv = w_packs[p];
    const P gv = g_packs[p];
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const A w_hat = (widen(wv.lane[j]) - shift - center) * invstd;
      sum_g += widen(gv.lane[j]);
      sum_g_what += widen(gv.lane[j]) * w_hat;
    }
  }
  const A mean_g = warp_sum(sum_g) / count, mean_g_what = warp_sum(sum_g_what) / count;
  P* dw_packs = reinterpret_cast<P*>(dw);
  for (int64_t p = lane; p < packs; p += kWarpSize) {
    const P wv = w_packs[p];
    const P gv = g_packs[p];
    P result;
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const A w_hat = (widen(wv.lane[j]) - shift - center) * invstd;
      result.lane[j] = narrow<T>(invstd * (widen(gv.lane[j]) - mean_g - w_hat * mean_g_what));
    }
    dw_packs[p] = result;
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    weight_standardization_backward_kernel(const __grid_constant__ Batch<WeightStandardizationBackward<T>> batch) {
  const int t = tensor_of_block(batch, static_cast<int>(blockIdx.x));
  const WeightStandardizationBackward<T>& tensor = batch.tensors[t];
  const int64_t row = static_cast<int64_t>(static_cast<int>(blockIdx.x) - batch.first_block[t]) * kWarpsPerBlock +
                      threadIdx.x / kWarpSize;
  if (row >= tensor.rows) return;
  const int lane = threadIdx.x % kWarpSize;
  const int64_t fan_in = tensor.fan_in;
  const T* w = tensor.weight + row * fan_in;
  const T* g = tensor.grad_standardized + row * fan_in;
  T* dw = tensor.grad_weight + row * fan_in;
  const AccumulateType<T> center = tensor.mean[row], invstd = tensor.invstd[row];
  constexpr int V = pack_width<T>();
  if (fan_in % V == 0 && aligned_to_pack(tensor.weight) && aligned_to_pack(tensor.grad_standardized) &&
      aligned_to_pack(tensor.grad_weight)) {
    standardize_row_backward<T, V>(w, g, dw, fan_in, center, invstd, lane);
  } else {
    standardize_row_backward<T, 1>(w, g, dw, fan_in, center, invstd, lane);
  }
}

// ---- host side ------------------------------------------------------------------------------------

template <class Descriptor>
void check_descriptor(const Descriptor& tensor, int64_t index) {
  if (tensor.rows < 0 || tensor.fan_in < 0 || (tensor.rows > 0 && tensor.fan_in > 0 && tensor.weight == nullptr)) {
    throw std::runtime_error("weight_standardization kernel: tensor " + std::to_string(index) + " has " +
                             std::to_string(tensor.rows) + " rows of " + std::to_string(tensor.fan_in) +
                             " values and weight pointer " + (tensor.weight == nullptr ? "null" : "set"));
  }
}

// Packs the non-empty tensors into batches of at most kMaxTensors and calls launch(batch,
// blocks) for each.
template <class Descriptor, class Launch>
void for_each_batch(const Descriptor* tensors, int64_t count, Launch&& launch) {
  Batch<Descriptor> batch{};
  int64_t blocks = 0;
  const auto flush = [&] {
    if (batch.count == 0) return;
    batch.first_block[batch.count] = static_cast<int>(blocks);
    launch(batch, static_cast<unsigned int>(blocks));
    batch = Batch<Descriptor>{};
    blocks = 0;
  };
  for (int64_t i = 0; i < count; ++i) {
    const Descriptor& tensor = tensors[i];
    check_descriptor(tensor, i);
    if (tensor.rows == 0 || tensor.fan_in == 0) continue;  // nothing to standardise
    const int64_t tensor_blocks = (tensor.rows + kWarpsPerBlock - 1) / kWarpsPerBlock;
    if (tensor_blocks > INT_MAX) {
      throw std::runtime_error("weight_standardization kernel: tensor " + std::to_string(i) + " has " +
                               std::to_string(tensor.rows) + " rows, more than one grid holds");
    }
    if (batch.count == kMaxTensors || blocks + tensor_blocks > INT_MAX) flush();
    batch.tensors[batch.count] = tensor;
    batch.first_block[batch.count] = static_cast<int>(blocks);
    ++batch.count;
    blocks += tensor_blocks;
  }
  flush();
}

}  // namespace

template <class T>
void weight_standardization_forward(const WeightStandardizationForward<T>* tensors, int64_t count, double eps,
                                    cudaStream_t stream) {
  for_each_batch(tensors, count, [&](const Batch<WeightStandardizationForward<T>>& batch, unsigned int blocks) {
    weight_standardization_forward_kernel<T>
        <<<blocks, kThreads, 0, stream>>>(batch, static_cast<AccumulateType<T>>(eps));
    VISREP_CUDA_CHECK_LAUNCH("weight_standardization_forward_kernel");
  });
}

template <class T>
void weight_standardization_backward(const WeightStandardizationBackward<T>* tensors, int64_t count,
                                     cudaStream_t stream) {
  for_each_batch(tensors, count, [&](const Batch<WeightStandardizationBackward<T>>& batch, unsigned int blocks) {
    weight_standardization_backward_kernel<T><<<blocks, kThreads, 0, stream>>>(batch);
    VISREP_CUDA_CHECK_LAUNCH("weight_standardization_backward_kernel");
  });
}

#define VISREP_INSTANTIATE_WEIGHT_STANDARDIZATION(T)                                                          \
  template void weight_standardization_forward<T>(const WeightStandardizationForward<T>*, int64_t, double,    \
                                                  cudaStream_t);                                              \
  template void weight_standardization_backward<T>(const WeightStandardizationBackward<T>*, int64_t, cudaStream_t);

VISREP_INSTANTIATE_WEIGHT_STANDARDIZATION(float)
VISREP_INSTANTIATE_WEIGHT_STANDARDIZATION(double)
VISREP_INSTANTIATE_WEIGHT_STANDARDIZATION(bfloat16)
#undef VISREP_INSTANTIATE_WEIGHT_STANDARDIZATION

}  // namespace visrep::kernels::cuda
