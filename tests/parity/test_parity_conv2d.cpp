// Parity cases of conv2d (kernels/cuda/conv2d.cu on cuDNN): forward, and the input, weight
// and bias gradients.
//
// Tolerances: float32 with TF32 off (CUDNN_FMA_MATH) computes fp32 products on both
// devices, but cuDNN's algorithms (implicit GEMM with split reductions, FFT, Winograd)
// add and transform in other orders than im2col + OpenBLAS; the weight gradient sums
// N * H_out * W_out products per element. NMSE lands around 1e-13..1e-11; 1e-9 leaves room
// for the transform-based algorithms and still fails on one wrong output element of these
// sizes (>= 1e-4). float64 gets 1e-22. TF32 (10-bit mantissa on the inputs) gets 1e-5.
// Where to look for the rest of the family: kernels/cpu/conv2d.h.
#include <catch2/catch.hpp>

#include <string>

#include "engine/cuda.h"
#include "tests/parity/parity.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

namespace {

using Inputs = ParityInputs;

constexpr double kFloatTolerance = 1e-9;    // fp32, cuDNN's algorithms vs im2col + GEMM (see the top)
constexpr double kDoubleTolerance = 1e-22;  // fp64, the same differences in order

struct ConvCase {
  Shape input;   // (N, C_in, H, W)
  Shape weight;  // (C_out, C_in / groups, kH, kW)
  bool bias = true;
  Conv2dOptions options;
  double tolerance = kFloatTolerance;
  DType dtype = kFloat32;
  bool tf32 = false;
};

// conv2d with every input a leaf, so all three gradients are compared.
void check_conv(const ConvCase& c) {
  const ScopedTf32 tf32(c.tf32);
  check_parity({.make_inputs = [c](Generator& g) -> Inputs {
                  Inputs inputs = {parity_leaf(random_normal(c.input, g), c.dtype), parity_leaf(random_normal(c.weight, g), c.dtype)};
                  inputs.push_back(c.bias ? parity_leaf(random_normal({c.weight[0]}, g), c.dtype) : Tensor());
                  return inputs;
                },
                .function = [c](const Inputs& in) { return conv2d(in[0], in[1], in[2], c.options); },
                .tolerance = c.tolerance});
}

}  // namespace

TEST_CASE("conv2d 3x3 padding 1", "[gpu]") {
  check_conv({.input = {2, 3, 9, 7}, .weight = {5, 3, 3, 3}, .options = {.padding = {1, 1}}});
}

TEST_CASE("conv2d 3x3 stride 2", "[gpu]") {
  check_conv({.input = {3, 4, 11, 10}, .weight = {6, 4, 3, 3}, .options = {.stride = {2, 2}, .padding = {1, 1}}});
}

TEST_CASE("conv2d dilation 2", "[gpu]") {
  check_conv(
      {.input = {2, 3, 12, 11}, .weight = {4, 3, 3, 3}, .options = {.padding = {2, 2}, .dilation = {2, 2}}});
}

TEST_CASE("conv2d groups 2", "[gpu]") {
  check_conv({.input = {2, 4, 8, 9}, .weight = {6, 2, 3, 3}, .options = {.padding = {1, 1}, .groups = 2}});
}

TEST_CASE("conv2d depthwise", "[gpu]") {
  check_conv({.input = {2, 6, 9, 9}, .weight = {6, 1, 3, 3}, .options = {.padding = {1, 1}, .groups = 6}});
}

TEST_CASE("conv2d depthwise with a channel multiplier of 2", "[gpu]") {
  check_conv({.input = {2, 3, 8, 7},
              .weight = {6, 1, 3, 3},
              .options = {.stride = {2, 2}, .padding = {1, 1}, .groups = 3}});
}

TEST_CASE("conv2d 1x1", "[gpu]") { check_conv({.input = {4, 8, 5, 5}, .weight = {16, 8, 1, 1}, .options = {}}); }

TEST_CASE("conv2d 1x1 stride 2 without bias (a ResNet shortcut)", "[gpu]") {
  check_conv({.input = {2, 8, 8, 8}, .weight = {16, 8, 1, 1}, .bias = false, .options = {.stride = {2, 2}}});
}

TEST_CASE("conv2d without bias", "[gpu]") {
  check_conv({.input = {2, 3, 8, 8}, .weight = {4, 3, 3, 3}, .bias = false, .options = {.padding = {1, 1}}});
}

TEST_CASE("conv2d batch 1", "[gpu]") { check_conv({.input = {1, 5, 7, 7}, .weight = {3, 5, 3, 3}, .options = {}}); }

TEST_CASE("conv2d odd sizes, rectangular kernel, uneven stride, padding and dilation", "[gpu]") {
  check_conv({.input = {3, 3, 13, 17},
              .weight = {7, 3, 5, 3},
              .options = {.stride = {2, 3}, .padding = {2, 1}, .dilation = {1, 2}}});
}

TEST_CASE("conv2d 7x7 stride 2 stem", "[gpu]") {
  check_conv({.input = {2, 3, 32, 32}, .weight = {8, 3, 7, 7}, .bias = false,
              .options = {.stride = {2, 2}, .padding = {3, 3}}});
}

TEST_CASE("conv2d wider layer", "[gpu]") {
  check_conv({.input = {8, 32, 16, 16}, .weight = {64, 32, 3, 3}, .options = {.padding = {1, 1}}});
}

TEST_CASE("conv2d float64", "[gpu]") {
  check_conv({.input = {2, 3, 9, 8},
              .weight = {4, 3, 3, 3},
              .options = {.stride = {2, 1}, .padding = {1, 1}},
              .tolerance = kDoubleTolerance,
              .dtype = kFloat64});
}

TEST_CASE("conv2d with TF32 enabled", "[gpu]") {
  check_conv({.input = {4, 16, 12, 12},
              .weight = {32, 16, 3, 3},
              .options = {.padding = {1, 1}},
              .tolerance = 1e-5,  // TF32's 10-bit mantissa on the inputs (see the top)
              .tf32 = true});
}

TEST_CASE("conv2d of a non-contiguous input", "[gpu]") {
  const ScopedTf32 tf32_off(false);
  // Stored (2, 9, 7, 3), convolved as the (2, 3, 9, 7) view: the op makes it contiguous first.
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(random_normal({2, 9, 7, 3}, g)), parity_leaf(random_normal({4, 3, 3, 3}, g)),
                          parity_leaf(random_normal({4}, g))};
                },
                .function = [](const Inputs& in) {
                  return conv2d(in[0].permute({0, 3, 1, 2}), in[1], in[2], {.padding = {1, 1}});
                },
                .tolerance = kFloatTolerance});
}

TEST_CASE("conv2d of contiguous views at an odd offset (pointers cuDNN may not take)", "[gpu]") {
  // x, the weight and the bias are stored one element into their buffers: contiguous views
  // whose data pointers are 4 bytes past a 16-byte boundary, handed to conv2d as they are.
  // The output is concatenated after one element, so the gradient reaching conv2d's backward
  // is such a view too. kernels/cuda/conv2d.cu copies misaligned inputs to aligned buffers.
  const Shape x_shape = {2, 8, 9, 9}, w_shape = {16, 8, 3, 3};
  for (const bool tf32 : {false, true}) {
    const ScopedTf32 scoped(tf32);
    check_parity({.name = std::string("conv2d of odd-offset views") + (tf32 ? ", TF32" : ""),
                  .make_inputs = [&](Generator& g) -> Inputs {
                    return {parity_leaf(random_normal({1 + shape_numel(x_shape)}, g)),
                            parity_leaf(random_normal({1 + shape_numel(w_shape)}, g)),
                            parity_leaf(random_normal({1 + w_shape[0]}, g)), parity_leaf(random_normal({1}, g))};
                  },
                  .function = [&](const Inputs& in) {
                    const Tensor x = in[0].narrow(0, 1, shape_numel(x_shape)).view(x_shape);
                    const Tensor w = in[1].narrow(0, 1, shape_numel(w_shape)).view(w_shape);
                    const Tensor b = in[2].narrow(0, 1, w_shape[0]);
                    return concat({in[3], conv2d(x, w, b, {.padding = {1, 1}}).flatten()});
                  },
                  .tolerance = tf32 ? 1e-5 : kFloatTolerance});
  }
}

TEST_CASE("conv2d weight gradient only (the input needs none)", "[gpu]") {
  const ScopedTf32 tf32_off(false);
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {random_normal({3, 4, 10, 10}, g).to(kFloat32), parity_leaf(random_normal({5, 4, 3, 3}, g)),
                          parity_leaf(random_normal({5}, g))};
                },
                .function = [](const Inputs& in) { return conv2d(in[0], in[1], in[2], {.padding = {1, 1}}); },
                .tolerance = kFloatTolerance});
}

TEST_CASE("conv2d input gradient only (the weight needs none)", "[gpu]") {
  const ScopedTf32 tf32_off(false);
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(random_normal({3, 4, 10, 10}, g)), random_normal({5, 4, 3, 3}, g).to(kFloat32)};
                },
                .function = [](const Inputs& in) { return conv2d(in[0], in[1], Tensor(), {.stride = {2, 2}}); },
                .tolerance = kFloatTolerance});
}
