// Forward values of conv2d (engine/ops/conv2d.h) against a direct loop over the definition;
// kernels/cpu/conv2d.h lists the family's files (tests/unit/test_conv2d_kernels.cpp checks
// the CPU kernel itself). Expected values come from the double-precision loops of
// tests/support/reference.h, never from the engine's own output.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>

#include "engine/ops.h"
#include "tests/support/reference.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

namespace {

// The definition: out[n, o, i, j] = bias[o] + sum over (c, p, q) of the group's channels of
// x[n, g * C_in/groups + c, i s_h - pad_h + p d_h, j s_w - pad_w + q d_w] w[o, c, p, q].
Array naive_conv2d(const Array& x, const Array& w, const Array* bias, const Conv2dOptions& o) {
  const int64_t batch = x.shape[0], in_channels = x.shape[1], height = x.shape[2], width = x.shape[3];
  const int64_t out_channels = w.shape[0], group_in = w.shape[1], kh = w.shape[2], kw = w.shape[3];
  const int64_t group_out = out_channels / o.groups;
  const int64_t out_h = (height + 2 * o.padding[0] - o.dilation[0] * (kh - 1) - 1) / o.stride[0] + 1;
  const int64_t out_w = (width + 2 * o.padding[1] - o.dilation[1] * (kw - 1) - 1) / o.stride[1] + 1;
  REQUIRE(group_in * o.groups == in_channels);
  Array out({batch, out_channels, out_h, out_w}, 0.0);
  for_each_index(out.shape, [&](const std::vector<int64_t>& index) {
    const int64_t n = index[0], oc = index[1], i = index[2], j = index[3];
    const int64_t group = oc / group_out;
    double total = bias ? (*bias)({oc}) : 0.0;
    for (int64_t c = 0; c < group_in; ++c) {
      for (int64_t p = 0; p < kh; ++p) {
        for (int64_t q = 0; q < kw; ++q) {
          const int64_t h = i * o.stride[0] - o.padding[0] + p * o.dilation[0];
          const int64_t v = j * o.stride[1] - o.padding[1] + q * o.dilation[1];
          if (h < 0 || h >= height || v < 0 || v >= width) continue;
          total += x({n, group * group_in + c, h, v}) * w({oc, c, p, q});
        }
      }
    }
    out(index) = total;
  });
  return out;
}

}  // namespace

TEST_CASE("conv2d against a direct loop", "[unit]") {
  struct Case {
    const char* name;
    Shape input, weight;
    bool bias;
    Conv2dOptions options;
  };
  const std::vector<Case> cases = {
      {"3x3", {2, 3, 6, 5}, {4, 3, 3, 3}, true, {}},
      {"stride padding", {3, 2, 7, 8}, {3, 2, 3, 3}, true, {.stride = {2, 2}, .padding = {1, 1}}},
      {"asymmetric", {1, 3, 9, 6}, {2, 3, 2, 3}, false, {.stride = {3, 1}, .padding = {0, 2}}},
      {"dilation", {2, 2, 9, 9}, {4, 2, 3, 3}, true, {.padding = {1, 2}, .dilation = {2, 3}}},
      {"groups", {2, 6, 5, 5}, {4, 3, 3, 3}, true, {.padding = {1, 1}, .groups = 2}},
      {"depthwise", {2, 4, 6, 6}, {8, 1, 3, 3}, true, {.stride = {2, 2}, .padding = {1, 1}, .groups = 4}},
      {"1x1", {3, 5, 4, 4}, {6, 5, 1, 1}, true, {}},
      {"1x1 one image", {1, 5, 4, 3}, {6, 5, 1, 1}, false, {}},
      {"1x1 strided", {2, 4, 5, 5}, {3, 4, 1, 1}, true, {.stride = {2, 2}}},
      {"many images, tiny planes", {40, 3, 3, 3}, {2, 3, 2, 2}, true, {}},
      {"large plane", {1, 2, 40, 37}, {3, 2, 5, 5}, true, {.stride = {1, 2}, .padding = {2, 2}}},
  };
  Generator gen = generator_for("conv2d against a direct loop");
  for (DType dtype : {kFloat32, kFloat64}) {
    const double tolerance = dtype == kFloat32 ? 1e-5 : kFloat64Tolerance;
    for (const Case& c : cases) {
      INFO(c.name << " " << dtype_name(dtype));
      Tensor x = random_normal(c.input, gen, dtype), w = random_normal(c.weight, gen, dtype);
      Tensor b = c.bias ? random_normal({c.weight[0]}, gen, dtype) : Tensor();
      const Array bias_values = c.bias ? Array(b) : Array({1}, 0.0);
      require_close(conv2d(x, w, b, c.options),
                    naive_conv2d(Array(x), Array(w), c.bias ? &bias_values : nullptr, c.options), tolerance);
    }
  }
  SECTION("non-contiguous input") {
    Tensor x = random_normal({2, 6, 5, 3}, gen, kFloat32).permute({0, 3, 2, 1});  // (2, 3, 5, 6)
    Tensor w = random_normal({2, 3, 3, 3}, gen, kFloat32);
    const Conv2dOptions options{.padding = {1, 1}};
    require_close(conv2d(x, w, Tensor(), options), naive_conv2d(Array(x), Array(w), nullptr, options), 1e-5);
  }
}
