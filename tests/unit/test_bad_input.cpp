// Bad input is a test case: every rejected call throws visrep::Error (never crashes, never
// returns garbage) with a message that names the op and the shapes or values at fault.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "engine/ops.h"

using namespace visrep;

namespace {

// Matches an exception whose what() contains every one of `parts`.
class MessageContains : public Catch::MatcherBase<std::exception> {
 public:
  explicit MessageContains(std::vector<std::string> parts) : parts_(std::move(parts)) {}
  bool match(const std::exception& error) const override {
    const std::string message = error.what();
    for (const std::string& part : parts_)
      if (message.find(part) == std::string::npos) return false;
    return true;
  }
  std::string describe() const override {
    std::string text = "message contains all of:";
    for (const std::string& part : parts_) text += " \"" + part + "\"";
    return text;
  }

 private:
  std::vector<std::string> parts_;
};

}  // namespace

// REQUIRE_THROWS_MATCHES checks the type (visrep::Error) and the message in one go.
#define REQUIRE_ERROR(expression, ...) \
  REQUIRE_THROWS_MATCHES(expression, ::visrep::Error, MessageContains({__VA_ARGS__}))

TEST_CASE("shape mismatches in elementwise ops", "[unit]") {
  REQUIRE_ERROR(add(zeros({2, 3}), zeros({4})), "add", "[2, 3]", "[4]");
  REQUIRE_ERROR(mul(zeros({2, 3}), zeros({3, 2})), "mul", "[2, 3]", "[3, 2]");
  REQUIRE_ERROR(maximum(zeros({5}), zeros({2, 4})), "maximum", "[5]", "[2, 4]");
  REQUIRE_ERROR(where(gt(zeros({3}), 0.0), zeros({2, 3}), zeros({4})), "where", "[4]");
  REQUIRE_ERROR(zeros({2, 3}).copy_(ones({3, 3})), "copy_", "[3, 3]", "[2, 3]");
}

TEST_CASE("dtype mismatches", "[unit]") {
  REQUIRE_ERROR(add(zeros({2}), zeros({2}, kFloat64)), "add", "float32", "float64");
  REQUIRE_ERROR(matmul(zeros({2, 2}), zeros({2, 2}, kFloat64)), "matmul", "float32", "float64");
  REQUIRE_ERROR(conv2d(zeros({1, 1, 3, 3}), zeros({1, 1, 2, 2}, kFloat64)), "conv2d", "float32", "float64");
  REQUIRE_ERROR(concat({zeros({2}), zeros({2}, kInt64)}), "concat", "float32", "int64");
  REQUIRE_ERROR(where(zeros({2}), zeros({2}), zeros({2})), "where", "uint8", "float32");
  REQUIRE_ERROR(exp(zeros({2}, kInt64)), "exp", "int64");
  REQUIRE_ERROR(mean(arange(4)), "mean", "int64");
  REQUIRE_ERROR(zeros({2}, kInt64).set_requires_grad(), "set_requires_grad", "int64");
  REQUIRE_ERROR(zeros({2}).data<double>(), "data", "float64", "float32");
}

TEST_CASE("matmul and linear shape errors", "[unit]") {
  REQUIRE_ERROR(matmul(zeros({2, 3}), zeros({4, 5})), "matmul", "[2, 3]", "[4, 5]");
  REQUIRE_ERROR(matmul(zeros({3}), zeros({4})), "matmul", "[3]", "[4]");
  REQUIRE_ERROR(matmul(zeros({2, 2, 3}), zeros({3, 3, 2})), "matmul", "[2, 2, 3]", "[3, 3, 2]");  // batch 2 vs 3
  REQUIRE_ERROR(matmul(scalar_tensor(1.0), zeros({2})), "matmul", "[]", "[2]");
  REQUIRE_ERROR(linear(zeros({4, 5}), zeros({3, 4})), "linear", "[4, 5]", "[3, 4]");
  REQUIRE_ERROR(linear(zeros({4, 4}), zeros({3, 4}), zeros({4})), "linear", "bias", "[4]", "3");
  REQUIRE_ERROR(linear(zeros({4, 4}), zeros({4})), "linear", "[4]");
}

TEST_CASE("conv2d shape errors", "[unit]") {
  // Channel mismatch: the weight expects 4 input channels, the input has 3.
  REQUIRE_ERROR(conv2d(zeros({1, 3, 5, 5}), zeros({2, 4, 3, 3})), "conv2d", "[2, 4, 3, 3]", "[1, 3, 5, 5]");
  // groups must divide both channel counts.
  REQUIRE_ERROR(conv2d(zeros({1, 3, 5, 5}), zeros({2, 1, 3, 3}), Tensor(), {.groups = 2}), "conv2d", "groups = 2",
                "[1, 3, 5, 5]", "[2, 1, 3, 3]");
  REQUIRE_ERROR(conv2d(zeros({1, 4, 5, 5}), zeros({3, 2, 3, 3}), Tensor(), {.groups = 2}), "conv2d", "groups = 2",
                "3 output channels", "[3, 2, 3, 3]");
  // A kernel larger than the (padded) input.
  REQUIRE_ERROR(conv2d(zeros({1, 1, 3, 3}), zeros({1, 1, 5, 5})), "conv2d", "5x5", "[1, 1, 3, 3]");
  REQUIRE_ERROR(conv2d(zeros({1, 1, 5, 5}), zeros({1, 1, 3, 3}), Tensor(), {.dilation = {3, 3}}), "conv2d",
                "[1, 1, 5, 5]", "dilation");
  REQUIRE_ERROR(conv2d(zeros({1, 3, 5}), zeros({1, 3, 3, 3})), "conv2d", "[1, 3, 5]");
  REQUIRE_ERROR(conv2d(zeros({1, 2, 5, 5}), zeros({3, 2, 3, 3}), zeros({2})), "conv2d", "bias", "[2]", "3");
  REQUIRE_ERROR(conv2d(zeros({1, 2, 5, 5}), zeros({3, 2, 3, 3}), Tensor(), {.stride = {0, 1}}), "conv2d", "stride");
  // With a stride > 1 the output-size formula truncates a negative span to 0 and gives 1:
  // the size check must not be fooled by it.
  REQUIRE_ERROR(conv2d(zeros({1, 1, 3, 3}), zeros({1, 1, 5, 5}), Tensor(), {.stride = {3, 3}}), "conv2d", "5x5",
                "[1, 1, 3, 3]");
  REQUIRE_ERROR(conv2d(zeros({1, 1, 3, 8}), zeros({1, 1, 2, 2}), Tensor(), {.stride = {4, 4}, .dilation = {4, 1}}),
                "conv2d", "[1, 1, 3, 8]");
  REQUIRE_ERROR(max_pool2d(zeros({1, 1, 2, 2}), {.kernel = {3, 3}}), "max_pool2d", "[1, 1, 2, 2]");
  REQUIRE_ERROR(avg_pool2d(zeros({1, 1, 2, 5}), {.kernel = {3, 3}, .stride = {1, 1}}), "avg_pool2d", "[1, 1, 2, 5]");
  REQUIRE_ERROR(avg_pool2d(zeros({1, 1, 4, 4}), {.kernel = {2, 2}, .padding = {2, 2}}), "avg_pool2d", "padding");
  REQUIRE_ERROR(max_pool2d(zeros({4, 4}), {}), "max_pool2d", "[4, 4]");
  REQUIRE_ERROR(adaptive_avg_pool2d(zeros({1, 1, 4, 4}), {0, 2}), "adaptive_avg_pool2d", "output size");
}

TEST_CASE("loss input errors", "[unit]") {
  Tensor logits = zeros({3, 4});
  REQUIRE_ERROR(cross_entropy(logits, from_vector<int64_t>({0, 4, 1})), "cross_entropy", "target 4", "4 classes");
  REQUIRE_ERROR(cross_entropy(logits, from_vector<int64_t>({0, -1, 1})), "cross_entropy", "-1");
  REQUIRE_ERROR(cross_entropy(logits, from_vector<int32_t>({0, 1, 1})), "cross_entropy", "int32");
  REQUIRE_ERROR(cross_entropy(logits, from_vector<int64_t>({0, 1})), "cross_entropy", "[2]", "[3, 4]");
  REQUIRE_ERROR(cross_entropy(logits, zeros({3, 5})), "cross_entropy", "[3, 5]", "[3, 4]");
  REQUIRE_ERROR(cross_entropy(zeros({4}), from_vector<int64_t>({0})), "cross_entropy", "[4]");
  REQUIRE_ERROR(cross_entropy(logits, from_vector<int64_t>({0, 1, 1}), {.label_smoothing = 1.5}), "label_smoothing",
                "1.5");
  REQUIRE_ERROR(nll_loss(logits, from_vector<int64_t>({0, 9, 1})), "nll_loss", "9", "4 classes");
}

TEST_CASE("batch_norm input errors", "[unit]") {
  REQUIRE_ERROR(batch_norm(zeros({4, 3}), Tensor(), Tensor(), zeros({4}), Tensor()), "batch_norm", "weight", "[4]",
                "[3]");
  REQUIRE_ERROR(batch_norm(zeros({4, 3, 2}), Tensor(), Tensor(), Tensor(), Tensor()), "batch_norm", "[4, 3, 2]");
  REQUIRE_ERROR(batch_norm(zeros({1, 3}), Tensor(), Tensor(), Tensor(), Tensor()), "batch_norm", "[1, 3]");
  REQUIRE_ERROR(batch_norm(zeros({4, 3}), Tensor(), Tensor(), Tensor(), Tensor(), {.training = false}), "batch_norm",
                "running");
}

TEST_CASE("devices", "[unit]") {
  // A device this machine lacks must be refused with an error naming it: cuda:0 when there
  // is no GPU (or no CUDA backend), a device index past the last one otherwise.
  const int missing = cuda_available() ? cuda_device_count() : 0;
  const std::string name = "cuda:" + std::to_string(missing);
  REQUIRE_ERROR(zeros({2}).to(Device::cuda(missing)), "to", name);
  REQUIRE_ERROR(zeros({2}, Device::cuda(missing)), name);
  REQUIRE_ERROR(empty({2}, Device::cuda(missing + 1)), "cuda:" + std::to_string(missing + 1));
  if (!cuda_available()) {
    REQUIRE_ERROR(from_vector<float>({1, 2}).to(Device::cuda()), "to", "cuda:0", "CUDA");
  }
  REQUIRE_ERROR(Device::parse("gpu0"), "gpu0");
  CHECK(Device::parse("cuda:3") == Device::cuda(3));
  CHECK(Device::parse("cpu") == Device::cpu());
}

TEST_CASE("out-of-range indices", "[unit]") {
  Tensor x = zeros({3, 4});
  REQUIRE_ERROR(index_select(x, 0, from_vector<int64_t>({0, 3})), "index_select", "index 3", "[3, 4]");
  REQUIRE_ERROR(index_select(x, 1, from_vector<int64_t>({-1})), "index_select", "-1", "[3, 4]");
  REQUIRE_ERROR(index_select(x, 0, from_vector<int32_t>({0})), "index_select", "int32");
  REQUIRE_ERROR(index_select(x, 2, from_vector<int64_t>({0})), "index_select", "dimension 2", "rank 2");
  REQUIRE_ERROR(gather(x, 1, from_vector<int64_t>({0, 1, 2, 4, 0, 0, 0, 0, 0, 0, 0, 0}, {3, 4})), "gather", "4",
                "[3, 4]");
  REQUIRE_ERROR(gather(x, 1, from_vector<int64_t>({0, 1}, {2, 1})), "gather", "[2, 1]", "[3, 4]");
  REQUIRE_ERROR(one_hot(from_vector<int64_t>({0, 5}), 3), "one_hot", "label 5", "3 classes");
  REQUIRE_ERROR(one_hot(from_vector<int64_t>({-2}), 3), "one_hot", "-2");
  REQUIRE_ERROR(x.select(0, 3), "select", "3", "size 3");
  REQUIRE_ERROR(x.select(1, -5), "select", "-5", "size 4");
  REQUIRE_ERROR(x.narrow(1, 2, 3), "narrow", "2", "3", "size 4");
  REQUIRE_ERROR(x.narrow(0, -4, 1), "narrow", "-4", "size 3");
  REQUIRE_ERROR(x.slice(0, 0, 2, 0), "slice", "step", "0");
  REQUIRE_ERROR(sum(x, {2}), "sum", "dimension 2", "rank 2");
  REQUIRE_ERROR(max(x, {-3}), "max", "dimension -3", "rank 2");
  REQUIRE_ERROR(x.size(5), "dimension 5", "rank 2");
  REQUIRE_ERROR(log_softmax(x, 2), "log_softmax", "dimension 2");
  REQUIRE_ERROR(x.transpose(0, 2), "transpose", "dimension 2");
  REQUIRE_ERROR(split(x, std::vector<int64_t>{1, 1}), "split", "[1, 1]", "3");
  REQUIRE_ERROR(concat({x, zeros({3, 5})}, 0), "concat", "[3, 5]", "[3, 4]");
  REQUIRE_ERROR(stack({x, zeros({4, 3})}), "stack", "[4, 3]", "[3, 4]");
  REQUIRE_ERROR(pad(x, {1, 1, 1}), "pad", "3");
  REQUIRE_ERROR(pad(x, {-3, -2}), "pad", "size 4");
}

TEST_CASE("bad reshape, permute, expand and item", "[unit]") {
  Tensor x = zeros({2, 3});
  REQUIRE_ERROR(x.reshape({4}), "reshape", "[2, 3]", "[4]");
  REQUIRE_ERROR(x.reshape({-1, -1}), "reshape", "-1");
  REQUIRE_ERROR(x.reshape({4, -1}), "reshape", "[2, 3]", "[4, -1]");
  REQUIRE_ERROR(x.t().view({6}), "view", "[3, 2]", "reshape");
  REQUIRE_ERROR(x.permute({0}), "permute", "[0]", "rank 2");
  REQUIRE_ERROR(x.permute({1, 1}), "permute", "[1, 1]");
  REQUIRE_ERROR(x.permute({0, 2}), "permute", "dimension 2");
  REQUIRE_ERROR(x.expand({2, 4}), "expand", "[2, 3]", "[2, 4]");
  REQUIRE_ERROR(x.expand({3}), "expand", "[2, 3]", "[3]");
  REQUIRE_ERROR(x.t().t().item(), "item", "6 elements", "[2, 3]");
  REQUIRE_ERROR(zeros({0}).item(), "item", "0 elements");
  REQUIRE_ERROR(ones({2}).t(), "t", "[2]");
  REQUIRE_ERROR(empty({-1, 2}), "empty", "[-1, 2]");
  REQUIRE_ERROR(from_vector<float>({1, 2, 3}, {2, 2}), "from_vector", "3", "[2, 2]");
  REQUIRE_ERROR(argmax(zeros({0})), "argmax", "[0]");
  REQUIRE_ERROR(max(zeros({2, 0}), {1}), "max", "[2, 0]");
  REQUIRE_ERROR(clamp(ones({2}), 1.0, -1.0), "clamp", "min", "max");
  REQUIRE_ERROR(randint(3, 3, {2}), "randint", "[3, 3)");
  REQUIRE_ERROR(Tensor().shape(), "undefined");
}

TEST_CASE("autograd misuse", "[unit]") {
  Tensor x = ones({2}).set_requires_grad();
  Tensor y = mul(x, 2.0);
  REQUIRE_ERROR(y.backward(), "backward", "seed", "[2]");
  REQUIRE_ERROR(y.backward(ones({3})), "backward", "[3]", "[2]");
  REQUIRE_ERROR(y.set_requires_grad(), "set_requires_grad", "mul");
  REQUIRE_ERROR(x.set_grad(ones({3})), "set_grad", "[3]", "[2]");
  REQUIRE_ERROR(sum(ones({2})).backward(), "backward", "does not require a gradient");
  REQUIRE_ERROR(x.mul_(2.0), "mul_", "requires grad");
}
