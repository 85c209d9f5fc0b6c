// The augmentation ops on the CPU, the reference of kernels/cuda/augment.cu
// (kernels/cpu/augment.h specifies them and lists the family's files).
#include "kernels/cpu/augment.h"

#include <algorithm>
#include <vector>

#include "kernels/cpu/augment_pixel.h"

namespace visrep::kernels::cpu {

using namespace visrep::kernels::augment;

void resize_crop(const AugmentGeometry& g, const AugmentParams& p, const uint8_t* image, float* out) {
  const int64_t channels = g.channels;
  for (int64_t oy = 0; oy < g.out_height; ++oy) {
    for (int64_t ox = 0; ox < g.out_width; ++ox) {
      sample_pixel(g, p, image, static_cast<int>(oy), static_cast<int>(ox), out + (oy * g.out_width + ox) * channels);
    }
  }
}

void adjust_brightness(float* image, int64_t pixels, int64_t channels, float factor) {
  if (factor == 1.0f) return;
  for (int64_t i = 0; i < pixels; ++i) brightness_pixel(image + i * channels, static_cast<int>(channels), factor);
}

namespace {

// The per-channel means over the image, summed in double in pixel order.
void channel_means(const float* image, int64_t pixels, int64_t channels, float* mean) {
  double total[3] = {0.0, 0.0, 0.0};
  for (int64_t i = 0; i < pixels; ++i)
    for (int64_t c = 0; c < channels; ++c) total[c] += static_cast<double>(image[i * channels + c]);
  for (int64_t c = 0; c < channels; ++c) mean[c] = static_cast<float>(total[c] / static_cast<double>(pixels));
}

}  // namespace

// GCC 12 at -O3 reports mean[] as "may be used uninitialized" inside the inlined
// contrast_pixel although every element is initialised here: a known false positive of
// -Wmaybe-uninitialized on small local arrays, silenced for this function only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
void adjust_contrast(float* image, int64_t pixels, int64_t channels, float factor) {
  if (factor == 1.0f) return;
  float mean[3] = {0.0f, 0.0f, 0.0f};
  channel_means(image, pixels, channels, mean);
  for (int64_t i = 0; i < pixels; ++i) contrast_pixel(image + i * channels, static_cast<int>(channels), factor, mean);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

void adjust_saturation(float* image, int64_t pixels, int64_t channels, float factor) {
  if (factor == 1.0f) return;
  for (int64_t i = 0; i < pixels; ++i) saturation_pixel(image + i * channels, static_cast<int>(channels), factor);
}

void adjust_hue(float* image, int64_t pixels, int64_t channels, float delta) {
  if (delta == 0.0f) return;
  for (int64_t i = 0; i < pixels; ++i) hue_pixel(image + i * channels, static_cast<int>(channels), delta);
}

void to_grayscale(float* image, int64_t pixels, int64_t channels) {
  for (int64_t i = 0; i < pixels; ++i) grayscale_pixel(image + i * channels, static_cast<int>(channels));
}

void gaussian_blur(float* image, int64_t height, int64_t width, int64_t channels, int radius, float sigma,
                   float* scratch) {
  if (radius <= 0) return;
  std::vector<float> weights(static_cast<size_t>(2 * radius + 1));
  gaussian_weights(radius, sigma, weights.data());
  const int h = static_cast<int>(height), w = static_cast<int>(width);
  // Rows: image -> scratch.
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      for (int64_t c = 0; c < channels; ++c) {
        float total = 0.0f;
        for (int k = -radius; k <= radius; ++k) {
          total += weights[k + radius] * image[(static_cast<int64_t>(y) * w + clamp_index(x + k, w)) * channels + c];
        }
        scratch[(static_cast<int64_t>(y) * w + x) * channels + c] = total;
      }
    }
  }
  // Columns: scratch -> image.
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      for (int64_t c = 0; c < channels; ++c) {
        float total = 0.0f;
        for (int k = -radius; k <= radius; ++k) {
          total += weights[k + radius] * scratch[(static_cast<int64_t>(clamp_index(y + k, h)) * w + x) * channels + c];
        }
        image[(static_cast<int64_t>(y) * w + x) * channels + c] = total;
      }
    }
  }
}

void solarize(float* image, int64_t count, float threshold) {
  for (int64_t i = 0; i < count; ++i) image[i] = solarize_value(image[i], threshold);
}

void normalize_to_chw(const float* image, int64_t height, int64_t width, int64_t channels, const float* mean,
                      const float* std, float* out) {
  const int64_t pixels = height * width;
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t i = 0; i < pixels; ++i) out[c * pixels + i] = (image[i * channels + c] - mean[c]) / std[c];
}

int64_t augment_workspace_floats(const AugmentGeometry& g) { return 2 * g.out_pixels() * g.channels; }

void augment_view(const AugmentGeometry& g, const AugmentParams& p, const uint8_t* images, float* out,
                  float* workspace) {
  const int64_t pixels = g.out_pixels(), channels = g.channels;
  float* image = workspace;
  float* scratch = workspace + pixels * channels;
  resize_crop(g, p, images + static_cast<int64_t>(p.source) * g.in_image_bytes(), image);
  if (p.jitter) {
    for (int step = 0; step < 4; ++step) {
      switch (p.jitter_order[step]) {
        case kJitterBrightness: adjust_brightness(image, pixels, channels, p.brightness); break;
        case kJitterContrast: adjust_contrast(image, pixels, channels, p.contrast); break;
        case kJitterSaturation: adjust_saturation(image, pixels, channels, p.saturation); break;
        default: adjust_hue(image, pixels, channels, p.hue); break;
      }
    }
  }
  if (p.grayscale) to_grayscale(image, pixels, channels);
  if (p.blur_radius > 0) gaussian_blur(image, g.out_height, g.out_width, channels, p.blur_radius, p.blur_sigma, scratch);
  if (p.solarize) solarize(image, pixels * channels, p.solarize_threshold);
  normalize_to_chw(image, g.out_height, g.out_width, channels, g.mean, g.std, out);
}

void augment_batch(const AugmentBatch& arguments) {
  const AugmentGeometry& g = arguments.geometry;
#pragma omp parallel
  {
    std::vector<float> workspace(static_cast<size_t>(augment_workspace_floats(g)));
#pragma omp for schedule(dynamic, 1)
    for (int64_t view = 0; view < g.views; ++view) {
      augment_view(g, arguments.params[view], arguments.images, arguments.output + view * g.out_view_floats(),
                   workspace.data());
    }
  }
}

}  // namespace visrep::kernels::cpu
