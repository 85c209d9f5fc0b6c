// The pooling ops on the CPU, the reference of the CUDA twins (kernels/cpu/pool.h
// specifies them and lists the family's files).
#include "kernels/cpu/pool.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace visrep::kernels::cpu {
namespace {

struct Window {
  int64_t h_begin, h_end, w_begin, w_end;  // clipped to the image
  int64_t padded_area;                     // the window's area counting padding (clipped to the padded image)
};

Window window_at(const Pool2dGeometry& g, int64_t oh, int64_t ow) {
  Window w;
  const int64_t h0 = oh * g.stride_height - g.padding_height;
  const int64_t w0 = ow * g.stride_width - g.padding_width;
  const int64_t h1 = std::min(h0 + g.kernel_height, g.in_height + g.padding_height);
  const int64_t w1 = std::min(w0 + g.kernel_width, g.in_width + g.padding_width);
  w.padded_area = (h1 - h0) * (w1 - w0);
  w.h_begin = std::max<int64_t>(h0, 0);
  w.w_begin = std::max<int64_t>(w0, 0);
  w.h_end = std::min(h1, g.in_height);
  w.w_end = std::min(w1, g.in_width);
  return w;
}

int64_t adaptive_begin(int64_t index, int64_t in_size, int64_t out_size) { return (index * in_size) / out_size; }
int64_t adaptive_end(int64_t index, int64_t in_size, int64_t out_size) {
  return ((index + 1) * in_size + out_size - 1) / out_size;
}

}  // namespace

template <class T>
void max_pool2d_forward(const MaxPool2dForward<T>& arguments) {
  const Pool2dGeometry& g = arguments.geometry;
  const T* input = arguments.input;
  T* output = arguments.output;
  int64_t* argmax = arguments.argmax;
  const int64_t oh_count = g.out_height(), ow_count = g.out_width(), out_plane = oh_count * ow_count;
  // Every plane has the same windows: worked out once, not once per plane.
  std::vector<Window> windows(static_cast<size_t>(out_plane));
  for (int64_t oh = 0; oh < oh_count; ++oh)
    for (int64_t ow = 0; ow < ow_count; ++ow) windows[static_cast<size_t>(oh * ow_count + ow)] = window_at(g, oh, ow);
#pragma omp parallel for schedule(static) if (g.planes * out_plane >= 16384)
  for (int64_t plane = 0; plane < g.planes; ++plane) {
    const T* x = input + plane * g.in_height * g.in_width;
    for (int64_t o = 0; o < out_plane; ++o) {
      const Window& w = windows[static_cast<size_t>(o)];
      // The first largest value: selects, not branches (which of 9 values wins is a coin toss
      // for the branch predictor, and its misses cost more than the loads). A window with a
      // NaN takes the slow path, where the first NaN wins.
      T best = -std::numeric_limits<T>::infinity();
      int64_t best_index = w.h_begin * g.in_width + w.w_begin;
      bool has_nan = false;
      for (int64_t ih = w.h_begin; ih < w.h_end; ++ih) {
        for (int64_t iw = w.w_begin; iw < w.w_end; ++iw) {
          const T value = x[ih * g.in_width + iw];
          has_nan = has_nan | (value != value);
          const bool take = value > best;
          best = take ? value : best;
          best_index = take ? ih * g.in_width + iw : best_index;
        }
      }
      for (int64_t ih = w.h_begin; has_nan && ih < w.h_end; ++ih) {
        for (int64_t iw = w.w_begin; iw < w.w_end; ++iw) {
          if (std::isnan(x[ih * g.in_width + iw])) {
            best = x[ih * g.in_width + iw];
            best_index = ih * g.in_width + iw;
            has_nan = false;
            break;
          }
        }
      }
      output[plane * out_plane + o] = best;
      argmax[plane * out_plane + o] = best_index;
    }
  }
}

template <class T>
void max_pool2d_backward(const MaxPool2dBackward<T>& arguments) {
  const Pool2dGeometry& g = arguments.geometry;
  const T* grad_output = arguments.grad_output;
  const int64_t* argmax = arguments.argmax;
  T* grad_input = arguments.grad_input;
  const int64_t out_plane = g.out_height() * g.out_width();
  const int64_t in_plane = g.in_height * g.in_width;
#pragma omp parallel for schedule(static) if (g.planes * out_plane >= 16384)
  for (int64_t plane = 0; plane < g.planes; ++plane) {
    T* dx = grad_input + plane * in_plane;
    std::fill(dx, dx + in_plane, T(0));
    for (int64_t o = 0; o < out_plane; ++o) dx[argmax[plane * out_plane + o]] += grad_output[plane * out_plane + o];
  }
}

template <class T>
void avg_pool2d_forward(const AvgPool2dForward<T>& arguments) {
  const Pool2dGeometry& g = arguments.geometry;
  const bool count_include_pad = arguments.count_include_pad;
  const T* input = arguments.input;
  T* output = arguments.output;
  const int64_t oh_count = g.out_height(), ow_count = g.out_width();
#pragma omp parallel for schedule(static) if (g.planes * oh_count * ow_count >= 16384)
  for (int64_t plane = 0; plane < g.planes; ++plane) {
    const T* x = input + plane * g.in_height * g.in_width;
    for (int64_t oh = 0; oh < oh_count; ++oh) {
      for (int64_t ow = 0; ow < ow_count; ++ow) {
        const Window w = window_at(g, oh, ow);
        double total = 0.0;
        for (int64_t ih = w.h_begin; ih < w.h_end; ++ih)
          for (int64_t iw = w.w_begin; iw < w.w_end; ++iw) total += static_cast<double>(x[ih * g.in_width + iw]);
        const int64_t count = count_include_pad ? w.padded_area : (w.h_end - w.h_begin) * (w.w_end - w.w_begin);
        output[(plane * oh_count + oh) * ow_count + ow] = static_cast<T>(total / static_cast<double>(count));
      }
    }
  }
}

template <class T>
void avg_pool2d_backward(const AvgPool2dBackward<T>& arguments) {
  const Pool2dGeometry& g = arguments.geometry;
  const bool count_include_pad = arguments.count_include_pad;
  const T* grad_output = arguments.grad_output;
  T* grad_input = arguments.grad_input;
  const int64_t oh_count = g.out_height(), ow_count = g.out_width();
  const int64_t in_plane = g.in_height * g.in_width;
#pragma omp parallel for schedule(static) if (g.planes * oh_count * ow_count >= 16384)
  for (int64_t plane = 0; plane < g.planes; ++plane) {
    T* dx = grad_input + plane * in_plane;
    std::fill(dx, dx + in_plane, T(0));
    for (int64_t oh = 0; oh < oh_count; ++oh) {
      for (int64_t ow = 0; ow < ow_count; ++ow) {
        const Window w = window_at(g, oh, ow);
        const int64_t count = count_include_pad ? w.padded_area : (w.h_end - w.h_begin) * (w.w_end - w.w_begin);
        const T share = grad_output[(plane * oh_count + oh) * ow_count + ow] / static_cast<T>(count);
        for (int64_t ih = w.h_begin; ih < w.h_end; ++ih)
          for (int64_t iw = w.w_begin; iw < w.w_end; ++iw) dx[ih * g.in_width + iw] += share;
      }
    }
  }
}

template <class T>
void adaptive_avg_pool2d_forward(const AdaptiveAvgPool2dForward<T>& arguments) {
  const int64_t planes = arguments.planes;
  const int64_t in_height = arguments.in_height;
  const int64_t in_width = arguments.in_width;
  const int64_t out_height = arguments.out_height;
  const int64_t out_width = arguments.out_width;
  const T* input = arguments.input;
  T* output = arguments.output;
#pragma omp parallel for schedule(static) if (planes * in_height * in_width >= 32768)
  for (int64_t plane = 0; plane < planes; ++plane) {
    const T* x = input + plane * in_height * in_width;
    for (int64_t oh = 0; oh < out_height; ++oh) {
      const int64_t h0 = adaptive_begin(oh, in_height, out_height), h1 = adaptive_end(oh, in_height, out_height);
      for (int64_t ow = 0; ow < out_width; ++ow) {
        const int64_t w0 = adaptive_begin(ow, in_width, out_width), w1 = adaptive_end(ow, in_width, out_width);
        double total = 0.0;
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) total += static_cast<double>(x[ih * in_width + iw]);
        output[(plane * out_height + oh) * out_width + ow] = static_cast<T>(total / static_cast<double>((h1 - h0) * (w1 - w0)));
      }
    }
  }
}

template <class T>
void adaptive_avg_pool2d_backward(const AdaptiveAvgPool2dBackward<T>& arguments) {
  const int64_t planes = arguments.planes;
  const int64_t in_height = arguments.in_height;
  const int64_t in_width = arguments.in_width;
  const int64_t out_height = arguments.out_height;
  const int64_t out_width = arguments.out_width;
  const T* grad_output = arguments.grad_output;
  T* grad_input = arguments.grad_input;
#pragma omp parallel for schedule(static) if (planes * in_height * in_width >= 32768)
  for (int64_t plane = 0; plane < planes; ++plane) {
    T* dx = grad_input + plane * in_height * in_width;
    std::fill(dx, dx + in_height * in_width, T(0));
    for (int64_t oh = 0; oh < out_height; ++oh) {
      const int64_t h0 = adaptive_begin(oh, in_height, out_height), h1 = adaptive_end(oh, in_height, out_height);
      for (int64_t ow = 0; ow < out_width; ++ow) {
        const int64_t w0 = adaptive_begin(ow, in_width, out_width), w1 = adaptive_end(ow, in_width, out_width);
        const T share = grad_output[(plane * out_height + oh) * out_width + ow] / static_cast<T>((h1 - h0) * (w1 - w0));
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) dx[ih * in_width + iw] += share;
      }
    }
  }
}

#define VISREP_INSTANTIATE_POOL(T)                                                     \
  template void max_pool2d_forward<T>(const MaxPool2dForward<T>&);                     \
  template void max_pool2d_backward<T>(const MaxPool2dBackward<T>&);                   \
  template void avg_pool2d_forward<T>(const AvgPool2dForward<T>&);                     \
  template void avg_pool2d_backward<T>(const AvgPool2dBackward<T>&);                   \
  template void adaptive_avg_pool2d_forward<T>(const AdaptiveAvgPool2dForward<T>&);    \
  template void adaptive_avg_pool2d_backward<T>(const AdaptiveAvgPool2dBackward<T>&);

VISREP_INSTANTIATE_POOL(float)
VISREP_INSTANTIATE_POOL(double)
#undef VISREP_INSTANTIATE_POOL

}  // namespace visrep::kernels::cpu
