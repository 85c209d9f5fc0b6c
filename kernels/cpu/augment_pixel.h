// The per-pixel arithmetic of the augmentation ops (kernels/cpu/augment.h), written once
// for the CPU reference and the CUDA kernels alike (VISREP_HOST_DEVICE), so the two
// devices evaluate the same float expressions in the same order. What can still differ:
// the GPU contracts a * b + c into one fused multiply-add and its expf may differ in the
// last bit, and the per-channel means of the contrast op are summed in another order
// (both in double). Those are ~1e-7 effects; the parity test allows 1/255.
//
// Conventions: values are floats in [0, 1]; a source pixel is uint8 / 255; every
// colour op clips its result to [0, 1] (SimCLR's color_jitter_rand clips after each op).
#pragma once

#include <math.h>
#include <stdint.h>

#include "kernels/cpu/augment.h"
#include "kernels/host_device.h"

namespace visrep::kernels::augment {

VISREP_HOST_DEVICE inline float clip_unit(float value) {
  return value < 0.0f ? 0.0f : (value > 1.0f ? 1.0f : value);
}

VISREP_HOST_DEVICE inline int clamp_index(int index, int size) {
  return index < 0 ? 0 : (index >= size ? size - 1 : index);
}

// Source coordinate of output pixel `o` of an axis whose crop starts at `start` and covers
// `scale` source pixels per output pixel, pixel centres at +0.5 (TF2's tf.image.resize and
// PyTorch's align_corners = false). A whole-image crop at the same size gives o exactly.
VISREP_HOST_DEVICE inline float source_coordinate(int o, float start, float scale) {
  return start + (static_cast<float>(o) + 0.5f) * scale - 0.5f;
}

// Linear interpolation taps along one axis: value = v[i0] * (1 - w1) + v[i1] * w1.
// Coordinates below 0 clamp to 0 (PyTorch's upsample_bilinear2d); past the last pixel both
// taps are the last pixel.
struct LinearTaps {
  int i0, i1;
  float w1;
};

VISREP_HOST_DEVICE inline LinearTaps linear_taps(float s, int size) {
  LinearTaps taps;
  if (s < 0.0f) s = 0.0f;
  taps.i0 = static_cast<int>(s);  // floor, s >= 0
  if (taps.i0 >= size - 1) {
    taps.i0 = size - 1;
    taps.i1 = size - 1;
    taps.w1 = 0.0f;
  } else {
    taps.i1 = taps.i0 + 1;
    taps.w1 = s - static_cast<float>(taps.i0);
  }
  return taps;
}

// Keys' cubic convolution kernel with a = -0.5 (TF2's bicubic resize and PIL; PyTorch uses
// -0.75): W(0) = 1 and W(1) = W(2) = 0, so sampling at an integer coordinate is exact.
VISREP_HOST_DEVICE inline float cubic_weight(float t) {
  const float a = -0.5f;
  t = t < 0.0f ? -t : t;
  if (t <= 1.0f) return ((a + 2.0f) * t - (a + 3.0f)) * t * t + 1.0f;
  if (t < 2.0f) return ((a * t - 5.0f * a) * t + 8.0f * a) * t - 4.0f * a;
  return 0.0f;
}

// The four taps floor(s) - 1 .. floor(s) + 2 (indices clamped to the image, as PyTorch's
// replicate border) and their weights.
struct CubicTaps {
  int index[4];
  float weight[4];
};

VISREP_HOST_DEVICE inline CubicTaps cubic_taps(float s, int size) {
  CubicTaps taps;
  const float base = ::floorf(s);
  const float t = s - base;
  const int i = static_cast<int>(base);
  taps.weight[0] = cubic_weight(1.0f + t);
  taps.weight[1] = cubic_weight(t);
  taps.weight[2] = cubic_weight(1.0f - t);
  taps.weight[3] = cubic_weight(2.0f - t);
  for (int k = 0; k < 4; ++k) taps.index[k] = clamp_index(i - 1 + k, size);
  return taps;
}

// Output pixel (oy, ox) of `params`'s crop of source image `image` (uint8 HWC): the
// resized value of every channel, scaled to [0, 1] and clipped, into value[0..channels).
VISREP_HOST_DEVICE inline void sample_pixel(const AugmentGeometry& g, const AugmentParams& p, const uint8_t* image,
                                            int oy, int ox, float* value) {
  const int height = static_cast<int>(g.in_height), width = static_cast<int>(g.in_width);
  const int channels = static_cast<int>(g.channels);
  const int out_width = static_cast<int>(g.out_width);
  const int column = p.flip ? out_width - 1 - ox : ox;
  const float scale_y = p.crop_height / static_cast<float>(g.out_height);
  const float scale_x = p.crop_width / static_cast<float>(g.out_width);
  const float sy = source_coordinate(oy, p.crop_top, scale_y);
  const float sx = source_coordinate(column, p.crop_left, scale_x);
  if (g.interpolation == Interpolation::Bilinear) {
    const LinearTaps ty = linear_taps(sy, height), tx = linear_taps(sx, width);
    const uint8_t* row0 = image + static_cast<int64_t>(ty.i0) * width * channels;
    const uint8_t* row1 = image + static_cast<int64_t>(ty.i1) * width * channels;
    for (int c = 0; c < channels; ++c) {
      const float top = static_cast<float>(row0[tx.i0 * channels + c]) * (1.0f - tx.w1) +
                        static_cast<float>(row0[tx.i1 * channels + c]) * tx.w1;
      const float bottom = static_cast<float>(row1[tx.i0 * channels + c]) * (1.0f - tx.w1) +
                           static_cast<float>(row1[tx.i1 * channels + c]) * tx.w1;
      value[c] = clip_unit((top * (1.0f - ty.w1) + bottom * ty.w1) / 255.0f);
    }
  } else {
    const CubicTaps ty = cubic_taps(sy, height), tx = cubic_taps(sx, width);
    for (int c = 0; c < channels; ++c) {
      float total = 0.0f;
      for (int ky = 0; ky < 4; ++ky) {
        const uint8_t* row = image + static_cast<int64_t>(ty.index[ky]) * width * channels;
        float row_total = 0.0f;
        for (int kx = 0; kx < 4; ++kx) row_total += tx.weight[kx] * static_cast<float>(row[tx.index[kx] * channels + c]);
        total += ty.weight[ky] * row_total;
      }
      value[c] = clip_unit(total / 255.0f);
    }
  }
}

// ---- colour ---------------------------------------------------------------------------------

// RGB <-> HSV as tf.image.rgb_to_hsv / hsv_to_rgb: h in [0, 1), s = (max - min) / max.
VISREP_HOST_DEVICE inline void rgb_to_hsv(float r, float g, float b, float& h, float& s, float& v) {
  const float largest = r > g ? (r > b ? r : b) : (g > b ? g : b);
  const float smallest = r < g ? (r < b ? r : b) : (g < b ? g : b);
  const float range = largest - smallest;
  v = largest;
  s = largest > 0.0f ? range / largest : 0.0f;
  if (range <= 0.0f) {
    h = 0.0f;
    return;
  }
  if (largest == r) {
    h = (g - b) / range;
  } else if (largest == g) {
    h = (b - r) / range + 2.0f;
  } else {
    h = (r - g) / range + 4.0f;
  }
  h = h / 6.0f;
  if (h < 0.0f) h += 1.0f;
}

VISREP_HOST_DEVICE inline void hsv_to_rgb(float h, float s, float v, float& r, float& g, float& b) {
  const float h6 = h * 6.0f;
  const float sector = ::floorf(h6);
  const float f = h6 - sector;
  int i = static_cast<int>(sector) % 6;
  if (i < 0) i += 6;
  const float p = v * (1.0f - s);
  const float q = v * (1.0f - s * f);
  const float t = v * (1.0f - s * (1.0f - f));
  switch (i) {
    case 0: r = v; g = t; b = p; break;
    case 1: r = q; g = v; b = p; break;
    case 2: r = p; g = v; b = t; break;
    case 3: r = p; g = q; b = v; break;
    case 4: r = t; g = p; b = v; break;
    default: r = v; g = p; b = q; break;
  }
}

VISREP_HOST_DEVICE inline void brightness_pixel(float* value, int channels, float factor) {
  for (int c = 0; c < channels; ++c) value[c] = clip_unit(value[c] * factor);
}

VISREP_HOST_DEVICE inline void contrast_pixel(float* value, int channels, float factor, const float* mean) {
  for (int c = 0; c < channels; ++c) value[c] = clip_unit((value[c] - mean[c]) * factor + mean[c]);
}

VISREP_HOST_DEVICE inline void saturation_pixel(float* value, int channels, float factor) {
  if (channels != 3) return;
  float h, s, v;
  rgb_to_hsv(value[0], value[1], value[2], h, s, v);
  s = clip_unit(s * factor);
  hsv_to_rgb(h, s, v, value[0], value[1], value[2]);
  for (int c = 0; c < 3; ++c) value[c] = clip_unit(value[c]);
}

VISREP_HOST_DEVICE inline void hue_pixel(float* value, int channels, float delta) {
  if (channels != 3) return;
  float h, s, v;
  rgb_to_hsv(value[0], value[1], value[2], h, s, v);
  h = h + delta;
  h = h - ::floorf(h);  // wrap to [0, 1)
  hsv_to_rgb(h, s, v, value[0], value[1], value[2]);
  for (int c = 0; c < 3; ++c) value[c] = clip_unit(value[c]);
}

// An op whose factor is the identity is skipped, not computed: (x - m) * 1 + m and an HSV
// round trip are not exactly x in float, and "factor 1 is the identity" should hold exactly.
VISREP_HOST_DEVICE inline bool jitter_op_active(const AugmentParams& p, int op) {
  switch (op) {
    case kJitterBrightness: return p.brightness != 1.0f;
    case kJitterContrast: return p.contrast != 1.0f;
    case kJitterSaturation: return p.saturation != 1.0f;
    default: return p.hue != 0.0f;
  }
}

// Whether the view's contrast op needs the per-channel mean of the image as it is when the
// contrast op's turn comes.
VISREP_HOST_DEVICE inline bool needs_contrast_mean(const AugmentParams& p) {
  return p.jitter != 0 && jitter_op_active(p, kJitterContrast);
}

// Applies jitter steps [first, last) of the view's order to one pixel. The contrast step
// uses `mean` (one value per channel), which the caller computed over the whole image as
// it stood after steps [0, the contrast step).
VISREP_HOST_DEVICE inline void jitter_pixel(const AugmentParams& p, int first, int last, float* value, int channels,
                                            const float* mean) {
  for (int step = first; step < last; ++step) {
    const int op = p.jitter_order[step];
    if (!jitter_op_active(p, op)) continue;
    switch (op) {
      case kJitterBrightness: brightness_pixel(value, channels, p.brightness); break;
      case kJitterContrast: contrast_pixel(value, channels, p.contrast, mean); break;
      case kJitterSaturation: saturation_pixel(value, channels, p.saturation); break;
      default: hue_pixel(value, channels, p.hue); break;
    }
  }
}

// The position of the contrast op in the view's jitter order (4 if absent).
VISREP_HOST_DEVICE inline int contrast_step(const AugmentParams& p) {
  for (int step = 0; step < 4; ++step) {
    if (p.jitter_order[step] == kJitterContrast) return step;
  }
  return 4;
}

// ITU-R BT.601 luma (tf.image.rgb_to_grayscale uses the same weights, rounded to 4 digits).
VISREP_HOST_DEVICE inline void grayscale_pixel(float* value, int channels) {
  if (channels != 3) return;
  const float luma = 0.299f * value[0] + 0.587f * value[1] + 0.114f * value[2];
  value[0] = value[1] = value[2] = luma;
}

// Everything from the source pixel to the value before the blur: crop + resize (+ flip),
// the jitter (its contrast step with `mean`, which may be null when not needed), grayscale.
VISREP_HOST_DEVICE inline void pixel_before_blur(const AugmentGeometry& g, const AugmentParams& p,
                                                 const uint8_t* image, int oy, int ox, const float* mean,
                                                 float* value) {
  const int channels = static_cast<int>(g.channels);
  sample_pixel(g, p, image, oy, ox, value);
  if (p.jitter) jitter_pixel(p, 0, 4, value, channels, mean);
  if (p.grayscale) grayscale_pixel(value, channels);
}

// ---- after the blur -------------------------------------------------------------------------

VISREP_HOST_DEVICE inline float solarize_value(float value, float threshold) {
  return value >= threshold ? 1.0f - value : value;
}

// Solarize (if the view has it), then normalise: the value written to the output.
VISREP_HOST_DEVICE inline float finish_value(const AugmentGeometry& g, const AugmentParams& p, int channel,
                                             float value) {
  if (p.solarize) value = solarize_value(value, p.solarize_threshold);
  return (value - g.mean[channel]) / g.std[channel];
}

// The 2 * radius + 1 Gaussian weights exp(-k^2 / (2 sigma^2)), k = -radius .. radius,
// divided by their sum (added in that order).
VISREP_HOST_DEVICE inline void gaussian_weights(int radius, float sigma, float* weights) {
  const float denominator = 2.0f * sigma * sigma;
  float total = 0.0f;
  for (int k = -radius; k <= radius; ++k) {
    const float w = ::expf(-static_cast<float>(k * k) / denominator);
    weights[k + radius] = w;
    total += w;
  }
  for (int k = 0; k < 2 * radius + 1; ++k) weights[k] = weights[k] / total;
}

}  // namespace visrep::kernels::augment
