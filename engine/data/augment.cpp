#include "engine/data/augment.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/dispatch.h"
#include "engine/error.h"
#include "kernels/cpu/augment.h"
#include "kernels/cuda/augment.h"
#include "kernels/philox.h"

namespace visrep::data {
namespace {

// Streams of augmentation draws carry this tag in their top byte, so they never meet the
// streams a Generator hands out (counted up from 0), e.g. the loader's shuffles.
constexpr uint64_t kAugmentStreamTag = 0xA6ull << 56;
constexpr int kDrawsPerView = 64;
// Where each draw of a view sits among its kDrawsPerView words.
constexpr int kCropAttemptWords = 0;  // 4 per attempt: area, aspect, top, left
constexpr int kMaxCropAttempts = 10;
constexpr int kFlipWord = 40, kJitterWord = 41, kFactorWords = 42, kOrderWords = 46, kGrayscaleWord = 49;
constexpr int kBlurWord = 50, kSigmaWord = 51, kSolarizeWord = 52, kResizeCropWords = 53;

// The random words of one view, fetched a Philox block (4 words) at a time.
class ViewRandom {
 public:
  ViewRandom(uint64_t seed, uint64_t epoch, int64_t sample, int view)
      : seed_(seed),
        stream_(kAugmentStreamTag | (epoch << 8) | static_cast<uint64_t>(view)),
        first_word_(static_cast<uint64_t>(sample) * kDrawsPerView) {}

  uint32_t bits(int word) {
    const uint64_t index = first_word_ + static_cast<uint64_t>(word);
    if (index / 4 != cached_block_) {
      cached_block_ = index / 4;
      block_ = kernels::philox_block(seed_, stream_, cached_block_);
    }
    return block_.words[index % 4];
  }
  // Uniform in [0, 1) with 24 random bits.
  double uniform(int word) { return static_cast<double>(bits(word) >> 8) * (1.0 / 16777216.0); }
  double uniform(int word, double low, double high) { return low + (high - low) * uniform(word); }
  bool chance(int word, double probability) { return uniform(word) < probability; }
  int64_t below(int word, int64_t range) {
    return static_cast<int64_t>(kernels::bounded_from_bits(bits(word), static_cast<uint64_t>(range)));
  }

 private:
  uint64_t seed_, stream_, first_word_;
  uint64_t cached_block_ = ~uint64_t{0};
  kernels::PhiloxBlock block_{};
};

struct Box {
  double top, left, height, width;
};

// torchvision's RandomResizedCrop.get_params, the aspect range relative to the output's.
Box random_resized_box(const AugmentConfig& c, int64_t in_height, int64_t in_width, ViewRandom& random) {
  const double area = static_cast<double>(in_height * in_width);
  const double output_aspect = static_cast<double>(c.width) / static_cast<double>(c.height);
  const double low_aspect = c.min_aspect * output_aspect, high_aspect = c.max_aspect * output_aspect;
  for (int attempt = 0; attempt < c.crop_attempts; ++attempt) {
    const int word = kCropAttemptWords + 4 * attempt;
    const double target_area = area * random.uniform(word, c.min_area, c.max_area);
    const double aspect = std::exp(random.uniform(word + 1, std::log(low_aspect), std::log(high_aspect)));
    const int64_t width = std::llround(std::sqrt(target_area * aspect));
    const int64_t height = std::llround(std::sqrt(target_area / aspect));
    if (width > 0 && width <= in_width && height > 0 && height <= in_height) {
      const int64_t top = random.below(word + 2, in_height - height + 1);
      const int64_t left = random.below(word + 3, in_width - width + 1);
      return {static_cast<double>(top), static_cast<double>(left), static_cast<double>(height),
              static_cast<double>(width)};
    }
  }
  // Fallback: the whole image, cut to the aspect range.
  const double in_aspect = static_cast<double>(in_width) / static_cast<double>(in_height);
  int64_t width = in_width, height = in_height;
  if (in_aspect < low_aspect) {
    height = std::max<int64_t>(1, std::llround(static_cast<double>(width) / low_aspect));
  } else if (in_aspect > high_aspect) {
    width = std::max<int64_t>(1, std::llround(static_cast<double>(height) * high_aspect));
  }
  return {static_cast<double>((in_height - height) / 2), static_cast<double>((in_width - width) / 2),
          static_cast<double>(height), static_cast<double>(width)};
}

// SimCLR's center_crop (_compute_crop_shape): keep `fraction` of the side that limits the
// output's aspect ratio.
Box center_box(const AugmentConfig& c, int64_t in_height, int64_t in_width) {
  const double aspect = static_cast<double>(c.width) / static_cast<double>(c.height);
  const double h = static_cast<double>(in_height), w = static_cast<double>(in_width);
  int64_t crop_height, crop_width;
  if (aspect > w / h) {
    crop_height = std::llround(c.crop_fraction / aspect * w);
    crop_width = std::llround(c.crop_fraction * w);
  } else {
    crop_height = std::llround(c.crop_fraction * h);
    crop_width = std::llround(c.crop_fraction * aspect * h);
  }
  crop_height = std::clamp<int64_t>(crop_height, 1, in_height);
  crop_width = std::clamp<int64_t>(crop_width, 1, in_width);
  return {static_cast<double>((in_height - crop_height + 1) / 2), static_cast<double>((in_width - crop_width + 1) / 2),
          static_cast<double>(crop_height), static_cast<double>(crop_width)};
}

// BiT: resize the whole image to (height, width) / crop_fraction, then take a random
// output-sized crop of that; as a box in source pixels (fractional).
Box resize_crop_box(const AugmentConfig& c, int64_t in_height, int64_t in_width, ViewRandom& random) {
  const int64_t resized_height = std::max<int64_t>(c.height, std::llround(static_cast<double>(c.height) / c.crop_fraction));
  const int64_t resized_width = std::max<int64_t>(c.width, std::llround(static_cast<double>(c.width) / c.crop_fraction));
  const int64_t top = random.below(kResizeCropWords, resized_height - c.height + 1);
  const int64_t left = random.below(kResizeCropWords + 1, resized_width - c.width + 1);
  const double scale_y = static_cast<double>(in_height) / static_cast<double>(resized_height);
  const double scale_x = static_cast<double>(in_width) / static_cast<double>(resized_width);
  return {static_cast<double>(top) * scale_y, static_cast<double>(left) * scale_x,
          static_cast<double>(c.height) * scale_y, static_cast<double>(c.width) * scale_x};
}

// A factor in [max(0, 1 - strength), 1 + strength]; exactly 1 for strength 0.
float jitter_factor(ViewRandom& random, int word, double strength) {
  if (strength <= 0) return 1.0f;
  return static_cast<float>(random.uniform(word, std::max(0.0, 1.0 - strength), 1.0 + strength));
}

int blur_radius_for(const AugmentConfig& c) {
  const auto taps = static_cast<int64_t>(std::floor(c.blur_kernel_fraction * static_cast<double>(c.height)));
  return static_cast<int>(taps / 2);
}

void check_probability(double p, const char* name) {
  VISREP_CHECK(p >= 0 && p <= 1, "augmentation: {} must be in [0, 1], got {}", name, p);
}

std::vector<float> per_channel(const std::vector<float>& values, int64_t channels, float fill, const char* name) {
  if (values.empty()) return std::vector<float>(static_cast<size_t>(channels), fill);
  if (values.size() == 1) return std::vector<float>(static_cast<size_t>(channels), values[0]);
  VISREP_CHECK(static_cast<int64_t>(values.size()) == channels, "augmentation: {} {} values for {}-channel images",
               values.size(), name, channels);
  return values;
}

}  // namespace

AugmentConfig simclr_augment(int64_t size, double strength, bool blur) {
  AugmentConfig c;
  c.preset = "simclr";
  c.height = c.width = size;
  c.brightness = c.contrast = c.saturation = 0.8 * strength;
  c.hue = 0.2 * strength;
  c.blur_probability = blur ? 0.5 : 0.0;
  return c;
}

AugmentConfig augment_preset(const std::string& name, int64_t size) {
  VISREP_CHECK(size > 0, "augment_preset: size must be positive, got {}", size);
  const bool small = size <= 32;
  if (name == "simclr") return small ? simclr_augment(size, 0.5, false) : simclr_augment(size, 1.0, true);
  AugmentConfig c;
  c.preset = name;
  c.height = c.width = size;
  if (name == "supcon") {
    c.min_area = 0.2;
    c.interpolation = Interpolation::Bilinear;
    c.brightness = c.contrast = c.saturation = 0.4;
    c.hue = 0.1;
    c.blur_probability = 0.0;
  } else if (name == "bit") {
    c.crop = CropMode::ResizeCrop;
    c.crop_fraction = 128.0 / 160.0;
    c.interpolation = Interpolation::Bilinear;
    c.jitter_probability = c.grayscale_probability = c.blur_probability = 0.0;
    c.mean = {0.5f};
    c.std = {0.5f};
  } else if (name == "eval") {
    c.crop = CropMode::Center;
    c.crop_fraction = small ? 1.0 : 0.875;
    c.flip_probability = c.jitter_probability = c.grayscale_probability = c.blur_probability = 0.0;
  } else {
    VISREP_FAIL("unknown augmentation preset '{}' (known: simclr, supcon, bit, eval)", name);
  }
  return c;
}

std::vector<std::string> augment_preset_names() { return {"simclr", "supcon", "bit", "eval"}; }

void check_augment_config(const AugmentConfig& c) {
  VISREP_CHECK(c.height > 0 && c.width > 0, "augmentation: output size {}x{} must be positive", c.height, c.width);
  VISREP_CHECK(c.min_area > 0 && c.min_area <= c.max_area && c.max_area <= 1,
               "augmentation: crop area range [{}, {}] must lie in (0, 1]", c.min_area, c.max_area);
  VISREP_CHECK(c.min_aspect > 0 && c.min_aspect <= c.max_aspect, "augmentation: bad aspect range [{}, {}]",
               c.min_aspect, c.max_aspect);
  VISREP_CHECK(c.crop_attempts >= 1 && c.crop_attempts <= kMaxCropAttempts,
               "augmentation: crop_attempts must be 1..{}, got {}", kMaxCropAttempts, c.crop_attempts);
  VISREP_CHECK(c.crop_fraction > 0 && c.crop_fraction <= 1, "augmentation: crop_fraction must be in (0, 1], got {}",
               c.crop_fraction);
  check_probability(c.flip_probability, "flip_probability");
  check_probability(c.jitter_probability, "jitter_probability");
  check_probability(c.grayscale_probability, "grayscale_probability");
  check_probability(c.blur_probability, "blur_probability");
  check_probability(c.solarize_probability, "solarize_probability");
  VISREP_CHECK(c.brightness >= 0 && c.contrast >= 0 && c.saturation >= 0, "augmentation: jitter strengths must be >= 0");
  VISREP_CHECK(c.hue >= 0 && c.hue <= 0.5, "augmentation: hue must be in [0, 0.5], got {}", c.hue);
  VISREP_CHECK(c.blur_min_sigma > 0 && c.blur_min_sigma <= c.blur_max_sigma,
               "augmentation: bad blur sigma range [{}, {}]", c.blur_min_sigma, c.blur_max_sigma);
  VISREP_CHECK(blur_radius_for(c) <= kernels::kMaxBlurRadius,
               "augmentation: a blur kernel of {} x {} pixels exceeds the {} taps the kernels support",
               c.blur_kernel_fraction, c.height, 2 * kernels::kMaxBlurRadius + 1);
  for (float s : c.std) VISREP_CHECK(s > 0, "augmentation: std values must be positive, got {}", s);
}

std::string describe(const AugmentConfig& c) {
  const char* crop = c.crop == CropMode::RandomResized ? "random-resized" : c.crop == CropMode::ResizeCrop ? "resize-crop" : "center";
  return fmt::format("{} {}x{}: {} crop (area {:g}-{:g}, fraction {:g}), {}, flip {:g}, jitter {:g} ({:g}/{:g}/{:g}/{:g}), "
                     "gray {:g}, blur {:g}, solarize {:g}",
                     c.preset, c.height, c.width, crop, c.min_area, c.max_area, c.crop_fraction,
                     c.interpolation == Interpolation::Bicubic ? "bicubic" : "bilinear", c.flip_probability,
                     c.jitter_probability, c.brightness, c.contrast, c.saturation, c.hue, c.grayscale_probability,
                     c.blur_probability, c.solarize_probability);
}

AugmentParams draw_augment_params(const AugmentConfig& c, int64_t in_height, int64_t in_width, uint64_t seed,
                                  uint64_t epoch, int64_t sample, int view) {
  VISREP_CHECK(in_height > 0 && in_width > 0, "draw_augment_params: source size {}x{}", in_height, in_width);
  VISREP_CHECK(view >= 0 && view < 256, "draw_augment_params: view {} outside 0..255", view);
  VISREP_CHECK(epoch < (uint64_t{1} << 48), "draw_augment_params: epoch {} too large", epoch);
  VISREP_CHECK(sample >= 0, "draw_augment_params: negative sample index {}", sample);
  ViewRandom random(seed, epoch, sample, view);
  AugmentParams p;
  const Box box = c.crop == CropMode::RandomResized ? random_resized_box(c, in_height, in_width, random)
                  : c.crop == CropMode::ResizeCrop  ? resize_crop_box(c, in_height, in_width, random)
                                                    : center_box(c, in_height, in_width);
  p.crop_top = static_cast<float>(box.top);
  p.crop_left = static_cast<float>(box.left);
  p.crop_height = static_cast<float>(box.height);
  p.crop_width = static_cast<float>(box.width);
  p.flip = random.chance(kFlipWord, c.flip_probability);
  p.jitter = random.chance(kJitterWord, c.jitter_probability);
  if (p.jitter) {
    p.brightness = jitter_factor(random, kFactorWords, c.brightness);
    p.contrast = jitter_factor(random, kFactorWords + 1, c.contrast);
    p.saturation = jitter_factor(random, kFactorWords + 2, c.saturation);
    p.hue = c.hue > 0 ? static_cast<float>(random.uniform(kFactorWords + 3, -c.hue, c.hue)) : 0.0f;
    if (c.random_order) {  // Fisher-Yates
      for (int i = 3; i > 0; --i) std::swap(p.jitter_order[i], p.jitter_order[random.below(kOrderWords + 3 - i, i + 1)]);
    }
  }
  p.grayscale = random.chance(kGrayscaleWord, c.grayscale_probability);
  const int radius = blur_radius_for(c);
  if (radius > 0 && random.chance(kBlurWord, c.blur_probability)) {
    p.blur_radius = radius;
    p.blur_sigma = static_cast<float>(random.uniform(kSigmaWord, c.blur_min_sigma, c.blur_max_sigma));
  }
  p.solarize = random.chance(kSolarizeWord, c.solarize_probability);
  p.solarize_threshold = static_cast<float>(c.solarize_threshold);
  return p;
}

std::vector<AugmentParams> draw_batch_params(const AugmentConfig& c, int64_t in_height, int64_t in_width, uint64_t seed,
                                             const std::vector<BatchSample>& samples, int views) {
  VISREP_CHECK(views >= 1, "draw_batch_params: views must be >= 1, got {}", views);
  const auto batch = static_cast<int64_t>(samples.size());
  std::vector<AugmentParams> params(static_cast<size_t>(batch * views));
  for (int view = 0; view < views; ++view) {
    for (int64_t i = 0; i < batch; ++i) {
      const BatchSample& sample = samples[static_cast<size_t>(i)];
      VISREP_CHECK(sample.epoch >= 0, "draw_batch_params: sample {} has the negative epoch {}", sample.index,
                   sample.epoch);
      AugmentParams& p = params[static_cast<size_t>(view * batch + i)];
      p = draw_augment_params(c, in_height, in_width, seed, static_cast<uint64_t>(sample.epoch), sample.index, view);
      p.source = static_cast<int32_t>(i);
    }
  }
  return params;
}

std::vector<AugmentParams> draw_batch_params(const AugmentConfig& c, int64_t in_height, int64_t in_width, uint64_t seed,
                                             uint64_t epoch, const std::vector<int64_t>& samples, int views) {
  VISREP_CHECK(epoch <= static_cast<uint64_t>(INT64_MAX), "draw_batch_params: epoch {} too large", epoch);
  std::vector<BatchSample> keyed;
  keyed.reserve(samples.size());
  for (int64_t index : samples) keyed.push_back({.index = index, .epoch = static_cast<int64_t>(epoch)});
  return draw_batch_params(c, in_height, in_width, seed, keyed, views);
}

std::string describe(const AugmentParams& p) {
  std::string text = fmt::format("crop {:g},{:g} {:g}x{:g}{}", p.crop_top, p.crop_left, p.crop_height, p.crop_width,
                                 p.flip ? " flip" : "");
  if (p.jitter) {
    static constexpr char kLetters[] = {'b', 'c', 's', 'h'};
    std::string order;
    for (int32_t op : p.jitter_order) order += kLetters[op];
    text += fmt::format(" | {} {:.2f} {:.2f} {:.2f} {:+.2f}", order, p.brightness, p.contrast, p.saturation, p.hue);
  }
  if (p.grayscale) text += " | gray";
  if (p.blur_radius > 0) text += fmt::format(" | blur {:.1f}", p.blur_sigma);
  if (p.solarize) text += " | sol";
  return text;
}

kernels::AugmentGeometry augment_geometry(const AugmentConfig& c, const Tensor& images, int64_t views) {
  VISREP_CHECK(images.defined() && images.dim() == 4 && images.dtype() == kUInt8,
               "augment_images: expected uint8 (N, H, W, C) images, got {}",
               images.defined() ? images.description() : "an undefined tensor");
  const int64_t channels = images.size(3);
  VISREP_CHECK(channels == 1 || channels == 3, "augment_images: images must have 1 or 3 channels, got {}", channels);
  VISREP_CHECK(images.size(0) > 0 && images.size(1) > 0 && images.size(2) > 0, "augment_images: empty images {}",
               images.description());
  check_augment_config(c);
  kernels::AugmentGeometry g;
  g.views = views;
  g.images = images.size(0);
  g.in_height = images.size(1);
  g.in_width = images.size(2);
  g.channels = channels;
  g.out_height = c.height;
  g.out_width = c.width;
  g.interpolation = c.interpolation;
  const std::vector<float> mean = per_channel(c.mean, channels, 0.0f, "mean");
  const std::vector<float> std = per_channel(c.std, channels, 1.0f, "std");
  for (int64_t ch = 0; ch < channels; ++ch) {
    g.mean[ch] = mean[static_cast<size_t>(ch)];
    g.std[ch] = std[static_cast<size_t>(ch)];
  }
  return g;
}

Tensor augment_images(const Tensor& images, const Tensor& device_params, const std::vector<AugmentParams>& params,
                      const AugmentConfig& config) {
  const kernels::AugmentGeometry g = augment_geometry(config, images, static_cast<int64_t>(params.size()));
  for (size_t v = 0; v < params.size(); ++v) {
    VISREP_CHECK(params[v].source >= 0 && params[v].source < g.images,
                 "augment_images: view {} reads image {} of a batch of {}", v, params[v].source, g.images);
    VISREP_CHECK(params[v].blur_radius <= kernels::kMaxBlurRadius, "augment_images: view {} has blur radius {} > {}",
                 v, params[v].blur_radius, kernels::kMaxBlurRadius);
  }
  const Tensor source = images.contiguous();
  Tensor output = empty({g.views, g.channels, g.out_height, g.out_width}, TensorOptions(kFloat32, images.device()));
  if (g.views == 0) return output;
  // The kernel reads the parameters where it runs: the host array on the CPU, their uploaded
  // copy on a GPU.
  const AugmentParams* params_on_device = params.data();
  if (!images.device().is_cpu()) {
    VISREP_CHECK(device_params.defined() && device_params.device() == images.device() &&
                     device_params.dtype() == kUInt8 && device_params.is_contiguous() &&
                     device_params.numel() == static_cast<int64_t>(params.size() * sizeof(AugmentParams)),
                 "augment_images: the parameters must be {} bytes of uint8 on {}", params.size() * sizeof(AugmentParams),
                 images.device().str());
    params_on_device = static_cast<const AugmentParams*>(device_params.raw_data());
  }
  VISREP_RUN_KERNEL("augment_images", images.device(), augment_batch,
                    kernels::AugmentBatch{.geometry = g,
                                          .host_params = params.data(),
                                          .params = params_on_device,
                                          .images = data_or_null<const uint8_t>(source),
                                          .output = data_or_null<float>(output)});
  return output;
}

Tensor augment_images(const Tensor& images, const std::vector<AugmentParams>& params, const AugmentConfig& config) {
  Tensor device_params;
  if (images.defined() && images.device().is_cuda()) {
    std::vector<uint8_t> bytes(params.size() * sizeof(AugmentParams));
    if (!bytes.empty()) std::memcpy(bytes.data(), params.data(), bytes.size());
    device_params = from_vector(bytes).to(images.device());
  }
  return augment_images(images, device_params, params, config);
}

Tensor augment_batch(const Tensor& images, const std::vector<int64_t>& samples, const AugmentConfig& config,
                     uint64_t seed, uint64_t epoch, int views) {
  VISREP_CHECK(images.defined() && images.dim() == 4, "augment_batch: expected (N, H, W, C) images");
  VISREP_CHECK(static_cast<int64_t>(samples.size()) == images.size(0),
               "augment_batch: {} sample indices for {} images", samples.size(), images.size(0));
  return augment_images(images, draw_batch_params(config, images.size(1), images.size(2), seed, epoch, samples, views),
                        config);
}

}  // namespace visrep::data
