// Data augmentation for the contrastive recipes: what a view of an image is (AugmentConfig
// and its presets), the random parameters of each view (drawn from Philox), and running
// the pipeline on a batch on the CPU or the GPU (kernels/cpu/augment.h specifies the ops).
//
// The SimCLR pipeline follows google-research/simclr (tf2/data_util.py): random resized
// crop (area 8%..100%, aspect 3/4..4/3, 10 attempts then a centre crop, as torchvision's
// RandomResizedCrop), horizontal flip p = 0.5, colour jitter of strength s (brightness,
// contrast and saturation factors in [1 - 0.8 s, 1 + 0.8 s], hue shift in [-0.2 s, 0.2 s];
// brightness is multiplicative, SimCLR v2's default) with p = 0.8 in a random order,
// clipping to [0, 1] after each, grayscale p = 0.2, Gaussian blur p = 0.5 with a kernel of
// 10% of the side and sigma in [0.1, 2], optional solarize, then normalisation.
//
// Every random number of view v of dataset sample i in epoch e is Philox(seed, stream,
// index) with stream = (tag, e, v) and index = (i, draw): no state, no order. The CPU and
// GPU paths consume the same parameters, a resumed run redraws the same views, and a
// sample's views do not depend on which batch or worker it landed in.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "kernels/cpu/augment.h"

namespace visrep::data {

using kernels::AugmentParams;
using kernels::Interpolation;

enum class CropMode {
  RandomResized,  // a random box of random area and aspect, resized to the output (SimCLR, SupCon)
  ResizeCrop,     // resize to output / crop_fraction, then a random output-sized crop (BiT)
  Center,         // the central crop_fraction of the shorter side, resized (evaluation)
};

struct AugmentConfig {
  std::string preset = "custom";  // for captions and file names
  int64_t height = 32;            // output size
  int64_t width = 32;
  CropMode crop = CropMode::RandomResized;
  double min_area = 0.08;  // RandomResized: fraction of the source area
  double max_area = 1.0;
  double min_aspect = 3.0 / 4.0;  // RandomResized: width / height, relative to the output's
  double max_aspect = 4.0 / 3.0;
  int crop_attempts = 10;      // RandomResized: tries before falling back to a centre crop
  double crop_fraction = 1.0;  // Center: share of the shorter side kept; ResizeCrop: output / resized size
  Interpolation interpolation = Interpolation::Bicubic;
  double flip_probability = 0.5;
  double jitter_probability = 0.8;
  double brightness = 0.8;  // factor in [1 - b, 1 + b] (clamped at 0)
  double contrast = 0.8;
  double saturation = 0.8;
  double hue = 0.2;  // shift in [-hue, hue] turns of the colour wheel
  bool random_order = true;
  double grayscale_probability = 0.2;
  double blur_probability = 0.5;
  double blur_min_sigma = 0.1;
  double blur_max_sigma = 2.0;
  double blur_kernel_fraction = 0.1;  // kernel = floor(fraction * height) taps (SimCLR: height // 10), radius half that
  double solarize_probability = 0.0;
  double solarize_threshold = 0.5;
  std::vector<float> mean;  // per channel (or one for all); empty: 0
  std::vector<float> std;   // per channel (or one for all); empty: 1
};

// SimCLR's augmentation at `size` pixels with jitter strength s: bicubic random resized
// crop, flip, jitter (0.8 s, 0.8 s, 0.8 s, 0.2 s) p = 0.8, grayscale p = 0.2, blur p = 0.5
// when `blur`.
AugmentConfig simclr_augment(int64_t size, double strength, bool blur);

// The presets, by name:
//   simclr  s = 1 with blur; for 32 px and smaller s = 0.5 without blur (SimCLR's CIFAR setting)
//   supcon  crop area 0.2..1 (bilinear), jitter 0.4/0.4/0.4/0.1 p = 0.8, grayscale 0.2, no blur
//   bit     resize to 1.25x then a random crop (BiT's 160 -> 128), flip, [-1, 1]
//   eval    the central 87.5% (all of it at 32 px and smaller), resized; nothing random
AugmentConfig augment_preset(const std::string& name, int64_t size);
std::vector<std::string> augment_preset_names();

// Throws visrep::Error naming the field that is out of range.
void check_augment_config(const AugmentConfig& config);
// One line: the preset, size and the settings that differ between presets.
std::string describe(const AugmentConfig& config);

// ---- parameters ----------------------------------------------------------------------------

// The parameters of view `view` of dataset sample `sample` in `epoch`, for a source image of
// in_height x in_width. `source` is left 0 (the caller sets the batch position).
AugmentParams draw_augment_params(const AugmentConfig& config, int64_t in_height, int64_t in_width, uint64_t seed,
                                  uint64_t epoch, int64_t sample, int view);

// A dataset sample and the epoch its views are drawn for (with the seed and the view, the
// key of their parameters): the epoch of an epoch-based recipe, BiT's pass over the training
// set. A batch is a list of them (engine/data/loader.h).
struct BatchSample {
  int64_t index = 0;
  int64_t epoch = 0;
};

// `views` views of each sample of a batch, view-major: entry v * B + i is view v of
// samples[i], made from batch image i. So the first B outputs are every sample's first
// view, the next B their second: the two halves a contrastive loss pairs up.
std::vector<AugmentParams> draw_batch_params(const AugmentConfig& config, int64_t in_height, int64_t in_width,
                                             uint64_t seed, const std::vector<BatchSample>& samples, int views);
// The same for dataset samples `samples` all drawn for `epoch`.
std::vector<AugmentParams> draw_batch_params(const AugmentConfig& config, int64_t in_height, int64_t in_width,
                                             uint64_t seed, uint64_t epoch, const std::vector<int64_t>& samples,
                                             int views);

// A short caption: "crop 3,5 20x18 flip | bcsh 1.21 0.73 1.40 +0.05 | gray | blur 1.3 | sol".
std::string describe(const AugmentParams& params);

// ---- running -------------------------------------------------------------------------------

// The kernels' description of a batch of `images` (uint8 N, H, W, C) made into `views` outputs.
kernels::AugmentGeometry augment_geometry(const AugmentConfig& config, const Tensor& images, int64_t views);

// uint8 (N, H, W, C) images on the CPU or a GPU -> float32 (params.size(), C, height, width)
// on the same device, one output per parameter set.
Tensor augment_images(const Tensor& images, const std::vector<AugmentParams>& params, const AugmentConfig& config);

// The same with the parameters already on the images' device as raw bytes (uint8,
// params.size() * sizeof(AugmentParams)); `params` is their host copy. The data loader
// uploads them together with the images.
Tensor augment_images(const Tensor& images, const Tensor& device_params, const std::vector<AugmentParams>& params,
                      const AugmentConfig& config);

// Draws and runs in one go: `views` views of each image of `images`, which are dataset
// samples `samples`, for `epoch`.
Tensor augment_batch(const Tensor& images, const std::vector<int64_t>& samples, const AugmentConfig& config,
                     uint64_t seed, uint64_t epoch, int views);

}  // namespace visrep::data
