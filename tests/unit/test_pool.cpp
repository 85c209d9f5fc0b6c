// Forward values of conv2d and the pooling ops.
// Expected values are hand-computed or come from the double-precision loops in
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

namespace {

Array naive_pool(const Array& x, const Pool2dOptions& options, bool is_max, bool count_include_pad) {
  const Pair stride = options.stride == Pair{0, 0} ? options.kernel : options.stride;
  const int64_t height = x.shape[2], width = x.shape[3];
  const int64_t out_h = (height + 2 * options.padding[0] - options.kernel[0]) / stride[0] + 1;
  const int64_t out_w = (width + 2 * options.padding[1] - options.kernel[1]) / stride[1] + 1;
  Array out({x.shape[0], x.shape[1], out_h, out_w}, 0.0);
  for_each_index(out.shape, [&](const std::vector<int64_t>& index) {
    const int64_t h0 = index[2] * stride[0] - options.padding[0], w0 = index[3] * stride[1] - options.padding[1];
    double best = -INFINITY, total = 0;
    int64_t inside = 0;
    bool nan = false;
    for (int64_t h = h0; h < h0 + options.kernel[0]; ++h) {
      for (int64_t w = w0; w < w0 + options.kernel[1]; ++w) {
        if (h < 0 || h >= height || w < 0 || w >= width) continue;
        const double v = x({index[0], index[1], h, w});
        nan = nan || std::isnan(v);
        best = std::max(best, v);
        total += v;
        ++inside;
      }
    }
    // PyTorch's divisor with padding: the window clipped to the padded image.
    const int64_t h_end = std::min(h0 + options.kernel[0], height + options.padding[0]);
    const int64_t w_end = std::min(w0 + options.kernel[1], width + options.padding[1]);
    const int64_t padded = (h_end - h0) * (w_end - w0);
    out(index) = is_max ? (nan ? kNaN : best) : total / static_cast<double>(count_include_pad ? padded : inside);
  });
  return out;
}

}  // namespace

TEST_CASE("pooling against direct loops", "[unit]") {
  Generator gen = generator_for("pooling against direct loops");
  const std::vector<Pool2dOptions> options = {
      {.kernel = {2, 2}},
      {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}},
      {.kernel = {3, 2}, .stride = {1, 2}, .padding = {1, 0}},
      {.kernel = {2, 2}, .stride = {1, 1}, .padding = {1, 1}},
  };
  Tensor x = random_normal({2, 3, 7, 6}, gen, kFloat32);
  const Array xv(x);
  for (size_t i = 0; i < options.size(); ++i) {
    INFO("options " << i);
    require_close(max_pool2d(x, options[i]), naive_pool(xv, options[i], true, false), 0.0);
    require_close(avg_pool2d(x, options[i], true), naive_pool(xv, options[i], false, true), 1e-6);
    require_close(avg_pool2d(x, options[i], false), naive_pool(xv, options[i], false, false), 1e-6);
  }
  // Hand-computed: a 3x3 average with padding 1 at the corner of a ones image: 4 of 9 inside.
  Tensor image = ones({1, 1, 4, 4});
  const Pool2dOptions padded{.kernel = {3, 3}, .stride = {1, 1}, .padding = {1, 1}};
  CHECK(avg_pool2d(image, padded, true).to_vector<float>()[0] == Approx(4.0 / 9.0));
  CHECK(avg_pool2d(image, padded, false).to_vector<float>()[0] == 1.0f);
}

TEST_CASE("max_pool2d propagates NaN and ignores padding", "[unit]") {
  Tensor x = from_vector<float>({1, 2, 3, 4, 5, NAN, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, {1, 1, 4, 4});
  std::vector<float> out = max_pool2d(x, {.kernel = {2, 2}}).to_vector<float>();
  CHECK(std::isnan(out[0]));
  CHECK(out[1] == 8.0f);
  CHECK(out[2] == 14.0f);
  CHECK(out[3] == 16.0f);
  // All-negative input with padding: the zero padding must never win.
  Tensor negative = full({1, 1, 3, 3}, -5.0);
  for (float v : max_pool2d(negative, {.kernel = {3, 3}, .stride = {1, 1}, .padding = {1, 1}}).to_vector<float>())
    CHECK(v == -5.0f);
}

TEST_CASE("adaptive_avg_pool2d uses PyTorch's bins", "[unit]") {
  Generator gen = generator_for("adaptive_avg_pool2d uses PyTorch's bins");
  Tensor x = random_normal({2, 3, 5, 7}, gen, kFloat64);
  const Array xv(x);
  for (Pair size : {Pair{3, 4}, Pair{2, 2}, Pair{5, 7}, Pair{1, 1}, Pair{7, 3}}) {
    INFO("size " << size[0] << "x" << size[1]);
    Array expected({2, 3, size[0], size[1]}, 0.0);
    for_each_index(expected.shape, [&](const std::vector<int64_t>& i) {
      // Bin i covers [floor(i H / O), ceil((i + 1) H / O)).
      const int64_t h0 = i[2] * 5 / size[0], h1 = ((i[2] + 1) * 5 + size[0] - 1) / size[0];
      const int64_t w0 = i[3] * 7 / size[1], w1 = ((i[3] + 1) * 7 + size[1] - 1) / size[1];
      double total = 0;
      for (int64_t h = h0; h < h1; ++h)
        for (int64_t w = w0; w < w1; ++w) total += xv({i[0], i[1], h, w});
      expected(i) = total / static_cast<double>((h1 - h0) * (w1 - w0));
    });
    require_close(adaptive_avg_pool2d(x, size), expected, kFloat64Tolerance);
  }
  // Hand-computed: 5 -> 3 bins are [0, 2), [1, 4), [3, 5).
  Tensor ramp = arange(0.0, 5.0, 1.0, kFloat64).reshape({1, 1, 1, 5});
  CHECK(adaptive_avg_pool2d(ramp, {1, 3}).to_vector<double>() == std::vector<double>{0.5, 2.0, 3.5});
  require_close(global_avg_pool2d(x), reduce_reference(xv, {2, 3}, false, average), kFloat64Tolerance);
}
