// The parts of the autograd engine (engine/autograd.h) that one-output ops do not exercise:
// nodes with several outputs, a backward pass from several roots, and gradients() (the
// gradients returned instead of accumulated into .grad). tests/unit/test_tensor.cpp covers
// the one-output basics (accumulation, NoGradGuard, saved tensors, views, diamonds).
#include <catch2/catch.hpp>

#include <stdexcept>
#include <vector>

#include "engine/ops.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;
using Catch::Matchers::Contains;

namespace {

// A two-output op for the tests: (2 x, x * x). Its node counts its runs and sees which
// output gradients arrived.
struct TwoOutputs {
  int runs = 0;
  std::vector<bool> arrived;
};

TensorList two_outputs(const Tensor& x, TwoOutputs& log) {
  const Tensor doubled = mul(x, 2.0).detach(), squared = mul(x, x).detach();  // the values; the node is below
  const SavedTensor saved(x);
  return record("two_outputs", {doubled, squared}, {x}, [&log, saved](const TensorList& grads) -> TensorList {
    ++log.runs;
    log.arrived = {grads[0].defined(), grads[1].defined()};
    Tensor dx = zeros_like(saved.get());
    if (grads[0].defined()) dx = add(dx, mul(grads[0], 2.0));
    if (grads[1].defined()) dx = add(dx, mul(grads[1], mul(saved.get(), 2.0)));
    return {dx};
  });
}

}  // namespace

TEST_CASE("a node with two outputs runs once with both gradients", "[unit]") {
  Tensor x = from_vector<double>({1.0, -2.0, 3.0}).set_requires_grad();
  TwoOutputs log;
  const TensorList out = two_outputs(x, log);
  REQUIRE(out.size() == 2);
  CHECK(out[0].grad_fn() == out[1].grad_fn());
  CHECK(out[0].grad_fn_output() == 0);
  CHECK(out[1].grad_fn_output() == 1);
  // L = sum(2x) + sum(x^2) + sum(x^2) again: output 1's two gradients are summed first.
  sum(add(add(sum(out[0]), sum(out[1])), sum(out[1]))).backward();
  CHECK(log.runs == 1);
  CHECK(log.arrived == std::vector<bool>{true, true});
  CHECK(x.grad().to_vector<double>() == std::vector<double>{2.0 + 4.0, 2.0 - 8.0, 2.0 + 12.0});
}

TEST_CASE("an output no gradient reaches stays undefined for the node", "[unit]") {
  Tensor x = from_vector<double>({1.5, 0.5}).set_requires_grad();
  TwoOutputs log;
  const TensorList out = two_outputs(x, log);
  sum(out[1]).backward();
  CHECK(log.runs == 1);
  CHECK(log.arrived == std::vector<bool>{false, true});
  CHECK(x.grad().to_vector<double>() == std::vector<double>{3.0, 1.0});
}

TEST_CASE("backward from several roots at once", "[unit]") {
  Tensor x = from_vector<double>({1.0, 2.0}).set_requires_grad();
  const Tensor a = mul(x, 3.0), b = mul(x, x);
  backward({a, b}, {from_vector<double>({1.0, 10.0}), from_vector<double>({0.5, 0.25})});
  // 3 * seed_a + 2 x * seed_b
  CHECK(x.grad().to_vector<double>() == std::vector<double>{3.0 + 1.0, 30.0 + 1.0});
  CHECK_THROWS_WITH(backward({a}, {}), Contains("1 roots but 0 seed gradients"));
}

TEST_CASE("gradients() returns the gradients and leaves .grad alone", "[unit]") {
  Tensor x = from_vector<double>({1.0, -1.0, 2.0}).set_requires_grad();
  Tensor w = from_vector<double>({0.5, 2.0, -3.0}).set_requires_grad();
  const Tensor y = mul(mul(x, w), x);  // x^2 w
  const Tensor seed = from_vector<double>({1.0, 2.0, 3.0});
  const TensorList g = gradients({y}, {x, w}, {seed});
  REQUIRE(g.size() == 2);
  CHECK(g[0].to_vector<double>() == std::vector<double>{2 * 1.0 * 0.5 * 1, 2 * -1.0 * 2.0 * 2, 2 * 2.0 * -3.0 * 3});
  CHECK(g[1].to_vector<double>() == std::vector<double>{1.0, 2.0, 12.0});
  CHECK_FALSE(x.grad().defined());
  CHECK_FALSE(w.grad().defined());

  // With respect to an intermediate tensor: the flow stops there.
  const Tensor h = mul(x, 2.0);
  const Tensor z = sum(mul(h, h));
  CHECK(gradients({z}, {h}, {Tensor()}).front().to_vector<double>() == std::vector<double>{4.0, -4.0, 8.0});
  CHECK_FALSE(x.grad().defined());

  // An input the root does not depend on gets none; one that wants no gradient is an error.
  Tensor unused = from_vector<double>({1.0}).set_requires_grad();
  CHECK_FALSE(gradients({z}, {unused}, {Tensor()}).front().defined());
  CHECK_THROWS_WITH(gradients({z}, {from_vector<double>({1.0})}, {Tensor()}), Contains("does not require a gradient"));
}

TEST_CASE("a failed backward through the list weight standardisation leaves nothing behind", "[unit]") {
  Generator gen = generator_for("a failed backward through the list weight standardisation");
  Tensor a = random_normal({3, 2, 2, 2}, gen, kFloat64).set_requires_grad();
  Tensor b = random_normal({2, 5}, gen, kFloat64).set_requires_grad();
  const std::vector<Tensor> out = weight_standardization(std::vector<Tensor>{a, b});
  // out[0] passes through an op whose backward throws the first time it runs; out[1]'s
  // gradient reaches the shared node's output slot before that.
  int failures_left = 1;
  const Tensor through = record("fails once", mul(out[0], 1.0).detach(), {out[0]},
                                [&failures_left](const Tensor& grad) -> TensorList {
                                  if (failures_left-- > 0) throw std::runtime_error("injected failure");
                                  return {grad};
                                });
  const Tensor loss = add(sum(mul(through, through)), sum(exp(out[1])));
  CHECK_THROWS_WITH(loss.backward(), Contains("injected failure"));
  CHECK_FALSE(a.grad().defined());
  CHECK_FALSE(b.grad().defined());

  // The same graph again: the gradients of a pass that never failed.
  loss.backward();
  Tensor a2 = a.detach().clone().set_requires_grad(), b2 = b.detach().clone().set_requires_grad();
  const std::vector<Tensor> fresh = weight_standardization(std::vector<Tensor>{a2, b2});
  add(sum(mul(fresh[0], fresh[0])), sum(exp(fresh[1]))).backward();
  CHECK(a.grad().to_vector<double>() == a2.grad().to_vector<double>());
  CHECK(b.grad().to_vector<double>() == b2.grad().to_vector<double>());
}
