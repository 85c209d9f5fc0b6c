// Parity cases of group_norm (kernels/cuda/group_norm.cu) and weight_standardization
// (kernels/cuda/weight_standardization.cu): BiT's shapes scaled down, awkward ones
// (N = 1, H = W = 1, one channel per group, odd sizes that rule out the 16-byte packs,
// misaligned pointers), both GroupNorm paths (group on chip, group streamed), inputs offset
// by 1e4, bfloat16, the fused ReLU, and the multi-tensor weight standardisation of every
// convolution of a (narrowed) BiT-R50x1.
//
// Tolerances (NMSE): the CPU computes in double and rounds once; the GPU keeps float32
// statistics and arithmetic (float64 for float64), so float32 results differ by a few
// float32 roundings of sums over up to ~10^5 values: NMSE ~1e-13, bound 1e-10 (a formula
// slip, e.g. a missing gamma or an unbiased variance, is >= 1e-4). bfloat16: the two
// sides round their (slightly different) float results to 8 bits, so some elements differ
// by one bfloat16 ulp (2^-8 relative): NMSE <= ~1e-5, bound 1e-4. float64: 1e-24.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "engine/nn/bit_layers.h"
#include "kernels/cuda/group_norm.h"
#include "tests/parity/parity.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;
using Catch::Matchers::Contains;

namespace {

using Inputs = ParityInputs;

constexpr double kFloatTolerance = 1e-10;
constexpr double kBFloat16Tolerance = 1e-4;
constexpr double kDoubleTolerance = 1e-24;

double tolerance_for(DType dtype) {
  if (dtype == kFloat64) return kDoubleTolerance;
  return dtype == kBFloat16 ? kBFloat16Tolerance : kFloatTolerance;
}

struct GroupNormCase {
  Shape input;
  int64_t groups = 32;
  DType dtype = kFloat32;
  bool affine = true;
  bool relu = false;
  double offset = 0.0;     // added to x (1e4: the large-mean case)
  bool misaligned = false; // x starts one element into its buffer: no 16-byte packs
};

std::string describe(const GroupNormCase& c) {
  return "group_norm " + shape_string(c.input) + " g" + std::to_string(c.groups) + " " +
         std::string(dtype_name(c.dtype)) + (c.affine ? "" : " no-affine") + (c.relu ? " relu" : "") +
         (c.offset != 0 ? " offset" : "") + (c.misaligned ? " misaligned" : "");
}

// Inputs: x (one extra leading element when misaligned), gamma and beta (or undefined).
void check_group_norm(const GroupNormCase& c) {
  const int64_t channels = c.input[1];
  const int64_t numel = shape_numel(c.input);
  check_parity({.name = describe(c),
                .make_inputs = [c, channels, numel](Generator& g) -> Inputs {
                  Tensor values = add(random_normal({numel + (c.misaligned ? 1 : 0)}, g), c.offset);
                  const Tensor gamma = c.affine ? random_uniform({channels}, 0.5, 1.5, g) : Tensor();
                  const Tensor beta = c.affine ? random_uniform({channels}, -0.5, 0.5, g) : Tensor();
                  // The fused ReLU's mask is recomputed in the backward pass from each device's
                  // own statistics (float32 sums on CUDA, double on the CPU): an element within
                  // ~1e-6 of the boundary could be masked on one device only, and its whole
                  // gradient would differ (one in 4e5 fails the 1e-10 bound; a CPU emulation of
                  // both paths flipped one in the (2, 64, 56, 56) case for 1 seed in 20).
                  if (c.relu) {
                    values = away_from_group_norm_relu_boundary(values, c.misaligned ? 1 : 0, c.input, c.groups,
                                                                gamma, beta, c.dtype);
                  }
                  return {parity_leaf(values, c.dtype), gamma.defined() ? parity_leaf(gamma, c.dtype) : Tensor(),
                          beta.defined() ? parity_leaf(beta, c.dtype) : Tensor()};
                },
                .function = [c, numel](const Inputs& in) {
                  const Tensor x = in[0].narrow(0, c.misaligned ? 1 : 0, numel).view(c.input);
                  return group_norm(x, c.groups, in[1], in[2], 1e-5, c.relu);
                },
                .tolerance = tolerance_for(c.dtype)});
}

// The convolution weights of BiT-R50x1 (ResNetV2-50 with pre-activation bottlenecks,
// big_transfer's bit_pytorch/models.py): the 7x7 root, then per unit conv1 1x1, conv2 3x3,
// conv3 1x1, plus a 1x1 projection in each block's first unit; 53 in all. Widths are
// divided by `narrow` to keep the CPU side of the parity case fast.
std::vector<Shape> bit_r50_weight_shapes(int64_t narrow) {
  std::vector<Shape> shapes = {{64 / narrow, 3, 7, 7}};
  int64_t in = 64 / narrow;
  const int64_t units[4] = {3, 4, 6, 3};
  for (int block = 0; block < 4; ++block) {
    const int64_t mid = (64 << block) / narrow, out = 4 * mid;
    for (int64_t unit = 0; unit < units[block]; ++unit) {
      if (unit == 0) shapes.push_back({out, in, 1, 1});  // projection
      shapes.push_back({mid, in, 1, 1});
      shapes.push_back({mid, mid, 3, 3});
      shapes.push_back({out, mid, 1, 1});
      in = out;
    }
  }
  return shapes;
}

// Standardises every weight of `shapes` in one multi-tensor call; the output is all the
// standardised weights, flattened and concatenated.
void check_weight_standardization(const std::string& name, const std::vector<Shape>& shapes, DType dtype,
                                  double eps, double offset = 0.0, bool misaligned = false) {
  check_parity({.name = name,
                .make_inputs = [shapes, dtype, offset, misaligned](Generator& g) -> Inputs {
                  Inputs in;
                  for (const Shape& shape : shapes) {
                    in.push_back(parity_leaf(
                        add(random_normal({shape_numel(shape) + (misaligned ? 1 : 0)}, g), offset), dtype));
                  }
                  return in;
                },
                .function = [shapes, eps, misaligned](const Inputs& in) {
                  std::vector<Tensor> weights;
                  for (size_t i = 0; i < shapes.size(); ++i) {
                    weights.push_back(in[i].narrow(0, misaligned ? 1 : 0, shape_numel(shapes[i])).view(shapes[i]));
                  }
                  std::vector<Tensor> flat;
                  for (const Tensor& w : weight_standardization(weights, eps)) flat.push_back(w.flatten());
                  return concat(flat);
                },
                .tolerance = tolerance_for(dtype)});
}

}  // namespace

// ---- group_norm ----------------------------------------------------------------------------

TEST_CASE("group_norm BiT shapes (scaled down)", "[gpu]") {
  // BiT-R50's four stages at 224 px have (C, H, W) = (256, 56, 56), (512, 28, 28),
  // (1024, 14, 14), (2048, 7, 7) with 32 groups; here with fewer channels and pixels.
  check_group_norm({.input = {2, 64, 28, 28}});
  check_group_norm({.input = {2, 128, 14, 14}});
  check_group_norm({.input = {2, 256, 7, 7}});  // H * W = 49: packs cross channel boundaries
  check_group_norm({.input = {2, 512, 7, 7}, .relu = true});
  check_group_norm({.input = {2, 64, 56, 56}, .relu = true});
}

TEST_CASE("group_norm awkward shapes", "[gpu]") {
  check_group_norm({.input = {1, 32, 1, 1}});                // one element per group
  check_group_norm({.input = {1, 32, 1, 1}, .relu = true});
  check_group_norm({.input = {1, 32, 3, 3}});                // one channel per group
  check_group_norm({.input = {3, 6, 5, 5}, .groups = 3});    // M = 50: no 16-byte packs
  check_group_norm({.input = {2, 12, 7, 5}, .groups = 4, .affine = false});
  check_group_norm({.input = {5, 64}, .groups = 8});         // (N, C)
  check_group_norm({.input = {2, 8, 3, 4, 5}, .groups = 2}); // 5-D
  check_group_norm({.input = {2, 64, 8, 8}, .misaligned = true});
  check_group_norm({.input = {3, 96, 9, 9}, .groups = 32});  // 3 channels per group, odd H * W
}

TEST_CASE("group_norm with no elements", "[gpu]") {
  // Empty outputs and grad_x; grad_gamma and grad_beta are sums over nothing, 0 on both
  // devices (the CUDA gradients start as NaN here, like every allocation in a parity case).
  check_group_norm({.input = {0, 32, 4, 4}});
  check_group_norm({.input = {2, 32, 0, 5}, .relu = true});
  check_group_norm({.input = {0, 16, 3, 3}, .groups = 4, .dtype = kBFloat16});
}

TEST_CASE("group_norm groups too large for shared memory (streamed, Welford)", "[gpu]") {
  // M = 16 * 128 * 128 floats = 1 MiB per group: neither pass fits on chip.
  const GroupNormCase streamed{.input = {1, 32, 128, 128}, .groups = 2};
  REQUIRE_FALSE(kernels::cuda::group_norm_group_fits_on_chip<float>(
      {.batch = 1, .channels = 32, .spatial = 128 * 128, .groups = 2}, false));
  check_group_norm(streamed);
  check_group_norm({.input = {1, 32, 128, 128}, .groups = 2, .relu = true, .offset = 1e4});
  // M = 40000 floats (160 KB): the forward pass fits on chip, the backward's x and dy do not.
  const kernels::GroupNormShape half{.batch = 2, .channels = 16, .spatial = 50 * 50, .groups = 1};
  INFO("forward on chip: " << kernels::cuda::group_norm_group_fits_on_chip<float>(half, false)
                           << ", backward on chip: " << kernels::cuda::group_norm_group_fits_on_chip<float>(half, true));
  REQUIRE_FALSE(kernels::cuda::group_norm_group_fits_on_chip<float>(half, true));
  check_group_norm({.input = {2, 16, 50, 50}, .groups = 1});
}

TEST_CASE("group_norm inputs offset by 1e4", "[gpu]") {
  check_group_norm({.input = {2, 64, 14, 14}, .offset = 1e4});
  check_group_norm({.input = {2, 64, 14, 14}, .relu = true, .offset = 1e4});
  check_group_norm({.input = {2, 64, 14, 14}, .dtype = kFloat64, .offset = 1e4});
}

TEST_CASE("group_norm bfloat16", "[gpu]") {
  check_group_norm({.input = {2, 64, 28, 28}, .dtype = kBFloat16});
  check_group_norm({.input = {2, 256, 7, 7}, .dtype = kBFloat16, .relu = true});
  check_group_norm({.input = {3, 6, 5, 5}, .groups = 3, .dtype = kBFloat16});  // no packs
  check_group_norm({.input = {1, 32, 1, 1}, .dtype = kBFloat16});
}

TEST_CASE("group_norm float64", "[gpu]") {
  check_group_norm({.input = {2, 64, 14, 14}, .dtype = kFloat64});
  check_group_norm({.input = {3, 6, 5, 5}, .groups = 3, .dtype = kFloat64, .relu = true});
}

// ---- weight_standardization ------------------------------------------------------------------

TEST_CASE("weight_standardization single weights", "[gpu]") {
  check_weight_standardization("ws [64, 32, 3, 3]", {{64, 32, 3, 3}}, kFloat32, 1e-10);
  check_weight_standardization("ws [16, 3, 7, 7] (fan-in 147: no packs)", {{16, 3, 7, 7}}, kFloat32, 1e-10);
  check_weight_standardization("ws [8, 2000] (long rows)", {{8, 2000}}, kFloat32, 1e-8);
  check_weight_standardization("ws [1, 1, 1, 1]", {{1, 1, 1, 1}}, kFloat32, 1e-10);
  check_weight_standardization("ws [32, 16, 3, 3] misaligned", {{32, 16, 3, 3}}, kFloat32, 1e-10, 0.0, true);
  check_weight_standardization("ws [32, 16, 3, 3] offset 1e4", {{32, 16, 3, 3}}, kFloat32, 1e-10, 1e4);
  check_weight_standardization("ws [32, 16, 3, 3] bfloat16", {{32, 16, 3, 3}}, kBFloat16, 1e-10);
  check_weight_standardization("ws [32, 16, 3, 3] float64", {{32, 16, 3, 3}}, kFloat64, 1e-10);
}

TEST_CASE("weight_standardization of every BiT-R50x1 convolution in one call", "[gpu]") {
  const std::vector<Shape> shapes = bit_r50_weight_shapes(4);
  REQUIRE(shapes.size() == 53);
  check_weight_standardization("ws BiT-R50x1/4 (53 weights) float32", shapes, kFloat32, 1e-10);
  check_weight_standardization("ws BiT-R50x1/8 (53 weights) bfloat16", bit_r50_weight_shapes(8), kBFloat16, 1e-10);
  check_weight_standardization("ws BiT-R50x1/8 (53 weights) misaligned", bit_r50_weight_shapes(8), kFloat32, 1e-8, 0.0,
                               true);
}

TEST_CASE("weight_standardization of more weights than one launch takes", "[gpu]") {
  // 70 weights: the CUDA twin splits them into launches of 64.
  std::vector<Shape> shapes;
  for (int64_t i = 0; i < 70; ++i) shapes.push_back({1 + i % 9, 1 + i % 5, 3, 3});
  check_weight_standardization("ws 70 small weights", shapes, kFloat32, 1e-10);
}

// ---- the modules and bad input on the GPU -----------------------------------------------------

TEST_CASE("StdConv2d and GroupNorm modules on CUDA", "[gpu]") {
  // A pre-activation unit, GN -> ReLU -> StdConv2d, the way BiT stacks them.
  auto norm = std::make_shared<nn::GroupNorm>(8, 16, nn::GroupNormConfig{.relu = true});
  auto conv = std::make_shared<nn::StdConv2d>(16, 8, 3, nn::StdConv2dConfig{.padding = {1, 1}});
  check_parity({.name = "GroupNorm(relu) -> StdConv2d",
                .make_inputs = [](Generator& g) -> Inputs {
                  const Tensor x = random_normal({2, 16, 6, 6}, g), weight = random_normal({8, 16, 3, 3}, g);
                  const Tensor gamma = random_uniform({16}, 0.5, 1.5, g), beta = random_normal({16}, g);
                  const Tensor x_away =
                      away_from_group_norm_relu_boundary(x.flatten(), 0, x.shape(), 8, gamma, beta, kFloat32)
                          .view(x.shape());
                  return {parity_leaf(x_away), parity_leaf(weight), parity_leaf(gamma), parity_leaf(beta)};
                },
                .function = [](const Inputs& in) {
                  const Tensor h = group_norm(in[0], 8, in[2], in[3], 1e-5, true);
                  return conv2d(h, weight_standardization(in[1]), Tensor(), {.padding = {1, 1}});
                },
                .tolerance = 1e-9});
  // The modules themselves move to the GPU and run there.
  nn::Sequential model{norm, conv};
  model.to(Device::cuda());
  Generator g(3);
  const Tensor x = random_normal({2, 16, 6, 6}, g, kFloat32).to(Device::cuda());
  const Tensor y = model(x);
  REQUIRE(y.device().is_cuda());
  sum(y).backward();
  REQUIRE(conv->weight.grad().device().is_cuda());
  REQUIRE(norm->weight.grad().defined());
}

TEST_CASE("group_norm and weight_standardization reject mixed devices", "[gpu]") {
  const Tensor x = ones({2, 4, 3, 3}, TensorOptions(kFloat32, Device::cuda()));
  REQUIRE_THROWS_WITH(group_norm(x, 2, ones({4})), Contains("group_norm: gamma is on cpu but x is on cuda"));
  REQUIRE_THROWS_WITH(group_norm(x, 2, Tensor(), ones({4})), Contains("group_norm: beta is on cpu"));
  REQUIRE_THROWS_WITH(weight_standardization(std::vector<Tensor>{ones({4, 3}), x}),
                      Contains("weight_standardization: all weights must share dtype and device") &&
                          Contains("weight 1 is float32"));
}
