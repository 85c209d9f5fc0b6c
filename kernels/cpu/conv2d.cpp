// im2col + GEMM convolution.
//
// For one image and one group, im2col unrolls every receptive field into a column:
//   columns (K = C_in/groups * kH * kW,  P = H_out * W_out)
// so the convolution is one GEMM, output (C_out/groups, P) = weight (C_out/groups, K) @ columns.
// The backward pass is two more GEMMs:
//   grad_weight += grad_output (C_out/g, P) @ columns^T          (the filter gradient)
//   grad_columns = weight^T (K, C_out/g) @ grad_output            then col2im scatters it back.
//
// When the output plane is small (ResNet's last stages on 32-px images have P = 16), one
// image gives a GEMM too thin for BLAS to run fast, so several images are unrolled side by
// side into one wider column matrix (P * images columns) and the result is scattered back
// to NCHW. A 1x1 convolution with stride 1 and no padding needs no unrolling at all: the
// input plane already is the column matrix.
#include "kernels/cpu/conv2d.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/gemm.h"

namespace visrep::kernels::cpu {
namespace {

// Columns per GEMM worth aiming for, and the most scratch memory to spend on unrolling.
constexpr int64_t kTargetColumns = 1024;
constexpr int64_t kMaxColumnElements = int64_t{1} << 23;  // 32 MiB of float

struct Plan {
  int64_t group_in_channels, group_out_channels;
  int64_t out_height, out_width, plane;  // plane = P = H_out * W_out
  int64_t column_rows;                   // K
  int64_t images_per_chunk;
  bool is_pointwise;                     // 1x1, stride 1, no padding: the input is the columns
};

Plan make_plan(const Conv2dGeometry& g) {
  Plan plan;
  plan.group_in_channels = g.in_channels / g.groups;
  plan.group_out_channels = g.out_channels / g.groups;
  plan.out_height = g.out_height();
  plan.out_width = g.out_width();
  plan.plane = plan.out_height * plan.out_width;
  plan.column_rows = plan.group_in_channels * g.kernel_height * g.kernel_width;
  plan.is_pointwise = g.kernel_height == 1 && g.kernel_width == 1 && g.stride_height == 1 && g.stride_width == 1 &&
                      g.padding_height == 0 && g.padding_width == 0;
  int64_t images = std::max<int64_t>(1, kTargetColumns / std::max<int64_t>(plan.plane, 1));
  images = std::min(images, std::max<int64_t>(1, kMaxColumnElements / std::max<int64_t>(plan.column_rows * plan.plane, 1)));
  plan.images_per_chunk = std::min(images, g.batch);
  return plan;
}

// Unrolls channels [0, group_in_channels) of one image (x points at its first channel)
// into columns[row, column_offset + p], rows of length row_stride.
template <class T>
void im2col(const Conv2dGeometry& g, const Plan& plan, const T* x, T* columns, int64_t row_stride,
            int64_t column_offset) {
  const int64_t kernel_area = g.kernel_height * g.kernel_width;
#pragma omp parallel for schedule(static) if (plan.column_rows * plan.plane >= 32768)
  for (int64_t row = 0; row < plan.column_rows; ++row) {
    const int64_t channel = row / kernel_area;
    const int64_t ki = (row % kernel_area) / g.kernel_width;
    const int64_t kj = row % g.kernel_width;
    const T* plane = x + channel * g.in_height * g.in_width;
    T* out = columns + row * row_stride + column_offset;
    for (int64_t oh = 0; oh < plan.out_height; ++oh, out += plan.out_width) {
      const int64_t ih = oh * g.stride_height - g.padding_height + ki * g.dilation_height;
      if (ih < 0 || ih >= g.in_height) {
        std::fill(out, out + plan.out_width, T(0));
        continue;
      }
      const T* in_row = plane + ih * g.in_width;
      const int64_t first_iw = kj * g.dilation_width - g.padding_width;  // iw of ow = 0
      if (g.stride_width == 1) {
        // Valid ow satisfy 0 <= first_iw + ow < in_width: zeros, one copy, zeros.
        const int64_t begin = std::clamp<int64_t>(-first_iw, 0, plan.out_width);
        const int64_t end = std::clamp<int64_t>(g.in_width - first_iw, begin, plan.out_width);
        std::fill(out, out + begin, T(0));
        std::copy(in_row + first_iw + begin, in_row + first_iw + end, out + begin);
        std::fill(out + end, out + plan.out_width, T(0));
      } else {
        for (int64_t ow = 0; ow < plan.out_width; ++ow) {
          const int64_t iw = first_iw + ow * g.stride_width;
          out[ow] = (iw >= 0 && iw < g.in_width) ? in_row[iw] : T(0);
        }
      }
    }
  }
}

// The adjoint of im2col: adds columns[row, column_offset + p] back into the image planes
// of one image (dx points at its first channel, which must start zeroed or hold a sum).
// Threads split channels, since the kernel offsets of one channel overlap in the image.
template <class T>
void col2im(const Conv2dGeometry& g, const Plan& plan, const T* columns, int64_t row_stride, int64_t column_offset,
            T* dx) {
  const int64_t kernel_area = g.kernel_height * g.kernel_width;
#pragma omp parallel for schedule(static) if (plan.column_rows * plan.plane >= 32768)
  for (int64_t channel = 0; channel < plan.group_in_channels; ++channel) {
    T* plane = dx + channel * g.in_height * g.in_width;
    for (int64_t k = 0; k < kernel_area; ++k) {
      const int64_t ki = k / g.kernel_width, kj = k % g.kernel_width;
      const T* in = columns + (channel * kernel_area + k) * row_stride + column_offset;
      for (int64_t oh = 0; oh < plan.out_height; ++oh, in += plan.out_width) {
        const int64_t ih = oh * g.stride_height - g.padding_height + ki * g.dilation_height;
        if (ih < 0 || ih >= g.in_height) continue;
        T* out_row = plane + ih * g.in_width;
        const int64_t first_iw = kj * g.dilation_width - g.padding_width;
        for (int64_t ow = 0; ow < plan.out_width; ++ow) {
          const int64_t iw = first_iw + ow * g.stride_width;
          if (iw >= 0 && iw < g.in_width) out_row[iw] += in[ow];
        }
      }
    }
  }
}

// Moves the (group_out_channels, images * P) GEMM layout to or from NCHW rows of the chunk.
template <class T>
void scatter_to_nchw(const Conv2dGeometry& g, const Plan& plan, const T* wide, int64_t images, T* y_group) {
  const int64_t width = images * plan.plane;
  for (int64_t c = 0; c < plan.group_out_channels; ++c)
    for (int64_t j = 0; j < images; ++j)
      std::memcpy(y_group + (j * g.out_channels + c) * plan.plane, wide + c * width + j * plan.plane,
                  sizeof(T) * plan.plane);
}

template <class T>
void gather_from_nchw(const Conv2dGeometry& g, const Plan& plan, const T* y_group, int64_t images, T* wide) {
  const int64_t width = images * plan.plane;
  for (int64_t c = 0; c < plan.group_out_channels; ++c)
    for (int64_t j = 0; j < images; ++j)
      std::memcpy(wide + c * width + j * plan.plane, y_group + (j * g.out_channels + c) * plan.plane,
                  sizeof(T) * plan.plane);
}

}  // namespace

template <class T>
void conv2d_forward(const Conv2dGeometry& g, const T* input, const T* weight, const T* bias, T* output) {
  const Plan plan = make_plan(g);
  const int64_t in_image = g.in_channels * g.in_height * g.in_width;
  const int64_t out_image = g.out_channels * plan.plane;
  const int64_t group_weight = plan.group_out_channels * plan.column_rows;
  std::vector<T> columns, wide;

  for (int64_t n0 = 0; n0 < g.batch; n0 += plan.images_per_chunk) {
    const int64_t images = std::min(plan.images_per_chunk, g.batch - n0);
    const int64_t width = images * plan.plane;
    for (int64_t group = 0; group < g.groups; ++group) {
      const T* x_group = input + n0 * in_image + group * plan.group_in_channels * g.in_height * g.in_width;
      T* y_group = output + n0 * out_image + group * plan.group_out_channels * plan.plane;
      const T* w_group = weight + group * group_weight;
      const GemmShape shape{plan.group_out_channels, width, plan.column_rows, false, false};

      if (images == 1 && plan.is_pointwise) {
        gemm<T>(shape, T(1), w_group, plan.column_rows, x_group, plan.plane, T(0), y_group, plan.plane);
        continue;
      }
      columns.resize(static_cast<size_t>(plan.column_rows * width));
      for (int64_t j = 0; j < images; ++j) im2col(g, plan, x_group + j * in_image, columns.data(), width, j * plan.plane);
      if (images == 1) {
        gemm<T>(shape, T(1), w_group, plan.column_rows, columns.data(), width, T(0), y_group, plan.plane);
      } else {
        wide.resize(static_cast<size_t>(plan.group_out_channels * width));
        gemm<T>(shape, T(1), w_group, plan.column_rows, columns.data(), width, T(0), wide.data(), width);
        scatter_to_nchw(g, plan, wide.data(), images, y_group);
      }
    }
  }

  if (bias != nullptr) {
#pragma omp parallel for schedule(static) if (g.batch * out_image >= 32768)
    for (int64_t nc = 0; nc < g.batch * g.out_channels; ++nc) {
      T* plane = output + nc * plan.plane;
      const T b = bias[nc % g.out_channels];
      for (int64_t p = 0; p < plan.plane; ++p) plane[p] += b;
    }
  }
}

template <class T>
void conv2d_backward(const Conv2dGeometry& g, const T* grad_output, const T* input, const T* weight, T* grad_input,
                     T* grad_weight, T* grad_bias) {
  const Plan plan = make_plan(g);
  const int64_t in_image = g.in_channels * g.in_height * g.in_width;
  const int64_t out_image = g.out_channels * plan.plane;
  const int64_t group_weight = plan.group_out_channels * plan.column_rows;
  std::vector<T> columns, wide;

  if (grad_input != nullptr) std::fill(grad_input, grad_input + g.batch * in_image, T(0));
  if (grad_weight != nullptr && g.batch == 0) std::fill(grad_weight, grad_weight + g.groups * group_weight, T(0));

  for (int64_t n0 = 0; n0 < g.batch; n0 += plan.images_per_chunk) {
    const int64_t images = std::min(plan.images_per_chunk, g.batch - n0);
    const int64_t width = images * plan.plane;
    for (int64_t group = 0; group < g.groups; ++group) {
      const int64_t x_offset = n0 * in_image + group * plan.group_in_channels * g.in_height * g.in_width;
      const T* dy_group = grad_output + n0 * out_image + group * plan.group_out_channels * plan.plane;
      const T* w_group = weight + group * group_weight;

      // grad_output of the chunk as a (group_out_channels, width) matrix with row stride dy_stride.
      const T* dy = dy_group;
      int64_t dy_stride = plan.plane;
      if (images > 1) {
        wide.resize(static_cast<size_t>(plan.group_out_channels * width));
        gather_from_nchw(g, plan, dy_group, images, wide.data());
        dy = wide.data();
        dy_stride = width;
      }

      if (grad_weight != nullptr) {
        // grad_weight (C_out/g, K) (+)= dy (C_out/g, width) @ columns^T (width, K).
        const T* cols = input + x_offset;
        int64_t cols_stride = plan.plane;
        if (!(images == 1 && plan.is_pointwise)) {
          columns.resize(static_cast<size_t>(plan.column_rows * width));
          for (int64_t j = 0; j < images; ++j) im2col(g, plan, input + x_offset + j * in_image, columns.data(), width, j * plan.plane);
          cols = columns.data();
          cols_stride = width;
        }
        const GemmShape shape{plan.group_out_channels, plan.column_rows, width, false, true};
        gemm<T>(shape, T(1), dy, dy_stride, cols, cols_stride, n0 == 0 ? T(0) : T(1), grad_weight + group * group_weight,
                plan.column_rows);
      }

      if (grad_input != nullptr) {
        // grad_columns (K, width) = weight^T (K, C_out/g) @ dy (C_out/g, width).
        const GemmShape shape{plan.column_rows, width, plan.group_out_channels, true, false};
        if (images == 1 && plan.is_pointwise) {
          gemm<T>(shape, T(1), w_group, plan.column_rows, dy, dy_stride, T(0), grad_input + x_offset, plan.plane);
          continue;
        }
        columns.resize(static_cast<size_t>(plan.column_rows * width));
        gemm<T>(shape, T(1), w_group, plan.column_rows, dy, dy_stride, T(0), columns.data(), width);
        for (int64_t j = 0; j < images; ++j) col2im(g, plan, columns.data(), width, j * plan.plane, grad_input + x_offset + j * in_image);
      }
    }
  }

  if (grad_bias != nullptr) {
#pragma omp parallel for schedule(static) if (g.batch * out_image >= 32768)
    for (int64_t c = 0; c < g.out_channels; ++c) {
      double total = 0.0;
      for (int64_t n = 0; n < g.batch; ++n) {
        const T* plane = grad_output + (n * g.out_channels + c) * plan.plane;
        for (int64_t p = 0; p < plan.plane; ++p) total += static_cast<double>(plane[p]);
      }
      grad_bias[c] = static_cast<T>(total);
    }
  }
}

template void conv2d_forward<float>(const Conv2dGeometry&, const float*, const float*, const float*, float*);
template void conv2d_forward<double>(const Conv2dGeometry&, const double*, const double*, const double*, double*);
template void conv2d_backward<float>(const Conv2dGeometry&, const float*, const float*, const float*, float*, float*,
                                     float*);
template void conv2d_backward<double>(const Conv2dGeometry&, const double*, const double*, const double*, double*,
                                      double*, double*);

}  // namespace visrep::kernels::cpu
