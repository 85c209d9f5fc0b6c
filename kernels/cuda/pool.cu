// 2-D pooling on the GPU: max (with argmax), average and adaptive average over NCHW
// planes, forward and backward; the CUDA twins of kernels/cpu/pool.cpp.
//
// Shape of the work: one thread per OUTPUT element in the forward passes (it reads its
// window, at most kernel_height * kernel_width loads that neighbouring threads share through
// L1/L2), and one thread per INPUT element in the backward passes. The backward passes
// gather instead of scatter: each input element walks the few output windows that can
// contain it and sums their contributions, so no atomics are needed, every grad_input
// element is written exactly once (the kernels overwrite it; the CPU zeroes then adds), and
// the result is deterministic. The windows are visited in increasing (oh, ow) order, the
// order in which the CPU loop adds them, so the sums are bit-identical to the CPU's.
// Memory traffic: forward reads the input about (kernel / stride)^2 times (mostly from
// cache) and writes the output (+ the int64 argmax); backward reads grad_output (and argmax)
// about (kernel / stride)^2 times and writes grad_input once. The average forwards
// accumulate in double, as the CPU does, so they match it exactly as well.
// Where to look for the rest of the family: kernels/cpu/pool.h.
#include "kernels/cuda/pool.h"

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/per_element_launch.cuh"

namespace visrep::kernels::cuda {
namespace {

// The clipped window of output cell (oh, ow), exactly as window_at() in kernels/cpu/pool.cpp.
struct Window {
  int64_t h_begin, h_end, w_begin, w_end;  // clipped to the image
  int64_t padded_area;                     // the window's area counting padding (clipped to the padded image)
};

__device__ Window window_at(const Pool2dGeometry& g, int64_t oh, int64_t ow) {
  Window w;
  const int64_t h0 = oh * g.stride_height - g.padding_height;
  const int64_t w0 = ow * g.stride_width - g.padding_width;
  const int64_t h1 = min(h0 + g.kernel_height, g.in_height + g.padding_height);
  const int64_t w1 = min(w0 + g.kernel_width, g.in_width + g.padding_width);
  w.padded_area = (h1 - h0) * (w1 - w0);
  w.h_begin = max(h0, int64_t{0});
  w.w_begin = max(w0, int64_t{0});
  w.h_end = min(h1, g.in_height);
  w.w_end = min(w1, g.in_width);
  return w;
}

__device__ int64_t divisor_of(const Window& w, bool count_include_pad) {
  return count_include_pad ? w.padded_area : (w.h_end - w.h_begin) * (w.w_end - w.w_begin);
}

// The output positions along one axis whose window [o * stride - padding, ... + kernel)
// contains input position i: o in [first, last) (clipped to [0, out_size)).
struct OutputRange {
  int64_t first, last;
};

__device__ OutputRange windows_containing(int64_t i, int64_t kernel, int64_t stride, int64_t padding,
                                          int64_t out_size) {
  // o * stride - padding <= i           <=>  o <= (i + padding) / stride (floor; i + padding >= 0)
  // o * stride - padding + kernel > i   <=>  o >= ceil((i + padding - kernel + 1) / stride)
  const int64_t low = i + padding - kernel + 1;
  OutputRange range;
  range.first = low <= 0 ? 0 : (low + stride - 1) / stride;
  range.last = min((i + padding) / stride + 1, out_size);
  return range;
}

__device__ bool window_contains(int64_t o, int64_t i, int64_t kernel, int64_t stride, int64_t padding) {
  const int64_t begin = o * stride - padding;
  return begin <= i && i < begin + kernel;
}

// PyTorch's adaptive bins: output cell o covers input [floor(o * in / out), ceil((o + 1) * in / out)).
__device__ int64_t adaptive_begin(int64_t o, int64_t in_size, int64_t out_size) { return (o * in_size) / out_size; }
__device__ int64_t adaptive_end(int64_t o, int64_t in_size, int64_t out_size) {
  return ((o + 1) * in_size + out_size - 1) / out_size;
}

// ---- max --------------------------------------------------------------------------------

template <class T>
__global__ void max_pool2d_forward_kernel(Pool2dGeometry g, int64_t out_height, int64_t out_width, const T* input,
                                          T* output, int64_t* argmax) {
  const int64_t total = g.planes * out_height * out_width;
  for (int64_t index = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; index < total;
       index += int64_t{gridDim.x} * blockDim.x) {
    const int64_t ow = index % out_width;
    const int64_t oh = (index / out_width) % out_height;
    const int64_t plane = index / (out_width * out_height);
    const T* x = input + plane * g.in_height * g.in_width;
    const Window w = window_at(g, oh, ow);
    // Same scan as the CPU: the first strict maximum wins; a NaN wins and stops the scan.
    T best = -INFINITY;
    int64_t best_index = w.h_begin * g.in_width + w.w_begin;
    bool found_nan = false;
    for (int64_t ih = w.h_begin; ih < w.h_end && !found_nan; ++ih) {
      for (int64_t iw = w.w_begin; iw < w.w_end; ++iw) {
        const T value = x[ih * g.in_width + iw];
        if (value > best || isnan(value)) {
          best = value;
          best_index = ih * g.in_width + iw;
          if (isnan(value)) {
            found_nan = true;
            break;
          }
        }
      }
    }
    output[index] = best;
    argmax[index] = best_index;
  }
}

// grad_input[plane, ih, iw] = sum of grad_output over the windows whose argmax is (ih, iw).
template <class T>
__global__ void max_pool2d_backward_kernel(Pool2dGeometry g, int64_t out_height, int64_t out_width,
                                           const T* grad_output, const int64_t* argmax, T* grad_input) {
  const int64_t total = g.planes * g.in_height * g.in_width;
  for (int64_t index = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; index < total;
       index += int64_t{gridDim.x} * blockDim.x) {
    const int64_t iw = index % g.in_width;
    const int64_t ih = (index / g.in_width) % g.in_height;
    const int64_t plane = index / (g.in_width * g.in_height);
    const int64_t flat = ih * g.in_width + iw;  // what argmax stores
    const int64_t out_base = plane * out_height * out_width;
    const OutputRange rows = windows_containing(ih, g.kernel_height, g.stride_height, g.padding_height, out_height);
    const OutputRange cols = windows_containing(iw, g.kernel_width, g.stride_width, g.padding_width, out_width);
    T total_grad = T(0);
    for (int64_t oh = rows.first; oh < rows.last; ++oh) {
      for (int64_t ow = cols.first; ow < cols.last; ++ow) {
        const int64_t o = out_base + oh * out_width + ow;
        if (argmax[o] == flat) total_grad += grad_output[o];
      }
    }
    grad_input[index] = total_grad;
  }
}

// ---- average ----------------------------------------------------------------------------

template <class T>
__global__ void avg_pool2d_forward_kernel(Pool2dGeometry g, int64_t out_height, int64_t out_width,
                                          bool count_include_pad, const T* input, T* output) {
  const int64_t total = g.planes * out_height * out_width;
  for (int64_t index = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; index < total;
       index += int64_t{gridDim.x} * blockDim.x) {
    const int64_t ow = index % out_width;
    const int64_t oh = (index / out_width) % out_height;
    const int64_t plane = index / (out_width * out_height);
    const T* x = input + plane * g.in_height * g.in_width;
    const Window w = window_at(g, oh, ow);
    double sum = 0.0;
    for (int64_t ih = w.h_begin; ih < w.h_end; ++ih)
      for (int64_t iw = w.w_begin; iw < w.w_end; ++iw) sum += static_cast<double>(x[ih * g.in_width + iw]);
    output[index] = static_cast<T>(sum / static_cast<double>(divisor_of(w, count_include_pad)));
  }
}

// grad_input[plane, ih, iw] = sum over the windows containing (ih, iw) of grad_output / divisor.
template <class T>
__global__ void avg_pool2d_backward_kernel(Pool2dGeometry g, int64_t out_height, int64_t out_width,
                                           bool count_include_pad, const T* grad_output, T* grad_input) {
  const int64_t total = g.planes * g.in_height * g.in_width;
  for (int64_t index = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; index < total;
       index += int64_t{gridDim.x} * blockDim.x) {
    const int64_t iw = index % g.in_width;
    const int64_t ih = (index / g.in_width) % g.in_height;
    const int64_t plane = index / (g.in_width * g.in_height);
    const T* dy = grad_output + plane * out_height * out_width;
    const OutputRange rows = windows_containing(ih, g.kernel_height, g.stride_height, g.padding_height, out_height);
    const OutputRange cols = windows_containing(iw, g.kernel_width, g.stride_width, g.padding_width, out_width);
    T total_grad = T(0);
    for (int64_t oh = rows.first; oh < rows.last; ++oh) {
      for (int64_t ow = cols.first; ow < cols.last; ++ow) {
        // The range is exact; the test only guards against an off-by-one there.
        if (!window_contains(oh, ih, g.kernel_height, g.stride_height, g.padding_height) ||
            !window_contains(ow, iw, g.kernel_width, g.stride_width, g.padding_width)) {
          continue;
        }
        const Window w = window_at(g, oh, ow);
        // Same expression as the CPU: the share is computed in T, then added.
        total_grad += dy[oh * out_width + ow] / static_cast<T>(divisor_of(w, count_include_pad));
      }
    }
    grad_input[index] = total_grad;
  }
}

// ---- adaptive average -------------------------------------------------------------------

template <class T>
__global__ void adaptive_avg_pool2d_forward_kernel(int64_t planes, int64_t in_height, int64_t in_width,
                                                   int64_t out_height, int64_t out_width, const T* input, T* output) {
  const int64_t total = planes * out_height * out_width;
  for (int64_t index = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; index < total;
       index += int64_t{gridDim.x} * blockDim.x) {
    const int64_t ow = index % out_width;
    const int64_t oh = (index / out_width) % out_height;
    const int64_t plane = index / (out_width * out_height);
    const T* x = input + plane * in_height * in_width;
    const int64_t h0 = adaptive_begin(oh, in_height, out_height), h1 = adaptive_end(oh, in_height, out_height);
    const int64_t w0 = adaptive_begin(ow, in_width, out_width), w1 = adaptive_end(ow, in_width, out_width);
    double sum = 0.0;
    for (int64_t ih = h0; ih < h1; ++ih)
      for (int64_t iw = w0; iw < w1; ++iw) sum += static_cast<double>(x[ih * in_width + iw]);
    output[index] = static_cast<T>(sum / static_cast<double>((h1 - h0) * (w1 - w0)));
  }
}

// The first output cell whose bin can contain input position i, less one for safety (the
// loop below tests membership exactly): bins containing i have o >= floor(i * out / in).
__device__ int64_t adaptive_first_bin(int64_t i, int64_t in_size, int64_t out_size) {
  return max((i * out_size) / in_size - 1, int64_t{0});
}
// One past the last such cell, plus one for safety: o < ceil((i + 1) * out / in).
__device__ int64_t adaptive_last_bin(int64_t i, int64_t in_size, int64_t out_size) {
  return min(((i + 1) * out_size + in_size - 1) / in_size + 1, out_size);
}

template <class T>
__global__ void adaptive_avg_pool2d_backward_kernel(int64_t planes, int64_t in_height, int64_t in_width,
                                                    int64_t out_height, int64_t out_width, const T* grad_output,
                                                    T* grad_input) {
  const int64_t total = planes * in_height * in_width;
  for (int64_t index = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; index < total;
       index += int64_t{gridDim.x} * blockDim.x) {
    const int64_t iw = index % in_width;
    const int64_t ih = (index / in_width) % in_height;
    const int64_t plane = index / (in_width * in_height);
    const T* dy = grad_output + plane * out_height * out_width;
    const int64_t oh_first = adaptive_first_bin(ih, in_height, out_height);
    const int64_t oh_last = adaptive_last_bin(ih, in_height, out_height);
    const int64_t ow_first = adaptive_first_bin(iw, in_width, out_width);
    const int64_t ow_last = adaptive_last_bin(iw, in_width, out_width);
    T total_grad = T(0);
    for (int64_t oh = oh_first; oh < oh_last; ++oh) {
      const int64_t h0 = adaptive_begin(oh, in_height, out_height), h1 = adaptive_end(oh, in_height, out_height);
      if (ih < h0 || ih >= h1) continue;
      for (int64_t ow = ow_first; ow < ow_last; ++ow) {
        const int64_t w0 = adaptive_begin(ow, in_width, out_width), w1 = adaptive_end(ow, in_width, out_width);
        if (iw < w0 || iw >= w1) continue;
        total_grad += dy[oh * out_width + ow] / static_cast<T>((h1 - h0) * (w1 - w0));
      }
    }
    grad_input[index] = total_grad;
  }
}

}  // namespace

template <class T>
void max_pool2d_forward(const MaxPool2dForward<T>& a, cudaStream_t stream) {
  const int64_t out_height = a.geometry.out_height(), out_width = a.geometry.out_width();
  launch_per_element(max_pool2d_forward_kernel<T>, "max_pool2d_forward_kernel",
                     a.geometry.planes * out_height * out_width, stream, a.geometry, out_height, out_width, a.input,
                     a.output, a.argmax);
}

template <class T>
void max_pool2d_backward(const MaxPool2dBackward<T>& a, cudaStream_t stream) {
  launch_per_element(max_pool2d_backward_kernel<T>, "max_pool2d_backward_kernel",
                     a.geometry.planes * a.geometry.in_height * a.geometry.in_width, stream, a.geometry,
                     a.geometry.out_height(), a.geometry.out_width(), a.grad_output, a.argmax, a.grad_input);
}

template <class T>
void avg_pool2d_forward(const AvgPool2dForward<T>& a, cudaStream_t stream) {
  const int64_t out_height = a.geometry.out_height(), out_width = a.geometry.out_width();
  launch_per_element(avg_pool2d_forward_kernel<T>, "avg_pool2d_forward_kernel",
                     a.geometry.planes * out_height * out_width, stream, a.geometry, out_height, out_width,
                     a.count_include_pad, a.input, a.output);
}

template <class T>
void avg_pool2d_backward(const AvgPool2dBackward<T>& a, cudaStream_t stream) {
  launch_per_element(avg_pool2d_backward_kernel<T>, "avg_pool2d_backward_kernel",
                     a.geometry.planes * a.geometry.in_height * a.geometry.in_width, stream, a.geometry,
                     a.geometry.out_height(), a.geometry.out_width(), a.count_include_pad, a.grad_output, a.grad_input);
}

template <class T>
void adaptive_avg_pool2d_forward(const AdaptiveAvgPool2dForward<T>& a, cudaStream_t stream) {
  launch_per_element(adaptive_avg_pool2d_forward_kernel<T>, "adaptive_avg_pool2d_forward_kernel",
                     a.planes * a.out_height * a.out_width, stream, a.planes, a.in_height, a.in_width, a.out_height,
                     a.out_width, a.input, a.output);
}

template <class T>
void adaptive_avg_pool2d_backward(const AdaptiveAvgPool2dBackward<T>& a, cudaStream_t stream) {
  launch_per_element(adaptive_avg_pool2d_backward_kernel<T>, "adaptive_avg_pool2d_backward_kernel",
                     a.planes * a.in_height * a.in_width, stream, a.planes, a.in_height, a.in_width, a.out_height,
                     a.out_width, a.grad_output, a.grad_input);
}

#define VISREP_INSTANTIATE_POOL(T)                                                                   \
  template void max_pool2d_forward<T>(const MaxPool2dForward<T>&, cudaStream_t);                     \
  template void max_pool2d_backward<T>(const MaxPool2dBackward<T>&, cudaStream_t);                   \
  template void avg_pool2d_forward<T>(const AvgPool2dForward<T>&, cudaStream_t);                     \
  template void avg_pool2d_backward<T>(const AvgPool2dBackward<T>&, cudaStream_t);                   \
  template void adaptive_avg_pool2d_forward<T>(const AdaptiveAvgPool2dForward<T>&, cudaStream_t);    \
  template void adaptive_avg_pool2d_backward<T>(const AdaptiveAvgPool2dBackward<T>&, cudaStream_t);

VISREP_INSTANTIATE_POOL(float)
VISREP_INSTANTIATE_POOL(double)
#undef VISREP_INSTANTIATE_POOL

}  // namespace visrep::kernels::cuda
