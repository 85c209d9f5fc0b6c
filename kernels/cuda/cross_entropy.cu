// log_softmax along one axis of an (outer, classes, inner) view, its backward pass, and the
// negative log-likelihood loss with ignore_index and label smoothing; the CUDA twins of
// kernels/cpu/cross_entropy.h (which specifies them and lists the family's files).
//
// Shape of the work:
// - inner == 1 (softmax over the last axis: logits (N, C), the common case): one warp per
//   row, the 32 lanes striding over the row so every load is coalesced, the row's max and
//   sum combined by warp shuffles (no shared memory, no __syncthreads). A block of 256
//   threads holds 8 rows. The forward pass reads the row three times (max, sum of exp,
//   output), the second and third mostly from L1/L2, and writes it once; the backward pass
//   reads grad_y twice and y once and writes grad_x once.
// - inner > 1 (softmax over the channels of an NCHW tensor): one thread per (outer, inner)
//   column walking its classes serially; adjacent threads own adjacent inner positions, so
//   each step of the walk is a coalesced load across the warp.
// Both accumulate in T (float for float, double for double), where the CPU accumulates in
// double: float results agree with it to a few float ulps (~1e-7 relative), double ones to
// rounding (the reduction order differs).
// - nll_loss forward: one thread per row, computing exactly the CPU's double expression in
//   the CPU's order (bit-identical); the label-smoothing sum walks the row serially, which is
//   fine for a loss over a few thousand rows. nll_loss backward: one thread per element of
//   (batch, classes), again the CPU's expression. A target out of range (which the op
//   reports through a deferred check, deferred_errors.h) gives a NaN loss and is never read.
#include "kernels/cuda/cross_entropy.h"

#include <cuda_runtime.h>

#include <cstdint>
#include <limits>

#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/runtime.h"

namespace visrep::kernels::cuda {
namespace {

constexpr int kRowsPerBlock = kThreadsPerBlock / kWarpSize;  // one warp per row

__device__ __forceinline__ float maximum_of(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ double maximum_of(double a, double b) { return fmax(a, b); }
__device__ __forceinline__ float exponential(float v) { return expf(v); }
__device__ __forceinline__ double exponential(double v) { return exp(v); }
__device__ __forceinline__ float logarithm(float v) { return logf(v); }
__device__ __forceinline__ double logarithm(double v) { return log(v); }

// Every lane holds the warp's maximum. fmax ignores NaN, like the CPU's std::fmax.
template <class T>
__device__ T warp_max(T value) {
  return warp_all_reduce(value, [](T a, T b) { return maximum_of(a, b); });
}

// ---- log_softmax, inner == 1: a warp per row ----------------------------------------------

template <class T>
__global__ void log_softmax_forward_rows_kernel(const T* x, int64_t rows, int64_t classes, T* y) {
  const int lane = threadIdx.x % kWarpSize;
  const int64_t warp = blockIdx.x * int64_t{kRowsPerBlock} + threadIdx.x / kWarpSize;
  const int64_t warps = int64_t{gridDim.x} * kRowsPerBlock;
  // `row` is the same for all 32 lanes of a warp, so the whole warp enters the loop
  // together and the full-mask shuffles are legal.
  for (int64_t row = warp; row < rows; row += warps) {
    const T* in = x + row * classes;
    T* out = y + row * classes;
    T maximum = -INFINITY;
    for (int64_t c = lane; c < classes; c += kWarpSize) maximum = maximum_of(maximum, in[c]);
    maximum = warp_max(maximum);
    // A row of -inf (or of +inf) has no finite shift; 0 lets NaN/inf propagate, as on the CPU.
    const T shift = isfinite(maximum) ? maximum : T(0);
    T total = T(0);
    for (int64_t c = lane; c < classes; c += kWarpSize) total += exponential(in[c] - shift);
    total = warp_sum(total);
    const T log_total = shift + logarithm(total);
    for (int64_t c = lane; c < classes; c += kWarpSize) out[c] = in[c] - log_total;
  }
}

template <class T>
__global__ void log_softmax_backward_rows_kernel(const T* grad_y, const T* y, int64_t rows, int64_t classes,
                                                 T* grad_x) {
  const int lane = threadIdx.x % kWarpSize;
  const int64_t warp = blockIdx.x * int64_t{kRowsPerBlock} + threadIdx.x / kWarpSize;
  const int64_t warps = int64_t{gridDim.x} * kRowsPerBlock;
  for (int64_t row = warp; row < rows; row += warps) {  // warp-uniform, see above
    const T* dy = grad_y + row * classes;
    const T* out = y + row * classes;
    T* dx = grad_x + row * classes;
    T total = T(0);
    for (int64_t c = lane; c < classes; c += kWarpSize) total += dy[c];
    total = warp_sum(total);
    for (int64_t c = lane; c < classes; c += kWarpSize) dx[c] = dy[c] - exponential(out[c]) * total;
  }
}

// ---- log_softmax, inner > 1: a thread per (outer, inner) column ----------------------------

template <class T>
__global__ void log_softmax_forward_columns_kernel(const T* x, int64_t outer, int64_t classes, int64_t inner, T* y) {
  const int64_t columns = outer * inner;
  for (int64_t column = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; column < columns;
       column += int64_t{gridDim.x} * blockDim.x) {
    const int64_t o = column / inner, i = column % inner;
    const T* in = x + o * classes * inner + i;
    T* out = y + o * classes * inner + i;
    T maximum = -INFINITY;
    for (int64_t c = 0; c < classes; ++c) maximum = maximum_of(maximum, in[c * inner]);
    const T shift = isfinite(maximum) ? maximum : T(0);
    T total = T(0);
    for (int64_t c = 0; c < classes; ++c) total += exponential(in[c * inner] - shift);
    const T log_total = shift + logarithm(total);
    for (int64_t c = 0; c < classes; ++c) out[c * inner] = in[c * inner] - log_total;
  }
}

template <class T>
__global__ void log_softmax_backward_columns_kernel(const T* grad_y, const T* y, int64_t outer, int64_t classes,
                                                    int64_t inner, T* grad_x) {
  const int64_t columns = outer * inner;
  for (int64_t column = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; column < columns;
       column += int64_t{gridDim.x} * blockDim.x) {
    const int64_t o = column / inner, i = column % inner;
    const int64_t base = o * classes * inner + i;
    T total = T(0);
    for (int64_t c = 0; c < classes; ++c) total += grad_y[base + c * inner];
    for (int64_t c = 0; c < classes; ++c) {
      const int64_t at = base + c * inner;
      grad_x[at] = grad_y[at] - exponential(y[at]) * total;
    }
  }
}

// ---- nll_loss ----------------------------------------------------------------------------

template <class T>
__global__ void nll_loss_forward_kernel(const T* log_probs, const int64_t* targets, int64_t batch, int64_t classes,
                                        int64_t ignore_index, double label_smoothing, T* losses) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < batch; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t target = targets[i];
    if (target == ignore_index) {
      losses[i] = T(0);
      continue;
    }
    if (target < 0 || target >= classes) {  // the op's deferred range check reports it; never read outside the row
      losses[i] = std::numeric_limits<T>::quiet_NaN();
      continue;
    }
    const T* row = log_probs + i * classes;
    double loss = -(1.0 - label_smoothing) * static_cast<double>(row[target]);
    if (label_smoothing != 0.0) {
      double total = 0.0;
      for (int64_t c = 0; c < classes; ++c) total += static_cast<double>(row[c]);
      loss -= label_smoothing / static_cast<double>(classes) * total;
    }
    losses[i] = static_cast<T>(loss);
  }
}

template <class T>
__global__ void nll_loss_backward_kernel(const T* grad_losses, const int64_t* targets, int64_t batch, int64_t classes,
                                         int64_t ignore_index, double label_smoothing, T* grad_log_probs) {
  const int64_t total = batch * classes;
  for (int64_t index = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; index < total;
       index += int64_t{gridDim.x} * blockDim.x) {
    const int64_t i = index / classes, c = index % classes;
    const int64_t target = targets[i];
    const bool ignored = target == ignore_index;
    const double g = ignored ? 0.0 : static_cast<double>(grad_losses[i]);
    // The CPU writes the uniform share everywhere, then adds the target's share in T.
    T value = static_cast<T>(-g * label_smoothing / static_cast<double>(classes));
    if (!ignored && c == target) value += static_cast<T>(-g * (1.0 - label_smoothing));
    grad_log_probs[index] = value;
  }
}

// Blocks for one warp per row.
unsigned int grid_for_rows(int64_t rows) { return grid_size_for(rows * kWarpSize); }

}  // namespace

template <class T>
void log_softmax_forward(const LogSoftmaxForward<T>& a, cudaStream_t stream) {
  if (a.outer * a.classes * a.inner <= 0) return;
  if (a.inner == 1) {
    log_softmax_forward_rows_kernel<T>
        <<<grid_for_rows(a.outer), kThreadsPerBlock, 0, stream>>>(a.x, a.outer, a.classes, a.y);
    VISREP_CUDA_CHECK_LAUNCH("log_softmax_forward_rows_kernel");
  } else {
    log_softmax_forward_columns_kernel<T>
        <<<grid_size_for(a.outer * a.inner), kThreadsPerBlock, 0, stream>>>(a.x, a.outer, a.classes, a.inner, a.y);
    VISREP_CUDA_CHECK_LAUNCH("log_softmax_forward_columns_kernel");
  }
}

template <class T>
void log_softmax_backward(const LogSoftmaxBackward<T>& a, cudaStream_t stream) {
  if (a.outer * a.classes * a.inner <= 0) return;
  if (a.inner == 1) {
    log_softmax_backward_rows_kernel<T>
        <<<grid_for_rows(a.outer), kThreadsPerBlock, 0, stream>>>(a.grad_y, a.y, a.outer, a.classes, a.grad_x);
    VISREP_CUDA_CHECK_LAUNCH("log_softmax_backward_rows_kernel");
  } else {
    log_softmax_backward_columns_kernel<T><<<grid_size_for(a.outer * a.inner), kThreadsPerBlock, 0, stream>>>(
        a.grad_y, a.y, a.outer, a.classes, a.inner, a.grad_x);
    VISREP_CUDA_CHECK_LAUNCH("log_softmax_backward_columns_kernel");
  }
}

template <class T>
void nll_loss_forward(const NllLossForward<T>& a, cudaStream_t stream) {
  if (a.batch <= 0) return;
  nll_loss_forward_kernel<T><<<grid_size_for(a.batch), kThreadsPerBlock, 0, stream>>>(
      a.log_probs, a.targets, a.batch, a.classes, a.ignore_index, a.label_smoothing, a.losses);
  VISREP_CUDA_CHECK_LAUNCH("nll_loss_forward_kernel");
}

template <class T>
void nll_loss_backward(const NllLossBackward<T>& a, cudaStream_t stream) {
  if (a.batch * a.classes <= 0) return;
  nll_loss_backward_kernel<T><<<grid_size_for(a.batch * a.classes), kThreadsPerBlock, 0, stream>>>(
      a.grad_losses, a.targets, a.batch, a.classes, a.ignore_index, a.label_smoothing, a.grad_log_probs);
  VISREP_CUDA_CHECK_LAUNCH("nll_loss_backward_kernel");
}

#define VISREP_INSTANTIATE_CROSS_ENTROPY(T)                                          \
  template void log_softmax_forward<T>(const LogSoftmaxForward<T>&, cudaStream_t);   \
  template void log_softmax_backward<T>(const LogSoftmaxBackward<T>&, cudaStream_t); \
  template void nll_loss_forward<T>(const NllLossForward<T>&, cudaStream_t);         \
  template void nll_loss_backward<T>(const NllLossBackward<T>&, cudaStream_t);

VISREP_INSTANTIATE_CROSS_ENTROPY(float)
VISREP_INSTANTIATE_CROSS_ENTROPY(double)
#undef VISREP_INSTANTIATE_CROSS_ENTROPY

}  // namespace visrep::kernels::cuda
