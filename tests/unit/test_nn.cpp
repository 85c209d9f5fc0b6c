// nn modules: naming, initialisation, modes, state dicts, moving between dtypes.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <cstdio>

#include "engine/io/safetensors.h"
#include "engine/nn/init.h"
#include "engine/nn/layers.h"
#include "engine/ops.h"
#include "tests/support/test_data.h"

using namespace visrep;
using Catch::Matchers::Contains;

namespace {

std::vector<std::string> names_of(const nn::NamedTensors& named) {
  std::vector<std::string> names;
  for (const auto& [name, tensor] : named) names.push_back(name);
  return names;
}

// A two-level model: Sequential(conv, bn, relu) inside a parent with a linear head.
class TinyNet : public nn::Module {
 public:
  TinyNet() {
    body = register_module("body", std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
                                       std::make_shared<nn::Conv2d>(2, 3, 3, nn::Conv2dConfig{.padding = {1, 1}}),
                                       std::make_shared<nn::BatchNorm2d>(3), std::make_shared<nn::ReLU>(),
                                       std::make_shared<nn::GlobalAvgPool2d>()}));
    head = register_module("head", std::make_shared<nn::Linear>(3, 4));
  }
  Tensor forward(const Tensor& x) override { return head->forward(body->forward(x)); }
  std::string type_name() const override { return "TinyNet"; }

  std::shared_ptr<nn::Sequential> body;
  std::shared_ptr<nn::Linear> head;
};

}  // namespace

TEST_CASE("module parameter and buffer names", "[unit]") {
  TinyNet net;
  REQUIRE(names_of(net.named_parameters()) ==
          std::vector<std::string>{"body.0.weight", "body.0.bias", "body.1.weight", "body.1.bias", "head.weight",
                                   "head.bias"});
  REQUIRE(names_of(net.named_buffers()) ==
          std::vector<std::string>{"body.1.running_mean", "body.1.running_var", "body.1.num_batches_tracked"});
  // 3*2*3*3 + 3 (conv) + 3 + 3 (bn) + 4*3 + 4 (linear)
  REQUIRE(net.parameter_count() == 54 + 3 + 6 + 12 + 4);
  for (const Tensor& parameter : net.parameters()) REQUIRE(parameter.requires_grad());
  const std::string tree = net.to_string();
  REQUIRE_THAT(tree, Contains("(body): Sequential") && Contains("(0): Conv2d(2, 3, kernel=(3, 3)") &&
                         Contains("(head): Linear(in_features=3, out_features=4, bias=true)"));
}

TEST_CASE("linear forward matches a direct loop", "[unit]") {
  Generator generator = testing::generator_for("linear forward");
  nn::Linear layer(5, 3);
  Tensor x = testing::random_normal({4, 5}, generator, kFloat32);
  const std::vector<float> y = layer(x).to_vector<float>();
  const std::vector<float> xs = x.to_vector<float>(), w = layer.weight.to_vector<float>(), b = layer.bias.to_vector<float>();
  for (int n = 0; n < 4; ++n) {
    for (int o = 0; o < 3; ++o) {
      double expected = b[o];
      for (int i = 0; i < 5; ++i) expected += static_cast<double>(xs[n * 5 + i]) * w[o * 5 + i];
      REQUIRE(y[n * 3 + o] == Approx(expected).margin(1e-5));
    }
  }
}

TEST_CASE("linear and conv2d start as PyTorch does", "[unit]") {
  // weight and bias uniform in +-1/sqrt(fan_in): bounded, and (being many draws) spread across it.
  manual_seed(3);
  nn::Conv2d conv(16, 32, 3);  // fan_in = 16 * 9 = 144
  const double bound = 1.0 / 12.0;
  const Tensor w = conv.weight;
  REQUIRE(max(abs(w)).item() <= bound);
  REQUIRE(max(abs(w)).item() > 0.95 * bound);
  // The mean of 4608 draws has a standard deviation of bound * 0.0085: 0.05 * bound is ~6 of them.
  REQUIRE(std::abs(mean(w).item()) < 0.05 * bound);
  // Variance of U(-b, b) is b^2 / 3.
  REQUIRE(var(w).item() == Approx(bound * bound / 3).epsilon(0.05));
  REQUIRE(max(abs(conv.bias)).item() <= bound);

  nn::Linear linear(400, 10);  // bound 1/20
  REQUIRE(max(abs(linear.weight)).item() <= 0.05);
  REQUIRE(max(abs(linear.weight)).item() > 0.049);
  nn::Linear no_bias(4, 2, false);
  REQUIRE_FALSE(no_bias.bias.defined());
  REQUIRE(no_bias.named_parameters().size() == 1);
}

TEST_CASE("initialisers", "[unit]") {
  Tensor conv_weight = empty({64, 32, 3, 3});
  REQUIRE(nn::init::fan_in(conv_weight) == 288);
  REQUIRE(nn::init::fan_out(conv_weight) == 576);
  REQUIRE(nn::init::gain(nn::init::Nonlinearity::ReLU) == Approx(std::sqrt(2.0)));
  REQUIRE(nn::init::gain(nn::init::Nonlinearity::LeakyReLU, std::sqrt(5.0)) == Approx(std::sqrt(1.0 / 3.0)));

  Generator generator(11);
  nn::init::kaiming_normal_(conv_weight, nn::init::FanMode::FanOut, nn::init::Nonlinearity::ReLU, 0.0, generator);
  // std = sqrt(2 / 576); 18432 draws give a standard deviation within ~1.5% of it.
  REQUIRE(std::sqrt(var(conv_weight).item()) == Approx(std::sqrt(2.0 / 576.0)).epsilon(0.03));
  nn::init::kaiming_uniform_(conv_weight, nn::init::FanMode::FanIn, nn::init::Nonlinearity::ReLU, 0.0, generator);
  const double bound = std::sqrt(2.0) * std::sqrt(3.0 / 288.0);
  REQUIRE(max(abs(conv_weight)).item() <= bound);
  REQUIRE(max(abs(conv_weight)).item() > 0.98 * bound);
  nn::init::constant_(conv_weight, 0.25);
  REQUIRE(min(conv_weight).item() == 0.25);
  REQUIRE(max(conv_weight).item() == 0.25);
  Tensor vector = empty({3});
  REQUIRE_THROWS_WITH(nn::init::fan_in(vector), Contains("fan_in") && Contains("[3]"));
}

TEST_CASE("batchnorm train and eval modes", "[unit]") {
  Generator generator = testing::generator_for("batchnorm modes");
  nn::BatchNorm2d bn(3, {.momentum = 0.25});
  Tensor x = add(mul(testing::random_normal({4, 3, 2, 2}, generator, kFloat32), 2.0), 1.0);

  bn.train();
  Tensor y = bn(x);
  // Training normalises with the batch's own statistics: each channel of y has mean 0.
  REQUIRE(max(abs(mean(y, {0, 2, 3}))).item() < 1e-5);
  REQUIRE(bn.num_batches_tracked.item<int64_t>() == 1);
  // running = 0.75 * initial + 0.25 * batch (unbiased variance, 16 values per channel).
  const Tensor batch_mean = mean(x, {0, 2, 3});
  const Tensor batch_var = var(x.permute({1, 0, 2, 3}).reshape({3, -1}), {1}, 1);
  REQUIRE(testing::max_abs_difference(bn.running_mean, mul(batch_mean, 0.25)) < 1e-6);
  REQUIRE(testing::max_abs_difference(bn.running_var, add(mul(batch_var, 0.25), 0.75)) < 1e-5);

  bn.eval();
  REQUIRE_FALSE(bn.is_training());
  Tensor z = bn(x);
  REQUIRE(bn.num_batches_tracked.item<int64_t>() == 1);  // evaluation does not count
  // Evaluation: (x - running_mean) / sqrt(running_var + eps), gamma = 1, beta = 0.
  Tensor expected = div(sub(x, bn.running_mean.reshape({1, 3, 1, 1})),
                        sqrt(add(bn.running_var.reshape({1, 3, 1, 1}), 1e-5)));
  REQUIRE(testing::max_abs_difference(z, expected) < 1e-5);
  REQUIRE_THROWS_WITH(bn(ones({4, 5, 2, 2})), Contains("BatchNorm2d(3)") && Contains("[4, 5, 2, 2]"));
}

TEST_CASE("train and eval reach every submodule", "[unit]") {
  TinyNet net;
  net.eval();
  REQUIRE_FALSE(net.body->is_training());
  REQUIRE_FALSE((*net.body)[1]->is_training());
  net.train();
  REQUIRE((*net.body)[1]->is_training());
}

TEST_CASE("state dict round trip through safetensors", "[unit]") {
  Generator generator = testing::generator_for("state dict round trip");
  TinyNet trained;
  // Give the batch norm non-default running statistics first.
  trained(testing::random_normal({4, 2, 5, 5}, generator, kFloat32));
  trained.eval();
  const Tensor x = testing::random_normal({3, 2, 5, 5}, generator, kFloat32);
  const Tensor expected = trained(x);

  const std::string path = "/tmp/visrep-test-state-dict-" + std::to_string(::getpid()) + ".safetensors";
  io::save_safetensors(path, trained.state_dict());
  TinyNet restored;  // different random initialisation
  restored.eval();
  REQUIRE(testing::max_abs_difference(restored(x), expected) > 1e-3);
  restored.load_state_dict(io::load_safetensors(path).tensors);
  REQUIRE(testing::max_abs_difference(restored(x), expected) == 0.0);
  REQUIRE(restored.state_dict().at("body.1.num_batches_tracked").item<int64_t>() == 1);
  std::remove(path.c_str());
}

TEST_CASE("load_state_dict names what does not fit", "[unit]") {
  TinyNet net;
  std::map<std::string, Tensor> state = net.state_dict();
  auto missing = state;
  missing.erase("head.bias");
  REQUIRE_THROWS_WITH(net.load_state_dict(missing), Contains("missing") && Contains("head.bias"));
  REQUIRE_NOTHROW(net.load_state_dict(missing, /*strict=*/false));

  auto extra = state;
  extra["head.scale"] = ones({4});
  REQUIRE_THROWS_WITH(net.load_state_dict(extra), Contains("unexpected") && Contains("head.scale"));

  auto wrong_shape = state;
  wrong_shape["head.weight"] = ones({4, 5});
  REQUIRE_THROWS_WITH(net.load_state_dict(wrong_shape, false),
                      Contains("head.weight") && Contains("[4, 5]") && Contains("[4, 3]"));
  // Values of another dtype are refused, not converted: an int32 tensor where the module
  // keeps float32 means the file is not what it claims. Nothing is copied.
  const std::vector<float> bias_before = net.head->bias.to_vector<float>();
  auto as_int = state;
  as_int["head.bias"] = full({4}, 3.0, kInt32);
  as_int["head.weight"] = full({4, 3}, 0.5);
  REQUIRE_THROWS_WITH(net.load_state_dict(as_int),
                      Contains("'head.bias'") && Contains("int32") && Contains("float32"));
  auto as_double = state;
  as_double["head.bias"] = full({4}, 0.5, kFloat64);
  REQUIRE_THROWS_WITH(net.load_state_dict(as_double, /*strict=*/false),
                      Contains("'head.bias'") && Contains("float64") && Contains("float32"));
  REQUIRE(net.head->bias.to_vector<float>() == bias_before);
  REQUIRE(max(abs(sub(net.head->weight, full({4, 3}, 0.5)))).item() > 0.0);
  // Converting first is how a caller loads other dtypes on purpose.
  as_double["head.bias"] = as_double["head.bias"].to(kFloat32);
  net.load_state_dict(as_double);
  REQUIRE(net.head->bias.to_vector<float>() == std::vector<float>(4, 0.5f));
}

TEST_CASE("module to dtype updates every handle", "[unit]") {
  Generator generator = testing::generator_for("module to dtype");
  TinyNet net;
  const std::vector<Tensor> held = net.parameters();  // as an optimizer would hold them
  net.to(kFloat64);
  REQUIRE(net.head->weight.dtype() == kFloat64);
  REQUIRE(held.front().dtype() == kFloat64);
  REQUIRE(net.body->named_buffers()[0].second.dtype() == kFloat64);
  REQUIRE(net.state_dict().at("body.1.num_batches_tracked").dtype() == kInt64);  // integer buffers stay
  REQUIRE(net(testing::random_normal({2, 2, 4, 4}, generator, kFloat64)).dtype() == kFloat64);
  REQUIRE(held.front().requires_grad());
  REQUIRE_THROWS_WITH(net.to(kInt32), Contains("floating"));
}

TEST_CASE("module to a missing gpu fails clearly", "[unit]") {
  if (cuda_available()) SUCCEED("a GPU is present; the missing-GPU path cannot be exercised here");
  else {
    TinyNet net;
    REQUIRE_THROWS_WITH(net.to(Device::cuda()), Contains("cuda:0"));
    REQUIRE(net.head->weight.device().is_cpu());  // nothing was half-moved
  }
}

TEST_CASE("zero_grad drops gradients", "[unit]") {
  Generator generator = testing::generator_for("zero_grad");
  TinyNet net;
  sum(net(testing::random_normal({2, 2, 4, 4}, generator, kFloat32))).backward();
  for (const Tensor& parameter : net.parameters()) REQUIRE(parameter.grad().defined());
  net.zero_grad();
  for (const Tensor& parameter : net.parameters()) REQUIRE_FALSE(parameter.grad().defined());
}

TEST_CASE("layer constructors reject bad settings", "[unit]") {
  REQUIRE_THROWS_WITH(nn::Linear(0, 3), Contains("Linear") && Contains("0"));
  REQUIRE_THROWS_WITH(nn::Conv2d(6, 4, 3, {.groups = 4}), Contains("groups = 4") && Contains("in_channels = 6"));
  REQUIRE_THROWS_WITH(nn::BatchNorm2d(4, {.eps = 0.0}), Contains("eps"));
  nn::Sequential empty_chain;
  Tensor x = ones({2, 3});
  REQUIRE(testing::max_abs_difference(empty_chain(x), x) == 0.0);
}
