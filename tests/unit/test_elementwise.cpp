// Forward values of the elementwise ops, comparisons, factories, bfloat16 and the threaded paths.
// Expected values are hand-computed or come from the double-precision loops in
// tests/support/reference.h, never from the engine's own output.
// Where to look for the rest of the family: kernels/cpu/elementwise.h.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>

#include "engine/ops.h"
#include "tests/support/reference.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

// ---- elementwise ----------------------------------------------------------------------------------------

TEST_CASE("unary ops against std", "[unit]") {
  Generator gen = generator_for("unary ops against std");
  for (DType dtype : {kFloat32, kFloat64}) {
    INFO("dtype " << dtype_name(dtype));
    const double tolerance = dtype == kFloat32 ? kFloat32Tolerance : kFloat64Tolerance;
    Tensor any = random_normal({4, 6}, gen, dtype);
    Tensor positive = random_uniform({4, 6}, 0.1, 4.0, gen, dtype);
    const Array a(any), p(positive);
    auto reference = [](const Array& in, double (*f)(double)) {
      Array out = in;
      for (double& v : out.values) v = f(v);
      return out;
    };
    require_close(neg(any), reference(a, [](double v) { return -v; }), tolerance);
    require_close(exp(any), reference(a, [](double v) { return std::exp(v); }), tolerance);
    require_close(log(positive), reference(p, [](double v) { return std::log(v); }), tolerance);
    require_close(sqrt(positive), reference(p, [](double v) { return std::sqrt(v); }), tolerance);
    require_close(rsqrt(positive), reference(p, [](double v) { return 1.0 / std::sqrt(v); }), tolerance);
    require_close(abs(any), reference(a, [](double v) { return std::abs(v); }), tolerance);
    require_close(sign(any), reference(a, [](double v) { return v > 0 ? 1.0 : v < 0 ? -1.0 : 0.0; }), tolerance);
    require_close(relu(any), reference(a, [](double v) { return v > 0 ? v : 0.0; }), tolerance);
    require_close(pow(positive, 2.5), reference(p, [](double v) { return std::pow(v, 2.5); }), tolerance);
    require_close(pow(any, 3.0), reference(a, [](double v) { return v * v * v; }), tolerance);
    require_close(pow(positive, -0.5), reference(p, [](double v) { return 1.0 / std::sqrt(v); }), tolerance);
    require_close(clamp(any, -0.5, 0.25), reference(a, [](double v) { return std::min(std::max(v, -0.5), 0.25); }),
                  tolerance);
    require_close(clamp_min(any, 0.1), reference(a, [](double v) { return std::max(v, 0.1); }), tolerance);
    require_close(clamp_max(any, 0.1), reference(a, [](double v) { return std::min(v, 0.1); }), tolerance);
  }
}

TEST_CASE("unary ops on special values", "[unit]") {
  const double inf = INFINITY;
  Tensor x = from_vector<double>({kNaN, inf, -inf, 0.0, -0.0});
  Array relu_expected({5}, 0.0);
  relu_expected.values = {kNaN, inf, 0.0, 0.0, 0.0};
  require_close(relu(x), relu_expected, 0.0);
  Array clamp_expected({5}, 0.0);
  clamp_expected.values = {kNaN, 1.0, -1.0, 0.0, 0.0};
  require_close(clamp(x, -1.0, 1.0), clamp_expected, 0.0);  // NaN propagates, as in PyTorch
  Array exp_expected({5}, 0.0);
  exp_expected.values = {kNaN, inf, 0.0, 1.0, 1.0};
  require_close(exp(x), exp_expected, 0.0);
  CHECK(std::isnan(log(from_vector<double>({-1.0})).item()));
  CHECK(log(from_vector<double>({0.0})).item() == -inf);
  CHECK(div(from_vector<float>({1.0f, -1.0f}), from_vector<float>({0.0f, 0.0f})).to_vector<float>() ==
        std::vector<float>{INFINITY, -INFINITY});
}

TEST_CASE("relu's gradient passes where the input is positive, 0 elsewhere and at NaN", "[unit]") {
  // relu's backward is one pass (BinaryOp::ReluBackward) for float32 and float64, also for a
  // gradient with strides of its own.
  for (DType dtype : {kFloat32, kFloat64}) {
    INFO("dtype " << dtype_name(dtype));
    Tensor x = from_vector<double>({kNaN, INFINITY, -INFINITY, 0.0, -0.0, 2.0, -3.0, 1e-30}).to(dtype);
    x.set_requires_grad();
    const Tensor g = from_vector<double>({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
                         .to(dtype)
                         .reshape({8, 2})
                         .select(1, 0);  // every other element: 1, 3, 5, ...
    relu(x).backward(g);
    CHECK(x.grad().to(kFloat64).to_vector<double>() == std::vector<double>{0, 3, 0, 0, 0, 11, 0, 15});
  }
}

TEST_CASE("binary ops and broadcasting against loops", "[unit]") {
  Generator gen = generator_for("binary ops and broadcasting against loops");
  for (DType dtype : {kFloat32, kFloat64}) {
    INFO("dtype " << dtype_name(dtype));
    const double tolerance = dtype == kFloat32 ? kFloat32Tolerance : kFloat64Tolerance;
    Tensor a = random_normal({2, 1, 4}, gen, dtype);
    Tensor b = random_uniform({3, 1}, 0.5, 2.0, gen, dtype);
    const Array av(a), bv(b);
    const Shape out_shape = {2, 3, 4};
    auto reference = [&](double (*f)(double, double)) {
      Array out(out_shape, 0.0);
      for_each_index(out_shape, [&](const std::vector<int64_t>& i) {
        out(i) = f(av({i[0], 0, i[2]}), bv({i[1], 0}));
      });
      return out;
    };
    require_close(add(a, b), reference([](double x, double y) { return x + y; }), tolerance);
    require_close(sub(a, b), reference([](double x, double y) { return x - y; }), tolerance);
    require_close(mul(a, b), reference([](double x, double y) { return x * y; }), tolerance);
    require_close(div(a, b), reference([](double x, double y) { return x / y; }), tolerance);
    require_close(pow(b, a), reference([](double x, double y) { return std::pow(y, x); }), tolerance * 10);
    require_close(maximum(a, b), reference([](double x, double y) { return std::max(x, y); }), tolerance);
    require_close(minimum(a, b), reference([](double x, double y) { return std::min(x, y); }), tolerance);
  }
}

TEST_CASE("maximum and minimum propagate NaN", "[unit]") {
  Tensor a = from_vector<double>({kNaN, 1.0, 2.0});
  Tensor b = from_vector<double>({0.0, kNaN, 1.0});
  std::vector<double> high = maximum(a, b).to_vector<double>(), low = minimum(a, b).to_vector<double>();
  CHECK(std::isnan(high[0]));
  CHECK(std::isnan(high[1]));
  CHECK(high[2] == 2.0);
  CHECK(std::isnan(low[0]));
  CHECK(std::isnan(low[1]));
  CHECK(low[2] == 1.0);
}

TEST_CASE("maximum tie shares the gradient", "[unit]") {
  // PyTorch's rule: on a tie each input takes half the gradient.
  Tensor a = from_vector<double>({1.0, 2.0, 3.0}).set_requires_grad();
  Tensor b = from_vector<double>({1.0, 5.0, 0.0}).set_requires_grad();
  sum(maximum(a, b)).backward();
  CHECK(a.grad().to_vector<double>() == std::vector<double>{0.5, 0.0, 1.0});
  CHECK(b.grad().to_vector<double>() == std::vector<double>{0.5, 1.0, 0.0});
}

TEST_CASE("integer arithmetic", "[unit]") {
  Tensor a = from_vector<int64_t>({7, -7, 3, 0});
  Tensor b = from_vector<int64_t>({2, 2, 0, 5});
  CHECK(add(a, b).to_vector<int64_t>() == std::vector<int64_t>{9, -5, 3, 5});
  CHECK(mul(a, b).to_vector<int64_t>() == std::vector<int64_t>{14, -14, 0, 0});
  CHECK(sub(a, b).dtype() == kInt64);
  // C++ integer division truncates toward zero; division by zero is defined as 0 (documented).
  CHECK(div(a, b).to_vector<int64_t>() == std::vector<int64_t>{3, -3, 0, 0});
  CHECK(sum(a).item() == 3.0);
  CHECK(sum(a).dtype() == kInt64);
  CHECK(sum(gt(a, 0.0)).item() == 2.0);  // uint8 sums promote to int64
}

TEST_CASE("comparisons and where", "[unit]") {
  Tensor a = from_vector<float>({1, 2, 3, 4});
  Tensor b = from_vector<float>({4, 2, 1, 4});
  CHECK(eq(a, b).to_vector<uint8_t>() == std::vector<uint8_t>{0, 1, 0, 1});
  CHECK(ne(a, b).to_vector<uint8_t>() == std::vector<uint8_t>{1, 0, 1, 0});
  CHECK(lt(a, b).to_vector<uint8_t>() == std::vector<uint8_t>{1, 0, 0, 0});
  CHECK(le(a, b).to_vector<uint8_t>() == std::vector<uint8_t>{1, 1, 0, 1});
  CHECK(gt(a, b).to_vector<uint8_t>() == std::vector<uint8_t>{0, 0, 1, 0});
  CHECK(ge(a, b).to_vector<uint8_t>() == std::vector<uint8_t>{0, 1, 1, 1});
  CHECK(gt(a, 2.5).to_vector<uint8_t>() == std::vector<uint8_t>{0, 0, 1, 1});
  CHECK(eq(from_vector<double>({kNaN}), from_vector<double>({kNaN})).item() == 0.0);  // NaN != NaN
  // Integer tensors against doubles they cannot hold compare by value (not truncated).
  Tensor labels = from_vector<int64_t>({0, 1, 2, 3});
  CHECK(lt(labels, 2.5).to_vector<uint8_t>() == std::vector<uint8_t>{1, 1, 1, 0});
  CHECK(ge(labels, 1.5).to_vector<uint8_t>() == std::vector<uint8_t>{0, 0, 1, 1});
  CHECK(eq(labels, 2.5).to_vector<uint8_t>() == std::vector<uint8_t>{0, 0, 0, 0});
  CHECK(ne(labels, kNaN).to_vector<uint8_t>() == std::vector<uint8_t>{1, 1, 1, 1});
  CHECK(lt(labels, INFINITY).to_vector<uint8_t>() == std::vector<uint8_t>{1, 1, 1, 1});
  CHECK(eq(labels, 2.0).to_vector<uint8_t>() == std::vector<uint8_t>{0, 0, 1, 0});
  Tensor bytes = from_vector<uint8_t>({0, 127, 128, 255});
  CHECK(gt(bytes, 127.5).to_vector<uint8_t>() == std::vector<uint8_t>{0, 0, 1, 1});
  CHECK(gt(bytes, -1.0).to_vector<uint8_t>() == std::vector<uint8_t>{1, 1, 1, 1});
  CHECK(le(bytes, 300.0).to_vector<uint8_t>() == std::vector<uint8_t>{1, 1, 1, 1});
  // where with broadcasting: condition (2, 1), a (2, 3), b scalar.
  Tensor condition = from_vector<uint8_t>({1, 0}, {2, 1});
  Tensor x = from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(where(condition, x, scalar_tensor(-1.0)).to_vector<float>() == std::vector<float>{1, 2, 3, -1, -1, -1});
}

// ---- factories ---------------------------------------------------------------------------------------------------

TEST_CASE("factories", "[unit]") {
  CHECK(arange(5).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 3, 4});
  CHECK(arange(1.0, 2.0, 0.25, kFloat64).to_vector<double>() == std::vector<double>{1.0, 1.25, 1.5, 1.75});
  CHECK(arange(3.0, 0.0, -1.0, kFloat32).to_vector<float>() == std::vector<float>{3, 2, 1});
  CHECK(arange(0.0, 1.0, 0.1, kFloat64).numel() == 10);
  CHECK(full({2, 2}, 3.5, kFloat64).to_vector<double>() == std::vector<double>(4, 3.5));
  CHECK(zeros_like(ones({3}, kInt32)).dtype() == kInt32);
  CHECK(scalar_tensor(2.0).dim() == 0);
  CHECK(from_vector<int64_t>({1, 2}, {}, TensorOptions(kFloat32)).dtype() == kFloat32);
  Tensor leaf = zeros({2}, TensorOptions(kFloat64, Device::cpu(), true));
  CHECK(leaf.requires_grad());
  CHECK(leaf.is_leaf());
}

TEST_CASE("bfloat16 ops compute in float32 and round once", "[unit]") {
  Generator gen = generator_for("bfloat16 ops compute in float32 and round once");
  Tensor x = random_normal({64}, gen, kFloat32).to(kBFloat16);
  Tensor y = random_uniform({64}, 0.5, 2.0, gen, kFloat32).to(kBFloat16);
  const std::vector<float> xs = x.to_vector<float>(), ys = y.to_vector<float>();
  auto rounded = [](float v) { return static_cast<float>(bfloat16(v)); };
  const std::vector<float> e = exp(x).to_vector<float>(), q = div(x, y).to_vector<float>(),
                           r = relu(x).to_vector<float>();
  for (size_t i = 0; i < xs.size(); ++i) {
    CHECK(e[i] == rounded(std::exp(xs[i])));
    CHECK(q[i] == rounded(xs[i] / ys[i]));
    CHECK(r[i] == std::max(xs[i], 0.0f));
  }
  CHECK(exp(x).dtype() == kBFloat16);
  CHECK(sum(x).dtype() == kBFloat16);
  double total = 0;
  for (float v : xs) total += v;
  CHECK(sum(x).item() == rounded(static_cast<float>(total)));
  Tensor m = random_normal({3, 5}, gen, kFloat32).to(kBFloat16);
  Tensor n = random_normal({5, 2}, gen, kFloat32).to(kBFloat16);
  Tensor product = matmul(m, n);
  REQUIRE(product.dtype() == kBFloat16);
  require_close(product.to(kFloat64), naive_matmul(Array(m), Array(n)), 1e-2);  // one bfloat16 rounding
}

TEST_CASE("large tensors take the threaded paths", "[unit]") {
  // Above the kernels' parallel thresholds (32768 elements), with non-contiguous and
  // broadcast operands, rows longer than one tile (8192) and reductions on both axes.
  Generator gen = generator_for("large tensors take the threaded paths");
  Tensor a = random_normal({300, 257}, gen, kFloat32);
  Tensor b = random_normal({257}, gen, kFloat32);
  const Array av(a), bv(b);
  Tensor sum_ab = add(a.t(), b.unsqueeze(1));  // (257, 300): transposed plus broadcast column
  Array expected({257, 300}, 0.0);
  for_each_index(expected.shape, [&](const std::vector<int64_t>& i) { expected(i) = av({i[1], i[0]}) + bv({i[0]}); });
  require_close(sum_ab, expected, 1e-6);
  Tensor long_rows = random_normal({4, 20000}, gen, kFloat64);
  const Array lv(long_rows);
  Array doubled({4, 10000}, 0.0);
  for_each_index(doubled.shape, [&](const std::vector<int64_t>& i) { doubled(i) = 2 * lv({i[0], 2 * i[1] + 1}); });
  require_close(mul(long_rows.slice(1, 1, 20000, 2), 2.0), doubled, kFloat64Tolerance);
  Array odd_columns = doubled;
  for (double& v : odd_columns.values) v /= 2;
  require_close(long_rows.slice(1, 1, 20000, 2).contiguous(), odd_columns, 0.0);  // the strided copy kernel
  for (int64_t dim : {0, 1}) {
    INFO("dim " << dim);
    // Direct loops (reduce_reference is quadratic): gather each row or column, then fold it.
    const int64_t kept = a.size(1 - dim), along = a.size(dim);
    Array sums({kept}, 0.0), maxima({kept}, 0.0), variances({kept}, 0.0);
    for (int64_t k = 0; k < kept; ++k) {
      std::vector<double> line;
      for (int64_t r = 0; r < along; ++r) line.push_back(dim == 0 ? av({r, k}) : av({k, r}));
      sums.values[k] = total(line);
      maxima.values[k] = largest(line);
      variances.values[k] = variance_with(1)(line);
    }
    require_close(sum(a, {dim}), sums, 1e-5);
    require_close(max(a, {dim}), maxima, 0.0);
    require_close(var(a, {dim}), variances, 1e-5);
  }
  for (double s : sum(softmax(a, 0), {0}).to_vector<double>()) CHECK(s == Approx(1.0).epsilon(1e-5));
  Tensor index = randint(0, 300, {500}, kInt64, gen);
  const std::vector<int64_t> iv = index.to_vector<int64_t>();
  Array picked({500, 257}, 0.0);
  for_each_index(picked.shape, [&](const std::vector<int64_t>& i) { picked(i) = av({iv[i[0]], i[1]}); });
  require_close(index_select(a, 0, index), picked, 0.0);
}

TEST_CASE("pow gradient at zero with exponent zero", "[unit]") {
  // d/dx x^0 = 0 everywhere, x = 0 included (PyTorch's convention), not 0 * x^-1 = NaN.
  Tensor x = from_vector<double>({0.0, 2.0}).set_requires_grad();
  sum(pow(x, 0.0)).backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{0.0, 0.0});
  Tensor base = from_vector<double>({0.0, 3.0}).set_requires_grad();
  Tensor exponent = from_vector<double>({0.0, 0.0}).set_requires_grad();
  sum(pow(base, exponent)).backward();
  CHECK(base.grad().to_vector<double>() == std::vector<double>{0.0, 0.0});
  CHECK(exponent.grad().to_vector<double>()[1] == Approx(std::log(3.0)));
}
