// Gradient checks of conv2d (stride, padding, dilation, groups, bias or not, 1x1, odd and
// non-square sizes, one image and several; engine/ops/conv2d.h) on the CPU kernel in float64
// (kernels/cpu/conv2d.h lists the family's files).
#include <catch2/catch.hpp>

#include "engine/ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

namespace {

// conv2d is bilinear in (x, weight) and linear in bias; each output sums <= 36 products of
// O(1) values and L sums ~100 outputs, so |L| ~ 50 and rounding ~1e-16 * 50 / eps ~ 5e-9.
constexpr GradcheckTolerance kConvolution{.eps = 1e-6, .atol = 1e-7, .rtol = 1e-5};

struct ConvCase {
  const char* name;
  Shape input;   // (N, C_in, H, W)
  Shape weight;  // (C_out, C_in / groups, kH, kW)
  bool bias;
  Conv2dOptions options;
};

}  // namespace

TEST_CASE("conv2d", "[gradcheck]") {
  const std::vector<ConvCase> cases = {
      {"3x3 plain", {2, 3, 5, 5}, {4, 3, 3, 3}, true, {}},
      {"stride 2 padding 1", {2, 3, 6, 7}, {4, 3, 3, 3}, true, {.stride = {2, 2}, .padding = {1, 1}}},
      {"asymmetric stride and padding", {1, 2, 7, 6}, {3, 2, 3, 2}, true, {.stride = {2, 1}, .padding = {1, 0}}},
      {"dilation 2", {2, 2, 7, 7}, {3, 2, 3, 3}, true, {.padding = {2, 1}, .dilation = {2, 2}}},
      {"groups 2", {2, 4, 5, 6}, {6, 2, 3, 3}, true, {.stride = {2, 2}, .padding = {1, 1}, .groups = 2}},
      {"depthwise", {2, 3, 5, 5}, {3, 1, 3, 3}, true, {.padding = {1, 1}, .groups = 3}},
      {"no bias", {2, 3, 5, 4}, {2, 3, 3, 3}, false, {.padding = {1, 1}}},
      {"1x1", {2, 4, 3, 5}, {3, 4, 1, 1}, true, {}},
      {"1x1 one image", {1, 4, 3, 5}, {3, 4, 1, 1}, true, {}},
      {"1x1 stride 2", {2, 3, 5, 5}, {2, 3, 1, 1}, false, {.stride = {2, 2}}},
      {"odd sizes one image", {1, 3, 7, 5}, {5, 3, 3, 3}, true, {.stride = {2, 2}, .padding = {1, 1}}},
      {"kernel as large as the padded input", {2, 2, 3, 4}, {2, 2, 5, 4}, true, {.padding = {1, 0}}},
  };
  for (const ConvCase& c : cases) {
    SECTION(c.name) {
      Generator gen = generator_for(c.name);
      Tensor x = leaf(random_normal(c.input, gen));
      Tensor w = leaf(random_normal(c.weight, gen));
      Tensor b = c.bias ? leaf(random_normal({c.weight[0]}, gen)) : Tensor();
      const Conv2dOptions options = c.options;
      if (c.bias) {
        VISREP_CHECK_GRADIENTS(kConvolution,
                        [options](const TensorList& in) { return conv2d(in[0], in[1], in[2], options); }, x, w, b);
      } else {
        VISREP_CHECK_GRADIENTS(kConvolution, [options](const TensorList& in) { return conv2d(in[0], in[1], Tensor(), options); },
                        x, w);
      }
    }
  }
}

TEST_CASE("conv2d non-contiguous input", "[gradcheck]") {
  Generator gen = generator_for("conv2d non-contiguous input");
  Tensor x = leaf(random_normal({2, 5, 4, 3}, gen));  // read as (N, C, H, W) = (2, 3, 4, 5)
  Tensor w = leaf(random_normal({2, 3, 3, 3}, gen));
  VISREP_CHECK_GRADIENTS(
      kConvolution,
      [](const TensorList& in) { return conv2d(in[0].permute({0, 3, 2, 1}), in[1], Tensor(), {.padding = {1, 1}}); },
      x, w);
}
