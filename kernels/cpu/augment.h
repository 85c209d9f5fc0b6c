// Image augmentation for contrastive learning (SimCLR, SupCon, BiT): crop + resize,
// horizontal flip, colour jitter (brightness, contrast, saturation, hue), grayscale,
// Gaussian blur, solarize and normalisation, from uint8 HWC source images to float32
// NCHW views.
//
// Nothing here is random. Every random choice of a view (its crop box, flip, jitter
// factors and their order, grayscale, blur sigma, solarize) is drawn beforehand on the host
// into an AugmentParams (engine/data/augment.cpp draws them from Philox, keyed by seed,
// epoch, sample and view), and the CPU and CUDA kernels consume the same array. So the
// CPU/CUDA parity is about pixel arithmetic only, and both share it literally: the
// per-pixel formulas live in kernels/cpu/augment_pixel.h, compiled for both.
//
// The CPU functions below are the specification: each op is a plain loop over one float
// HWC image in [0, 1] (pixel-wise ops clip to [0, 1] after themselves, as SimCLR's
// color_jitter_rand does), and augment_view() runs them in the pipeline's order:
//   crop + resize (+ flip), clip -> colour jitter in the view's random order (if applied)
//   -> grayscale (if applied) -> Gaussian blur (if applied) -> solarize (if applied)
//   -> (value - mean[c]) / std[c], written as CHW.
// kernels/cuda/augment.h fuses the same steps into as few passes as possible.
//
// Where to look, augmentation:
//   op               engine/data/augment.{h,cpp}   the parameter draws (AugmentParams) and augment_images();
//                    the data loader (engine/data/loader.h) runs it per batch
//   CPU reference    kernels/cpu/augment.{h,cpp}   this header; the per-pixel formulas: kernels/cpu/augment_pixel.h
//   CUDA twin        kernels/cuda/augment.{h,cu}
//   unit tests       tests/unit/test_augment.cpp (the draws, the presets, bad settings),
//                    tests/unit/test_augment_kernels.cpp (each CPU kernel against values computed by hand)
//   gradient check   none (augmentation is not differentiated)
//   parity cases     tests/parity/test_parity_augment.cpp
//   benchmark        benchmarks/bench_augment.cpp (images/s next to the CPU training step)
#pragma once

#include <cstdint>

#include "kernels/host_device.h"

namespace visrep::kernels {

enum class Interpolation : int32_t { Bilinear = 0, Bicubic = 1 };

// The colour-jitter operations, as they appear in AugmentParams::jitter_order.
enum JitterOperation : int32_t { kJitterBrightness = 0, kJitterContrast = 1, kJitterSaturation = 2, kJitterHue = 3 };

// The largest blur radius the kernels accept (a 129-tap kernel, SimCLR's 10% of a 1290-px side).
inline constexpr int kMaxBlurRadius = 64;

// Everything random about one output view. Plain data, the same bytes on the host and
// the device. Identity values: brightness/contrast/saturation 1, hue 0, the flags 0.
struct AugmentParams {
  int32_t source = 0;  // the image of the input batch this view is made from
  // The crop box in source pixels (fractional for resize-then-crop presets); it is
  // resized to the output size with pixel centres at +0.5 (align_corners = false).
  float crop_top = 0.0f;
  float crop_left = 0.0f;
  float crop_height = 0.0f;
  float crop_width = 0.0f;
  int32_t flip = 0;    // mirror left-right
  int32_t jitter = 0;  // apply the colour jitter below
  int32_t jitter_order[4] = {kJitterBrightness, kJitterContrast, kJitterSaturation, kJitterHue};
  float brightness = 1.0f;  // multiplicative factor (SimCLR v2's random_brightness)
  float contrast = 1.0f;    // (x - per-channel mean) * factor + mean (tf.image.adjust_contrast)
  float saturation = 1.0f;  // HSV saturation * factor, clipped to [0, 1] (tf.image.adjust_saturation)
  float hue = 0.0f;         // HSV hue + delta, wrapped to [0, 1) (tf.image.adjust_hue)
  int32_t grayscale = 0;    // ITU-R BT.601 luma into every channel
  int32_t blur_radius = 0;  // 0: no blur; else a (2r+1)-tap Gaussian along each axis
  float blur_sigma = 1.0f;
  int32_t solarize = 0;     // x >= threshold -> 1 - x
  float solarize_threshold = 0.5f;
};

// The batch: `views` outputs from `images` uint8 source images of one size.
struct AugmentGeometry {
  int64_t views = 0;
  int64_t images = 0;  // source images in the batch (AugmentParams::source < images)
  int64_t in_height = 0;
  int64_t in_width = 0;
  int64_t channels = 0;  // 1 or 3 (saturation, hue and grayscale leave 1-channel images alone)
  int64_t out_height = 0;
  int64_t out_width = 0;
  Interpolation interpolation = Interpolation::Bicubic;
  float mean[3] = {0.0f, 0.0f, 0.0f};  // output = (value - mean[c]) / std[c]
  float std[3] = {1.0f, 1.0f, 1.0f};

  VISREP_HOST_DEVICE int64_t out_pixels() const { return out_height * out_width; }
  VISREP_HOST_DEVICE int64_t in_image_bytes() const { return in_height * in_width * channels; }
  VISREP_HOST_DEVICE int64_t out_view_floats() const { return channels * out_height * out_width; }
};

// The argument of augment_batch, the CPU kernel and its CUDA twin: `geometry.views` outputs
// (views x channels x out_height x out_width floats) from `geometry.images` uint8 NHWC source
// images, view v made as params[v] says. images, params and output are on the kernel's device;
// host_params is the host copy of params (the same pointer on the CPU), which the CUDA twin
// reads to validate them and to choose the passes the batch needs (the contrast means, the blur).
struct AugmentBatch {
  AugmentGeometry geometry;
  const AugmentParams* host_params = nullptr;
  const AugmentParams* params = nullptr;
  const uint8_t* images = nullptr;
  float* output = nullptr;
};

}  // namespace visrep::kernels

namespace visrep::kernels::cpu {

// ---- the ops, each over one float HWC image -----------------------------------------------

// The crop box of `params` from `image` (uint8 HWC, in_height x in_width x channels),
// resized to out_height x out_width (mirrored when params.flip), scaled to [0, 1] and
// clipped (bicubic overshoots): `out` is float HWC.
void resize_crop(const AugmentGeometry& geometry, const AugmentParams& params, const uint8_t* image, float* out);
// Multiplies every value by factor, then clips.
void adjust_brightness(float* image, int64_t pixels, int64_t channels, float factor);
// (x - mean_c) * factor + mean_c with mean_c the channel's mean over the image, then clips.
void adjust_contrast(float* image, int64_t pixels, int64_t channels, float factor);
// HSV saturation times factor (clipped to [0, 1]); 3-channel images only (1 channel: no-op).
void adjust_saturation(float* image, int64_t pixels, int64_t channels, float factor);
// HSV hue plus delta, wrapped; 3-channel images only (1 channel: no-op).
void adjust_hue(float* image, int64_t pixels, int64_t channels, float delta);
// 0.299 R + 0.587 G + 0.114 B into all three channels (ITU-R BT.601); 1 channel: no-op.
void to_grayscale(float* image, int64_t pixels, int64_t channels);
// Separable Gaussian of 2 * radius + 1 taps, weights exp(-k^2 / (2 sigma^2)) normalised to
// sum 1, edges clamped (so a constant image stays constant; SimCLR's gaussian_blur pads with
// zeros, which darkens the border, torchvision's GaussianBlur reflects); rows first, then columns.
// `scratch` holds height * width * channels floats.
void gaussian_blur(float* image, int64_t height, int64_t width, int64_t channels, int radius, float sigma,
                   float* scratch);
// x >= threshold -> 1 - x.
void solarize(float* image, int64_t count, float threshold);
// (x - mean[c]) / std[c] from HWC `image` into CHW `out`.
void normalize_to_chw(const float* image, int64_t height, int64_t width, int64_t channels, const float* mean,
                      const float* std, float* out);

// ---- the pipeline --------------------------------------------------------------------------

// Floats of workspace augment_view needs: two out_height x out_width x channels images.
int64_t augment_workspace_floats(const AugmentGeometry& geometry);

// One view: `images` is the whole uint8 NHWC source batch, `out` this view's CHW floats.
void augment_view(const AugmentGeometry& geometry, const AugmentParams& params, const uint8_t* images, float* out,
                  float* workspace);

// Every view of the batch (AugmentBatch, above), spread over OpenMP threads (a thread that
// limits itself to one, as the data loader's workers do, runs them one after another).
void augment_batch(const AugmentBatch& arguments);

}  // namespace visrep::kernels::cpu
