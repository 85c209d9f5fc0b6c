// weight_standardization (engine/ops/weight_standardization.h) on the CPU against a float64
// reference written here as plain loops (Qiao et al. 2019 eq. 5; the gradient by the chain
// rule through the mean and 1 / sqrt(var + eps)), one weight and a list, large offsets, bad
// input, and the module nn::StdConv2d with standardized_weights. kernels/cpu/
// weight_standardization.h lists the family's files (the CUDA twin is compared with these
// CPU ops by tests/parity/test_parity_weight_standardization.cpp).
// Where to look for the rest of the family: kernels/cpu/weight_standardization.h.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "engine/nn/layers.h"
#include "engine/ops.h"
#include "tests/support/reference.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;
using Catch::Matchers::Contains;

namespace {

// w_hat per row and, for L = sum(w_hat * direction), dL/dw.
struct StandardizationReference {
  std::vector<double> w_hat, dw;
};

StandardizationReference standardization_reference(const Tensor& w_tensor, double eps, const Tensor& direction) {
  const std::vector<double> w = w_tensor.to_vector<double>(), r = direction.to_vector<double>();
  const int64_t rows = w_tensor.size(0), fan_in = w_tensor.numel() / rows;
  StandardizationReference out{std::vector<double>(w.size()), std::vector<double>(w.size())};
  for (int64_t row = 0; row < rows; ++row) {
    const size_t first = static_cast<size_t>(row * fan_in), last = first + static_cast<size_t>(fan_in);
    double mean = 0.0, variance = 0.0, mean_r = 0.0, mean_r_what = 0.0;
    for (size_t i = first; i < last; ++i) mean += w[i] / static_cast<double>(fan_in);
    for (size_t i = first; i < last; ++i) variance += (w[i] - mean) * (w[i] - mean) / static_cast<double>(fan_in);
    const double invstd = 1.0 / std::sqrt(variance + eps);
    for (size_t i = first; i < last; ++i) {
      out.w_hat[i] = (w[i] - mean) * invstd;
      mean_r += r[i] / static_cast<double>(fan_in);
      mean_r_what += r[i] * out.w_hat[i] / static_cast<double>(fan_in);
    }
    for (size_t i = first; i < last; ++i) out.dw[i] = invstd * (r[i] - mean_r - out.w_hat[i] * mean_r_what);
  }
  return out;
}

}  // namespace

TEST_CASE("weight_standardization matches the float64 reference", "[unit]") {
  Generator gen = generator_for("weight_standardization matches the float64 reference");
  for (DType dtype : {kFloat32, kFloat64, kBFloat16}) {
    for (const Shape& shape : {Shape{8, 3, 3, 3}, Shape{5, 7}, Shape{4, 16, 1, 1}}) {
      for (double eps : {1e-10, 1e-2}) {
        INFO(dtype_name(dtype) << " " << shape_string(shape) << " eps " << eps);
        Tensor w = random_normal(shape, gen, dtype).set_requires_grad();
        const Tensor direction = random_normal(shape, gen, dtype);
        const Tensor w_hat = weight_standardization(w, eps);
        REQUIRE(w_hat.shape() == shape);
        REQUIRE(w_hat.dtype() == dtype);
        w_hat.backward(direction);
        const StandardizationReference expected = standardization_reference(w, eps, direction);
        CHECK(error_of(w_hat, expected.w_hat) <= tolerance_for(dtype));
        CHECK(error_of(w.grad(), expected.dw) <= tolerance_for(dtype));
      }
    }
  }
}

TEST_CASE("weight_standardization of weights offset by 1e4", "[unit]") {
  Generator gen = generator_for("weight_standardization of weights offset by 1e4");
  Tensor w = add(random_normal({6, 4, 3, 3}, gen), 1e4).to(kFloat32).set_requires_grad();
  const Tensor direction = random_normal({6, 4, 3, 3}, gen, kFloat32);
  const Tensor w_hat = weight_standardization(w);
  w_hat.backward(direction);
  const StandardizationReference expected = standardization_reference(w, 1e-10, direction);
  CHECK(error_of(w_hat, expected.w_hat) <= 1e-5);
  // The mean is saved relative to each row's first value (see the group_norm case).
  CHECK(error_of(w.grad(), expected.dw) <= 1e-5);
}

TEST_CASE("weight_standardization over a list: one call, same values and gradients", "[unit]") {
  Generator gen = generator_for("weight_standardization over a list");
  const std::vector<Shape> shapes = {{8, 3, 7, 7}, {4, 8, 1, 1}, {4, 4, 3, 3}, {16, 4, 1, 1}, {5, 6}};
  std::vector<Tensor> weights, directions;
  for (const Shape& shape : shapes) {
    weights.push_back(random_normal(shape, gen, kFloat32).set_requires_grad());
    directions.push_back(random_normal(shape, gen, kFloat32));
  }
  const std::vector<Tensor> outputs = weight_standardization(weights, 1e-8);
  REQUIRE(outputs.size() == shapes.size());
  // Output 3 is left unused: its weight gets no gradient, the others theirs.
  Tensor loss = zeros({});
  for (size_t i = 0; i < shapes.size(); ++i) {
    REQUIRE(outputs[i].shape() == shapes[i]);
    if (i != 3) loss = add(loss, sum(mul(outputs[i], directions[i])));
  }
  loss.backward();
  for (size_t i = 0; i < shapes.size(); ++i) {
    INFO("weight " << i << " " << shape_string(shapes[i]));
    const StandardizationReference expected = standardization_reference(weights[i], 1e-8, directions[i]);
    CHECK(error_of(outputs[i], expected.w_hat) <= 1e-5);
    if (i == 3) {
      CHECK_FALSE(weights[i].grad().defined());
    } else {
      CHECK(error_of(weights[i].grad(), expected.dw) <= 1e-5);
    }
  }
  // A second backward pass over the same graph accumulates the same gradients again.
  const Tensor first_grad = weights[0].grad().clone();
  loss.backward();
  CHECK(max_abs_difference(weights[0].grad(), mul(first_grad, 2.0)) <= 1e-5);
  // An empty list is an empty result.
  CHECK(weight_standardization(std::vector<Tensor>{}).empty());
}

TEST_CASE("weight_standardization rejects bad input with a clear error", "[unit]") {
  REQUIRE_THROWS_WITH(weight_standardization(ones({4, 3}), 0.0),
                      Contains("weight_standardization: eps must be positive") && Contains("got 0"));
  REQUIRE_THROWS_WITH(weight_standardization(ones({4, 3}), -1.0), Contains("weight_standardization: eps"));
  REQUIRE_THROWS_WITH(weight_standardization(ones({4})), Contains("weight_standardization") && Contains("[4]"));
  REQUIRE_THROWS_WITH(weight_standardization(ones({4, 3}, kInt32)),
                      Contains("weight_standardization") && Contains("int32"));
  REQUIRE_THROWS_WITH(weight_standardization(std::vector<Tensor>{ones({4, 3}), ones({2, 3}, kFloat64)}),
                      Contains("weight_standardization: all weights must share dtype and device") &&
                          Contains("weight 1 is float64"));
  REQUIRE_THROWS_WITH(weight_standardization(std::vector<Tensor>{ones({4, 3}), Tensor()}),
                      Contains("weight_standardization: weight 1") && Contains("undefined"));
}

// ---- nn::StdConv2d ---------------------------------------------------------------------------------

TEST_CASE("nn StdConv2d equals conv2d of the standardised weight", "[unit]") {
  Generator gen = generator_for("nn StdConv2d");
  nn::StdConv2d conv(3, 6, 3, {.stride = {2, 2}, .padding = {1, 1}, .bias = true, .eps = 1e-8});
  REQUIRE(conv.named_parameters().size() == 2);
  REQUIRE(conv.named_parameters()[0].first == "weight");
  REQUIRE(conv.named_parameters()[1].first == "bias");
  REQUIRE(conv.weight.shape() == Shape{6, 3, 3, 3});
  REQUIRE_THAT(conv.describe(), Contains("StdConv2d(3, 6, kernel=(3, 3), stride=(2, 2)") && Contains("eps=1e-08)"));

  Tensor x = random_normal({2, 3, 7, 7}, gen, kFloat32).set_requires_grad();
  const Tensor y = conv(x);
  // The reference standardises the weight in float64 loops, then convolves.
  const StandardizationReference w_hat = standardization_reference(conv.weight, 1e-8, zeros({6, 3, 3, 3}));
  const Tensor expected = conv2d(x.detach(), from_vector(w_hat.w_hat, {6, 3, 3, 3}).to(kFloat32),
                                 conv.bias.detach(), conv.options());
  REQUIRE(y.shape() == Shape{2, 6, 4, 4});
  CHECK(max_abs_difference(y, expected) <= 1e-5);
  sum(mul(y, random_normal(y.shape(), gen, kFloat32))).backward();
  REQUIRE(x.grad().shape() == x.shape());
  REQUIRE(conv.weight.grad().shape() == conv.weight.shape());
  REQUIRE(conv.bias.grad().shape() == Shape{6});
  // w_hat is invariant to adding a constant to a row of w, so each row of dL/dw sums to 0.
  const double scale = sum(abs(conv.weight.grad())).item();
  CHECK(max_abs_difference(sum(conv.weight.grad(), {1, 2, 3}), zeros({6})) <= 1e-6 * scale);

  nn::StdConv2d plain(4, 8, 1);  // BiT's default: no bias, eps 1e-10
  REQUIRE(plain.named_parameters().size() == 1);
  REQUIRE(plain.eps == 1e-10);
  REQUIRE_THROWS_WITH(nn::StdConv2d(4, 8, 1, {.eps = 0.0}), Contains("StdConv2d: eps"));
}

TEST_CASE("nn standardized_weights: one call for several StdConv2d layers", "[unit]") {
  Generator gen = generator_for("nn standardized_weights");
  auto first = std::make_shared<nn::StdConv2d>(3, 4, 3, nn::StdConv2dConfig{.padding = {1, 1}});
  auto second = std::make_shared<nn::StdConv2d>(4, 5, 1);
  nn::Sequential model{first, second};
  REQUIRE(model.named_parameters().size() == 2);
  REQUIRE(model.named_parameters()[0].first == "0.weight");
  REQUIRE(model.named_parameters()[1].first == "1.weight");
  REQUIRE_THAT(model.to_string(), Contains("StdConv2d(4, 5, kernel=(1, 1)"));

  const Tensor x = random_normal({2, 3, 5, 5}, gen, kFloat32);
  const std::vector<Tensor> weights = nn::standardized_weights({first.get(), second.get()});
  const Tensor together = second->forward(first->forward(x, weights[0]), weights[1]);
  sum(mul(together, together)).backward();
  const Tensor grad_first = first->weight.grad().clone(), grad_second = second->weight.grad().clone();
  model.zero_grad();
  const Tensor separately = model(x);
  sum(mul(separately, separately)).backward();
  CHECK(max_abs_difference(together, separately) == 0.0);
  CHECK(max_abs_difference(grad_first, first->weight.grad()) <= 1e-6);
  CHECK(max_abs_difference(grad_second, second->weight.grad()) <= 1e-6);
}
