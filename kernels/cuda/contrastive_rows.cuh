// The O(C x D) steps around the tile kernels of the contrastive losses: L2 normalisation of
// the rows (forward and backward) and the final mean over the anchors. Each reads and
// writes every row once; next to the O(C^2 D) tile work they are noise.
// - normalize_rows_kernel: one warp per row: sum of squares (warp shuffles), then
//   z = h / max(||h||, eps) stored in the operand type (float, double or bfloat16) and ||h||.
// - normalize_backward_kernel: one warp per row: dh = (dz - z (z . dz)) / ||h|| (dz / eps
//   where the norm was clamped), with z recomputed from h in the statistics type.
// - finalize_loss_kernel: one block sums the per-anchor losses in double in a fixed order
//   (deterministic) and counts the anchors with positives.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/device_utils.cuh"

namespace visrep::kernels::cuda::contrastive_detail {

constexpr int kRowThreads = 256;  // 8 warps, one row each
constexpr int kRowsPerBlock = kRowThreads / 32;

__device__ __forceinline__ float square_root(float v) { return sqrtf(v); }
__device__ __forceinline__ double square_root(double v) { return sqrt(v); }

// Row j < columns of [h; extra] -> z[j], norm[j]; the first j whose sum of squares is not
// finite (a NaN/Inf input, or an overflow) is atomicMin'ed into first_non_finite_row[0], a
// deferred check's slot (deferred_errors.h).
template <class T, class Stat>
__global__ void __launch_bounds__(kRowThreads)
    normalize_rows_kernel(const T* h, const T* extra, int64_t rows, int64_t columns, int64_t dim, Stat eps, T* z,
                          Stat* norm, long long* first_non_finite_row) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = int64_t{gridDim.x} * kRowsPerBlock;
  // The row index is the same for the 32 lanes of a warp: whole warps enter the loop.
  for (int64_t j = int64_t{blockIdx.x} * kRowsPerBlock + threadIdx.x / 32; j < columns; j += warps) {
    const T* source = j < rows ? h + j * dim : extra + (j - rows) * dim;
    Stat squares = 0;
    for (int64_t d = lane; d < dim; d += 32) {
      const Stat v = widen(source[d]);
      squares += v * v;
    }
    squares = warp_sum(squares);
    if (!isfinite(squares) && lane == 0) atomicMin(first_non_finite_row, static_cast<long long>(j));
    const Stat length = square_root(squares);
    const Stat scale = Stat(1) / (length > eps ? length : eps);
    for (int64_t d = lane; d < dim; d += 32) z[j * dim + d] = narrow<T>(widen(source[d]) * scale);
    if (lane == 0) norm[j] = length;
  }
}

// grad_z (wanted x dim, the tile kernels' output) -> grad_h (rows x dim) and, when wanted >
// rows, grad_extra.
template <class T, class Stat>
__global__ void __launch_bounds__(kRowThreads)
    normalize_backward_kernel(const T* h, const T* extra, const Stat* norm, const Stat* grad_z, int64_t rows,
                              int64_t wanted, int64_t dim, Stat eps, T* grad_h, T* grad_extra) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = int64_t{gridDim.x} * kRowsPerBlock;
  for (int64_t j = int64_t{blockIdx.x} * kRowsPerBlock + threadIdx.x / 32; j < wanted; j += warps) {
    const T* source = j < rows ? h + j * dim : extra + (j - rows) * dim;
    T* out = j < rows ? grad_h + j * dim : grad_extra + (j - rows) * dim;
    const Stat* g = grad_z + j * dim;
    const Stat length = norm[j];
    if (length > eps) {
      const Stat scale = Stat(1) / length;
      Stat projection = 0;  // z . dz
      for (int64_t d = lane; d < dim; d += 32) projection += widen(source[d]) * scale * g[d];
      projection = warp_sum(projection);
      for (int64_t d = lane; d < dim; d += 32)
        out[d] = narrow<T>((g[d] - widen(source[d]) * scale * projection) * scale);
    } else {
      for (int64_t d = lane; d < dim; d += 32) out[d] = narrow<T>(g[d] / eps);
    }
  }
}

// loss = mean over anchors with positives of -loss_scale (positive_sum / count - lse); 0
// when there are none. Launched as one block of kRowThreads with kFinalizeSharedBytes.
constexpr size_t kFinalizeSharedBytes = kRowThreads * (sizeof(double) + sizeof(int64_t));

template <class Stat>
__global__ void __launch_bounds__(kRowThreads)
    finalize_loss_kernel(const Stat* log_sum_exp, const Stat* positive_sum, const int32_t* positive_count,
                         int64_t anchors, double loss_scale, Stat* loss, int32_t* counted_anchors) {
  double* totals = dynamic_shared_memory<double>();
  int64_t* counts = reinterpret_cast<int64_t*>(dynamic_shared_memory<unsigned char>() + kRowThreads * sizeof(double));
  double total = 0.0;
  int64_t count = 0;
  for (int64_t i = threadIdx.x; i < anchors; i += kRowThreads) {
    const int32_t positives = positive_count[i];
    if (positives == 0) continue;
    total += -loss_scale * (static_cast<double>(positive_sum[i]) / positives - static_cast<double>(log_sum_exp[i]));
    ++count;
  }
  totals[threadIdx.x] = total;
  counts[threadIdx.x] = count;
  __syncthreads();
  for (int stride = kRowThreads / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) {
      totals[threadIdx.x] += totals[threadIdx.x + stride];
      counts[threadIdx.x] += counts[threadIdx.x + stride];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    *loss = static_cast<Stat>(counts[0] > 0 ? totals[0] / static_cast<double>(counts[0]) : 0.0);
    *counted_anchors = static_cast<int32_t>(counts[0]);
  }
}

}  // namespace visrep::kernels::cuda::contrastive_detail
