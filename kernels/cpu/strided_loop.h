// The loop every elementwise CPU kernel shares: visit the elements of N operands that
// have the same sizes but their own strides (broadcast operands have stride 0), in
// row-major order, giving the callback each operand's memory offset.
//
// Dimensions are first coalesced (size-1 dimensions dropped, neighbours merged where every
// operand steps through them as one), so contiguous tensors become one long inner loop no
// matter their rank, which vectorises when its strides are 1 (or 0 for one broadcast
// operand). Rows of the outer dimensions are split across OpenMP threads.
#pragma once

#include <array>
#include <cstdint>

#include "kernels/strided_layout.h"

namespace visrep::kernels::cpu {

// Below this many elements the threads cost more than they save.
inline constexpr int64_t kParallelElements = 32768;

template <size_t N>
struct CoalescedLoop {
  int ndim = 0;
  int64_t sizes[kMaxDims];
  int64_t strides[N][kMaxDims];
};

template <size_t N>
CoalescedLoop<N> coalesce(const std::array<const StridedLayout*, N>& layouts) {
  const StridedLayout& shape = *layouts[0];
  CoalescedLoop<N> loop;
  for (int d = 0; d < shape.ndim; ++d) {
    if (shape.sizes[d] == 1) continue;
    bool merge = loop.ndim > 0;
    for (size_t k = 0; k < N && merge; ++k) {
      // The previous kept dimension steps exactly over this one in operand k.
      merge = loop.strides[k][loop.ndim - 1] == layouts[k]->strides[d] * shape.sizes[d];
    }
    if (merge) {
      loop.sizes[loop.ndim - 1] *= shape.sizes[d];
      for (size_t k = 0; k < N; ++k) loop.strides[k][loop.ndim - 1] = layouts[k]->strides[d];
    } else {
      loop.sizes[loop.ndim] = shape.sizes[d];
      for (size_t k = 0; k < N; ++k) loop.strides[k][loop.ndim] = layouts[k]->strides[d];
      ++loop.ndim;
    }
  }
  return loop;
}

// The inner loop over one tile, offsets[k] + i * inner_strides[k] for i < count. When every
// operand steps by 1 (contiguous tensors of one shape), or all but one, which stays put (a
// scalar broadcast: stride 0), the strides are compile-time constants and the loop
// vectorises; kSteady is that operand's index, -1 for none, -2 for the general case.
template <int kSteady, size_t N, class Body>
void run_inner(std::array<int64_t, N> offsets, const std::array<int64_t, N>& inner_strides, int64_t count,
               Body& body) {
  if constexpr (kSteady == -2) {
    for (int64_t i = 0; i < count; ++i) {
      body(offsets);
      for (size_t k = 0; k < N; ++k) offsets[k] += inner_strides[k];
    }
  } else {
    for (int64_t i = 0; i < count; ++i) {
      std::array<int64_t, N> at;
      for (size_t k = 0; k < N; ++k) at[k] = static_cast<int>(k) == kSteady ? offsets[k] : offsets[k] + i;
      body(at);
    }
  }
}

// Which run_inner the strides allow: -1 all unit, k: all unit but operand k's 0, -2 otherwise.
// The output (operand 0) is never the steady one.
template <size_t N>
int steady_operand(const std::array<int64_t, N>& inner_strides) {
  int steady = -1;
  for (size_t k = 0; k < N; ++k) {
    if (inner_strides[k] == 1) continue;
    if (inner_strides[k] != 0 || k == 0 || steady != -1) return -2;
    steady = static_cast<int>(k);
  }
  return steady;
}

// Calls body(offsets) once per element, where offsets[k] is the element's offset in
// operand k. All layouts must have the sizes of layouts[0].
template <size_t N, class Body>
void for_each_strided(const std::array<const StridedLayout*, N>& layouts, Body&& body) {
  CoalescedLoop<N> loop = coalesce(layouts);
  if (loop.ndim == 0) {  // a single element
    if (layouts[0]->numel() == 1) body(std::array<int64_t, N>{});
    return;
  }
  const int inner_dim = loop.ndim - 1;
  const int64_t inner = loop.sizes[inner_dim];
  int64_t outer = 1;
  for (int d = 0; d < inner_dim; ++d) outer *= loop.sizes[d];
  std::array<int64_t, N> inner_strides;
  for (size_t k = 0; k < N; ++k) inner_strides[k] = loop.strides[k][inner_dim];
  const int steady = steady_operand(inner_strides);

  // Work is split into tiles of at most kTile elements of one row, so a single long
  // contiguous row is shared between threads too.
  constexpr int64_t kTile = 8192;
  const int64_t tiles_per_row = (inner + kTile - 1) / kTile;
  const int64_t tiles = outer * tiles_per_row;
#pragma omp parallel for schedule(static) if (tiles > 1 && outer * inner >= kParallelElements)
  for (int64_t tile = 0; tile < tiles; ++tile) {
    const int64_t row = tile / tiles_per_row;
    const int64_t begin = (tile % tiles_per_row) * kTile;
    const int64_t end = begin + kTile < inner ? begin + kTile : inner;
    std::array<int64_t, N> offsets{};
    int64_t remainder = row;
    for (int d = inner_dim - 1; d >= 0; --d) {
      int64_t index = remainder % loop.sizes[d];
      remainder /= loop.sizes[d];
      for (size_t k = 0; k < N; ++k) offsets[k] += index * loop.strides[k][d];
    }
    for (size_t k = 0; k < N; ++k) offsets[k] += begin * inner_strides[k];
    switch (steady) {
      case -1: run_inner<-1>(offsets, inner_strides, end - begin, body); break;
      case 1: run_inner<1>(offsets, inner_strides, end - begin, body); break;
      case 2: if constexpr (N > 2) run_inner<2>(offsets, inner_strides, end - begin, body); break;
      case 3: if constexpr (N > 3) run_inner<3>(offsets, inner_strides, end - begin, body); break;
      default: run_inner<-2>(offsets, inner_strides, end - begin, body); break;
    }
  }
}

}  // namespace visrep::kernels::cpu
