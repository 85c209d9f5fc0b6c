// LARS against google-research/simclr lars_optimizer.py worked out by hand, the exclusion of
// biases and norm parameters, the zero-norm rule, momentum, resuming, and the SimCLR
// learning-rate scaling.
#include <catch2/catch.hpp>

#include <cmath>

#include "engine/device.h"
#include "engine/ops.h"
#include "engine/optim/lars.h"
#include "engine/optim/learning_rate_schedule.h"
#include "tests/support/test_data.h"

using namespace visrep;
using Catch::Matchers::Contains;

namespace {

Tensor parameter_from(const std::vector<double>& values, const Shape& shape = {}) {
  return from_vector(values, shape).set_requires_grad();
}

void set_gradient(const Tensor& parameter, const std::vector<double>& values) {
  parameter.set_grad(from_vector(values, parameter.shape()));
}

void require_values(const Tensor& tensor, const std::vector<double>& expected, double epsilon = 1e-12) {
  const std::vector<double> got = tensor.to_vector<double>();
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i);
    REQUIRE(got[i] == Approx(expected[i]).epsilon(epsilon).margin(1e-15));
  }
}

// lars_optimizer.py (classic momentum) in plain doubles, one parameter, for multi-step checks.
struct ReferenceLars {
  std::vector<double> w, v;
  double momentum, weight_decay, eeta;
  bool adapt;
  void step(const std::vector<double>& grad, double learning_rate) {
    std::vector<double> g = grad;
    for (size_t i = 0; i < g.size(); ++i) g[i] += weight_decay * w[i];
    double w_norm = 0, g_norm = 0;
    for (size_t i = 0; i < g.size(); ++i) w_norm += w[i] * w[i], g_norm += g[i] * g[i];
    w_norm = std::sqrt(w_norm), g_norm = std::sqrt(g_norm);
    const double ratio = adapt && w_norm > 0 && g_norm > 0 ? eeta * w_norm / g_norm : 1.0;
    for (size_t i = 0; i < g.size(); ++i) {
      v[i] = momentum * v[i] + learning_rate * ratio * g[i];
      w[i] -= v[i];
    }
  }
};

}  // namespace

TEST_CASE("lars one step matches the hand-computed update", "[unit]") {
  // A 2x2 weight (adapted and decayed) and a bias and a BN gamma (excluded from both).
  Tensor weight = parameter_from({3.0, 0.0, 0.0, 4.0}, {2, 2});
  Tensor bias = parameter_from({1.0, -2.0});
  Tensor gamma = parameter_from({0.5, 2.0});
  const nn::NamedTensors named = {{"fc.weight", weight}, {"fc.bias", bias}, {"bn.weight", gamma}};
  optim::Lars lars(optim::lars_parameter_groups(
      named, {.learning_rate = 2.6, .momentum = 0.9, .weight_decay = 0.1, .trust_coefficient = 0.001}));
  REQUIRE(lars.groups().size() == 2);
  REQUIRE(lars.groups()[0].name == "weights");
  REQUIRE(lars.groups()[0].parameters.size() == 1);
  REQUIRE(lars.groups()[1].name == "biases_and_norms");
  REQUIRE(lars.groups()[1].parameters.size() == 2);
  REQUIRE(lars.groups()[1].options.weight_decay == 0.0);
  REQUIRE_FALSE(lars.groups()[1].options.layer_adaptation);

  set_gradient(weight, {0.2, 1.2, 0.0, -0.4});
  set_gradient(bias, {0.5, 0.25});
  set_gradient(gamma, {-1.0, 0.0});
  lars.step();

  // Weight: g + wd * w = [0.2 + 0.3, 1.2, 0, -0.4 + 0.4] = [0.5, 1.2, 0, 0], ||.|| = 1.3;
  // ||w|| = 5; trust ratio = 0.001 * 5 / 1.3 = 1/260; lr * ratio = 2.6 / 260 = 0.01.
  // v = 0 * 0.9 + 0.01 * [0.5, 1.2, 0, 0] = [0.005, 0.012, 0, 0]; w - v:
  require_values(weight, {2.995, -0.012, 0.0, 4.0});
  // Excluded: no decay, ratio 1, so v = lr * g and w - v = w - 2.6 g.
  require_values(bias, {1.0 - 1.3, -2.0 - 0.65});
  require_values(gamma, {0.5 + 2.6, 2.0});
  require_values(lars.state_dict(named).at("fc.weight.momentum"), {0.005, 0.012, 0.0, 0.0});
}

TEST_CASE("lars trust ratio is 1 when a norm is zero", "[unit]") {
  SECTION("zero weight") {
    Tensor w = parameter_from({0.0, 0.0, 0.0, 0.0}, {2, 2});
    optim::Lars lars({w}, {.learning_rate = 0.5, .momentum = 0.9, .weight_decay = 0.1});
    set_gradient(w, {1.0, -2.0, 0.5, 0.0});
    lars.step();
    // wd * 0 adds nothing; ||w|| = 0 -> ratio 1 -> w = -lr * g, no eeta scaling.
    require_values(w, {-0.5, 1.0, -0.25, 0.0});
  }
  SECTION("zero gradient") {
    Tensor w = parameter_from({1.0, 2.0}, {1, 2});
    optim::Lars lars({w}, {.learning_rate = 0.5, .momentum = 0.9});
    set_gradient(w, {0.0, 0.0});
    lars.step();  // ||g|| = 0: ratio 1 (no division by zero), the update is zero
    require_values(w, {1.0, 2.0});
    for (double value : w.to_vector<double>()) REQUIRE(std::isfinite(value));
  }
}

TEST_CASE("lars momentum over two steps", "[unit]") {
  Generator generator = testing::generator_for("lars momentum");
  const Tensor initial = testing::random_normal({3, 4}, generator);
  Tensor w = initial.clone().set_requires_grad();
  const optim::LarsOptions options{.learning_rate = 1.5, .momentum = 0.9, .weight_decay = 1e-2};
  optim::Lars lars({w}, options);
  ReferenceLars reference{initial.to_vector<double>(), std::vector<double>(12, 0.0), 0.9, 1e-2, 0.001, true};
  const std::vector<double> learning_rates = {1.5, 0.75};  // a schedule step in between
  for (int step = 0; step < 2; ++step) {
    const std::vector<double> grad = testing::random_normal({12}, generator).to_vector<double>();
    set_gradient(w, grad);
    lars.set_learning_rate(learning_rates[step]);
    lars.step();
    reference.step(grad, learning_rates[step]);
    INFO("step " << step);
    require_values(w, reference.w, 1e-12);
    require_values(lars.state_dict({{"w", w}}).at("w.momentum"), reference.v, 1e-12);
  }
  REQUIRE(lars.learning_rate() == 0.75);
}

TEST_CASE("lars nesterov applies the look-ahead", "[unit]") {
  Tensor w = parameter_from({1.0, -1.0}, {1, 2});
  optim::Lars lars({w}, {.learning_rate = 0.1, .momentum = 0.5, .layer_adaptation = false, .nesterov = true});
  set_gradient(w, {1.0, 2.0});
  lars.step();
  // v = 0.1 g = [0.1, 0.2]; update = 0.5 v + 0.1 g = [0.15, 0.3].
  require_values(w, {0.85, -1.3});
}

TEST_CASE("lars state dict round trip resumes exactly", "[unit]") {
  Generator generator = testing::generator_for("lars resume");
  const Tensor initial_w = testing::random_normal({4, 3}, generator);
  const Tensor initial_b = testing::random_normal({4}, generator);
  std::vector<std::vector<double>> grads_w, grads_b;
  for (int i = 0; i < 3; ++i) {
    grads_w.push_back(testing::random_normal({12}, generator).to_vector<double>());
    grads_b.push_back(testing::random_normal({4}, generator).to_vector<double>());
  }
  const optim::LarsOptions options{.learning_rate = 0.8, .weight_decay = 1e-3};
  auto make = [&](Tensor& w, Tensor& b) {
    return optim::Lars(optim::lars_parameter_groups({{"w", w}, {"b", b}}, options));
  };
  // Uninterrupted: three steps.
  Tensor w1 = initial_w.clone().set_requires_grad(), b1 = initial_b.clone().set_requires_grad();
  optim::Lars straight = make(w1, b1);
  for (int i = 0; i < 3; ++i) {
    set_gradient(w1, grads_w[i]);
    set_gradient(b1, grads_b[i]);
    straight.step();
  }
  // Interrupted after two: a new optimizer over copies of the weights, loaded with the state.
  Tensor w2 = initial_w.clone().set_requires_grad(), b2 = initial_b.clone().set_requires_grad();
  optim::Lars first = make(w2, b2);
  for (int i = 0; i < 2; ++i) {
    set_gradient(w2, grads_w[i]);
    set_gradient(b2, grads_b[i]);
    first.step();
  }
  const auto state = first.state_dict({{"w", w2}, {"b", b2}});
  REQUIRE(state.size() == 2);
  Tensor w3 = w2.detach().clone().set_requires_grad(), b3 = b2.detach().clone().set_requires_grad();
  optim::Lars resumed = make(w3, b3);
  const nn::NamedTensors resumed_names = {{"w", w3}, {"b", b3}};
  resumed.load_state_dict(state, resumed_names);
  set_gradient(w3, grads_w[2]);
  set_gradient(b3, grads_b[2]);
  resumed.step();
  REQUIRE(w3.to_vector<double>() == w1.to_vector<double>());  // bit-identical
  REQUIRE(b3.to_vector<double>() == b1.to_vector<double>());

  REQUIRE_THROWS_WITH(resumed.load_state_dict({{"group5.param0.momentum", zeros({2})}}, resumed_names),
                      Contains("unknown key 'group5.param0.momentum'"));
  REQUIRE_THROWS_WITH(resumed.load_state_dict({{"w.momentum", zeros({2})}}, resumed_names),
                      Contains("w.momentum") && Contains("shape"));
}

TEST_CASE("lars skips parameters without a gradient", "[unit]") {
  Tensor a = parameter_from({1.0, 2.0}, {1, 2});
  Tensor b = parameter_from({3.0, 4.0}, {1, 2});
  optim::Lars lars({a, b}, {.learning_rate = 1.0});
  set_gradient(a, {1.0, 0.0});
  lars.step();
  require_values(b, {3.0, 4.0});
  REQUIRE(lars.state_dict({{"a", a}, {"b", b}}).size() == 1);
  lars.zero_grad();
  REQUIRE_FALSE(a.grad().defined());
}

TEST_CASE("lars runs on cuda like on the cpu", "[unit]") {
  if (!cuda_available()) {
    SUCCEED("no GPU: the CUDA half of this check is skipped (the parity suite covers the ops)");
    return;
  }
  Generator generator = testing::generator_for("lars cuda");
  const Tensor initial = testing::random_normal({8, 5}, generator, kFloat32);
  const Tensor grad = testing::random_normal({8, 5}, generator, kFloat32);
  std::vector<std::vector<double>> results;
  for (const Device device : {Device::cpu(), Device::cuda()}) {
    Tensor w = initial.to(device).detach().set_requires_grad();
    optim::Lars lars({w}, {.learning_rate = 2.0, .weight_decay = 1e-2});
    for (int step = 0; step < 2; ++step) {
      w.set_grad(grad.to(device));
      lars.step();
    }
    results.push_back(w.to_vector<double>());
  }
  for (size_t i = 0; i < results[0].size(); ++i) REQUIRE(results[1][i] == Approx(results[0][i]).epsilon(1e-5));
}

TEST_CASE("lars rejects bad options", "[unit]") {
  Tensor w = parameter_from({1.0, 2.0}, {1, 2});
  REQUIRE_THROWS_WITH(optim::Lars({w}, {.learning_rate = -1.0}), Contains("learning rate -1"));
  REQUIRE_THROWS_WITH(optim::Lars({w}, {.momentum = 1.0}), Contains("momentum 1 outside [0, 1)"));
  REQUIRE_THROWS_WITH(optim::Lars({w}, {.weight_decay = -0.1}), Contains("negative weight decay"));
  REQUIRE_THROWS_WITH(optim::Lars({w}, {.trust_coefficient = 0.0}), Contains("trust coefficient (eeta)"));
  REQUIRE_THROWS_WITH(optim::Lars({w}, {.momentum = 0.0, .nesterov = true}), Contains("Nesterov"));
  REQUIRE_THROWS_WITH(optim::Lars(std::vector<optim::LarsParamGroup>{}), Contains("no parameter groups"));
  REQUIRE_THROWS_WITH(optim::Lars({from_vector(std::vector<double>{1.0})}, {}), Contains("not a trainable leaf"));
  REQUIRE_THROWS_WITH(optim::lars_parameter_groups({}, {}), Contains("no parameters"));
  optim::Lars lars({w}, {});
  REQUIRE_THROWS_WITH(lars.set_learning_rate(std::nan("")), Contains("invalid learning rate"));
}

TEST_CASE("learning-rate scaling follows simclr", "[unit]") {
  using optim::LearningRateScaling;
  // Linear: lr * B / 256; 0.3 at B = 4096 gives 4.8 (the SimCLR paper's LARS setting).
  REQUIRE(optim::scale_learning_rate(0.3, 4096, LearningRateScaling::Linear) == Approx(4.8));
  REQUIRE(optim::scale_learning_rate(0.3, 256, LearningRateScaling::Linear) == Approx(0.3));
  // Square root: lr * sqrt(B); 0.075 * sqrt(4096) = 0.075 * 64 = 4.8, the same at B = 4096.
  REQUIRE(optim::scale_learning_rate(0.075, 4096, LearningRateScaling::SquareRoot) == Approx(4.8));
  REQUIRE(optim::scale_learning_rate(1.0, 512, LearningRateScaling::SquareRoot) == Approx(std::sqrt(512.0)));
  REQUIRE(optim::scale_learning_rate(0.5, 512, LearningRateScaling::None) == 0.5);
  REQUIRE(optim::parse_learning_rate_scaling("linear") == LearningRateScaling::Linear);
  REQUIRE(optim::parse_learning_rate_scaling("sqrt") == LearningRateScaling::SquareRoot);
  REQUIRE(optim::parse_learning_rate_scaling("none") == LearningRateScaling::None);
  REQUIRE(optim::learning_rate_scaling_name(LearningRateScaling::SquareRoot) == "sqrt");
  REQUIRE_THROWS_WITH(optim::parse_learning_rate_scaling("cubic"), Contains("'cubic'") && Contains("linear, sqrt"));
  REQUIRE_THROWS_WITH(optim::scale_learning_rate(0.1, 0, LearningRateScaling::Linear), Contains("batch_size"));
}
