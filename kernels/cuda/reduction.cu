// CUDA twins of kernels/cpu/reduction.h (which specifies them and lists the family's
// files): sum, mean, max, min, integer sum, variance and arg-max/min over the middle axis of
// a contiguous (outer, reduced, inner) block.
//
// Every reduction here is one pattern: load each element as an accumulator (double for
// float sums, as on the CPU; int64 for integer sums; the value itself for max/min; value
// and index for argmax), combine accumulators with an associative function, and finish
// each output from its total. Two kernels cover the two memory layouts:
//
//   rows     (inner == 1)  one warp per (row, chunk of the row): the 32 lanes read 32
//            consecutive elements per step (coalesced), then a shuffle tree combines them.
//   columns  (inner > 1)   a 32 x 8 block per (32 consecutive inner positions, chunk of the
//            reduced axis): lanes read 32 consecutive inner elements of one row (coalesced),
//            the 8 warps take every 8th row, and shared memory combines the 8 partials.
//
// When there are too few rows or columns to fill the GPU (sum of one long row, say), the
// reduced axis is split into chunks whose partial accumulators go to a scratch buffer and
// a second, tiny row pass combines them: every SM streams its share of the input once.
// Memory traffic is one read of the input plus a write of the outputs (and the partials,
// which are at most a few thousand accumulators per output row).
//
// Combine functions are commutative as well as associative, so the order of the tree does
// not change which element wins: argmax breaks ties towards the smaller index and lets the
// first NaN win, exactly the CPU's first-maximum rule. Sums differ from the CPU's serial
// order only by double rounding (far below float precision). Variance is exact two-pass
// in double like the CPU: a pass for the means, then one for the squared deviations.
#include "kernels/cuda/reduction.h"

#include <cuda_runtime.h>

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <type_traits>

#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/runtime.h"

namespace visrep::kernels::cuda {
namespace {

constexpr int kColumnWarps = 8;  // blockDim.y of the column kernel
// An H100 keeps 64 warps on each of its 132 SMs: that many warps, each with a few loads in
// flight, are what it takes to cover the memory latency at full bandwidth.
constexpr int64_t kTargetWarps = 132LL * 64;
constexpr int64_t kMaxSplits = 8192;

// ---- accumulators and how they combine ----------------------------------------------------------

template <class T>
__device__ __forceinline__ bool is_nan(T value) {
  return value != value;
}

// The extremum so far and where it was (argmax/argmin).
template <class T>
struct Extremum {
  T value;
  int64_t index;
};

template <class T>
__device__ __forceinline__ Extremum<T> shuffle_down(Extremum<T> item, int offset) {
  using cuda::shuffle_down;  // device_utils.cuh's, for the members (this overload hides it)
  return {shuffle_down(item.value, offset), shuffle_down(item.index, offset)};
}

template <class Acc>
struct Plus {
  __device__ __forceinline__ Acc operator()(Acc a, Acc b) const { return a + b; }
};

// Max or min where a NaN wins over any number.
template <class T, bool kMaximum>
struct PickExtreme {
  __device__ __forceinline__ T operator()(T a, T b) const {
    if (is_nan(a)) return a;
    if (is_nan(b)) return b;
    if constexpr (kMaximum) return b > a ? b : a;
    else return b < a ? b : a;
  }
};

// Argmax/argmin: a NaN beats every number (the first NaN, by index), a better value wins,
// and of two equal values the one with the smaller index.
template <class T, bool kMaximum>
struct PickExtremeIndex {
  __device__ __forceinline__ Extremum<T> operator()(Extremum<T> a, Extremum<T> b) const {
    const bool a_nan = is_nan(a.value), b_nan = is_nan(b.value);
    if (a_nan || b_nan) {
      if (a_nan && b_nan) return a.index < b.index ? a : b;
      return a_nan ? a : b;
    }
    const bool b_better = kMaximum ? b.value > a.value : b.value < a.value;
    if (b_better) return b;
    if (b.value == a.value && b.index < a.index) return b;
    return a;
  }
};

// ---- what to load and how to finish ----------------------------------------------------------
// A Load turns element `element` (flat index into x) of output `out_index`, at position r
// along the reduced axis, into an accumulator. A Finish writes output `out_index`.

template <class T>
struct LoadAsDouble {
  const T* x;
  __device__ __forceinline__ double operator()(int64_t element, int64_t, int64_t) const {
    return static_cast<double>(x[element]);
  }
};

template <class T>
struct LoadAsInt64 {
  const T* x;
  __device__ __forceinline__ int64_t operator()(int64_t element, int64_t, int64_t) const {
    return static_cast<int64_t>(x[element]);
  }
};

template <class T>
struct LoadValue {
  const T* x;
  __device__ __forceinline__ T operator()(int64_t element, int64_t, int64_t) const { return x[element]; }
};

template <class T>
struct LoadWithIndex {
  const T* x;
  __device__ __forceinline__ Extremum<T> operator()(int64_t element, int64_t, int64_t r) const {
    return {x[element], r};
  }
};

// (x - mean)^2 in double, the second pass of the variance.
template <class T>
struct LoadSquaredDeviation {
  const T* x;
  const double* means;
  __device__ __forceinline__ double operator()(int64_t element, int64_t out_index, int64_t) const {
    const double deviation = static_cast<double>(x[element]) - means[out_index];
    return deviation * deviation;
  }
};

// Partial accumulators of an earlier pass, read back for the final row pass.
template <class Acc>
struct LoadPartial {
  const Acc* partials;
  __device__ __forceinline__ Acc operator()(int64_t element, int64_t, int64_t) const { return partials[element]; }
};

// out = total / divisor, converted to Out (divisor 1 for sums, the count for means).
template <class Out, class Acc>
struct StoreScaled {
  Out* out;
  double divisor;
  __device__ __forceinline__ void operator()(int64_t out_index, Acc total) const {
    if constexpr (std::is_same_v<Acc, double>) out[out_index] = static_cast<Out>(total / divisor);
    else out[out_index] = static_cast<Out>(total);
  }
};

template <class T>
struct StoreIndex {
  int64_t* out;
  __device__ __forceinline__ void operator()(int64_t out_index, Extremum<T> total) const {
    out[out_index] = total.index;
  }
};

// Where a pass puts each (output, chunk) total: through the Finish when the reduced axis
// was not split, else into partials[out_index * splits + split].
template <class Acc, class Finish>
struct Sink {
  Finish finish;
  Acc* partials;  // null: finish directly
  int64_t splits;
  __device__ __forceinline__ void operator()(int64_t out_index, int64_t split, Acc total) const {
    if (partials == nullptr) finish(out_index, total);
    else partials[out_index * splits + split] = total;
  }
};

// ---- kernels ---------------------------------------------------------------------------------

// inner == 1: warp w handles (row, split) = (task / splits, task % splits) for task = w, w +
// warps, ...; the loop bounds are the same for all lanes of a warp, so the shuffles see
// every lane.
template <class Acc, class Load, class Combine, class Output>
__global__ void reduce_rows_kernel(Load load, Combine combine, Acc identity, Output output, int64_t rows,
                                   int64_t reduced, int64_t splits, int64_t chunk) {
  const int lane = static_cast<int>(threadIdx.x % kWarpSize);
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / kWarpSize);
  const int64_t first_warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarpSize;
  for (int64_t task = first_warp; task < rows * splits; task += warps) {
    const int64_t row = task / splits;
    const int64_t split = task % splits;
    const int64_t begin = split * chunk;
    const int64_t end = begin + chunk < reduced ? begin + chunk : reduced;
    Acc total = identity;
#pragma unroll 4
    for (int64_t r = begin + lane; r < end; r += kWarpSize) total = combine(total, load(row * reduced + r, row, r));
    total = warp_reduce_to_lane_zero(total, combine);
    if (lane == 0) output(row, split, total);
  }
}

// inner > 1: block (32, 8); tile t covers inner positions [32 (t % tiles_per_outer), +32)
// of outer row t / tiles_per_outer, and split blockIdx.y of the reduced axis.
template <class Acc, class Load, class Combine, class Output>
__global__ void reduce_columns_kernel(Load load, Combine combine, Acc identity, Output output, int64_t outer,
                                      int64_t reduced, int64_t inner, int64_t splits, int64_t chunk) {
  __shared__ Acc partial[kColumnWarps][kWarpSize];
  const int64_t tiles_per_outer = (inner + kWarpSize - 1) / kWarpSize;
  const int64_t split = blockIdx.y;
  const int64_t begin = split * chunk;
  const int64_t end = begin + chunk < reduced ? begin + chunk : reduced;
  for (int64_t tile = blockIdx.x; tile < outer * tiles_per_outer; tile += gridDim.x) {  // same for the whole block
    const int64_t o = tile / tiles_per_outer;
    const int64_t i = (tile % tiles_per_outer) * kWarpSize + threadIdx.x;
    Acc total = identity;
    if (i < inner) {
      for (int64_t r = begin + threadIdx.y; r < end; r += kColumnWarps) {
        total = combine(total, load((o * reduced + r) * inner + i, o * inner + i, r));
      }
    }
    partial[threadIdx.y][threadIdx.x] = total;
    __syncthreads();
    if (threadIdx.y == 0 && i < inner) {
      for (int w = 1; w < kColumnWarps; ++w) total = combine(total, partial[w][threadIdx.x]);
      output(o * inner + i, split, total);
    }
    __syncthreads();  // the next tile overwrites `partial`
  }
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// How many chunks to split the reduced axis into: enough (output, chunk) tasks to keep
// the GPU busy, but chunks of at least `min_chunk` elements, and at most kMaxSplits. A
// quarter of the target is already enough work to stream at full speed: no split (and no
// second pass) then.
int64_t choose_splits(int64_t tasks, int64_t target_tasks, int64_t reduced, int64_t min_chunk) {
  if (tasks * 4 >= target_tasks) return 1;
  int64_t splits = ceil_div(target_tasks, tasks > 0 ? tasks : 1);
  const int64_t by_size = ceil_div(reduced, min_chunk);
  if (splits > by_size) splits = by_size;
  if (splits > kMaxSplits) splits = kMaxSplits;
  return splits < 1 ? 1 : splits;
}

template <class Acc, class Load, class Combine, class Finish>
void launch_rows(Load load, Combine combine, Acc identity, Finish finish, Acc* partials, int64_t rows,
                 int64_t reduced, int64_t splits, cudaStream_t stream) {
  const int64_t chunk = ceil_div(reduced, splits);
  const Sink<Acc, Finish> sink{finish, partials, splits};
  const unsigned int blocks = grid_size_for(rows * splits * kWarpSize);
  reduce_rows_kernel<<<blocks, kThreadsPerBlock, 0, stream>>>(load, combine, identity, sink, rows, reduced, splits,
                                                                chunk);
  VISREP_CUDA_CHECK_LAUNCH("reduce_rows_kernel");
}

// Reduces x (outer, reduced, inner) into outer * inner outputs. Load, Combine and Finish
// as described above; `identity` is the accumulator of an empty range.
template <class Acc, class Load, class Combine, class Finish>
void run_reduction(Load load, Combine combine, Acc identity, Finish finish, int64_t outer, int64_t reduced,
                   int64_t inner, cudaStream_t stream) {
  const int64_t outputs = outer * inner;
  if (outputs == 0) return;
  int64_t splits = 1;
  if (inner == 1) {
    splits = choose_splits(outer, kTargetWarps, reduced, 16 * kWarpSize);
  } else {
    const int64_t tiles = outer * ceil_div(inner, kWarpSize);
    splits = choose_splits(tiles, kTargetWarps / kColumnWarps, reduced, 8 * kColumnWarps);
  }
  // The split count again from the chunk length, so that no chunk is empty.
  const int64_t chunk = ceil_div(reduced > 0 ? reduced : 1, splits);
  splits = ceil_div(reduced > 0 ? reduced : 1, chunk);

  DeviceBuffer scratch(splits > 1 ? static_cast<size_t>(outputs * splits) * sizeof(Acc) : 0, current_device(), stream);
  Acc* partials = splits > 1 ? scratch.get<Acc>() : nullptr;
  if (inner == 1) {
    launch_rows(load, combine, identity, finish, partials, outer, reduced, splits, stream);
  } else {
    const Sink<Acc, Finish> sink{finish, partials, splits};
    const int64_t tiles = outer * ceil_div(inner, kWarpSize);
    const unsigned int blocks_x = static_cast<unsigned int>(tiles < 65535 ? tiles : 65535);
    const dim3 grid(blocks_x, static_cast<unsigned int>(splits));
    const dim3 block(kWarpSize, kColumnWarps);
    reduce_columns_kernel<<<grid, block, 0, stream>>>(load, combine, identity, sink, outer, reduced, inner, splits,
                                                      chunk);
    VISREP_CUDA_CHECK_LAUNCH("reduce_columns_kernel");
  }
  if (splits > 1) {
    // partials is (outputs, splits), row-major: a row reduction of its own.
    launch_rows(LoadPartial<Acc>{partials}, combine, identity, finish, static_cast<Acc*>(nullptr), outputs, splits,
                int64_t{1}, stream);
  }
}

}  // namespace

template <class T>
void reduce(const Reduce<T>& a, cudaStream_t stream) {
  const ReduceOp op = a.op;
  const T* x = a.x;
  const int64_t outer = a.outer;
  const int64_t reduced = a.reduced;
  const int64_t inner = a.inner;
  T* out = a.out;
  constexpr T kInfinity = std::numeric_limits<T>::infinity();
  switch (op) {
    case ReduceOp::Sum:
      return run_reduction(LoadAsDouble<T>{x}, Plus<double>{}, 0.0, StoreScaled<T, double>{out, 1.0}, outer, reduced,
                           inner, stream);
    case ReduceOp::Mean:
      return run_reduction(LoadAsDouble<T>{x}, Plus<double>{}, 0.0,
                           StoreScaled<T, double>{out, static_cast<double>(reduced)}, outer, reduced, inner, stream);
    case ReduceOp::Max:
      return run_reduction(LoadValue<T>{x}, PickExtreme<T, true>{}, -kInfinity, StoreScaled<T, T>{out, 1.0}, outer,
                           reduced, inner, stream);
    case ReduceOp::Min:
      return run_reduction(LoadValue<T>{x}, PickExtreme<T, false>{}, kInfinity, StoreScaled<T, T>{out, 1.0}, outer,
                           reduced, inner, stream);
  }
  throw std::logic_error("reduce: unknown op");
}

template <class T>
void sum_integer(const SumInteger<T>& a, cudaStream_t stream) {
  run_reduction(LoadAsInt64<T>{a.x}, Plus<int64_t>{}, int64_t{0}, StoreScaled<int64_t, int64_t>{a.out, 1.0}, a.outer,
                a.reduced, a.inner, stream);
}

template <class T>
void variance(const Variance<T>& a, cudaStream_t stream) {
  const int64_t outputs = a.outer * a.inner;
  if (outputs == 0) return;
  // reduced <= correction divides by zero: NaN (or inf), as on the CPU.
  const double divisor = a.reduced - a.correction > 0 ? static_cast<double>(a.reduced - a.correction) : 0.0;
  DeviceBuffer means(static_cast<size_t>(outputs) * sizeof(double), current_device(), stream);
  run_reduction(LoadAsDouble<T>{a.x}, Plus<double>{}, 0.0,
                StoreScaled<double, double>{means.get<double>(), static_cast<double>(a.reduced)}, a.outer, a.reduced,
                a.inner, stream);
  run_reduction(LoadSquaredDeviation<T>{a.x, means.get<double>()}, Plus<double>{}, 0.0,
                StoreScaled<T, double>{a.out, divisor}, a.outer, a.reduced, a.inner, stream);
}

template <class T>
void arg_extremum(const ArgExtremum<T>& a, cudaStream_t stream) {
  constexpr T kInfinity = std::numeric_limits<T>::infinity();
  // The identity loses to every real element: a worse value, or an equal one (+-inf) with
  // a larger index.
  constexpr int64_t kNoIndex = std::numeric_limits<int64_t>::max();
  if (a.maximum) {
    run_reduction(LoadWithIndex<T>{a.x}, PickExtremeIndex<T, true>{}, Extremum<T>{-kInfinity, kNoIndex},
                  StoreIndex<T>{a.out}, a.outer, a.reduced, a.inner, stream);
  } else {
    run_reduction(LoadWithIndex<T>{a.x}, PickExtremeIndex<T, false>{}, Extremum<T>{kInfinity, kNoIndex},
                  StoreIndex<T>{a.out}, a.outer, a.reduced, a.inner, stream);
  }
}

template void reduce<float>(const Reduce<float>&, cudaStream_t);
template void reduce<double>(const Reduce<double>&, cudaStream_t);
template void variance<float>(const Variance<float>&, cudaStream_t);
template void variance<double>(const Variance<double>&, cudaStream_t);
template void arg_extremum<float>(const ArgExtremum<float>&, cudaStream_t);
template void arg_extremum<double>(const ArgExtremum<double>&, cudaStream_t);
template void sum_integer<int32_t>(const SumInteger<int32_t>&, cudaStream_t);
template void sum_integer<int64_t>(const SumInteger<int64_t>&, cudaStream_t);
template void sum_integer<uint8_t>(const SumInteger<uint8_t>&, cudaStream_t);

}  // namespace visrep::kernels::cuda
