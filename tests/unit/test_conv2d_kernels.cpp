// The im2col + GEMM convolution (kernels/cpu/conv2d.cpp) and its Winograd F(2x2, 3x3) path
// (kernels/cpu/conv2d_winograd.cpp, float32 3x3 stride-1 padding-1 convolutions with 16 or
// more channels) against the definition: direct loops over every output, input channel and
// kernel tap, in double precision.
//
// The geometries are chosen to reach every branch of the fast path: stride 2, padding,
// padding wider than half the kernel (outputs that see only zeros), dilation, groups and
// depthwise, non-square kernels, the 1x1 pointwise shortcut, batch 1, batches that take
// several chunks per worker (a large plane, one image per GEMM; a 4x4 plane, many images
// side by side in one GEMM, with a ragged last chunk), and both ways of unrolling (narrow
// output rows through tap tables, wide ones through row copies). Outputs are poisoned with
// NaN first, so an element the kernel forgets to write fails.
#include <catch2/catch.hpp>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>


#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/conv2d_winograd.h"
#include "kernels/cpu/linear_algebra.h"
#include "tests/support/test_data.h"

using namespace visrep;
using kernels::Conv2dGeometry;

namespace {

struct Case {
  std::string name;
  Conv2dGeometry geometry;
};

Conv2dGeometry make_geometry(int64_t batch, int64_t in_channels, int64_t height, int64_t width, int64_t out_channels,
                             std::array<int64_t, 2> kernel, std::array<int64_t, 2> stride = {1, 1},
                             std::array<int64_t, 2> padding = {0, 0}, std::array<int64_t, 2> dilation = {1, 1},
                             int64_t groups = 1) {
  Conv2dGeometry g;
  g.batch = batch;
  g.in_channels = in_channels;
  g.in_height = height;
  g.in_width = width;
  g.out_channels = out_channels;
  g.kernel_height = kernel[0];
  g.kernel_width = kernel[1];
  g.stride_height = stride[0];
  g.stride_width = stride[1];
  g.padding_height = padding[0];
  g.padding_width = padding[1];
  g.dilation_height = dilation[0];
  g.dilation_width = dilation[1];
  g.groups = groups;
  return g;
}

std::vector<Case> cases() {
  return {
      {"3x3 stride 2 padding 1, odd sizes", make_geometry(3, 4, 9, 7, 5, {3, 3}, {2, 2}, {1, 1})},
      {"3x3 dilation 2 padding 2", make_geometry(2, 3, 10, 11, 4, {3, 3}, {1, 1}, {2, 2}, {2, 2})},
      {"groups 3, 3x2 kernel, stride (1, 2), padding (1, 0)",
       make_geometry(3, 6, 8, 9, 9, {3, 2}, {1, 2}, {1, 0}, {1, 1}, 3)},
      {"depthwise 3x3", make_geometry(2, 4, 6, 6, 4, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 4)},
      {"1x1 pointwise, batch 1", make_geometry(1, 5, 6, 5, 3, {1, 1})},
      {"1x1 pointwise, batch 4", make_geometry(4, 5, 6, 5, 3, {1, 1})},
      {"1x1 stride 2 shortcut", make_geometry(3, 4, 7, 7, 6, {1, 1}, {2, 2})},
      {"3x3 padding 1, batch 1", make_geometry(1, 3, 8, 8, 4, {3, 3}, {1, 1}, {1, 1})},
      {"kernel larger than the input, stride (3, 2)", make_geometry(2, 2, 3, 2, 3, {5, 4}, {3, 2}, {2, 2})},
      {"padding wider than half the kernel", make_geometry(2, 2, 4, 5, 3, {3, 3}, {2, 2}, {3, 3})},
      {"large plane: several one-image chunks per worker", make_geometry(5, 2, 33, 33, 3, {3, 3}, {1, 1}, {1, 1})},
      {"4x4 plane: many images per GEMM, ragged last chunk", make_geometry(131, 2, 4, 4, 3, {3, 3}, {1, 1}, {1, 1})},
      // Output rows of 16 or more take the row-copy path; narrower ones the tap tables.
      {"wide rows: 3x3 stride 2 padding 1", make_geometry(2, 3, 7, 41, 4, {3, 3}, {2, 2}, {1, 1})},
      {"wide rows: dilation 2, padding 3, groups 2", make_geometry(2, 4, 6, 40, 6, {3, 3}, {1, 1}, {3, 3}, {2, 2}, 2)},
      {"wide rows: 1x1 stride 2 shortcut", make_geometry(3, 4, 5, 36, 5, {1, 1}, {2, 2})},
      {"wide rows: 5x3 kernel, stride (2, 3), padding (2, 1)", make_geometry(2, 2, 9, 50, 3, {5, 3}, {2, 3}, {2, 1})},
      {"wide rows: several images per GEMM", make_geometry(60, 2, 2, 20, 3, {3, 3}, {1, 1}, {1, 1})},
      // float32 3x3 stride-1 padding-1 convolutions with 16 or more channels take Winograd's
      // F(2x2, 3x3) (kernels/cpu/conv2d_winograd.cpp), forward and both gradients: even and
      // odd maps (tiles hanging over the edge), one image or several per chunk, a ragged batch.
      {"winograd: 16 -> 24 channels, 8x8", make_geometry(4, 16, 8, 8, 24, {3, 3}, {1, 1}, {1, 1})},
      {"winograd: 17 -> 16 channels, 7x9 (odd edges)", make_geometry(3, 17, 7, 9, 16, {3, 3}, {1, 1}, {1, 1})},
      {"winograd: 32x32 maps, one image per chunk", make_geometry(2, 16, 32, 32, 16, {3, 3}, {1, 1}, {1, 1})},
      {"winograd: 1x1 and 2x2 maps", make_geometry(5, 16, 2, 2, 20, {3, 3}, {1, 1}, {1, 1})},
      {"winograd: 4x4 maps, many images per chunk, ragged", make_geometry(67, 16, 4, 4, 16, {3, 3}, {1, 1}, {1, 1})},
      {"winograd: 1x3 map", make_geometry(3, 16, 1, 3, 16, {3, 3}, {1, 1}, {1, 1})},
      {"winograd: 64 channels (sums of 576 products)", make_geometry(2, 64, 8, 8, 64, {3, 3}, {1, 1}, {1, 1})},
  };
}

int64_t weight_numel(const Conv2dGeometry& g) {
  return g.out_channels * (g.in_channels / g.groups) * g.kernel_height * g.kernel_width;
}

// Calls visit(n, out_channel, oh, ow, in_channel, ki, kj, input_index, weight_index) for
// every (output, tap) pair whose input position lies inside the image.
template <class Visit>
void for_each_tap(const Conv2dGeometry& g, Visit&& visit) {
  const int64_t group_in = g.in_channels / g.groups, group_out = g.out_channels / g.groups;
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t co = 0; co < g.out_channels; ++co)
      for (int64_t oh = 0; oh < g.out_height(); ++oh)
        for (int64_t ow = 0; ow < g.out_width(); ++ow)
          for (int64_t cl = 0; cl < group_in; ++cl)
            for (int64_t ki = 0; ki < g.kernel_height; ++ki)
              for (int64_t kj = 0; kj < g.kernel_width; ++kj) {
                const int64_t ih = oh * g.stride_height - g.padding_height + ki * g.dilation_height;
                const int64_t iw = ow * g.stride_width - g.padding_width + kj * g.dilation_width;
                if (ih < 0 || ih >= g.in_height || iw < 0 || iw >= g.in_width) continue;
                const int64_t ci = (co / group_out) * group_in + cl;
                const int64_t output_index = ((n * g.out_channels + co) * g.out_height() + oh) * g.out_width() + ow;
                const int64_t input_index = ((n * g.in_channels + ci) * g.in_height + ih) * g.in_width + iw;
                const int64_t weight_index = ((co * group_in + cl) * g.kernel_height + ki) * g.kernel_width + kj;
                visit(output_index, co, input_index, weight_index);
              }
}

struct Reference {
  std::vector<double> output, grad_input, grad_weight, grad_bias;
};

Reference direct_convolution(const Conv2dGeometry& g, const std::vector<double>& x, const std::vector<double>& w,
                             const std::vector<double>& b, const std::vector<double>& dy) {
  Reference r;
  const int64_t plane = g.out_height() * g.out_width();
  r.output.assign(static_cast<size_t>(g.batch * g.out_channels * plane), 0.0);
  r.grad_input.assign(x.size(), 0.0);
  r.grad_weight.assign(w.size(), 0.0);
  r.grad_bias.assign(b.size(), 0.0);
  for (int64_t i = 0; i < g.batch * g.out_channels * plane; ++i) {
    const int64_t co = (i / plane) % g.out_channels;
    r.output[i] = b[co];
    r.grad_bias[co] += dy[i];
  }
  for_each_tap(g, [&](int64_t out, int64_t, int64_t in, int64_t weight) {
    r.output[out] += x[in] * w[weight];
    r.grad_input[in] += dy[out] * w[weight];
    r.grad_weight[weight] += dy[out] * x[in];
  });
  return r;
}

template <class T>
std::vector<T> poisoned(size_t size) {
  return std::vector<T>(size, std::numeric_limits<T>::quiet_NaN());
}

// Largest |actual - expected|, infinite when a NaN (an unwritten element) is left or the
// sizes differ. (No Catch assertion inside: it is called from several threads.)
template <class T>
double max_error(const std::vector<T>& actual, const std::vector<double>& expected) {
  if (actual.size() != expected.size()) return std::numeric_limits<double>::infinity();
  double worst = 0.0;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double error = std::abs(static_cast<double>(actual[i]) - expected[i]);
    worst = std::isnan(error) ? std::numeric_limits<double>::infinity() : std::max(worst, error);
  }
  return worst;
}

template <class T>
std::vector<T> converted(const std::vector<double>& values) {
  return std::vector<T>(values.begin(), values.end());
}

// Runs the kernel in precision T on the case's random data and compares every output and
// gradient (all wanted, then each one alone) against the direct loops.
template <class T>
void check_against_direct(const Case& c, double tolerance) {
  const Conv2dGeometry& g = c.geometry;
  Generator generator = testing::generator_for(c.name.c_str());
  const int64_t out_numel = g.batch * g.out_channels * g.out_height() * g.out_width();
  const auto x = testing::random_normal({g.batch * g.in_channels * g.in_height * g.in_width}, generator)
                     .to_vector<double>();
  const auto w = testing::random_normal({weight_numel(g)}, generator).to_vector<double>();
  const auto b = testing::random_normal({g.out_channels}, generator).to_vector<double>();
  const auto dy = testing::random_normal({out_numel}, generator).to_vector<double>();
  const Reference expected = direct_convolution(g, x, w, b, dy);
  const auto xt = converted<T>(x), wt = converted<T>(w), bt = converted<T>(b), dyt = converted<T>(dy);

  auto output = poisoned<T>(out_numel);
  kernels::cpu::conv2d_forward<T>({.geometry = g,
                                   .input = xt.data(),
                                   .weight = wt.data(),
                                   .bias = bt.data(),
                                   .output = output.data()});
  CHECK(max_error(output, expected.output) <= tolerance);
  kernels::cpu::conv2d_forward<T>({.geometry = g,
                                   .input = xt.data(),
                                   .weight = wt.data(),
                                   .bias = nullptr,
                                   .output = output.data()});
  std::vector<double> without_bias = expected.output;
  for (int64_t i = 0; i < out_numel; ++i) without_bias[i] -= b[(i / (g.out_height() * g.out_width())) % g.out_channels];
  CHECK(max_error(output, without_bias) <= tolerance);

  auto grad_input = poisoned<T>(x.size()), grad_weight = poisoned<T>(w.size()), grad_bias = poisoned<T>(b.size());
  kernels::cpu::conv2d_backward<T>({.geometry = g,
                                    .grad_output = dyt.data(),
                                    .input = xt.data(),
                                    .weight = wt.data(),
                                    .grad_input = grad_input.data(),
                                    .grad_weight = grad_weight.data(),
                                    .grad_bias = grad_bias.data()});
  CHECK(max_error(grad_input, expected.grad_input) <= tolerance);
  CHECK(max_error(grad_weight, expected.grad_weight) <= tolerance);
  CHECK(max_error(grad_bias, expected.grad_bias) <= tolerance);

  // One gradient at a time, the other pointers null: each must come out the same alone.
  grad_input = poisoned<T>(x.size());
  kernels::cpu::conv2d_backward<T>({.geometry = g,
                                    .grad_output = dyt.data(),
                                    .input = xt.data(),
                                    .weight = wt.data(),
                                    .grad_input = grad_input.data(),
                                    .grad_weight = nullptr,
                                    .grad_bias = nullptr});
  CHECK(max_error(grad_input, expected.grad_input) <= tolerance);
  grad_weight = poisoned<T>(w.size());
  kernels::cpu::conv2d_backward<T>({.geometry = g,
                                    .grad_output = dyt.data(),
                                    .input = xt.data(),
                                    .weight = wt.data(),
                                    .grad_input = nullptr,
                                    .grad_weight = grad_weight.data(),
                                    .grad_bias = nullptr});
  CHECK(max_error(grad_weight, expected.grad_weight) <= tolerance);
}

}  // namespace

TEST_CASE("conv2d: im2col + GEMM matches direct loops in float64", "[unit]") {
  for (const Case& c : cases()) {
    INFO(c.name);
    check_against_direct<double>(c, 1e-11);
  }
}

TEST_CASE("conv2d: im2col + GEMM matches direct loops in float32", "[unit]") {
  // Sums of up to a few hundred products of N(0, 1) values; float32 keeps ~7 digits.
  for (const Case& c : cases()) {
    INFO(c.name);
    // Winograd here: outputs and input gradients within 1e-5, filter gradients (sums of up
    // to 2048 tile products) within 1.2e-4, im2col's within 6.5e-5.
    check_against_direct<float>(c, 2e-4);
  }
}

TEST_CASE("conv2d: the Winograd cases take the Winograd path, the others im2col", "[unit]") {
  // So the float32 test above holds Winograd to the direct loops (a batch needs an image per
  // thread; the cases' batches are at least this machine's thread count where it has 2).
  for (const Case& c : cases()) {
    INFO(c.name);
    const bool named = c.name.rfind("winograd:", 0) == 0;
    CHECK(kernels::cpu::winograd_applies(c.geometry) == (named && c.geometry.batch >= omp_get_max_threads()));
  }
}

TEST_CASE("conv2d: an empty batch writes zero weight and bias gradients", "[unit]") {
  const Conv2dGeometry g = make_geometry(0, 3, 5, 5, 4, {3, 3}, {1, 1}, {1, 1});
  const std::vector<double> w(static_cast<size_t>(weight_numel(g)), 1.0);
  auto grad_weight = poisoned<double>(w.size()), grad_bias = poisoned<double>(4);
  kernels::cpu::conv2d_backward<double>({.geometry = g,
                                         .grad_output = nullptr,
                                         .input = nullptr,
                                         .weight = w.data(),
                                         .grad_input = nullptr,
                                         .grad_weight = grad_weight.data(),
                                         .grad_bias = grad_bias.data()});
  CHECK(max_error(grad_weight, std::vector<double>(w.size(), 0.0)) == 0.0);
  CHECK(max_error(grad_bias, std::vector<double>(4, 0.0)) == 0.0);
}

TEST_CASE("conv2d: a kernel that does not fit the padded input is refused, not read past", "[unit]") {
  // (2 + 2 * 0 - 5) / 4 + 1 rounds to an output of 1 although the window never fits.
  const Conv2dGeometry g = make_geometry(1, 1, 2, 2, 1, {5, 5}, {4, 4});
  REQUIRE(g.out_height() == 1);
  const std::vector<double> x(4, 1.0), w(25, 1.0), dy(1, 1.0);
  std::vector<double> y(1), dx(4), dw(25);
  CHECK_THROWS_AS(kernels::cpu::conv2d_forward<double>({.geometry = g,
                                                        .input = x.data(),
                                                        .weight = w.data(),
                                                        .bias = nullptr,
                                                        .output = y.data()}),
                  std::invalid_argument);
  CHECK_THROWS_AS(kernels::cpu::conv2d_backward<double>({.geometry = g,
                                                         .grad_output = dy.data(),
                                                         .input = x.data(),
                                                         .weight = w.data(),
                                                         .grad_input = dx.data(),
                                                         .grad_weight = dw.data(),
                                                         .grad_bias = nullptr}),
                  std::invalid_argument);
}

TEST_CASE("conv2d: concurrent calls agree with direct loops and OpenBLAS runs on the caller", "[unit]") {
  // Two convolutions on two threads at once, each with its own OpenMP workers calling
  // single-threaded GEMMs side by side (kernels/cpu/linear_algebra.h's threading policy).
  std::vector<Case> concurrent = {cases()[0], cases()[10]};
  std::vector<std::thread> threads;
  std::vector<int> failures(concurrent.size(), 0);
  for (size_t i = 0; i < concurrent.size(); ++i) {
    threads.emplace_back([&, i] {
      for (int round = 0; round < 5; ++round) {
        const Conv2dGeometry& g = concurrent[i].geometry;
        Generator generator = testing::generator_for(concurrent[i].name.c_str());
        const auto x = testing::random_normal({g.batch * g.in_channels * g.in_height * g.in_width}, generator)
                           .to_vector<double>();
        const auto w = testing::random_normal({weight_numel(g)}, generator).to_vector<double>();
        const std::vector<double> b(static_cast<size_t>(g.out_channels), 0.5);
        const int64_t out_numel = g.batch * g.out_channels * g.out_height() * g.out_width();
        const auto dy = testing::random_normal({out_numel}, generator).to_vector<double>();
        const Reference expected = direct_convolution(g, x, w, b, dy);
        auto output = poisoned<double>(out_numel);
        auto grad_weight = poisoned<double>(w.size());
        kernels::cpu::conv2d_forward<double>({.geometry = g,
                                              .input = x.data(),
                                              .weight = w.data(),
                                              .bias = b.data(),
                                              .output = output.data()});
        kernels::cpu::conv2d_backward<double>({.geometry = g,
                                               .grad_output = dy.data(),
                                               .input = x.data(),
                                               .weight = w.data(),
                                               .grad_input = nullptr,
                                               .grad_weight = grad_weight.data(),
                                               .grad_bias = nullptr});
        // Catch's assertions are not thread-safe: count failures here, check them after.
        if (!(max_error(output, expected.output) <= 1e-11)) ++failures[i];
        if (!(max_error(grad_weight, expected.grad_weight) <= 1e-11)) ++failures[i];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (size_t i = 0; i < concurrent.size(); ++i) {
    INFO(concurrent[i].name);
    CHECK(failures[i] == 0);
  }
  CHECK(kernels::cpu::openblas_threads() == 1);  // never OpenBLAS's own thread pool
}
