// Forward values of the pooling ops (engine/ops/pool.h); kernels/cpu/pool.h lists the
// family's files. Expected values are hand-computed or come from the double-precision
// loops in tests/support/reference.h, never from the engine's own output.
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
