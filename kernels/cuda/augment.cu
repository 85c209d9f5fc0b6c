// The augmentation pipeline on the GPU: uint8 NHWC source images -> float32 NCHW views;
// the CUDA twin of kernels/cpu/augment.cpp. Both evaluate the per-pixel formulas of
// kernels/cpu/augment_pixel.h, so a pixel here is computed by the same float expressions
// as on the CPU.
//
// Shape of the work: one thread per output pixel, a block per 256 pixels of one view
// (grid x = tiles of a view, grid y = views), up to four passes:
//   1. contrast means (only views whose jitter has a contrast step): each thread computes
//      its pixel up to the contrast step (crop + resize + flip + the jitter steps before
//      it) and the block sums the tile per channel in double; one partial sum per tile.
//   2. the fused pass: crop + resize + flip, the jitter in the view's order (the contrast
//      step uses the mean of the view's partial sums, added in tile order), grayscale,
//      then, for views without blur, solarize + normalise: the final output.
//   3./4. the separable blur (only views with blur): rows from the output buffer into a
//      scratch buffer, then columns back into the output with solarize + normalise.
// Recomputing the pixels in pass 1 instead of storing them costs a second read of the
// (small, cache-resident) uint8 source; it keeps pass 2 a single write of the output.
// Memory traffic per view: the output written once (3 floats a pixel), plus 2 reads + 2
// writes of it when blurred; the sources are read through L1/L2 (a bicubic tap is shared
// by the 16 neighbouring output pixels).
//
// Every __syncthreads is reached by all threads of a block: the early returns before one
// depend only on the block's view (its parameters), never on the thread.
// Where to look for the rest of the family: kernels/cpu/augment.h.
#include "kernels/cuda/augment.h"

#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/cpu/augment_pixel.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/runtime.h"

namespace visrep::kernels::cuda {
namespace {

using namespace visrep::kernels::augment;

constexpr int kAugmentThreads = 256;  // pixels per block (a power of two: the tree reduction halves it)
constexpr int kMaxGridY = 65535;      // views per launch

// Pass 1: partial[(view * tiles + tile) * 3 + c] = the sum over the tile's pixels of channel c
// just before the contrast step, for the views that need it.
__global__ void contrast_partial_sums_kernel(AugmentGeometry g, const AugmentParams* params, const uint8_t* images,
                                             int64_t view_offset, int tiles, double* partial) {
  __shared__ double sums[3][kAugmentThreads];
  const int64_t view = view_offset + blockIdx.y;
  const AugmentParams p = params[view];
  if (!needs_contrast_mean(p)) return;  // the same for every thread of the block
  const int channels = static_cast<int>(g.channels);
  const int64_t pixels = g.out_pixels();
  const int64_t pixel = static_cast<int64_t>(blockIdx.x) * kAugmentThreads + threadIdx.x;
  float value[3] = {0.0f, 0.0f, 0.0f};
  if (pixel < pixels) {
    const int oy = static_cast<int>(pixel / g.out_width), ox = static_cast<int>(pixel % g.out_width);
    sample_pixel(g, p, images + static_cast<int64_t>(p.source) * g.in_image_bytes(), oy, ox, value);
    jitter_pixel(p, 0, contrast_step(p), value, channels, nullptr);  // steps before contrast: no mean needed
  }
  for (int c = 0; c < 3; ++c) sums[c][threadIdx.x] = pixel < pixels ? static_cast<double>(value[c]) : 0.0;
  __syncthreads();
  for (int stride = kAugmentThreads / 2; stride > 0; stride /= 2) {
    if (static_cast<int>(threadIdx.x) < stride) {
      for (int c = 0; c < 3; ++c) sums[c][threadIdx.x] += sums[c][threadIdx.x + stride];
    }
    __syncthreads();
  }
  if (threadIdx.x < 3) partial[(view * tiles + blockIdx.x) * 3 + threadIdx.x] = sums[threadIdx.x][0];
}

// Pass 2: every view's pixels up to the blur; views without blur are finished here.
__global__ void augment_pixels_kernel(AugmentGeometry g, const AugmentParams* params, const uint8_t* images,
                                      int64_t view_offset, int tiles, const double* partial, float* output) {
  __shared__ float mean[3];
  const int64_t view = view_offset + blockIdx.y;
  const AugmentParams p = params[view];
  const int channels = static_cast<int>(g.channels);
  const int64_t pixels = g.out_pixels();
  if (needs_contrast_mean(p) && static_cast<int>(threadIdx.x) < channels) {
    double total = 0.0;
    for (int tile = 0; tile < tiles; ++tile) total += partial[(view * tiles + tile) * 3 + threadIdx.x];
    mean[threadIdx.x] = static_cast<float>(total / static_cast<double>(pixels));
  }
  __syncthreads();
  const int64_t pixel = static_cast<int64_t>(blockIdx.x) * kAugmentThreads + threadIdx.x;
  if (pixel >= pixels) return;
  const int oy = static_cast<int>(pixel / g.out_width), ox = static_cast<int>(pixel % g.out_width);
  float value[3];
  pixel_before_blur(g, p, images + static_cast<int64_t>(p.source) * g.in_image_bytes(), oy, ox, mean, value);
  float* out = output + view * channels * pixels + pixel;
  const bool blurred = p.blur_radius > 0;
  for (int c = 0; c < channels; ++c) out[c * pixels] = blurred ? value[c] : finish_value(g, p, c, value[c]);
}

// Pass 3: the blur along rows, `input` (the output buffer) -> `scratch`, blurred views only.
__global__ void blur_rows_kernel(AugmentGeometry g, const AugmentParams* params, int64_t view_offset,
                                 const float* input, float* scratch) {
  __shared__ float weights[2 * kMaxBlurRadius + 1];
  const int64_t view = view_offset + blockIdx.y;
  const AugmentParams p = params[view];
  if (p.blur_radius <= 0) return;  // the same for every thread of the block
  if (threadIdx.x == 0) gaussian_weights(p.blur_radius, p.blur_sigma, weights);
  __syncthreads();
  const int64_t pixels = g.out_pixels();
  const int64_t pixel = static_cast<int64_t>(blockIdx.x) * kAugmentThreads + threadIdx.x;
  if (pixel >= pixels) return;
  const int width = static_cast<int>(g.out_width);
  const int y = static_cast<int>(pixel / width), x = static_cast<int>(pixel % width);
  const int radius = p.blur_radius;
  for (int c = 0; c < static_cast<int>(g.channels); ++c) {
    const float* row = input + (view * g.channels + c) * pixels + static_cast<int64_t>(y) * width;
    float total = 0.0f;
    for (int k = -radius; k <= radius; ++k) total += weights[k + radius] * row[clamp_index(x + k, width)];
    scratch[(view * g.channels + c) * pixels + pixel] = total;
  }
}

// Pass 4: the blur along columns, `scratch` -> `output`, then solarize + normalise.
__global__ void blur_columns_kernel(AugmentGeometry g, const AugmentParams* params, int64_t view_offset,
                                    const float* scratch, float* output) {
  __shared__ float weights[2 * kMaxBlurRadius + 1];
  const int64_t view = view_offset + blockIdx.y;
  const AugmentParams p = params[view];
  if (p.blur_radius <= 0) return;
  if (threadIdx.x == 0) gaussian_weights(p.blur_radius, p.blur_sigma, weights);
  __syncthreads();
  const int64_t pixels = g.out_pixels();
  const int64_t pixel = static_cast<int64_t>(blockIdx.x) * kAugmentThreads + threadIdx.x;
  if (pixel >= pixels) return;
  const int width = static_cast<int>(g.out_width), height = static_cast<int>(g.out_height);
  const int y = static_cast<int>(pixel / width), x = static_cast<int>(pixel % width);
  const int radius = p.blur_radius;
  for (int c = 0; c < static_cast<int>(g.channels); ++c) {
    const float* plane = scratch + (view * g.channels + c) * pixels;
    float total = 0.0f;
    for (int k = -radius; k <= radius; ++k) {
      total += weights[k + radius] * plane[static_cast<int64_t>(clamp_index(y + k, height)) * width + x];
    }
    output[(view * g.channels + c) * pixels + pixel] = finish_value(g, p, c, total);
  }
}

void check_params(const AugmentGeometry& g, const AugmentParams* host_params, bool& any_contrast, bool& any_blur) {
  any_contrast = any_blur = false;
  for (int64_t view = 0; view < g.views; ++view) {
    const AugmentParams& p = host_params[view];
    if (p.source < 0 || p.source >= g.images) {
      throw std::runtime_error("augment_batch: view " + std::to_string(view) + " reads source image " +
                               std::to_string(p.source) + " of a batch of " + std::to_string(g.images));
    }
    if (p.blur_radius > kMaxBlurRadius) {
      throw std::runtime_error("augment_batch: blur radius " + std::to_string(p.blur_radius) + " exceeds " +
                               std::to_string(kMaxBlurRadius));
    }
    any_contrast = any_contrast || needs_contrast_mean(p);
    any_blur = any_blur || p.blur_radius > 0;
  }
}

}  // namespace

void augment_batch(const AugmentBatch& a, cudaStream_t stream) {
  const AugmentGeometry& g = a.geometry;
  if (g.views == 0 || g.out_pixels() == 0) return;
  if (g.channels != 1 && g.channels != 3) {
    throw std::runtime_error("augment_batch: images must have 1 or 3 channels, got " + std::to_string(g.channels));
  }
  bool any_contrast = false, any_blur = false;
  check_params(g, a.host_params, any_contrast, any_blur);
  const int64_t tiles = (g.out_pixels() + kAugmentThreads - 1) / kAugmentThreads;
  if (tiles > 0x7fffffff) throw std::runtime_error("augment_batch: output image too large");
  const int device = current_device();
  DeviceBuffer partial(any_contrast ? static_cast<size_t>(g.views * tiles * 3) * sizeof(double) : 0, device, stream);
  DeviceBuffer scratch(any_blur ? static_cast<size_t>(g.views * g.out_view_floats()) * sizeof(float) : 0, device,
                       stream);
  for (int64_t first = 0; first < g.views; first += kMaxGridY) {
    const int64_t count = g.views - first < kMaxGridY ? g.views - first : kMaxGridY;
    const dim3 grid(static_cast<unsigned int>(tiles), static_cast<unsigned int>(count));
    const int tile_count = static_cast<int>(tiles);
    if (any_contrast) {
      contrast_partial_sums_kernel<<<grid, kAugmentThreads, 0, stream>>>(g, a.params, a.images, first, tile_count,
                                                                         partial.get<double>());
      VISREP_CUDA_CHECK_LAUNCH("contrast_partial_sums_kernel");
    }
    augment_pixels_kernel<<<grid, kAugmentThreads, 0, stream>>>(g, a.params, a.images, first, tile_count,
                                                                partial.get<double>(), a.output);
    VISREP_CUDA_CHECK_LAUNCH("augment_pixels_kernel");
    if (any_blur) {
      blur_rows_kernel<<<grid, kAugmentThreads, 0, stream>>>(g, a.params, first, a.output, scratch.get<float>());
      VISREP_CUDA_CHECK_LAUNCH("blur_rows_kernel");
      blur_columns_kernel<<<grid, kAugmentThreads, 0, stream>>>(g, a.params, first, scratch.get<float>(), a.output);
      VISREP_CUDA_CHECK_LAUNCH("blur_columns_kernel");
    }
  }
}

}  // namespace visrep::kernels::cuda
