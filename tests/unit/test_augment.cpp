// The augmentation layer of the engine (engine/data/augment.h): the parameters are a pure
// function of (seed, epoch, sample, view), follow the SimCLR distributions, and do not
// depend on the batch a sample lands in; the presets; running a batch on the CPU; and
// configurations that are refused with a message naming the setting.
// Where to look for the rest of the family: kernels/cpu/augment.h.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "engine/data/augment.h"
#include "engine/data/dataset.h"
#include "engine/ops.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::data;
using Catch::Contains;

namespace {

bool same_bytes(const AugmentParams& a, const AugmentParams& b) { return std::memcmp(&a, &b, sizeof(AugmentParams)) == 0; }

Tensor random_images(int64_t count, int64_t height, int64_t width, int64_t channels, Generator& generator) {
  return randint(0, 256, {count, height, width, channels}, kUInt8, generator);
}

}  // namespace

TEST_CASE("augment params: the same key gives the same parameters", "[unit]") {
  const AugmentConfig config = augment_preset("simclr", 96);
  for (uint64_t seed : {0ull, 7ull, 123456789ull}) {
    const AugmentParams a = draw_augment_params(config, 120, 150, seed, 3, 41, 1);
    const AugmentParams b = draw_augment_params(config, 120, 150, seed, 3, 41, 1);
    REQUIRE(same_bytes(a, b));
    // Any other seed, epoch, sample or view: other parameters.
    REQUIRE_FALSE(same_bytes(a, draw_augment_params(config, 120, 150, seed + 1, 3, 41, 1)));
    REQUIRE_FALSE(same_bytes(a, draw_augment_params(config, 120, 150, seed, 4, 41, 1)));
    REQUIRE_FALSE(same_bytes(a, draw_augment_params(config, 120, 150, seed, 3, 42, 1)));
    REQUIRE_FALSE(same_bytes(a, draw_augment_params(config, 120, 150, seed, 3, 41, 0)));
  }
  // A sample's views do not depend on the batch it is in or its position there.
  const std::vector<AugmentParams> alone = draw_batch_params(config, 120, 150, 5, 2, {9}, 2);
  const std::vector<AugmentParams> together = draw_batch_params(config, 120, 150, 5, 2, {4, 17, 9}, 2);
  REQUIRE(alone.size() == 2);
  REQUIRE(together.size() == 6);
  for (int view = 0; view < 2; ++view) {
    AugmentParams expected = alone[view];
    expected.source = 2;  // view-major: entry view * 3 + 2 is sample 9, batch image 2
    REQUIRE(same_bytes(together[static_cast<size_t>(view * 3 + 2)], expected));
    REQUIRE(together[static_cast<size_t>(view * 3)].source == 0);
  }
}

TEST_CASE("augment params: SimCLR distributions", "[unit]") {
  const AugmentConfig config = augment_preset("simclr", 224);
  REQUIRE(config.blur_probability == 0.5);
  const int64_t height = 300, width = 400, draws = 4000;
  int64_t flips = 0, jitters = 0, grays = 0, blurs = 0, solarized = 0;
  std::set<std::string> orders;
  double smallest_area = 1, largest_area = 0;
  for (int64_t sample = 0; sample < draws; ++sample) {
    const AugmentParams p = draw_augment_params(config, height, width, 11, 0, sample, static_cast<int>(sample % 2));
    // Integer boxes inside the image, area 8%..100% and aspect 3/4..4/3 up to the rounding
    // of the sides to whole pixels.
    REQUIRE(p.crop_top >= 0);
    REQUIRE(p.crop_left >= 0);
    REQUIRE(p.crop_top + p.crop_height <= height);
    REQUIRE(p.crop_left + p.crop_width <= width);
    REQUIRE(p.crop_height == std::floor(p.crop_height));
    const double area = p.crop_height * p.crop_width / (height * width);
    smallest_area = std::min(smallest_area, area);
    largest_area = std::max(largest_area, area);
    REQUIRE(area >= 0.079);
    const double aspect = p.crop_width / p.crop_height;
    REQUIRE(aspect >= 0.75 * (1 - 0.02));
    REQUIRE(aspect <= 4.0 / 3.0 * (1 + 0.02));
    flips += p.flip;
    jitters += p.jitter;
    grays += p.grayscale;
    solarized += p.solarize;
    if (p.jitter) {
      REQUIRE(p.brightness >= 0.2f);
      REQUIRE(p.brightness <= 1.8f);
      REQUIRE(p.contrast >= 0.2f);
      REQUIRE(p.saturation <= 1.8f);
      REQUIRE(std::fabs(p.hue) <= 0.2f);
      std::string order;
      for (int op : p.jitter_order) order += static_cast<char>('0' + op);
      orders.insert(order);
    } else {
      REQUIRE(p.brightness == 1.0f);
      REQUIRE(p.hue == 0.0f);
    }
    if (p.blur_radius > 0) {
      ++blurs;
      REQUIRE(p.blur_radius == 11);  // a 22-tap kernel (224 // 10), radius 11
      REQUIRE(p.blur_sigma >= 0.1f);
      REQUIRE(p.blur_sigma <= 2.0f);
    }
  }
  REQUIRE(smallest_area < 0.1);
  REQUIRE(largest_area > 0.9);
  // Binomial counts within ~5 standard deviations of their means.
  const auto near = [&](int64_t count, double p) {
    return std::fabs(static_cast<double>(count) - p * draws) <= 5 * std::sqrt(draws * p * (1 - p));
  };
  CHECK(near(flips, 0.5));
  CHECK(near(jitters, 0.8));
  CHECK(near(grays, 0.2));
  CHECK(near(blurs, 0.5));
  CHECK(solarized == 0);
  CHECK(orders.size() == 24);  // every order of the four jitter ops
}

TEST_CASE("augment params: an impossible crop falls back to the centre", "[unit]") {
  // A 1-pixel-high strip: no box with aspect 3/4..4/3 and 8% of the area fits, so every
  // attempt fails and the fallback keeps the whole height and the widest allowed width.
  const AugmentConfig config = augment_preset("simclr", 64);
  for (int64_t sample = 0; sample < 20; ++sample) {
    const AugmentParams p = draw_augment_params(config, 1, 300, 0, 0, sample, 0);
    REQUIRE(p.crop_height == 1.0f);
    REQUIRE(p.crop_width == 1.0f);  // round(1 * 4/3)
    REQUIRE(p.crop_left == 149.0f);
    REQUIRE(p.crop_top == 0.0f);
  }
}

TEST_CASE("augment presets", "[unit]") {
  const AugmentConfig small = augment_preset("simclr", 32);  // SimCLR's CIFAR setting: s = 0.5, no blur
  CHECK(small.brightness == Approx(0.4));
  CHECK(small.hue == Approx(0.1));
  CHECK(small.blur_probability == 0.0);
  const AugmentConfig supcon = augment_preset("supcon", 32);
  CHECK(supcon.min_area == 0.2);
  CHECK(supcon.saturation == Approx(0.4));
  CHECK(supcon.blur_probability == 0.0);
  const AugmentConfig bit = augment_preset("bit", 128);
  for (int64_t sample = 0; sample < 50; ++sample) {
    const AugmentParams p = draw_augment_params(bit, 320, 320, 1, 0, sample, 0);
    // Resized to 160, a 128 crop at a whole 160-pixel offset: 256 of the 320 source pixels.
    REQUIRE(p.crop_height == 256.0f);
    REQUIRE(std::fmod(p.crop_top, 2.0f) == 0.0f);
    REQUIRE(p.crop_top <= 64.0f);
    REQUIRE_FALSE(p.jitter);
  }
  const AugmentConfig eval = augment_preset("eval", 224);
  const AugmentParams center = draw_augment_params(eval, 256, 300, 9, 4, 3, 1);
  CHECK(center.crop_height == 224.0f);  // 0.875 of the shorter side
  CHECK(center.crop_width == 224.0f);
  CHECK(center.crop_top == 16.0f);
  CHECK(center.crop_left == 38.0f);
  CHECK(same_bytes(center, draw_augment_params(eval, 256, 300, 1, 0, 0, 0)));  // nothing random
  REQUIRE_THROWS_WITH(augment_preset("byol", 32), Contains("byol") && Contains("simclr"));
  CHECK(describe(augment_preset("simclr", 224)).find("simclr 224x224") == 0);
}

TEST_CASE("augment images on the cpu", "[unit]") {
  Generator generator = testing::generator_for("augment images on the cpu");
  const Tensor images = random_images(3, 32, 32, 3, generator);
  // eval at 32 px is the whole image at its own size: exactly to_float_nchw.
  AugmentConfig eval = augment_preset("eval", 32);
  eval.mean = {0.5f, 0.4f, 0.3f};
  eval.std = {0.2f, 0.25f, 0.3f};
  const Tensor out = augment_batch(images, {0, 1, 2}, eval, 0, 0, 1);
  REQUIRE(out.shape() == Shape{3, 3, 32, 32});
  REQUIRE(testing::max_abs_difference(out, to_float_nchw(images, eval.mean, eval.std)) < 1e-6);

  // Two SimCLR views of each: view-major, finite, and the two views differ.
  AugmentConfig simclr = augment_preset("simclr", 24);
  simclr.solarize_probability = 0.5;
  const Tensor views = augment_batch(images, {10, 11, 12}, simclr, 3, 1, 2);
  REQUIRE(views.shape() == Shape{6, 3, 24, 24});
  const std::vector<float> values = views.to_vector<float>();
  for (float v : values) {
    REQUIRE(std::isfinite(v));
    REQUIRE(v >= 0.0f);
    REQUIRE(v <= 1.0f);
  }
  REQUIRE(testing::max_abs_difference(views.narrow(0, 0, 3), views.narrow(0, 3, 3)) > 0.1);
  // The same call again: the same pixels.
  REQUIRE(testing::max_abs_difference(views, augment_batch(images, {10, 11, 12}, simclr, 3, 1, 2)) == 0.0);

  // 1-channel images (Fashion-MNIST) with one mean/std for all channels.
  AugmentConfig gray = augment_preset("simclr", 28);
  gray.mean = {0.286f};
  gray.std = {0.353f};
  const Tensor fashion = augment_batch(random_images(2, 28, 28, 1, generator), {0, 1}, gray, 0, 0, 2);
  REQUIRE(fashion.shape() == Shape{4, 1, 28, 28});
}

TEST_CASE("augment bad configurations and inputs", "[unit]") {
  Generator generator = testing::generator_for("augment bad configurations");
  const Tensor images = random_images(2, 16, 16, 3, generator);
  AugmentConfig config = augment_preset("simclr", 16);
  config.min_area = 0;
  REQUIRE_THROWS_WITH(augment_batch(images, {0, 1}, config, 0, 0, 1), Contains("crop area"));
  config = augment_preset("simclr", 16);
  config.flip_probability = 1.5;
  REQUIRE_THROWS_WITH(augment_batch(images, {0, 1}, config, 0, 0, 1), Contains("flip_probability"));
  config = augment_preset("simclr", 16);
  config.blur_kernel_fraction = 1.0;
  config.height = config.width = 400;
  REQUIRE_THROWS_WITH(augment_batch(images, {0, 1}, config, 0, 0, 1), Contains("blur kernel"));
  config = augment_preset("simclr", 16);
  config.mean = {0.1f, 0.2f};
  REQUIRE_THROWS_WITH(augment_batch(images, {0, 1}, config, 0, 0, 1), Contains("2 mean values for 3-channel"));
  config = augment_preset("simclr", 16);
  REQUIRE_THROWS_WITH(augment_batch(images.to(kFloat32), {0, 1}, config, 0, 0, 1), Contains("uint8"));
  REQUIRE_THROWS_WITH(augment_batch(random_images(2, 8, 8, 2, generator), {0, 1}, config, 0, 0, 1),
                      Contains("1 or 3 channels"));
  REQUIRE_THROWS_WITH(augment_batch(images, {0}, config, 0, 0, 1), Contains("1 sample indices for 2 images"));
  std::vector<AugmentParams> params(1);
  params[0].source = 2;
  REQUIRE_THROWS_WITH(augment_images(images, params, config), Contains("view 0 reads image 2 of a batch of 2"));
}

TEST_CASE("datasets: grayscale to rgb", "[unit]") {
  Generator generator = testing::generator_for("datasets grayscale to rgb");
  ImageDataset gray{random_images(4, 5, 6, 1, generator), arange(4), {"a", "b", "c", "d"}};
  const ImageDataset rgb = to_rgb(gray);
  REQUIRE(rgb.images.shape() == Shape{4, 5, 6, 3});
  const std::vector<uint8_t> g = gray.images.to_vector<uint8_t>(), c = rgb.images.to_vector<uint8_t>();
  for (size_t i = 0; i < g.size(); ++i)
    for (size_t k = 0; k < 3; ++k) REQUIRE(c[i * 3 + k] == g[i]);
  REQUIRE(to_rgb(rgb).images.shape() == Shape{4, 5, 6, 3});
}
