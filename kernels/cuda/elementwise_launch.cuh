// The launch machinery shared by the elementwise CUDA kernels (elementwise.cu, copy.cu):
// one thread per element (or per 16-byte pack of elements), grid-stride loops, and two
// ways to find an element's operands.
//
//   contiguous path  every operand is either contiguous or a broadcast scalar (x + 2.0,
//                    x * bias_scalar). Each thread moves 16 bytes per operand and step
//                    (float4-sized Packs: one LDG.128/STG.128) when every pointer is aligned
//                    to the pack, and one element at a time otherwise (a view that starts
//                    one element into its storage) or for the last count % V elements.
//   strided path     anything else (broadcasting, transposes, slices). The host first
//                    merges dimensions exactly as the CPU loop does (cpu::coalesce), so a
//                    contiguous-in-blocks operand costs as few divisions as possible; each
//                    thread then turns its linear index into every operand's offset with
//                    one div/mod per remaining dimension, in 32-bit arithmetic when every
//                    offset fits (64-bit division is several times slower on the GPU).
//
// Memory traffic: each input element is read once and each output element written once,
// so these kernels are bandwidth-bound; the contiguous path is the one that should reach
// the device-to-device copy's bandwidth (benchmarks/bench_elementwise.cpp measures it).
//
// An "Op" is a small struct holding the operand pointers and the per-element function:
//   at(offsets)   computes one element of the strided path from the operands' offsets,
//   pack<V>(i)    computes elements i .. i+V-1 of the contiguous path,
//   aligned_for(V) (host) says whether every non-broadcast pointer is aligned for pack<V>,
//   kVector       the pack width that makes the widest operand move 16 bytes.
#pragma once

#include <cuda_runtime.h>

#include <array>
#include <climits>
#include <cstddef>
#include <cstdint>

#include "kernels/cpu/strided_loop.h"
#include "kernels/cuda/runtime.h"
#include "kernels/strided_layout.h"

namespace visrep::kernels::cuda::elementwise_detail {

// ---- packs ------------------------------------------------------------------------------

// V consecutive elements, aligned so that one load or store instruction moves them all.
template <class T, int V>
struct alignas(sizeof(T) * V) Pack {
  T lane[V];
};

// The number of elements of the widest of the types that fill 16 bytes.
template <class... Types>
constexpr int vector_width() {
  size_t widest = 1;
  ((widest = sizeof(Types) > widest ? sizeof(Types) : widest), ...);
  return static_cast<int>(16 / widest);
}

template <class T>
bool aligned_for_pack(const T* pointer, int width) {
  return reinterpret_cast<uintptr_t>(pointer) % (sizeof(T) * static_cast<size_t>(width)) == 0;
}

// Elements i .. i+V-1 of a contiguous operand, or V copies of the single element of a
// broadcast one (stride 0: the same address for every element).
template <int V, class T>
__device__ __forceinline__ Pack<T, V> load_pack(const T* data, bool broadcast, int64_t i) {
  if (broadcast) {
    Pack<T, V> result;
    const T value = data[0];
#pragma unroll
    for (int j = 0; j < V; ++j) result.lane[j] = value;
    return result;
  }
  return *reinterpret_cast<const Pack<T, V>*>(data + i);
}

template <int V, class T>
__device__ __forceinline__ void store_pack(T* data, int64_t i, const Pack<T, V>& value) {
  *reinterpret_cast<Pack<T, V>*>(data + i) = value;
}

// ---- the operands of 0 to 3 inputs ---------------------------------------------------------
// Operand 0 is always the output; inputs follow in order.

template <class Out, class Function>
struct Map0 {
  Function f;
  Out* out;
  static constexpr int kVector = vector_width<Out>();
  bool aligned_for(int width) const { return aligned_for_pack(out, width); }
  template <class Index>
  __device__ __forceinline__ void at(const Index (&o)[1]) const {
    out[o[0]] = f();
  }
  template <int V>
  __device__ __forceinline__ void pack(int64_t i) const {
    Pack<Out, V> result;
#pragma unroll
    for (int j = 0; j < V; ++j) result.lane[j] = f();
    store_pack<V>(out, i, result);
  }
};

template <class Out, class In, class Function>
struct Map1 {
  Function f;
  Out* out;
  const In* x;
  bool x_broadcast;
  static constexpr int kVector = vector_width<Out, In>();
  bool aligned_for(int width) const {
    return aligned_for_pack(out, width) && (x_broadcast || aligned_for_pack(x, width));
  }
  template <class Index>
  __device__ __forceinline__ void at(const Index (&o)[2]) const {
    out[o[0]] = f(x[o[1]]);
  }
  template <int V>
  __device__ __forceinline__ void pack(int64_t i) const {
    const Pack<In, V> xs = load_pack<V>(x, x_broadcast, i);
    Pack<Out, V> result;
#pragma unroll
    for (int j = 0; j < V; ++j) result.lane[j] = f(xs.lane[j]);
    store_pack<V>(out, i, result);
  }
};

template <class Out, class InA, class InB, class Function>
struct Map2 {
  Function f;
  Out* out;
  const InA* a;
  const InB* b;
  bool a_broadcast, b_broadcast;
  static constexpr int kVector = vector_width<Out, InA, InB>();
  bool aligned_for(int width) const {
    return aligned_for_pack(out, width) && (a_broadcast || aligned_for_pack(a, width)) &&
           (b_broadcast || aligned_for_pack(b, width));
  }
  template <class Index>
  __device__ __forceinline__ void at(const Index (&o)[3]) const {
    out[o[0]] = f(a[o[1]], b[o[2]]);
  }
  template <int V>
  __device__ __forceinline__ void pack(int64_t i) const {
    const Pack<InA, V> as = load_pack<V>(a, a_broadcast, i);
    const Pack<InB, V> bs = load_pack<V>(b, b_broadcast, i);
    Pack<Out, V> result;
#pragma unroll
    for (int j = 0; j < V; ++j) result.lane[j] = f(as.lane[j], bs.lane[j]);
    store_pack<V>(out, i, result);
  }
};

template <class Out, class InA, class InB, class InC, class Function>
struct Map3 {
  Function f;
  Out* out;
  const InA* a;
  const InB* b;
  const InC* c;
  bool a_broadcast, b_broadcast, c_broadcast;
  static constexpr int kVector = vector_width<Out, InA, InB, InC>();
  bool aligned_for(int width) const {
    return aligned_for_pack(out, width) && (a_broadcast || aligned_for_pack(a, width)) &&
           (b_broadcast || aligned_for_pack(b, width)) && (c_broadcast || aligned_for_pack(c, width));
  }
  template <class Index>
  __device__ __forceinline__ void at(const Index (&o)[4]) const {
    out[o[0]] = f(a[o[1]], b[o[2]], c[o[3]]);
  }
  template <int V>
  __device__ __forceinline__ void pack(int64_t i) const {
    const Pack<InA, V> as = load_pack<V>(a, a_broadcast, i);
    const Pack<InB, V> bs = load_pack<V>(b, b_broadcast, i);
    const Pack<InC, V> cs = load_pack<V>(c, c_broadcast, i);
    Pack<Out, V> result;
#pragma unroll
    for (int j = 0; j < V; ++j) result.lane[j] = f(as.lane[j], bs.lane[j], cs.lane[j]);
    store_pack<V>(out, i, result);
  }
};

// ---- the plan: which path, and the strided path's offsets -----------------------------------

template <size_t N>
struct Plan {
  cpu::CoalescedLoop<N> loop;
  int64_t count = 0;        // elements of the output
  bool contiguous = false;  // the contiguous path applies
  bool broadcast[N] = {};   // on the contiguous path: operand k is one element read for all
};

// layouts[0] is the output; all layouts have its sizes (broadcast inputs have stride 0).
template <size_t N>
Plan<N> make_plan(const std::array<const StridedLayout*, N>& layouts) {
  Plan<N> plan;
  plan.loop = cpu::coalesce<N>(layouts);
  plan.count = layouts[0]->numel();
  if (plan.loop.ndim == 0) {  // one element (every size is 1): offset 0 in every operand
    plan.contiguous = true;
    return plan;
  }
  if (plan.loop.ndim == 1 && plan.loop.strides[0][0] == 1) {
    plan.contiguous = true;
    for (size_t k = 1; k < N; ++k) {
      const int64_t stride = plan.loop.strides[k][0];
      if (stride != 0 && stride != 1) plan.contiguous = false;
      plan.broadcast[k] = stride == 0;
    }
  }
  return plan;
}

// Offsets of N operands from a linear index. Dimensions are stored innermost first so
// that the unrolled loop below reads the arrays at constant positions (they stay in the
// kernel's parameter space instead of being copied to local memory).
template <size_t N, class Index>
struct StridedOffsets {
  int ndim = 0;
  Index sizes[kMaxDims] = {};
  Index strides[N][kMaxDims] = {};

  __device__ __forceinline__ void compute(Index linear, Index (&offsets)[N]) const {
#pragma unroll
    for (size_t k = 0; k < N; ++k) offsets[k] = 0;
#pragma unroll
    for (int d = 0; d < kMaxDims; ++d) {
      if (d == ndim) break;
      const Index index = linear % sizes[d];
      linear /= sizes[d];
#pragma unroll
      for (size_t k = 0; k < N; ++k) offsets[k] += index * strides[k][d];
    }
  }
};

template <size_t N, class Index>
StridedOffsets<N, Index> make_offsets(const cpu::CoalescedLoop<N>& loop) {
  StridedOffsets<N, Index> result;
  result.ndim = loop.ndim;
  for (int d = 0; d < loop.ndim; ++d) {
    const int from = loop.ndim - 1 - d;  // innermost first
    result.sizes[d] = static_cast<Index>(loop.sizes[from]);
    for (size_t k = 0; k < N; ++k) result.strides[k][d] = static_cast<Index>(loop.strides[k][from]);
  }
  return result;
}

// True when the element count and every operand's largest offset fit in int32.
template <size_t N>
bool fits_int32(const Plan<N>& plan) {
  if (plan.count > INT_MAX) return false;
  for (size_t k = 0; k < N; ++k) {
    int64_t largest = 0;
    for (int d = 0; d < plan.loop.ndim; ++d) largest += (plan.loop.sizes[d] - 1) * plan.loop.strides[k][d];
    if (largest > INT_MAX) return false;
  }
  return true;
}

// ---- kernels ---------------------------------------------------------------------------------

template <int V, class Op>
__global__ void contiguous_kernel(Op op, int64_t count) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t packs = count / V;
  for (int64_t p = first; p < packs; p += step) op.template pack<V>(p * V);
  // The last count % V elements (none when V == 1), one per thread.
  for (int64_t i = packs * V + first; i < count; i += step) op.template pack<1>(i);
}

template <size_t N, class Index, class Op>
__global__ void strided_kernel(Op op, StridedOffsets<N, Index> offsets, int64_t count) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += step) {
    Index at[N];
    offsets.compute(static_cast<Index>(i), at);
    op.at(at);
  }
}

// Runs `op` over every element described by `plan` (N operands, the output first).
template <size_t N, class Op>
void launch(const Op& op, const Plan<N>& plan, cudaStream_t stream) {
  if (plan.count == 0) return;
  if (plan.contiguous) {
    constexpr int V = Op::kVector;
    if (V > 1 && op.aligned_for(V)) {
      contiguous_kernel<V><<<grid_size_for(plan.count / V), kThreadsPerBlock, 0, stream>>>(op, plan.count);
      VISREP_CUDA_CHECK_LAUNCH("elementwise contiguous_kernel (vector)");
    } else {
      contiguous_kernel<1><<<grid_size_for(plan.count), kThreadsPerBlock, 0, stream>>>(op, plan.count);
      VISREP_CUDA_CHECK_LAUNCH("elementwise contiguous_kernel");
    }
    return;
  }
  if (fits_int32(plan)) {
    strided_kernel<N, int32_t><<<grid_size_for(plan.count), kThreadsPerBlock, 0, stream>>>(
        op, make_offsets<N, int32_t>(plan.loop), plan.count);
  } else {
    strided_kernel<N, int64_t><<<grid_size_for(plan.count), kThreadsPerBlock, 0, stream>>>(
        op, make_offsets<N, int64_t>(plan.loop), plan.count);
  }
  VISREP_CUDA_CHECK_LAUNCH("elementwise strided_kernel");
}

}  // namespace visrep::kernels::cuda::elementwise_detail
