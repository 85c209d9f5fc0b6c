// The CPU augmentation kernels (kernels/cpu/augment.h), each against values computed by
// hand on small crafted images: identity cases (factor 1, hue shift 0, a whole-image crop
// at the same size), the ITU-R 601 grayscale weights, HSV saturation and hue shifts of a
// known colour, bilinear and bicubic resampling, a blur that keeps a constant image
// constant and spreads an impulse by the Gaussian weights, solarize and normalisation, and
// that the pipeline applies the jitter in the view's order.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "engine/ops.h"
#include "kernels/cpu/augment.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::kernels;

namespace {

std::vector<float> random_unit_floats(int64_t count, Generator& generator) {
  return uniform({count}, 0.0, 1.0, kFloat32, generator).to_vector<float>();
}

std::vector<uint8_t> random_pixels(int64_t count, Generator& generator) {
  return randint(0, 256, {count}, kUInt8, generator).to_vector<uint8_t>();
}

void require_near(const std::vector<float>& actual, const std::vector<float>& expected, double tolerance) {
  REQUIRE(actual.size() == expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    INFO("element " << i << ": " << actual[i] << " vs " << expected[i]);
    REQUIRE(std::fabs(actual[i] - expected[i]) <= tolerance);
  }
}

AugmentGeometry geometry(int64_t in_height, int64_t in_width, int64_t channels, int64_t out_height, int64_t out_width,
                         Interpolation interpolation) {
  AugmentGeometry g;
  g.views = 1;
  g.images = 1;
  g.in_height = in_height;
  g.in_width = in_width;
  g.channels = channels;
  g.out_height = out_height;
  g.out_width = out_width;
  g.interpolation = interpolation;
  return g;
}

AugmentParams whole_crop(const AugmentGeometry& g) {
  AugmentParams p;
  p.crop_height = static_cast<float>(g.in_height);
  p.crop_width = static_cast<float>(g.in_width);
  return p;
}

}  // namespace

TEST_CASE("augment ops: factor 1 and hue 0 are exact identities", "[unit]") {
  Generator generator = testing::generator_for("augment ops identities");
  const std::vector<float> original = random_unit_floats(7 * 5 * 3, generator);
  std::vector<float> image = original;
  cpu::adjust_brightness(image.data(), 35, 3, 1.0f);
  cpu::adjust_contrast(image.data(), 35, 3, 1.0f);
  cpu::adjust_saturation(image.data(), 35, 3, 1.0f);
  cpu::adjust_hue(image.data(), 35, 3, 0.0f);
  REQUIRE(image == original);
  // A whole turn of the colour wheel comes back to the start (up to float rounding).
  cpu::adjust_hue(image.data(), 35, 3, 1.0f);
  require_near(image, original, 2e-6);
}

TEST_CASE("augment ops: brightness and contrast by hand", "[unit]") {
  std::vector<float> image = {0.1f, 0.3f, 0.5f, 0.7f};
  cpu::adjust_brightness(image.data(), 4, 1, 1.5f);
  require_near(image, {0.15f, 0.45f, 0.75f, 1.0f}, 1e-6);  // 0.7 * 1.5 clips to 1

  // 1 channel: mean 0.4, factor 2: (x - 0.4) * 2 + 0.4 = 2x - 0.4, clipped.
  image = {0.1f, 0.3f, 0.5f, 0.7f};
  cpu::adjust_contrast(image.data(), 4, 1, 2.0f);
  require_near(image, {0.0f, 0.2f, 0.6f, 1.0f}, 1e-6);

  // The mean is per channel (tf.image.adjust_contrast): channel 0 has mean 0.2, channel 1 0.6.
  image = {0.1f, 0.5f, 0.3f, 0.7f};
  cpu::adjust_contrast(image.data(), 2, 2, 0.5f);
  require_near(image, {0.15f, 0.55f, 0.25f, 0.65f}, 1e-6);
}

TEST_CASE("augment ops: saturation and hue of a known colour", "[unit]") {
  // (0.8, 0.4, 0.2): v = 0.8, s = 0.75, h = 1/18.
  const std::vector<float> orange = {0.8f, 0.4f, 0.2f};
  std::vector<float> pixel = orange;
  cpu::adjust_saturation(pixel.data(), 1, 3, 0.0f);
  require_near(pixel, {0.8f, 0.8f, 0.8f}, 1e-6);  // no saturation: the value everywhere
  pixel = orange;
  cpu::adjust_saturation(pixel.data(), 1, 3, 0.5f);  // s = 0.375: p = 0.5, t = 0.6
  require_near(pixel, {0.8f, 0.6f, 0.5f}, 1e-6);
  pixel = orange;
  cpu::adjust_saturation(pixel.data(), 1, 3, 2.0f);  // s clips at 1: p = 0, t = 0.8 / 3
  require_near(pixel, {0.8f, 0.8f / 3.0f, 0.0f}, 1e-6);

  pixel = orange;
  cpu::adjust_hue(pixel.data(), 1, 3, 1.0f / 3.0f);  // a third of a turn: red -> green
  require_near(pixel, {0.2f, 0.8f, 0.4f}, 1e-6);
  pixel = orange;
  cpu::adjust_hue(pixel.data(), 1, 3, -1.0f / 3.0f);  // wraps below 0: red -> blue
  require_near(pixel, {0.4f, 0.2f, 0.8f}, 1e-6);

  // Gray pixels have no hue or saturation to change, and 1-channel images are left alone.
  pixel = {0.3f, 0.3f, 0.3f};
  cpu::adjust_hue(pixel.data(), 1, 3, 0.25f);
  cpu::adjust_saturation(pixel.data(), 1, 3, 1.7f);
  require_near(pixel, {0.3f, 0.3f, 0.3f}, 1e-7);
  std::vector<float> gray = {0.25f, 0.75f};
  cpu::adjust_hue(gray.data(), 2, 1, 0.25f);
  cpu::adjust_saturation(gray.data(), 2, 1, 0.0f);
  cpu::to_grayscale(gray.data(), 2, 1);
  REQUIRE(gray == std::vector<float>{0.25f, 0.75f});
}

TEST_CASE("augment ops: grayscale uses the ITU-R 601 weights", "[unit]") {
  std::vector<float> image = {0.8f, 0.4f, 0.2f, 1.0f, 0.0f, 0.0f, 0.0f, 1.0f, 0.0f, 0.0f, 0.0f, 1.0f};
  cpu::to_grayscale(image.data(), 4, 3);
  const float orange = 0.299f * 0.8f + 0.587f * 0.4f + 0.114f * 0.2f;
  require_near(image, {orange, orange, orange, 0.299f, 0.299f, 0.299f, 0.587f, 0.587f, 0.587f, 0.114f, 0.114f, 0.114f},
               1e-7);
}

TEST_CASE("augment ops: blur keeps a constant image and spreads an impulse by the weights", "[unit]") {
  const int64_t height = 9, width = 11;
  std::vector<float> image(height * width * 3, 0.37f), scratch(image.size());
  cpu::gaussian_blur(image.data(), height, width, 3, 4, 1.7f, scratch.data());  // the kernel is wider than the edge distance
  for (float v : image) REQUIRE(v == Approx(0.37f).margin(1e-6));

  // An impulse in the middle of a 7x7 image, radius 1, sigma 1: out(y, x) = w(dy) w(dx)
  // with w = (e^-0.5, 1, e^-0.5) / (1 + 2 e^-0.5).
  std::vector<float> impulse(49, 0.0f), scratch2(49);
  impulse[3 * 7 + 3] = 1.0f;
  cpu::gaussian_blur(impulse.data(), 7, 7, 1, 1, 1.0f, scratch2.data());
  const double side = std::exp(-0.5), total = 1.0 + 2.0 * side;
  const double w[3] = {side / total, 1.0 / total, side / total};
  for (int y = 0; y < 7; ++y) {
    for (int x = 0; x < 7; ++x) {
      const double expected = std::abs(y - 3) <= 1 && std::abs(x - 3) <= 1 ? w[y - 2] * w[x - 2] : 0.0;
      INFO("(" << y << ", " << x << ")");
      REQUIRE(impulse[y * 7 + x] == Approx(expected).margin(1e-7));
    }
  }
  // Mass is kept away from the edges.
  double mass = 0;
  for (float v : impulse) mass += v;
  REQUIRE(mass == Approx(1.0).margin(1e-6));
}

TEST_CASE("augment ops: solarize and normalise", "[unit]") {
  std::vector<float> values = {0.2f, 0.5f, 0.7f, 1.0f, 0.0f};
  cpu::solarize(values.data(), 5, 0.5f);
  REQUIRE(values == std::vector<float>{0.2f, 0.5f, 0.3f, 0.0f, 0.0f});

  // HWC 2x1x2 -> CHW, (x - mean) / std per channel.
  const std::vector<float> image = {0.1f, 0.9f, 0.3f, 0.5f};
  const float mean[2] = {0.1f, 0.5f}, std[2] = {0.5f, 0.25f};
  std::vector<float> out(4);
  cpu::normalize_to_chw(image.data(), 2, 1, 2, mean, std, out.data());
  require_near(out, {0.0f, 0.4f, 1.6f, 0.0f}, 1e-6);
}

TEST_CASE("augment ops: a whole-image crop at the same size is the identity", "[unit]") {
  Generator generator = testing::generator_for("augment whole crop identity");
  for (int64_t channels : {1, 3}) {
    for (Interpolation interpolation : {Interpolation::Bilinear, Interpolation::Bicubic}) {
      const AugmentGeometry g = geometry(6, 9, channels, 6, 9, interpolation);
      const std::vector<uint8_t> pixels = random_pixels(g.in_image_bytes(), generator);
      std::vector<float> out(static_cast<size_t>(g.in_image_bytes()));
      AugmentParams p = whole_crop(g);
      cpu::resize_crop(g, p, pixels.data(), out.data());
      for (size_t i = 0; i < out.size(); ++i) REQUIRE(out[i] == static_cast<float>(pixels[i]) / 255.0f);
      // Flipped: column x comes from column 8 - x.
      p.flip = 1;
      cpu::resize_crop(g, p, pixels.data(), out.data());
      for (int64_t y = 0; y < 6; ++y)
        for (int64_t x = 0; x < 9; ++x)
          for (int64_t c = 0; c < channels; ++c)
            REQUIRE(out[(y * 9 + x) * channels + c] == static_cast<float>(pixels[(y * 9 + 8 - x) * channels + c]) / 255.0f);
      // An integer sub-box at its own size is that part of the image.
      const AugmentGeometry sub = geometry(6, 9, channels, 3, 4, interpolation);
      AugmentParams box;
      box.crop_top = 2.0f;
      box.crop_left = 5.0f;
      box.crop_height = 3.0f;
      box.crop_width = 4.0f;
      std::vector<float> part(static_cast<size_t>(3 * 4 * channels));
      cpu::resize_crop(sub, box, pixels.data(), part.data());
      for (int64_t y = 0; y < 3; ++y)
        for (int64_t x = 0; x < 4; ++x)
          for (int64_t c = 0; c < channels; ++c)
            REQUIRE(part[(y * 4 + x) * channels + c] == static_cast<float>(pixels[((y + 2) * 9 + x + 5) * channels + c]) / 255.0f);
    }
  }
}

TEST_CASE("augment ops: bilinear halving averages 2x2 blocks, bicubic reproduces a ramp", "[unit]") {
  // 4x4 -> 2x2 bilinear: source coordinates 0.5 and 2.5, the mean of each 2x2 block.
  const std::vector<uint8_t> pixels = {0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150};
  const AugmentGeometry half = geometry(4, 4, 1, 2, 2, Interpolation::Bilinear);
  std::vector<float> out(4);
  cpu::resize_crop(half, whole_crop(half), pixels.data(), out.data());
  require_near(out, {25 / 255.0f, 45 / 255.0f, 105 / 255.0f, 125 / 255.0f}, 1e-6);

  // Keys' cubic (a = -0.5) reproduces linear functions: doubling a ramp 0, 30, ..., 210
  // gives 30 * x at source coordinate x = o / 2 - 1/4, wherever all four taps are inside.
  std::vector<uint8_t> ramp(8);
  for (int i = 0; i < 8; ++i) ramp[i] = static_cast<uint8_t>(30 * i);
  const AugmentGeometry wide = geometry(1, 8, 1, 1, 16, Interpolation::Bicubic);
  std::vector<float> upsampled(16);
  cpu::resize_crop(wide, whole_crop(wide), ramp.data(), upsampled.data());
  for (int o = 4; o <= 11; ++o) {
    INFO("output " << o);
    REQUIRE(upsampled[o] == Approx(30.0 * (0.5 * o - 0.25) / 255.0).margin(1e-6));
  }
  // A constant image stays constant under bicubic up- and downsampling (weights sum to 1).
  const std::vector<uint8_t> flat(5 * 7 * 3, 200);
  for (int64_t out_side : {3, 13}) {
    const AugmentGeometry g = geometry(5, 7, 3, out_side, out_side, Interpolation::Bicubic);
    AugmentParams p = whole_crop(g);
    p.crop_top = 0.5f;
    p.crop_height = 4.0f;
    std::vector<float> values(static_cast<size_t>(out_side * out_side * 3));
    cpu::resize_crop(g, p, flat.data(), values.data());
    for (float v : values) REQUIRE(v == Approx(200 / 255.0f).margin(1e-6));
  }
}

TEST_CASE("augment ops: the pipeline applies the jitter in the view's order", "[unit]") {
  Generator generator = testing::generator_for("augment pipeline order");
  const AugmentGeometry g = geometry(5, 6, 3, 5, 6, Interpolation::Bicubic);
  const std::vector<uint8_t> pixels = random_pixels(g.in_image_bytes(), generator);
  AugmentParams p = whole_crop(g);
  p.jitter = 1;
  p.brightness = 1.6f;
  p.contrast = 0.4f;
  p.saturation = 1.3f;
  p.hue = 0.1f;
  const int orders[2][4] = {{kJitterBrightness, kJitterContrast, kJitterSaturation, kJitterHue},
                            {kJitterHue, kJitterContrast, kJitterSaturation, kJitterBrightness}};
  std::vector<std::vector<float>> results;
  for (const auto& order : orders) {
    std::copy(order, order + 4, p.jitter_order);
    std::vector<float> out(static_cast<size_t>(g.out_view_floats())), workspace(static_cast<size_t>(cpu::augment_workspace_floats(g)));
    cpu::augment_view(g, p, pixels.data(), out.data(), workspace.data());
    // The same steps by hand, then HWC -> CHW.
    std::vector<float> image(static_cast<size_t>(g.in_image_bytes()));
    cpu::resize_crop(g, p, pixels.data(), image.data());
    for (int op : order) {
      if (op == kJitterBrightness) cpu::adjust_brightness(image.data(), 30, 3, p.brightness);
      if (op == kJitterContrast) cpu::adjust_contrast(image.data(), 30, 3, p.contrast);
      if (op == kJitterSaturation) cpu::adjust_saturation(image.data(), 30, 3, p.saturation);
      if (op == kJitterHue) cpu::adjust_hue(image.data(), 30, 3, p.hue);
    }
    std::vector<float> expected(out.size());
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t i = 0; i < 30; ++i) expected[c * 30 + i] = image[i * 3 + c];
    REQUIRE(out == expected);
    results.push_back(out);
  }
  // Brightness before or after the contrast (and its clipping) gives different images.
  double difference = 0;
  for (size_t i = 0; i < results[0].size(); ++i) difference += std::fabs(results[0][i] - results[1][i]);
  REQUIRE(difference > 0.1);
}
