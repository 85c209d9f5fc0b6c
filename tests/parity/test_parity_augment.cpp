// CPU vs CUDA parity of the augmentation pipeline (engine/data/augment.h): the same uint8
// images and the same AugmentParams through kernels::cpu::augment_batch (the reference) and
// kernels::cuda::augment_batch must give the same pixels within 1/255 (before the
// normalisation; 1 / (255 std) after it), with no NaN anywhere. Every CUDA allocation is
// poisoned with NaN bytes first, so a pixel the kernels forgot to write fails the case.
//
// The check is a maximum absolute difference rather than the harness's NMSE: the
// requirement is stated per pixel, and the pipeline has no gradient to compare. The
// expected difference is ~1e-6 (the two devices share the per-pixel formulas of
// kernels/cpu/augment_pixel.h; only fused multiply-adds, expf and the order in which the
// contrast means are summed differ).
// Where to look for the rest of the family: kernels/cpu/augment.h.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "engine/data/augment.h"
#include "engine/data/loader.h"
#include "engine/ops.h"
#include "kernels/cuda/allocator.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::data;

namespace {

class ScopedPoison {
 public:
  ScopedPoison() { kernels::cuda::set_poison_allocations(true); }
  ~ScopedPoison() { kernels::cuda::set_poison_allocations(false); }
};

// The largest |cpu - cuda| over the outputs; fails on a NaN or Inf on either side.
double max_difference(const Tensor& cpu, const Tensor& cuda) {
  REQUIRE(cuda.device().is_cuda());
  REQUIRE(cpu.shape() == cuda.shape());
  const std::vector<float> a = cpu.to_vector<float>(), b = cuda.to(Device::cpu()).to_vector<float>();
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("element " << i << ": cpu " << a[i] << ", cuda " << b[i]);
    REQUIRE(std::isfinite(a[i]));
    REQUIRE(std::isfinite(b[i]));
    worst = std::max(worst, std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
  }
  return worst;
}

// Runs `params` over `images` on both devices and requires pixels within 1/255 (scaled by the
// smallest std of the normalisation).
void check_augment_parity(const std::string& name, const Tensor& images, const std::vector<AugmentParams>& params,
                          const AugmentConfig& config) {
  ScopedPoison poison;
  const Tensor cpu = augment_images(images, params, config);
  const Tensor cuda = augment_images(images.to(Device::cuda()), params, config);
  float smallest_std = 1.0f;
  for (float s : config.std) smallest_std = std::min(smallest_std, s);
  const double tolerance = 1.0 / (255.0 * smallest_std);
  const double difference = max_difference(cpu, cuda);
  std::printf("parity %-52s max |cpu - cuda| %.2e (tolerance %.2e)\n", name.c_str(), difference, tolerance);
  INFO(name);
  REQUIRE(difference <= tolerance);
}

Tensor random_images(int64_t count, int64_t height, int64_t width, int64_t channels, const std::string& key) {
  Generator generator = testing::generator_for(key.c_str());
  return randint(0, 256, {count, height, width, channels}, kUInt8, generator);
}

// Every op switched on for every view (the random draws leave some of them off).
std::vector<AugmentParams> with_every_op(std::vector<AugmentParams> params, int blur_radius) {
  for (size_t v = 0; v < params.size(); ++v) {
    AugmentParams& p = params[v];
    p.jitter = 1;
    p.brightness = 1.3f;
    p.contrast = 0.6f + 0.1f * static_cast<float>(v % 5);
    p.saturation = 1.5f;
    p.hue = v % 2 == 0 ? 0.15f : -0.12f;
    p.grayscale = v % 3 == 0;
    p.blur_radius = blur_radius;
    p.blur_sigma = 0.7f + 0.3f * static_cast<float>(v % 4);
    p.solarize = v % 2;
  }
  return params;
}

}  // namespace

TEST_CASE("augment: two-view SimCLR pipeline, cpu vs cuda", "[gpu]") {
  const Tensor images = random_images(6, 48, 40, 3, "parity augment simclr");
  AugmentConfig config = augment_preset("simclr", 64);  // s = 1 with blur (radius 3)
  config.solarize_probability = 0.3;
  const std::vector<AugmentParams> params = draw_batch_params(config, 48, 40, 7, 2, {0, 1, 2, 3, 4, 5}, 2);
  check_augment_parity("simclr 48x40 -> 64, bicubic, 2 views", images, params, config);
  check_augment_parity("simclr 48x40 -> 64, every op on every view", images, with_every_op(params, 3), config);
}

TEST_CASE("augment: odd sizes, bilinear, one channel, cpu vs cuda", "[gpu]") {
  // 33 x 17 = 561 output pixels: three blocks per view, the last one part-filled.
  AugmentConfig config = augment_preset("supcon", 33);
  config.width = 17;
  config.blur_probability = 0.5;
  const Tensor images = random_images(5, 29, 23, 3, "parity augment odd sizes");
  const std::vector<AugmentParams> params = draw_batch_params(config, 29, 23, 1, 0, {10, 11, 12, 13, 14}, 2);
  check_augment_parity("supcon 29x23 -> 33x17 bilinear", images, params, config);
  check_augment_parity("supcon 29x23 -> 33x17, every op, blur 5", images, with_every_op(params, 5), config);

  // Fashion-MNIST-like: 1 channel, one mean/std for all (saturation, hue, grayscale are no-ops).
  AugmentConfig gray = augment_preset("simclr", 28);
  gray.mean = {0.286f};
  gray.std = {0.353f};
  const Tensor fashion = random_images(4, 28, 28, 1, "parity augment one channel");
  const std::vector<AugmentParams> gray_params = draw_batch_params(gray, 28, 28, 3, 5, {0, 1, 2, 3}, 2);
  check_augment_parity("simclr 1 channel 28, normalised", fashion, gray_params, gray);
  check_augment_parity("simclr 1 channel 28, every op, blur 2", fashion, with_every_op(gray_params, 2), gray);
}

TEST_CASE("augment: every preset at 32 and 96 px, cpu vs cuda", "[gpu]") {
  const Tensor images = random_images(4, 80, 100, 3, "parity augment presets");
  for (const std::string& preset : augment_preset_names()) {
    for (int64_t size : {int64_t{32}, int64_t{96}}) {
      AugmentConfig config = augment_preset(preset, size);
      if (config.mean.empty()) {  // ImageNet statistics, to check the normalisation too
        config.mean = {0.485f, 0.456f, 0.406f};
        config.std = {0.229f, 0.224f, 0.225f};
      }
      const std::vector<AugmentParams> params = draw_batch_params(config, 80, 100, 11, 1, {3, 1, 4, 1}, 2);
      check_augment_parity(preset + " " + std::to_string(size), images, params, config);
    }
  }
}

TEST_CASE("augment: the loader's gpu path equals its cpu path", "[gpu]") {
  // The GPU path uploads uint8 batches and augments them there; the CPU path augments on
  // the loader's workers. Same seed: the same samples, labels and (within 1/255) pixels.
  Generator generator = testing::generator_for("parity augment loader");
  ImageDataset dataset{randint(0, 256, {40, 32, 32, 3}, kUInt8, generator), randint(0, 10, {40}, kInt64, generator), {}};
  const AugmentConfig config = augment_preset("simclr", 32);
  LoaderConfig cpu_config{.batch_size = 16, .seed = 9, .workers = 2, .augment = config, .views = 2};
  LoaderConfig gpu_config = cpu_config;
  gpu_config.device = Device::cuda();
  DataLoader cpu_loader(dataset, cpu_config), gpu_loader(dataset, gpu_config);
  for (int64_t epoch : {0, 3}) {
    cpu_loader.start_epoch(epoch);
    gpu_loader.start_epoch(epoch);
    int64_t batches = 0;
    while (std::optional<Batch> cpu_batch = cpu_loader.next()) {
      std::optional<Batch> gpu_batch = gpu_loader.next();
      REQUIRE(gpu_batch);
      REQUIRE(gpu_batch->indices() == cpu_batch->indices());
      REQUIRE(gpu_batch->images.device().is_cuda());
      REQUIRE(gpu_batch->labels.to(Device::cpu()).to_vector<int64_t>() == cpu_batch->labels.to_vector<int64_t>());
      REQUIRE(max_difference(cpu_batch->images, gpu_batch->images) <= 1.0 / 255.0);
      ++batches;
    }
    REQUIRE_FALSE(gpu_loader.next());
    REQUIRE(batches == 2);  // 40 samples, 16 per batch, drop_last
  }
}
