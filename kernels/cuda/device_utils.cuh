// What the CUDA kernel files share, in the spirit of llm.c's cuda_utils.cuh and ggml-cuda's
// common.cuh: warp constants, warp and block reductions, Welford's running statistics and
// Chan et al.'s merge, 16-byte packed loads, the element conversions to and from the
// accumulate type (bfloat16 included), and dynamic shared memory with its opt-in.
//
// bfloat16 on the device is visrep::bfloat16 (kernels/bfloat16.h), the same type the host
// and the kernels' signatures use: one type, one conversion rule on both devices (round to
// nearest even, NaN kept quiet with its sign), so a CUDA result can be bit-identical to the
// CPU's. Only the tensor-core fragments of nvcuda::wmma need CUDA's __nv_bfloat16: they see
// the same 16 bits through wmma_pointer().
//
// The reductions fix their order (the butterfly below, the per-warp partials added in warp
// order): the parity tolerances of the kernels that use them assume it.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "kernels/accumulate_type.h"
#include "kernels/bfloat16.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/runtime.h"

namespace visrep::kernels::cuda {

inline constexpr int kWarpSize = 32;
inline constexpr unsigned int kFullMask = 0xffffffffu;
inline constexpr int kMaxThreadsPerBlock = 1024;
inline constexpr int kMaxWarpsPerBlock = kMaxThreadsPerBlock / kWarpSize;

// ---- conversions ------------------------------------------------------------------------------

// An element in its accumulate type (kernels/accumulate_type.h): exact.
template <class T>
__device__ __forceinline__ AccumulateType<T> widen(T value) {
  if constexpr (std::is_same_v<T, bfloat16>) {
    return static_cast<float>(value);
  } else {
    return value;
  }
}

// An accumulated value back to the element type T, rounding to nearest even.
template <class T, class A>
__device__ __forceinline__ T narrow(A value) {
  if constexpr (std::is_same_v<T, bfloat16>) {
    return bfloat16(static_cast<float>(value));
  } else {
    return static_cast<T>(value);
  }
}

// visrep::bfloat16 storage as the __nv_bfloat16 that nvcuda::wmma's bf16 fragments load
// (the same 16 bits).
static_assert(sizeof(bfloat16) == sizeof(__nv_bfloat16) && alignof(bfloat16) == alignof(__nv_bfloat16));
__device__ __forceinline__ const __nv_bfloat16* wmma_pointer(const bfloat16* pointer) {
  return reinterpret_cast<const __nv_bfloat16*>(pointer);
}
__device__ __forceinline__ const float* wmma_pointer(const float* pointer) { return pointer; }

// ---- warp and block reductions ------------------------------------------------------------------

// Butterfly reduction: every lane ends with combine over the 32 lanes, the same bits in each.
// All 32 lanes of the warp must call it.
template <class A, class Combine>
__device__ __forceinline__ A warp_all_reduce(A value, Combine combine) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    value = combine(value, __shfl_xor_sync(kFullMask, value, offset));
  }
  return value;
}

template <class A>
__device__ __forceinline__ A warp_sum(A value) {
  return warp_all_reduce(value, [](A a, A b) { return a + b; });
}

// Tree reduction toward lane 0 (the total is in lane 0 only). shuffle_down(value, offset)
// must exist for A: the one below for arithmetic types, or an overload beside A's own type.
template <class T, std::enable_if_t<std::is_arithmetic_v<T>, int> = 0>
__device__ __forceinline__ T shuffle_down(T value, int offset) {
  return __shfl_down_sync(kFullMask, value, offset);
}

template <class A, class Combine>
__device__ __forceinline__ A warp_reduce_to_lane_zero(A value, Combine combine) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) value = combine(value, shuffle_down(value, offset));
  return value;
}

template <class A>
struct SumPair {
  A first;
  A second;
};

// Sums a pair over the block; every thread receives the same totals (each warp adds the
// per-warp partials in the same order). blockDim.x must be a multiple of 32 and every
// thread of the block must call it. Starts with a barrier, so `scratch` (kMaxWarpsPerBlock
// entries) may be reused by consecutive calls, and it also orders any shared-memory writes
// made before the call.
template <class A>
__device__ SumPair<A> block_sum(SumPair<A> value, SumPair<A>* scratch) {
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int warps = blockDim.x / kWarpSize;
  value.first = warp_sum(value.first);
  value.second = warp_sum(value.second);
  __syncthreads();
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  SumPair<A> total{A(0), A(0)};
  if (lane < warps) total = scratch[lane];
  total.first = warp_sum(total.first);
  total.second = warp_sum(total.second);
  return total;
}

// ---- Welford ----------------------------------------------------------------------------------

// Welford's running (count, mean, sum of squared deviations) of a stream of values (Welford
// 1962; Knuth TAOCP vol. 2, 4.2.2), and Chan, Golub & LeVeque's update for merging two of
// them (1979): the variance of a group too large to stage, in one pass.
template <class A>
struct Welford {
  A count;
  A mean;
  A m2;
};

template <class A>
__device__ __forceinline__ void welford_add(Welford<A>& running, A value) {
  running.count += A(1);
  const A delta = value - running.mean;
  running.mean += delta / running.count;
  running.m2 += delta * (value - running.mean);
}

template <class A>
__device__ __forceinline__ Welford<A> welford_merge(Welford<A> a, Welford<A> b) {
  if (b.count == A(0)) return a;
  if (a.count == A(0)) return b;
  const A count = a.count + b.count;
  const A delta = b.mean - a.mean;
  const A weight_b = b.count / count;
  return {count, a.mean + delta * weight_b, a.m2 + b.m2 + delta * delta * a.count * weight_b};
}

// Merges every thread's Welford over the block, in a fixed order (down each warp, then warp
// 0, 1, ... in turn); every thread receives the result. `scratch` holds kMaxWarpsPerBlock + 1
// entries. Called by every thread of the block, once per kernel.
template <class A>
__device__ Welford<A> block_welford(Welford<A> value, Welford<A>* scratch) {
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int warps = blockDim.x / kWarpSize;
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    const Welford<A> other{__shfl_down_sync(kFullMask, value.count, offset),
                           __shfl_down_sync(kFullMask, value.mean, offset),
                           __shfl_down_sync(kFullMask, value.m2, offset)};
    if (lane + offset < kWarpSize) value = welford_merge(value, other);
  }
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  if (threadIdx.x == 0) {
    Welford<A> total = scratch[0];
    for (int w = 1; w < warps; ++w) total = welford_merge(total, scratch[w]);
    scratch[kMaxWarpsPerBlock] = total;
  }
  __syncthreads();
  return scratch[kMaxWarpsPerBlock];
}

// ---- packed loads -------------------------------------------------------------------------------

// V consecutive elements, aligned so that one 16-byte load or store moves them all.
template <class T, int V>
struct alignas(sizeof(T) * V) Pack {
  T lane[V];
};

// The elements of T in one 16-byte pack.
template <class T>
constexpr int pack_width() {
  return static_cast<int>(16 / sizeof(T));
}

// Whether `pointer` may be read or written in 16-byte packs (null counts as aligned: an
// absent operand does not decide the path).
__host__ __device__ __forceinline__ bool aligned_to_pack(const void* pointer) {
  return reinterpret_cast<uintptr_t>(pointer) % 16 == 0;
}

// ---- shared memory ------------------------------------------------------------------------------

// The block's dynamic shared memory (the launch's third argument), 128-byte aligned (what
// the tensor-core fragments need; enough for every packed access).
template <class U>
__device__ __forceinline__ U* dynamic_shared_memory() {
  extern __shared__ __align__(128) unsigned char visrep_dynamic_shared_memory[];
  return reinterpret_cast<U*>(visrep_dynamic_shared_memory);
}

// Above 48 KiB a kernel must opt in to its dynamic shared memory; the call is cheap, so it
// is made before each launch that needs it rather than cached.
template <class Kernel>
void allow_dynamic_shared_memory(Kernel* kernel, size_t bytes) {
  if (bytes > 48 * 1024) {
    VISREP_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  }
}

// The most dynamic shared memory one block of the current device may use, with the opt-in.
inline size_t shared_memory_limit() {
  int bytes = 0;
  VISREP_CUDA_CHECK(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, current_device()));
  return static_cast<size_t>(bytes);
}

}  // namespace visrep::kernels::cuda
