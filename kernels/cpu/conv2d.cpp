// im2col + GEMM convolution, parallel over images (kernels/cpu/conv2d.h specifies it and
// lists the family's files).
//
// For one group, im2col unrolls every receptive field of a chunk of images into a column:
//   columns (K = C_in/groups * kH * kW,  images * P),  P = H_out * W_out,
// so the convolution is one GEMM, output (C_out/groups, images * P) = weight (C_out/groups, K)
// @ columns. The backward pass is two more GEMMs:
//   grad_weight += grad_output (C_out/g, images * P) @ columns^T      (the filter gradient)
//   grad_columns = weight^T (K, C_out/g) @ grad_output                then col2im folds it back.
// Memory traffic: the columns are kH*kW times the input (9x for 3x3), written once and read
// once by the GEMM in each pass, one chunk (a few MiB) per thread at a time, so they stay in
// the last-level cache; inputs, outputs and gradients are read or written about once more
// each. The arithmetic (2 * C_out * K * P per image and pass) is all BLAS's.
//
// Why it is shaped this way:
// - The batch is split across threads, and each thread unrolls and multiplies its own
//   images with single-threaded GEMMs (gemm inside a parallel region runs on the calling
//   thread: kernels/cpu/linear_algebra.h's threading policy). Sharing each GEMM between the
//   threads instead leaves im2col/col2im to run between GEMMs and synchronises the threads
//   at every one; per-image work on its own core needs no synchronisation at all. Each thread keeps a private filter gradient, summed at the end
//   (threads - 1 weight-sized buffers: cheap on a few cores, worth revisiting on many).
//   With one image (or when called inside a parallel region) there is nothing to split, and
//   the GEMMs and the unrolling loops are shared between the threads instead.
// - A small output plane (P = 16 at the end of a CIFAR ResNet) makes a GEMM too thin for
//   BLAS to run fast, so about kTargetColumns columns' worth of images are unrolled side by
//   side into one wider matrix, and the GEMM's result is moved to and from NCHW.
// - Two column orders (see "unrolling" below): images outermost, (image, p), for wide output
//   rows, which im2col copies row by row; images innermost, (p, image), for narrow rows,
//   where every copy is a run of one value from each image of the chunk, i.e. vector-wide,
//   instead of a loop over 4 or 8 elements.
// - A 1x1 convolution with stride 1 and no padding needs no unrolling for one image: the
//   input plane already is the column matrix.
// - col2im overwrites grad_input (each element is the sum of the taps that read it), so
//   grad_input needs no zeroing first.
// - Scratch buffers are kept per thread between calls (kernels/cpu/scratch.h), so their
//   megabytes are not page-faulted in afresh on every call.
// - float32 3x3 convolutions with stride 1 and padding 1 (13 of the CIFAR ResNet-18's 20,
//   most of its arithmetic) run their forward pass and input gradient through Winograd's
//   F(2x2, 3x3) instead, and their filter gradient through its adjoint
//   (kernels/cpu/conv2d_winograd.cpp: 16 multiplications per 2x2 outputs where this path
//   has 36), unless the reference kernels are asked for.
#include "kernels/cpu/conv2d.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <memory>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "kernels/cpu/conv2d_winograd.h"
#include "kernels/cpu/linear_algebra.h"
#include "kernels/cpu/reference/reference_kernels.h"
#include "kernels/cpu/scratch.h"

namespace visrep::kernels::cpu {
namespace {

// Columns per GEMM worth aiming for, and the most scratch to spend on one chunk's columns.
constexpr int64_t kTargetColumns = 1024;
constexpr int64_t kMaxColumnElements = int64_t{1} << 22;
// Output rows narrower than this are unrolled with the images innermost, for input and
// output planes of up to kMaxInnermostPlane elements (the offset tables are per element).
constexpr int64_t kWideRow = 16;
constexpr int64_t kMaxInnermostPlane = int64_t{1} << 16;
// Below this many elements a loop is not worth an OpenMP team.
constexpr int64_t kParallelElements = 32768;

// Where each kernel tap t = (ki, kj) meets the image: the input element (ih * W + iw) that
// each output p reads, and the output that reads each input element; -1 where there is none
// (the tap falls in the padding, or no output reaches that element). Within one tap distinct
// outputs read distinct inputs, so the second table is well defined.
struct TapTables {
  std::vector<int32_t> input_of_output;  // [tap][p]
  std::vector<int32_t> output_of_input;  // [tap][ih * W + iw]
};

TapTables make_tap_tables(const Conv2dGeometry& g, int64_t out_height, int64_t out_width) {
  const int64_t taps = g.kernel_height * g.kernel_width, plane = out_height * out_width;
  const int64_t in_plane = g.in_height * g.in_width;
  TapTables tables{std::vector<int32_t>(static_cast<size_t>(taps * plane), -1),
                   std::vector<int32_t>(static_cast<size_t>(taps * in_plane), -1)};
  for (int64_t ki = 0; ki < g.kernel_height; ++ki)
    for (int64_t kj = 0; kj < g.kernel_width; ++kj) {
      const int64_t tap = ki * g.kernel_width + kj;
      for (int64_t oh = 0; oh < out_height; ++oh)
        for (int64_t ow = 0; ow < out_width; ++ow) {
          const int64_t ih = oh * g.stride_height - g.padding_height + ki * g.dilation_height;
          const int64_t iw = ow * g.stride_width - g.padding_width + kj * g.dilation_width;
          if (ih < 0 || ih >= g.in_height || iw < 0 || iw >= g.in_width) continue;
          const int64_t p = oh * out_width + ow, q = ih * g.in_width + iw;
          tables.input_of_output[tap * plane + p] = static_cast<int32_t>(q);
          tables.output_of_input[tap * in_plane + q] = static_cast<int32_t>(p);
        }
    }
  return tables;
}

struct Plan {
  int64_t group_in_channels, group_out_channels;
  int64_t in_plane;                      // H * W
  int64_t out_height, out_width, plane;  // plane = P = H_out * W_out
  int64_t taps;                          // kH * kW
  int64_t column_rows;                   // K
  int64_t images_per_chunk;
  int workers;              // threads splitting the batch (1: none)
  bool parallel_unrolling;  // one worker: thread im2col/col2im instead
  bool is_pointwise;        // 1x1, stride 1, no padding: one image's input is its columns
  bool images_innermost;    // column order (p, image) rather than (image, p)
  TapTables tap_tables;     // filled when images_innermost
};

// The engine op checks shapes with messages for users; this only keeps a bad geometry from
// reaching the unrolling loops, which read the padded plane without bounds checks.
void check_geometry(const Conv2dGeometry& g) {
  const bool positive = g.batch >= 0 && g.in_channels >= 0 && g.out_channels >= 0 && g.groups >= 1 &&
                        g.in_height >= 0 && g.in_width >= 0 && g.kernel_height >= 1 && g.kernel_width >= 1 &&
                        g.stride_height >= 1 && g.stride_width >= 1 && g.dilation_height >= 1 &&
                        g.dilation_width >= 1 && g.padding_height >= 0 && g.padding_width >= 0;
  const bool divisible = positive && g.in_channels % g.groups == 0 && g.out_channels % g.groups == 0;
  const bool fits = g.in_height + 2 * g.padding_height >= g.dilation_height * (g.kernel_height - 1) + 1 &&
                    g.in_width + 2 * g.padding_width >= g.dilation_width * (g.kernel_width - 1) + 1;
  if (!divisible || !fits) throw std::invalid_argument("conv2d kernel: invalid geometry");
}

Plan make_plan(const Conv2dGeometry& g) {
  check_geometry(g);
  Plan plan;
  plan.group_in_channels = g.in_channels / g.groups;
  plan.group_out_channels = g.out_channels / g.groups;
  plan.in_plane = g.in_height * g.in_width;
  plan.out_height = g.out_height();
  plan.out_width = g.out_width();
  plan.plane = plan.out_height * plan.out_width;
  plan.taps = g.kernel_height * g.kernel_width;
  plan.column_rows = plan.group_in_channels * plan.taps;
  plan.is_pointwise = g.kernel_height == 1 && g.kernel_width == 1 && g.stride_height == 1 && g.stride_width == 1 &&
                      g.padding_height == 0 && g.padding_width == 0;

  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  plan.workers = static_cast<int>(std::clamp<int64_t>(g.batch, 1, threads));
  plan.parallel_unrolling = plan.workers == 1 && threads > 1;
  const int64_t images_per_worker = (g.batch + plan.workers - 1) / plan.workers;
  const int64_t plane = std::max<int64_t>(plan.plane, 1);
  int64_t images = (kTargetColumns + plane - 1) / plane;
  images = std::min(images, kMaxColumnElements / std::max<int64_t>(plan.column_rows * plane, 1));
  plan.images_per_chunk = std::clamp<int64_t>(images, 1, std::max<int64_t>(images_per_worker, 1));

  // A pointwise convolution's columns are its input planes, copied whole (images outermost)
  // or transposed (images innermost): whole planes while they are at least kWideRow long.
  // Other convolutions copy rows of out_width, or runs of one value per image of the chunk.
  plan.images_innermost =
      plan.is_pointwise
          ? plan.plane < kWideRow
          : plan.out_width < kWideRow && plan.images_per_chunk >= kWideRow &&
                std::max(plan.in_plane, plan.plane) <= kMaxInnermostPlane;
  // Runs of whole transpose tiles: 16 images, not 21 (a 7x7 map's 1024 / 49).
  if (plan.images_innermost && plan.images_per_chunk > kWideRow)
    plan.images_per_chunk = plan.images_per_chunk / kWideRow * kWideRow;
  if (plan.images_innermost) plan.tap_tables = make_tap_tables(g, plan.out_height, plan.out_width);
  return plan;
}

// ---- transposes ----------------------------------------------------------------------------

// dst[c * dst_stride + r] = src[r * src_stride + c] for r < rows, c < columns: the moves
// between NCHW planes and the images-innermost column order. In 16 x 16 tiles through a
// local buffer, so that every cache line read or written is used whole (element by element,
// one side would touch a new line per element).
template <class T>
void transpose(const T* src, int64_t rows, int64_t columns, int64_t src_stride, T* dst, int64_t dst_stride) {
  constexpr int64_t kTile = 16;
  for (int64_t r0 = 0; r0 < rows; r0 += kTile) {
    for (int64_t c0 = 0; c0 < columns; c0 += kTile) {
      const int64_t r_count = std::min(kTile, rows - r0), c_count = std::min(kTile, columns - c0);
      if (r_count == kTile && c_count == kTile) {
        T tile[kTile][kTile];
        for (int64_t r = 0; r < kTile; ++r)
          for (int64_t c = 0; c < kTile; ++c) tile[c][r] = src[(r0 + r) * src_stride + c0 + c];
        for (int64_t c = 0; c < kTile; ++c)
          for (int64_t r = 0; r < kTile; ++r) dst[(c0 + c) * dst_stride + r0 + r] = tile[c][r];
      } else {  // an edge tile: the same, within its bounds
        T tile[kTile][kTile];
        for (int64_t r = 0; r < r_count; ++r)
          for (int64_t c = 0; c < c_count; ++c) tile[c][r] = src[(r0 + r) * src_stride + c0 + c];
        for (int64_t c = 0; c < c_count; ++c)
          for (int64_t r = 0; r < r_count; ++r) dst[(c0 + c) * dst_stride + r0 + r] = tile[c][r];
      }
    }
  }
}

// ---- threads ------------------------------------------------------------------------------

// Calls work(first_image, end_image, worker) on each worker, over contiguous shares of the
// batch that differ by at most one image. Returns how many workers ran (OpenMP may grant
// fewer threads than asked); each of them had at least one image.
template <class Work>
int run_workers(const Plan& plan, int64_t batch, Work&& work) {
  if (plan.workers == 1) {
    work(int64_t{0}, batch, 0);
    return 1;
  }
  int workers_run = 1;
  std::exception_ptr failure;
#pragma omp parallel num_threads(plan.workers)
  {
    const int workers = omp_get_num_threads(), worker = omp_get_thread_num();
    if (worker == 0) workers_run = workers;
    try {
      work(batch * worker / workers, batch * (worker + 1) / workers, worker);
    } catch (...) {
#pragma omp critical(visrep_conv2d_failure)
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);
  return workers_run;
}

// ---- unrolling --------------------------------------------------------------------------------
//
// unroll_chunk (im2col) and fold_chunk (col2im, its adjoint) work one input channel at a
// time, in one of two column orders:
// - Images outermost, column j * P + p, for wide output rows: each channel plane is copied
//   into a small per-thread buffer with its zero padding around it, so every kernel tap
//   reads or writes in bounds and the inner loops are plain strided row copies with no edge
//   cases, whatever the stride, padding or dilation.
// - Images innermost, column p * images + j, for narrow rows (the 8x8 and 4x4 planes at the
//   end of a CIFAR ResNet), where row loops of 4 or 8 elements would be mostly overhead. The
//   channel plane is first transposed to (H*W, images); then every column entry of a tap is
//   a contiguous run of `images` values, found through the tap tables.

bool has_padding(const Conv2dGeometry& g) { return g.padding_height > 0 || g.padding_width > 0; }

// One channel plane copied into the middle of `padded`, with only the border zeroed (the
// rest is overwritten).
template <class T>
void copy_into_padded(const Conv2dGeometry& g, const T* source, T* padded) {
  const int64_t width = g.in_width, padded_width = width + 2 * g.padding_width;
  const int64_t border_rows = g.padding_height * padded_width;
  std::fill(padded, padded + border_rows, T(0));
  T* row = padded + border_rows;
  for (int64_t ih = 0; ih < g.in_height; ++ih, row += padded_width, source += width) {
    for (int64_t i = 0; i < g.padding_width; ++i) row[i] = T(0);
    for (int64_t iw = 0; iw < width; ++iw) row[g.padding_width + iw] = source[iw];
    for (int64_t i = g.padding_width + width; i < padded_width; ++i) row[i] = T(0);
  }
  std::fill(row, row + border_rows, T(0));
}

// out[i] = in[i * step] and out[i * step] += in[i], for i < count. Steps 1 and 2 (stride-2
// convolutions) are spelled out as constants, which the compiler vectorizes; a step known
// only at run time it does not.
template <class T>
void copy_strided_row(const T* in, int64_t step, T* out, int64_t count) {
  if (step == 1) {
    for (int64_t i = 0; i < count; ++i) out[i] = in[i];
  } else if (step == 2) {
    for (int64_t i = 0; i < count; ++i) out[i] = in[2 * i];
  } else {
    for (int64_t i = 0; i < count; ++i) out[i] = in[i * step];
  }
}

template <class T>
void add_strided_row(const T* in, T* out, int64_t step, int64_t count) {
  if (step == 1) {
    for (int64_t i = 0; i < count; ++i) out[i] += in[i];
  } else if (step == 2) {
    for (int64_t i = 0; i < count; ++i) out[2 * i] += in[i];
  } else {
    for (int64_t i = 0; i < count; ++i) out[i * step] += in[i];
  }
}

// im2col of one channel of one image, images outermost: rows[tap * row_stride + p].
template <class T>
void unroll_channel_outermost(const Conv2dGeometry& g, const Plan& plan, const T* source, T* rows,
                              int64_t row_stride) {
  const int64_t padded_width = g.in_width + 2 * g.padding_width;
  const T* plane = source;  // without padding every tap is in bounds already
  if (has_padding(g)) {
    T* copy = thread_scratch<T>(ScratchSlot::kConvPlane, (g.in_height + 2 * g.padding_height) * padded_width);
    copy_into_padded(g, source, copy);
    plane = copy;
  }
  const int64_t out_height = plan.out_height, out_width = plan.out_width;
  const int64_t row_step = g.stride_height * padded_width, column_step = g.stride_width;
  for (int64_t ki = 0; ki < g.kernel_height; ++ki) {
    for (int64_t kj = 0; kj < g.kernel_width; ++kj, rows += row_stride) {
      const T* window = plane + ki * g.dilation_height * padded_width + kj * g.dilation_width;
      T* out = rows;
      for (int64_t oh = 0; oh < out_height; ++oh, out += out_width)
        copy_strided_row(window + oh * row_step, column_step, out, out_width);
    }
  }
}

// col2im of one channel of one image, images outermost: sums every tap into a zeroed padded
// plane (straight into dx when there is no padding), then copies the interior to dx.
template <class T>
void fold_channel_outermost(const Conv2dGeometry& g, const Plan& plan, const T* rows, int64_t row_stride, T* dx) {
  const int64_t padded_height = g.in_height + 2 * g.padding_height, padded_width = g.in_width + 2 * g.padding_width;
  T* plane = has_padding(g) ? thread_scratch<T>(ScratchSlot::kConvPlane, padded_height * padded_width) : dx;
  std::fill(plane, plane + padded_height * padded_width, T(0));
  const int64_t out_height = plan.out_height, out_width = plan.out_width;
  const int64_t row_step = g.stride_height * padded_width, column_step = g.stride_width;
  for (int64_t ki = 0; ki < g.kernel_height; ++ki) {
    for (int64_t kj = 0; kj < g.kernel_width; ++kj, rows += row_stride) {
      T* window = plane + ki * g.dilation_height * padded_width + kj * g.dilation_width;
      const T* in = rows;
      for (int64_t oh = 0; oh < out_height; ++oh, in += out_width)
        add_strided_row(in, window + oh * row_step, column_step, out_width);
    }
  }
  if (plane == dx) return;
  for (int64_t ih = 0; ih < g.in_height; ++ih) {
    const T* row = plane + (ih + g.padding_height) * padded_width + g.padding_width;
    for (int64_t iw = 0; iw < g.in_width; ++iw) dx[ih * g.in_width + iw] = row[iw];
  }
}

// im2col of one channel of `images` images, images innermost:
// rows[tap * row_stride + p * images + j]. x points at the channel's plane in image 0.
template <class T>
void unroll_channel_innermost(const Plan& plan, const T* x, int64_t image_stride, int64_t images, T* rows,
                              int64_t row_stride) {
  T* transposed = thread_scratch<T>(ScratchSlot::kConvPlane, plan.in_plane * images);  // [q][j]
  transpose(x, images, plan.in_plane, image_stride, transposed, images);
  for (int64_t tap = 0; tap < plan.taps; ++tap, rows += row_stride) {
    const int32_t* input_of_output = plan.tap_tables.input_of_output.data() + tap * plan.plane;
    for (int64_t p = 0; p < plan.plane; ++p) {
      T* run = rows + p * images;
      const int32_t q = input_of_output[p];
      if (q < 0) {
        for (int64_t j = 0; j < images; ++j) run[j] = T(0);
      } else {
        const T* source = transposed + q * images;
        for (int64_t j = 0; j < images; ++j) run[j] = source[j];
      }
    }
  }
}

// col2im of one channel of `images` images, images innermost. dx points at the channel's
// plane in image 0.
template <class T>
void fold_channel_innermost(const Plan& plan, const T* rows, int64_t row_stride, int64_t images, T* dx,
                            int64_t image_stride) {
  T* sums = thread_scratch<T>(ScratchSlot::kConvPlane, plan.in_plane * images);  // [q][j]
  for (int64_t q = 0; q < plan.in_plane; ++q) {
    T* sum = sums + q * images;
    for (int64_t j = 0; j < images; ++j) sum[j] = T(0);
    for (int64_t tap = 0; tap < plan.taps; ++tap) {
      const int32_t p = plan.tap_tables.output_of_input[tap * plan.in_plane + q];
      if (p < 0) continue;
      const T* run = rows + tap * row_stride + p * images;
      for (int64_t j = 0; j < images; ++j) sum[j] += run[j];
    }
  }
  transpose(sums, plan.in_plane, images, images, dx, image_stride);
}

// columns (K, images * P) of the chunk whose first image's group starts at x_group.
template <class T>
void unroll_chunk(const Conv2dGeometry& g, const Plan& plan, const T* x_group, int64_t images, T* columns) {
  const int64_t width = images * plan.plane, image_stride = g.in_channels * plan.in_plane;
  if (plan.is_pointwise) {  // the group's planes of each image are its columns: copy them whole
    if (plan.images_innermost) {
      transpose(x_group, images, plan.column_rows * plan.plane, image_stride, columns, images);
    } else {
      for (int64_t j = 0; j < images; ++j)
        for (int64_t c = 0; c < plan.column_rows; ++c)
          std::memcpy(columns + c * width + j * plan.plane, x_group + j * image_stride + c * plan.plane,
                      sizeof(T) * plan.plane);
    }
    return;
  }
  if (plan.images_innermost) {
#pragma omp parallel for schedule(static) if (plan.parallel_unrolling && plan.column_rows * width >= kParallelElements)
    for (int64_t c = 0; c < plan.group_in_channels; ++c)
      unroll_channel_innermost(plan, x_group + c * plan.in_plane, image_stride, images,
                               columns + c * plan.taps * width, width);
  } else {
#pragma omp parallel for schedule(static) if (plan.parallel_unrolling && plan.column_rows * width >= kParallelElements)
    for (int64_t jc = 0; jc < images * plan.group_in_channels; ++jc) {
      const int64_t j = jc / plan.group_in_channels, c = jc % plan.group_in_channels;
      unroll_channel_outermost(g, plan, x_group + j * image_stride + c * plan.in_plane,
                               columns + c * plan.taps * width + j * plan.plane, width);
    }
  }
}

// The adjoint of unroll_chunk: overwrites the chunk's grad_input (group slice at dx_group)
// with the sum, for each element, of the column entries unroll_chunk copied from it.
template <class T>
void fold_chunk(const Conv2dGeometry& g, const Plan& plan, const T* columns, int64_t images, T* dx_group) {
  const int64_t width = images * plan.plane, image_stride = g.in_channels * plan.in_plane;
  if (plan.is_pointwise) {  // each input element is read by one column entry: copy them back
    if (plan.images_innermost) {
      transpose(columns, plan.column_rows * plan.plane, images, images, dx_group, image_stride);
    } else {
      for (int64_t j = 0; j < images; ++j)
        for (int64_t c = 0; c < plan.column_rows; ++c)
          std::memcpy(dx_group + j * image_stride + c * plan.plane, columns + c * width + j * plan.plane,
                      sizeof(T) * plan.plane);
    }
    return;
  }
  if (plan.images_innermost) {
#pragma omp parallel for schedule(static) if (plan.parallel_unrolling && plan.column_rows * width >= kParallelElements)
    for (int64_t c = 0; c < plan.group_in_channels; ++c)
      fold_channel_innermost(plan, columns + c * plan.taps * width, width, images, dx_group + c * plan.in_plane,
                             image_stride);
  } else {
#pragma omp parallel for schedule(static) if (plan.parallel_unrolling && plan.column_rows * width >= kParallelElements)
    for (int64_t jc = 0; jc < images * plan.group_in_channels; ++jc) {
      const int64_t j = jc / plan.group_in_channels, c = jc % plan.group_in_channels;
      fold_channel_outermost(g, plan, columns + c * plan.taps * width + j * plan.plane, width,
                             dx_group + j * image_stride + c * plan.in_plane);
    }
  }
}

// Moves a (group_out_channels, images * P) GEMM result, in the plan's column order, to the
// NCHW output of the chunk (y_group: the group's first channel in the chunk's first image),
// and back.
template <class T>
void scatter_to_nchw(const Conv2dGeometry& g, const Plan& plan, const T* wide, int64_t images, T* y_group) {
  const int64_t width = images * plan.plane, image_stride = g.out_channels * plan.plane;
  if (plan.images_innermost) {  // wide[(c * P + p) * images + j] -> y[j][c][p]
    transpose(wide, plan.group_out_channels * plan.plane, images, images, y_group, image_stride);
    return;
  }
  for (int64_t c = 0; c < plan.group_out_channels; ++c) {
    const T* row = wide + c * width;
    for (int64_t j = 0; j < images; ++j)
      std::memcpy(y_group + j * image_stride + c * plan.plane, row + j * plan.plane, sizeof(T) * plan.plane);
  }
}

template <class T>
void gather_from_nchw(const Conv2dGeometry& g, const Plan& plan, const T* y_group, int64_t images, T* wide) {
  const int64_t width = images * plan.plane, image_stride = g.out_channels * plan.plane;
  if (plan.images_innermost) {
    transpose(y_group, images, plan.group_out_channels * plan.plane, image_stride, wide, images);
    return;
  }
  for (int64_t c = 0; c < plan.group_out_channels; ++c) {
    T* row = wide + c * width;
    for (int64_t j = 0; j < images; ++j)
      std::memcpy(row + j * plan.plane, y_group + j * image_stride + c * plan.plane, sizeof(T) * plan.plane);
  }
}

// ---- one worker's share of the batch ------------------------------------------------------------
// With one image per chunk both column orders are plain NCHW planes, so the GEMMs read and
// write the tensors in place.

template <class T>
void forward_images(const Conv2dGeometry& g, const Plan& plan, const T* input, const T* weight, const T* bias,
                    T* output, int64_t first_image, int64_t end_image) {
  const int64_t in_image = g.in_channels * plan.in_plane;
  const int64_t out_image = g.out_channels * plan.plane;
  const int64_t group_weight = plan.group_out_channels * plan.column_rows;

  for (int64_t n0 = first_image; n0 < end_image; n0 += plan.images_per_chunk) {
    const int64_t images = std::min(plan.images_per_chunk, end_image - n0);
    const int64_t width = images * plan.plane;
    for (int64_t group = 0; group < g.groups; ++group) {
      const T* x_group = input + n0 * in_image + group * plan.group_in_channels * plan.in_plane;
      T* y_group = output + n0 * out_image + group * plan.group_out_channels * plan.plane;
      const T* w_group = weight + group * group_weight;
      const GemmShape shape{plan.group_out_channels, width, plan.column_rows, false, false};

      if (images == 1 && plan.is_pointwise) {
        gemm<T>(shape, T(1), w_group, plan.column_rows, x_group, plan.plane, T(0), y_group, plan.plane);
        continue;
      }
      T* columns = thread_scratch<T>(ScratchSlot::kConvColumns, plan.column_rows * width);
      unroll_chunk(g, plan, x_group, images, columns);
      if (images == 1) {
        gemm<T>(shape, T(1), w_group, plan.column_rows, columns, width, T(0), y_group, plan.plane);
      } else {
        T* wide = thread_scratch<T>(ScratchSlot::kConvWide, plan.group_out_channels * width);
        gemm<T>(shape, T(1), w_group, plan.column_rows, columns, width, T(0), wide, width);
        scatter_to_nchw(g, plan, wide, images, y_group);
      }
    }
    if (bias != nullptr) {  // while the chunk's output is still in cache
      for (int64_t nc = 0; nc < images * g.out_channels; ++nc) {
        T* plane = output + n0 * out_image + nc * plan.plane;
        const T b = bias[nc % g.out_channels];
        for (int64_t p = 0; p < plan.plane; ++p) plane[p] += b;
      }
    }
  }
}

// grad_weight (when not null) is this worker's own accumulator, overwritten by its first chunk.
template <class T>
void backward_images(const Conv2dGeometry& g, const Plan& plan, const T* grad_output, const T* input, const T* weight,
                     T* grad_input, T* grad_weight, int64_t first_image, int64_t end_image) {
  const int64_t in_image = g.in_channels * plan.in_plane;
  const int64_t out_image = g.out_channels * plan.plane;
  const int64_t group_weight = plan.group_out_channels * plan.column_rows;

  for (int64_t n0 = first_image; n0 < end_image; n0 += plan.images_per_chunk) {
    const int64_t images = std::min(plan.images_per_chunk, end_image - n0);
    const int64_t width = images * plan.plane;
    for (int64_t group = 0; group < g.groups; ++group) {
      const int64_t x_offset = n0 * in_image + group * plan.group_in_channels * plan.in_plane;
      const T* dy_group = grad_output + n0 * out_image + group * plan.group_out_channels * plan.plane;
      const T* w_group = weight + group * group_weight;

      // grad_output of the chunk as a (group_out_channels, width) matrix with row stride dy_stride.
      const T* dy = dy_group;
      int64_t dy_stride = plan.plane;
      if (images > 1) {
        T* wide = thread_scratch<T>(ScratchSlot::kConvWide, plan.group_out_channels * width);
        gather_from_nchw(g, plan, dy_group, images, wide);
        dy = wide;
        dy_stride = width;
      }

      if (grad_weight != nullptr) {
        // grad_weight (C_out/g, K) (+)= dy (C_out/g, width) @ columns^T (width, K).
        const T* columns = input + x_offset;
        int64_t columns_stride = plan.plane;
        if (!(images == 1 && plan.is_pointwise)) {
          T* unrolled = thread_scratch<T>(ScratchSlot::kConvColumns, plan.column_rows * width);
          unroll_chunk(g, plan, input + x_offset, images, unrolled);
          columns = unrolled;
          columns_stride = width;
        }
        const GemmShape shape{plan.group_out_channels, plan.column_rows, width, false, true};
        gemm<T>(shape, T(1), dy, dy_stride, columns, columns_stride, n0 == first_image ? T(0) : T(1),
                grad_weight + group * group_weight, plan.column_rows);
      }

      if (grad_input != nullptr) {
        // grad_columns (K, width) = weight^T (K, C_out/g) @ dy (C_out/g, width).
        const GemmShape shape{plan.column_rows, width, plan.group_out_channels, true, false};
        if (images == 1 && plan.is_pointwise) {
          gemm<T>(shape, T(1), w_group, plan.column_rows, dy, dy_stride, T(0), grad_input + x_offset, plan.plane);
          continue;
        }
        T* grad_columns = thread_scratch<T>(ScratchSlot::kConvColumns, plan.column_rows * width);
        gemm<T>(shape, T(1), w_group, plan.column_rows, dy, dy_stride, T(0), grad_columns, width);
        fold_chunk(g, plan, grad_columns, images, grad_input + x_offset);
      }
    }
  }
}

// Winograd for the float32 3x3 stride-1 convolutions (conv2d_winograd.h), except while the
// reference kernels are asked for: then im2col + GEMM, whose only rounding is the GEMM's.
bool winograd_applies_here(const Conv2dGeometry& g) { return !reference_kernels_enabled() && winograd_applies(g); }

}  // namespace

template <class T>
void conv2d_forward(const Conv2dForward<T>& arguments) {
  const Conv2dGeometry& g = arguments.geometry;
  const T* input = arguments.input;
  const T* weight = arguments.weight;
  const T* bias = arguments.bias;
  T* output = arguments.output;
  const Plan plan = make_plan(g);
  if (g.batch == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    if (winograd_applies_here(g)) {
      winograd_forward(g, input, weight, bias, output);
      return;
    }
  }
  run_workers(plan, g.batch, [&](int64_t first_image, int64_t end_image, int) {
    forward_images(g, plan, input, weight, bias, output, first_image, end_image);
  });
}

template <class T>
void conv2d_backward(const Conv2dBackward<T>& arguments) {
  const Conv2dGeometry& g = arguments.geometry;
  const T* grad_output = arguments.grad_output;
  const T* input = arguments.input;
  const T* weight = arguments.weight;
  T* grad_input = arguments.grad_input;
  T* grad_weight = arguments.grad_weight;
  T* grad_bias = arguments.grad_bias;
  const Plan plan = make_plan(g);
  if constexpr (std::is_same_v<T, float>) {
    // Both gradients through Winograd; the bias gradient below.
    if (g.batch > 0 && winograd_applies_here(g)) {
      if (grad_input != nullptr) winograd_backward_input(g, grad_output, weight, grad_input);
      if (grad_weight != nullptr) winograd_backward_weight(g, grad_output, input, grad_weight);
      grad_input = nullptr;
      grad_weight = nullptr;
    }
  }
  const int64_t weight_numel = g.groups * plan.group_out_channels * plan.column_rows;

  if (g.batch == 0) {
    if (grad_weight != nullptr) std::fill(grad_weight, grad_weight + weight_numel, T(0));
  } else if (grad_input != nullptr || grad_weight != nullptr) {
    // Worker 0 accumulates its filter gradient in grad_weight, the others in partials.
    T* partials = grad_weight != nullptr && plan.workers > 1
                      ? thread_scratch<T>(ScratchSlot::kConvPartialGrad, (plan.workers - 1) * weight_numel)
                      : nullptr;
    const int workers_run = run_workers(plan, g.batch, [&](int64_t first_image, int64_t end_image, int worker) {
      T* accumulator = grad_weight == nullptr ? nullptr
                       : worker == 0          ? grad_weight
                                              : partials + (worker - 1) * weight_numel;
      backward_images(g, plan, grad_output, input, weight, grad_input, accumulator, first_image, end_image);
    });
    if (grad_weight != nullptr && workers_run > 1) {
#pragma omp parallel for schedule(static) if (weight_numel >= kParallelElements)
      for (int64_t i = 0; i < weight_numel; ++i) {
        T total = grad_weight[i];
        for (int worker = 1; worker < workers_run; ++worker) total += partials[(worker - 1) * weight_numel + i];
        grad_weight[i] = total;
      }
    }
  }

  if (grad_bias != nullptr) {
    const int64_t out_image = g.out_channels * plan.plane;
#pragma omp parallel for schedule(static) if (g.batch * out_image >= kParallelElements)
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

template void conv2d_forward<float>(const Conv2dForward<float>&);
template void conv2d_forward<double>(const Conv2dForward<double>&);
template void conv2d_backward<float>(const Conv2dBackward<float>&);
template void conv2d_backward<double>(const Conv2dBackward<double>&);

}  // namespace visrep::kernels::cpu
