// SGD against torch.optim.SGD's update rule written out by hand, parameter groups,
// optimizer state for resuming, and the learning-rate schedules.
#include <catch2/catch.hpp>

#include <cmath>

#include "engine/ops.h"
#include "engine/optim/learning_rate_schedule.h"
#include "engine/optim/sgd.h"
#include "tests/support/test_data.h"

using namespace visrep;
using Catch::Matchers::Contains;

namespace {

Tensor parameter_from(const std::vector<double>& values) {
  return from_vector(values).set_requires_grad();
}

void set_gradient(const Tensor& parameter, const std::vector<double>& values) { parameter.set_grad(from_vector(values)); }

}  // namespace

TEST_CASE("sgd follows torch.optim.SGD", "[unit]") {
  struct Case {
    optim::SgdOptions options;
  };
  const std::vector<optim::SgdOptions> cases = {
      {.learning_rate = 0.1},
      {.learning_rate = 0.1, .momentum = 0.9},
      {.learning_rate = 0.05, .momentum = 0.9, .dampening = 0.3, .weight_decay = 0.01},
      {.learning_rate = 0.05, .momentum = 0.8, .weight_decay = 0.1, .nesterov = true},
  };
  const std::vector<std::vector<double>> gradients = {{0.5, -1.0, 2.0}, {0.25, 0.5, -0.75}, {-1.5, 0.0, 1.0}};
  for (const optim::SgdOptions& o : cases) {
    Tensor p = parameter_from({1.0, -2.0, 0.5});
    optim::Sgd sgd({p}, o);
    // The rule in plain doubles.
    std::vector<double> expected = {1.0, -2.0, 0.5}, buffer(3, 0.0);
    for (size_t step = 0; step < gradients.size(); ++step) {
      set_gradient(p, gradients[step]);
      sgd.step();
      for (int i = 0; i < 3; ++i) {
        double g = gradients[step][i] + o.weight_decay * expected[i];
        if (o.momentum != 0) {
          buffer[i] = step == 0 ? g : o.momentum * buffer[i] + (1 - o.dampening) * g;
          g = o.nesterov ? g + o.momentum * buffer[i] : buffer[i];
        }
        expected[i] -= o.learning_rate * g;
      }
      const std::vector<double> got = p.to_vector<double>();
      INFO("momentum " << o.momentum << " nesterov " << o.nesterov << " step " << step);
      for (int i = 0; i < 3; ++i) REQUIRE(got[i] == Approx(expected[i]).epsilon(1e-12));
    }
  }
}

TEST_CASE("sgd updates in place and skips missing gradients", "[unit]") {
  Tensor a = parameter_from({1.0, 2.0});
  Tensor b = parameter_from({3.0});
  const auto* storage_before = a.storage().get();
  optim::Sgd sgd({a, b}, {.learning_rate = 0.5});
  set_gradient(a, {1.0, -1.0});
  sgd.step();
  REQUIRE(a.storage().get() == storage_before);  // the module's handle still sees the data
  REQUIRE(a.to_vector<double>() == std::vector<double>{0.5, 2.5});
  REQUIRE(b.to_vector<double>() == std::vector<double>{3.0});
  sgd.zero_grad();
  REQUIRE_FALSE(a.grad().defined());
}

TEST_CASE("sgd parameter groups keep their own options", "[unit]") {
  Tensor weight = parameter_from({1.0});
  Tensor bias = parameter_from({1.0});
  optim::Sgd sgd({{"weights", {weight}, {.learning_rate = 0.1, .weight_decay = 0.5}},
                  {"biases", {bias}, {.learning_rate = 0.2, .weight_decay = 0.0, .lr_scale = 2.0}}});
  set_gradient(weight, {0.0});
  set_gradient(bias, {0.0});
  sgd.step();
  REQUIRE(weight.item() == Approx(1.0 - 0.1 * 0.5));  // decay only
  REQUIRE(bias.item() == 1.0);
  // A schedule sets lr for every group, scaled by the group's lr_scale.
  sgd.set_learning_rate(0.01);
  REQUIRE(sgd.learning_rate() == 0.01);
  REQUIRE(sgd.groups()[0].options.learning_rate == 0.01);
  REQUIRE(sgd.groups()[1].options.learning_rate == 0.02);
}

TEST_CASE("sgd state dict resumes exactly", "[unit]") {
  Generator generator = testing::generator_for("sgd resume");
  const optim::SgdOptions options{.learning_rate = 0.1, .momentum = 0.9, .weight_decay = 1e-3, .nesterov = true};
  Tensor original = testing::random_normal({4}, generator).set_requires_grad();
  std::vector<Tensor> gradients;
  for (int i = 0; i < 4; ++i) gradients.push_back(testing::random_normal({4}, generator));

  optim::Sgd first({original}, options);
  for (int step = 0; step < 2; ++step) {
    original.set_grad(gradients[step]);
    first.step();
  }
  // A second optimizer over a copy of the parameters, given the first's state.
  Tensor copy = original.detach().clone().set_requires_grad();
  optim::Sgd second({copy}, options);
  second.load_state_dict(first.state_dict({{"w", original}}), {{"w", copy}});
  REQUIRE(first.state_dict({{"w", original}}).count("w.momentum") == 1);
  for (int step = 2; step < 4; ++step) {
    original.set_grad(gradients[step]);
    copy.set_grad(gradients[step]);
    first.step();
    second.step();
  }
  REQUIRE(testing::max_abs_difference(original, copy) == 0.0);

  // Without the state the momentum is lost and the result differs.
  Tensor fresh = original.detach().clone().set_requires_grad();
  optim::Sgd third({fresh}, options);
  fresh.set_grad(gradients[0]);
  third.step();
  REQUIRE_THROWS_WITH(second.load_state_dict({{"v.momentum", zeros({4}, kFloat64)}}, {{"w", copy}}),
                      Contains("unknown key 'v.momentum'") && Contains("w.momentum"));
  REQUIRE_THROWS_WITH(second.load_state_dict({{"w.momentum", zeros({5}, kFloat64)}}, {{"w", copy}}),
                      Contains("[5]") && Contains("[4]"));
}

TEST_CASE("optimizer state is keyed by parameter name", "[unit]") {
  Generator generator = testing::generator_for("sgd state names");
  const optim::SgdOptions options{.learning_rate = 0.1, .momentum = 0.9};
  Tensor a = testing::random_normal({3}, generator).set_requires_grad();
  Tensor b = testing::random_normal({2}, generator).set_requires_grad();
  optim::Sgd first({a, b}, options);
  a.set_grad(testing::random_normal({3}, generator));
  b.set_grad(testing::random_normal({2}, generator));
  first.step();
  const nn::NamedTensors names = {{"layer.a", a}, {"layer.b", b}};
  const auto state = first.state_dict(names);
  REQUIRE(state.size() == 2);
  REQUIRE(state.at("layer.a.momentum").shape() == Shape{3});

  SECTION("a reordered optimizer gets each buffer by its parameter's name") {
    optim::Sgd reordered({b, a}, options);
    reordered.load_state_dict(state, names);
    const auto again = reordered.state_dict(names);
    REQUIRE(testing::max_abs_difference(again.at("layer.a.momentum"), state.at("layer.a.momentum")) == 0.0);
    REQUIRE(testing::max_abs_difference(again.at("layer.b.momentum"), state.at("layer.b.momentum")) == 0.0);
  }
  SECTION("position-keyed state of older checkpoints still loads into the same order") {
    optim::Sgd same({a, b}, options);
    same.load_state_dict({{"group0.param0.momentum", state.at("layer.a.momentum")},
                          {"group0.param1.momentum", state.at("layer.b.momentum")}},
                         names);
    REQUIRE(testing::max_abs_difference(same.state_dict(names).at("layer.b.momentum"), state.at("layer.b.momentum")) ==
            0.0);
    REQUIRE_THROWS_WITH(same.load_state_dict({{"group0.param2.momentum", zeros({2}, kFloat64)}}, names),
                        Contains("unknown key 'group0.param2.momentum'"));
    REQUIRE_THROWS_WITH(same.load_state_dict({{"group0.param0.momentum", state.at("layer.a.momentum")},
                                              {"layer.a.momentum", state.at("layer.a.momentum")}},
                                             names),
                        Contains("both the state of parameter 'layer.a'"));
  }
  SECTION("a buffer of another dtype is refused, naming the key and both dtypes; nothing is loaded") {
    optim::Sgd fresh({a, b}, options);
    REQUIRE_THROWS_WITH(fresh.load_state_dict({{"layer.a.momentum", state.at("layer.a.momentum")},
                                               {"layer.b.momentum", state.at("layer.b.momentum").to(kFloat32)}},
                                              names),
                        Contains("'layer.b.momentum' is float32") && Contains("its parameter is float64"));
    REQUIRE(fresh.state_dict(names).empty());
  }
  SECTION("a parameter the names leave out is an error naming its slot") {
    REQUIRE_THROWS_WITH(first.state_dict({{"layer.a", a}}), Contains("parameter 1 of group 0"));
  }
}

TEST_CASE("sgd rejects bad options", "[unit]") {
  Tensor p = parameter_from({1.0});
  REQUIRE_THROWS_WITH(optim::Sgd({p}, {.learning_rate = -1.0}), Contains("negative learning rate"));
  REQUIRE_THROWS_WITH(optim::Sgd({p}, {.learning_rate = 0.1, .nesterov = true}), Contains("Nesterov"));
  Tensor not_trainable = from_vector<double>({1.0});
  REQUIRE_THROWS_WITH(optim::Sgd({not_trainable}, {}), Contains("not a trainable leaf"));
  Tensor computed = mul(p, 2.0);
  REQUIRE_THROWS_WITH(optim::Sgd({computed}, {}), Contains("not a trainable leaf"));
}

TEST_CASE("warmup cosine schedule", "[unit]") {
  const optim::WarmupCosineSchedule schedule(0.4, 10, 110, 0.0);
  REQUIRE(schedule.at(0) == 0.0);
  REQUIRE(schedule.at(5) == Approx(0.2));
  REQUIRE(schedule.at(10) == Approx(0.4));
  REQUIRE(schedule.at(60) == Approx(0.2));  // half way through the decay: cos(pi/2) = 0
  REQUIRE(schedule.at(35) == Approx(0.2 * (1 + std::cos(M_PI * 0.25))));
  REQUIRE(schedule.at(110) == 0.0);
  REQUIRE(schedule.at(1000) == 0.0);
  REQUIRE_THROWS_WITH(optim::WarmupCosineSchedule(0.1, 20, 10), Contains("warmup_steps (20)"));
}

TEST_CASE("warmup step schedule", "[unit]") {
  // BiT-HyperRule shape: warmup to the first boundary, then /10 at each later one.
  const optim::WarmupStepSchedule schedule(0.003, 100, {200, 300, 400}, 10.0);
  REQUIRE(schedule.at(50) == Approx(0.0015));
  REQUIRE(schedule.at(100) == Approx(0.003));
  REQUIRE(schedule.at(199) == Approx(0.003));
  REQUIRE(schedule.at(200) == Approx(0.0003));
  REQUIRE(schedule.at(350) == Approx(0.00003));
  REQUIRE(schedule.at(400) == Approx(0.000003));
  REQUIRE(optim::ConstantSchedule(0.7).at(123) == 0.7);
  REQUIRE_THROWS_WITH(optim::WarmupStepSchedule(0.1, 0, {300, 200}), Contains("increasing"));
}
