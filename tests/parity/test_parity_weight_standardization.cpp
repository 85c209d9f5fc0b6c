// Parity cases of weight_standardization (kernels/cuda/weight_standardization.cu;
// kernels/cpu/weight_standardization.h lists the family's files): single weights (no packs,
// long rows, one value, misaligned pointers, inputs offset by 1e4, bfloat16, float64) and
// the multi-tensor call on every convolution of a (narrowed) BiT-R50x1 and on more weights
// than one launch takes. The module nn::StdConv2d runs on CUDA in test_parity_group_norm.cpp's
// pre-activation unit. Tolerances: tests/parity/parity.h's normalization_tolerance.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "tests/parity/parity.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;
using Catch::Matchers::Contains;

namespace {

using Inputs = ParityInputs;

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
                .tolerance = normalization_tolerance(dtype)});
}

}  // namespace

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

TEST_CASE("weight_standardization rejects mixed devices", "[gpu]") {
  const Tensor x = ones({2, 4, 3, 3}, TensorOptions(kFloat32, Device::cuda()));
  REQUIRE_THROWS_WITH(weight_standardization(std::vector<Tensor>{ones({4, 3}), x}),
                      Contains("weight_standardization: all weights must share dtype and device") &&
                          Contains("weight 1 is float32"));
}
