// Forward values of the ops, against hand-computed results or double-precision references
// computed here with plain loops (never against the engine's own output).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>

#include "engine/ops.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A dense row-major float64 copy of a tensor, for the reference loops.
struct Array {
  Shape shape;
  std::vector<double> values;

  explicit Array(const Tensor& t) : shape(t.shape()), values(t.detach().to_vector<double>()) {}
  Array(Shape s, double fill) : shape(std::move(s)), values(static_cast<size_t>(shape_numel(shape)), fill) {}

  int64_t flat(const std::vector<int64_t>& index) const {
    int64_t offset = 0;
    for (size_t d = 0; d < shape.size(); ++d) offset = offset * shape[d] + index[d];
    return offset;
  }
  double& operator()(const std::vector<int64_t>& index) { return values[static_cast<size_t>(flat(index))]; }
  double operator()(const std::vector<int64_t>& index) const { return values[static_cast<size_t>(flat(index))]; }
};

// Largest |a - b| / (1 + |b|) with NaN matching NaN (a NaN on one side only is infinite).
double worst_error(const std::vector<double>& actual, const std::vector<double>& expected) {
  if (actual.size() != expected.size()) return INFINITY;
  double worst = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    if (std::isnan(actual[i]) || std::isnan(expected[i])) {
      if (std::isnan(actual[i]) != std::isnan(expected[i])) return INFINITY;
      continue;
    }
    if (std::isinf(expected[i]) || std::isinf(actual[i])) {
      if (actual[i] != expected[i]) return INFINITY;
      continue;
    }
    worst = std::max(worst, std::abs(actual[i] - expected[i]) / (1.0 + std::abs(expected[i])));
  }
  return worst;
}

void require_close(const Tensor& actual, const Array& expected, double tolerance) {
  INFO("shape " << shape_string(actual.shape()) << " expected " << shape_string(expected.shape));
  REQUIRE(actual.shape() == expected.shape);
  CHECK(worst_error(actual.to_vector<double>(), expected.values) <= tolerance);
}

// Calls f(index) for every index of `shape` in row-major order.
void for_each_index(const Shape& shape, const std::function<void(const std::vector<int64_t>&)>& f) {
  std::vector<int64_t> index(shape.size(), 0);
  if (shape_numel(shape) == 0) return;
  while (true) {
    f(index);
    int64_t d = static_cast<int64_t>(shape.size()) - 1;
    for (; d >= 0; --d) {
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
    if (d < 0) return;
  }
}

// float32 results of float64 references: a few float32 roundings of O(1) values.
constexpr double kFloat32Tolerance = 2e-6;
constexpr double kFloat64Tolerance = 1e-12;

}  // namespace

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

// ---- reductions -----------------------------------------------------------------------------------------

namespace {

// Reference reduction over `dims` of a row-major array: f folds the selected values.
Array reduce_reference(const Array& x, const Dims& dims, bool keepdim,
                       const std::function<double(const std::vector<double>&)>& f) {
  const int64_t ndim = static_cast<int64_t>(x.shape.size());
  auto reduced = [&](int64_t d) {
    if (dims.empty()) return true;
    for (int64_t r : dims)
      if ((r + ndim) % ndim == d) return true;
    return false;
  };
  Shape kept;
  for (int64_t d = 0; d < ndim; ++d) kept.push_back(reduced(d) ? 1 : x.shape[d]);
  Array out(kept, 0.0);
  for_each_index(kept, [&](const std::vector<int64_t>& o) {
    std::vector<double> selected;
    for_each_index(x.shape, [&](const std::vector<int64_t>& i) {
      for (int64_t d = 0; d < ndim; ++d)
        if (!reduced(d) && i[d] != o[d]) return;
      selected.push_back(x(i));
    });
    out(o) = f(selected);
  });
  if (!keepdim) {
    Shape squeezed;
    for (int64_t d = 0; d < ndim; ++d)
      if (!reduced(d)) squeezed.push_back(x.shape[d]);
    out.shape = squeezed;
  }
  return out;
}

double total(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0); }
double average(const std::vector<double>& v) { return total(v) / static_cast<double>(v.size()); }
double largest(const std::vector<double>& v) {
  for (double value : v)
    if (std::isnan(value)) return value;
  return *std::max_element(v.begin(), v.end());
}
double smallest(const std::vector<double>& v) {
  for (double value : v)
    if (std::isnan(value)) return value;
  return *std::min_element(v.begin(), v.end());
}
std::function<double(const std::vector<double>&)> variance_with(int64_t correction) {
  return [correction](const std::vector<double>& v) {
    const double m = average(v);
    double squares = 0;
    for (double value : v) squares += (value - m) * (value - m);
    return squares / static_cast<double>(static_cast<int64_t>(v.size()) - correction);
  };
}

}  // namespace

TEST_CASE("reductions against loops", "[unit]") {
  Generator gen = generator_for("reductions against loops");
  const std::vector<Dims> dim_lists = {{}, {0}, {1}, {-1}, {0, 2}, {1, 2}, {2, 0, 1}};
  for (DType dtype : {kFloat32, kFloat64}) {
    const double tolerance = dtype == kFloat32 ? 1e-5 : kFloat64Tolerance;
    Tensor x = random_normal({3, 4, 5}, gen, dtype);
    const Array xv(x);
    for (const Dims& dims : dim_lists) {
      for (bool keepdim : {false, true}) {
        INFO("dtype " << dtype_name(dtype) << " dims " << shape_string(dims) << " keepdim " << keepdim);
        require_close(sum(x, dims, keepdim), reduce_reference(xv, dims, keepdim, total), tolerance);
        require_close(mean(x, dims, keepdim), reduce_reference(xv, dims, keepdim, average), tolerance);
        require_close(max(x, dims, keepdim), reduce_reference(xv, dims, keepdim, largest), tolerance);
        require_close(min(x, dims, keepdim), reduce_reference(xv, dims, keepdim, smallest), tolerance);
        for (int64_t correction : {0, 1}) {
          require_close(var(x, dims, correction, keepdim), reduce_reference(xv, dims, keepdim, variance_with(correction)),
                        tolerance);
        }
      }
    }
    // Over everything: 0-dim results.
    CHECK(sum(x).dim() == 0);
    CHECK(sum(x).item() == Approx(total(xv.values)).epsilon(tolerance));
    CHECK(max(x).item() == largest(xv.values));
    CHECK(min(x).item() == smallest(xv.values));
    CHECK(var(x).item() == Approx(variance_with(1)(xv.values)).epsilon(tolerance));
  }
}

TEST_CASE("var correction", "[unit]") {
  Tensor x = from_vector<double>({1, 2, 3, 4});
  CHECK(var(x).item() == Approx(5.0 / 3.0));          // unbiased: sum (x - 2.5)^2 = 5, over n - 1
  CHECK(var(x, 0).item() == Approx(1.25));            // biased: over n
  CHECK(var(x, 2).item() == Approx(2.5));             // any correction: over n - 2
  CHECK(std::isnan(var(from_vector<double>({3.0})).item()));  // 0 / (n - 1) = 0 / 0, as in PyTorch
  Tensor m = from_vector<double>({1, 2, 3, 5, 7, 9}, {2, 3});
  CHECK(var(m, {1}).to_vector<double>() == std::vector<double>{1.0, 4.0});
  CHECK(var(m, {0}, 0).to_vector<double>() == std::vector<double>{4.0, 6.25, 9.0});
}

TEST_CASE("max and min with NaN, argmax and argmin", "[unit]") {
  Tensor x = from_vector<double>({1.0, kNaN, 3.0, 2.0, 5.0, -1.0}, {2, 3});
  std::vector<double> row_max = max(x, {1}).to_vector<double>();
  CHECK(std::isnan(row_max[0]));  // NaN propagates, as in PyTorch
  CHECK(row_max[1] == 5.0);
  CHECK(std::isnan(max(x).item()));
  CHECK(std::isnan(min(x).item()));
  CHECK(min(x, {1}).to_vector<double>()[1] == -1.0);
  Tensor y = from_vector<float>({3, 7, 7, 1, 0, 9}, {2, 3});
  CHECK(argmax(y, 1).to_vector<int64_t>() == std::vector<int64_t>{1, 2});  // first maximum on ties
  CHECK(argmin(y, 1).to_vector<int64_t>() == std::vector<int64_t>{0, 1});
  CHECK(argmax(y, 0, true).shape() == Shape{1, 3});
  CHECK(argmax(y).item() == 5.0);
  CHECK(argmin(y).item() == 4.0);
  CHECK(argmax(x, 1).to_vector<int64_t>() == std::vector<int64_t>{1, 1});  // NaN counts as the maximum
}

TEST_CASE("max over all splits the gradient between ties", "[unit]") {
  Tensor x = from_vector<double>({1.0, 4.0, 4.0, 2.0}).set_requires_grad();
  max(x).backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{0.0, 0.5, 0.5, 0.0});
}

TEST_CASE("sum_to undoes a broadcast", "[unit]") {
  Tensor x = from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(sum_to(x, {3}).to_vector<float>() == std::vector<float>{5, 7, 9});
  CHECK(sum_to(x, {2, 1}).to_vector<float>() == std::vector<float>{6, 15});
  CHECK(sum_to(x, {}).item() == 21.0);
  CHECK(sum_to(x, {2, 3}).to_vector<float>() == x.to_vector<float>());
}

// ---- matmul and linear ------------------------------------------------------------------------------------

namespace {

// out[batch..., i, j] = sum_k a[batch..., i, k] b[batch..., k, j] with broadcast batches;
// both operands at least 2-D (callers unsqueeze vectors themselves).
Array naive_matmul(const Array& a, const Array& b) {
  const int64_t m = a.shape[a.shape.size() - 2], k = a.shape.back(), n = b.shape.back();
  REQUIRE(b.shape[b.shape.size() - 2] == k);
  const Shape a_batch(a.shape.begin(), a.shape.end() - 2), b_batch(b.shape.begin(), b.shape.end() - 2);
  const Shape batch = broadcast_shapes(a_batch, b_batch, "naive");
  Shape out_shape = batch;
  out_shape.push_back(m);
  out_shape.push_back(n);
  Array out(out_shape, 0.0);
  auto operand_index = [](const Shape& own_batch, const std::vector<int64_t>& index, int64_t r, int64_t c) {
    std::vector<int64_t> result;
    const size_t lead = index.size() - 2 - own_batch.size();
    for (size_t d = 0; d < own_batch.size(); ++d) result.push_back(own_batch[d] == 1 ? 0 : index[lead + d]);
    result.push_back(r);
    result.push_back(c);
    return result;
  };
  for_each_index(out_shape, [&](const std::vector<int64_t>& index) {
    const int64_t i = index[index.size() - 2], j = index.back();
    double total = 0;
    for (int64_t p = 0; p < k; ++p) total += a(operand_index(a_batch, index, i, p)) * b(operand_index(b_batch, index, p, j));
    out(index) = total;
  });
  return out;
}

}  // namespace

TEST_CASE("matmul against a naive triple loop", "[unit]") {
  Generator gen = generator_for("matmul against a naive triple loop");
  struct Case {
    Shape a, b;
  };
  const std::vector<Case> cases = {{{3, 4}, {4, 5}},       {{1, 7}, {7, 1}},          {{2, 3, 4}, {2, 4, 5}},
                                   {{2, 1, 3, 4}, {3, 4, 2}}, {{3, 4}, {2, 4, 5}},      {{2, 3, 4}, {4, 5}},
                                   {{5, 1}, {1, 6}},       {{2, 2, 3, 4}, {1, 2, 4, 3}}};
  for (DType dtype : {kFloat32, kFloat64}) {
    const double tolerance = dtype == kFloat32 ? 1e-5 : kFloat64Tolerance;
    for (const Case& c : cases) {
      INFO("dtype " << dtype_name(dtype) << " " << shape_string(c.a) << " @ " << shape_string(c.b));
      Tensor a = random_normal(c.a, gen, dtype), b = random_normal(c.b, gen, dtype);
      require_close(matmul(a, b), naive_matmul(Array(a), Array(b)), tolerance);
    }
  }
}

TEST_CASE("matmul with vectors, views and transposes", "[unit]") {
  Generator gen = generator_for("matmul with vectors, views and transposes");
  Tensor u = random_normal({4}, gen), v = random_normal({4}, gen);
  Tensor m = random_normal({4, 3}, gen), batch = random_normal({2, 4, 3}, gen);
  const Array uv(u), vv(v);
  double dot = 0;
  for (int64_t i = 0; i < 4; ++i) dot += uv.values[i] * vv.values[i];
  Tensor product = matmul(u, v);
  CHECK(product.dim() == 0);
  CHECK(product.item() == Approx(dot).epsilon(1e-12));

  Array u_row(u.unsqueeze(0)), v_column(v.unsqueeze(1));
  Array expected = naive_matmul(u_row, Array(m));
  expected.shape = {3};
  require_close(matmul(u, m), expected, kFloat64Tolerance);
  Array batch_expected = naive_matmul(u_row, Array(batch));
  batch_expected.shape = {2, 3};
  require_close(matmul(u, batch), batch_expected, kFloat64Tolerance);
  Array right = naive_matmul(Array(m.t().contiguous()), v_column);
  right.shape = {3};
  require_close(matmul(m.t(), v), right, kFloat64Tolerance);

  // Transposed, permuted, sliced and expanded operands against their contiguous copies.
  Tensor a = random_normal({5, 4}, gen), b = random_normal({3, 5}, gen);
  require_close(matmul(a.t(), b.t()), naive_matmul(Array(a.t().contiguous()), Array(b.t().contiguous())),
                kFloat64Tolerance);
  Tensor c = random_normal({3, 2, 4}, gen), d = random_normal({2, 4, 9}, gen);
  Tensor c_view = c.permute({1, 0, 2}), d_view = d.slice(2, 0, 9, 3);
  require_close(matmul(c_view, d_view), naive_matmul(Array(c_view.contiguous()), Array(d_view.contiguous())),
                kFloat64Tolerance);
  Tensor row = random_normal({1, 4}, gen);
  Tensor expanded = row.expand({3, 4});  // stride 0 rows
  require_close(matmul(expanded, m), naive_matmul(Array(expanded.contiguous()), Array(m)), kFloat64Tolerance);
  Tensor shared = random_normal({4, 3}, gen).expand({2, 4, 3});  // one matrix for the whole batch
  require_close(matmul(c_view, shared), naive_matmul(Array(c_view.contiguous()), Array(shared.contiguous())),
                kFloat64Tolerance);
}

TEST_CASE("matmul with an empty inner dimension gives zeros", "[unit]") {
  // (2, 0) @ (0, 3): the sum over an empty k is 0, as in PyTorch.
  Tensor out = matmul(empty({2, 0}), empty({0, 3}));
  REQUIRE(out.shape() == Shape{2, 3});
  CHECK(out.to_vector<float>() == std::vector<float>(6, 0.0f));
  CHECK(matmul(empty({0, 3}), ones({3, 2})).shape() == Shape{0, 2});
}

TEST_CASE("linear against loops", "[unit]") {
  Generator gen = generator_for("linear against loops");
  Tensor x = random_normal({2, 3, 4}, gen, kFloat32);
  Tensor w = random_normal({5, 4}, gen, kFloat32), b = random_normal({5}, gen, kFloat32);
  const Array xv(x), wv(w), bv(b);
  Array expected({2, 3, 5}, 0.0);
  for_each_index(expected.shape, [&](const std::vector<int64_t>& i) {
    double total = bv({i[2]});
    for (int64_t k = 0; k < 4; ++k) total += xv({i[0], i[1], k}) * wv({i[2], k});
    expected(i) = total;
  });
  require_close(linear(x, w, b), expected, 1e-5);
  Array no_bias = expected;
  for_each_index(no_bias.shape, [&](const std::vector<int64_t>& i) { no_bias(i) -= bv({i[2]}); });
  require_close(linear(x, w), no_bias, 1e-5);
  Array single({5}, 0.0);
  for (int64_t o = 0; o < 5; ++o) single.values[o] = expected.values[o];
  require_close(linear(x.select(0, 0).select(0, 0), w, b), single, 1e-5);
}

// ---- convolution and pooling ------------------------------------------------------------------------------

namespace {

// The definition: out[n, o, i, j] = bias[o] + sum over (c, p, q) of the group's channels of
// x[n, g * C_in/groups + c, i s_h - pad_h + p d_h, j s_w - pad_w + q d_w] w[o, c, p, q].
Array naive_conv2d(const Array& x, const Array& w, const Array* bias, const Conv2dOptions& o) {
  const int64_t batch = x.shape[0], in_channels = x.shape[1], height = x.shape[2], width = x.shape[3];
  const int64_t out_channels = w.shape[0], group_in = w.shape[1], kh = w.shape[2], kw = w.shape[3];
  const int64_t group_out = out_channels / o.groups;
  const int64_t out_h = (height + 2 * o.padding[0] - o.dilation[0] * (kh - 1) - 1) / o.stride[0] + 1;
  const int64_t out_w = (width + 2 * o.padding[1] - o.dilation[1] * (kw - 1) - 1) / o.stride[1] + 1;
  REQUIRE(group_in * o.groups == in_channels);
  Array out({batch, out_channels, out_h, out_w}, 0.0);
  for_each_index(out.shape, [&](const std::vector<int64_t>& index) {
    const int64_t n = index[0], oc = index[1], i = index[2], j = index[3];
    const int64_t group = oc / group_out;
    double total = bias ? (*bias)({oc}) : 0.0;
    for (int64_t c = 0; c < group_in; ++c) {
      for (int64_t p = 0; p < kh; ++p) {
        for (int64_t q = 0; q < kw; ++q) {
          const int64_t h = i * o.stride[0] - o.padding[0] + p * o.dilation[0];
          const int64_t v = j * o.stride[1] - o.padding[1] + q * o.dilation[1];
          if (h < 0 || h >= height || v < 0 || v >= width) continue;
          total += x({n, group * group_in + c, h, v}) * w({oc, c, p, q});
        }
      }
    }
    out(index) = total;
  });
  return out;
}

}  // namespace

TEST_CASE("conv2d against a direct loop", "[unit]") {
  struct Case {
    const char* name;
    Shape input, weight;
    bool bias;
    Conv2dOptions options;
  };
  const std::vector<Case> cases = {
      {"3x3", {2, 3, 6, 5}, {4, 3, 3, 3}, true, {}},
      {"stride padding", {3, 2, 7, 8}, {3, 2, 3, 3}, true, {.stride = {2, 2}, .padding = {1, 1}}},
      {"asymmetric", {1, 3, 9, 6}, {2, 3, 2, 3}, false, {.stride = {3, 1}, .padding = {0, 2}}},
      {"dilation", {2, 2, 9, 9}, {4, 2, 3, 3}, true, {.padding = {1, 2}, .dilation = {2, 3}}},
      {"groups", {2, 6, 5, 5}, {4, 3, 3, 3}, true, {.padding = {1, 1}, .groups = 2}},
      {"depthwise", {2, 4, 6, 6}, {8, 1, 3, 3}, true, {.stride = {2, 2}, .padding = {1, 1}, .groups = 4}},
      {"1x1", {3, 5, 4, 4}, {6, 5, 1, 1}, true, {}},
      {"1x1 one image", {1, 5, 4, 3}, {6, 5, 1, 1}, false, {}},
      {"1x1 strided", {2, 4, 5, 5}, {3, 4, 1, 1}, true, {.stride = {2, 2}}},
      {"many images, tiny planes", {40, 3, 3, 3}, {2, 3, 2, 2}, true, {}},
      {"large plane", {1, 2, 40, 37}, {3, 2, 5, 5}, true, {.stride = {1, 2}, .padding = {2, 2}}},
  };
  Generator gen = generator_for("conv2d against a direct loop");
  for (DType dtype : {kFloat32, kFloat64}) {
    const double tolerance = dtype == kFloat32 ? 1e-5 : kFloat64Tolerance;
    for (const Case& c : cases) {
      INFO(c.name << " " << dtype_name(dtype));
      Tensor x = random_normal(c.input, gen, dtype), w = random_normal(c.weight, gen, dtype);
      Tensor b = c.bias ? random_normal({c.weight[0]}, gen, dtype) : Tensor();
      const Array bias_values = c.bias ? Array(b) : Array({1}, 0.0);
      require_close(conv2d(x, w, b, c.options),
                    naive_conv2d(Array(x), Array(w), c.bias ? &bias_values : nullptr, c.options), tolerance);
    }
  }
  SECTION("non-contiguous input") {
    Tensor x = random_normal({2, 6, 5, 3}, gen, kFloat32).permute({0, 3, 2, 1});  // (2, 3, 5, 6)
    Tensor w = random_normal({2, 3, 3, 3}, gen, kFloat32);
    const Conv2dOptions options{.padding = {1, 1}};
    require_close(conv2d(x, w, Tensor(), options), naive_conv2d(Array(x), Array(w), nullptr, options), 1e-5);
  }
}

namespace {

Array naive_pool(const Array& x, const Pool2dOptions& options, bool is_max, bool count_include_pad) {
  const Pair stride = options.stride == Pair{0, 0} ? options.kernel : options.stride;
  const int64_t height = x.shape[2], width = x.shape[3];
  const int64_t out_h = (height + 2 * options.padding[0] - options.kernel[0]) / stride[0] + 1;
  const int64_t out_w = (width + 2 * options.padding[1] - options.kernel[1]) / stride[1] + 1;
  Array out({x.shape[0], x.shape[1], out_h, out_w}, 0.0);
  for_each_index(out.shape, [&](const std::vector<int64_t>& index) {
    const int64_t h0 = index[2] * stride[0] - options.padding[0], w0 = index[3] * stride[1] - options.padding[1];
    double best = -INFINITY, total = 0;
    int64_t inside = 0;
    bool nan = false;
    for (int64_t h = h0; h < h0 + options.kernel[0]; ++h) {
      for (int64_t w = w0; w < w0 + options.kernel[1]; ++w) {
        if (h < 0 || h >= height || w < 0 || w >= width) continue;
        const double v = x({index[0], index[1], h, w});
        nan = nan || std::isnan(v);
        best = std::max(best, v);
        total += v;
        ++inside;
      }
    }
    // PyTorch's divisor with padding: the window clipped to the padded image.
    const int64_t h_end = std::min(h0 + options.kernel[0], height + options.padding[0]);
    const int64_t w_end = std::min(w0 + options.kernel[1], width + options.padding[1]);
    const int64_t padded = (h_end - h0) * (w_end - w0);
    out(index) = is_max ? (nan ? kNaN : best) : total / static_cast<double>(count_include_pad ? padded : inside);
  });
  return out;
}

}  // namespace

TEST_CASE("pooling against direct loops", "[unit]") {
  Generator gen = generator_for("pooling against direct loops");
  const std::vector<Pool2dOptions> options = {
      {.kernel = {2, 2}},
      {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}},
      {.kernel = {3, 2}, .stride = {1, 2}, .padding = {1, 0}},
      {.kernel = {2, 2}, .stride = {1, 1}, .padding = {1, 1}},
  };
  Tensor x = random_normal({2, 3, 7, 6}, gen, kFloat32);
  const Array xv(x);
  for (size_t i = 0; i < options.size(); ++i) {
    INFO("options " << i);
    require_close(max_pool2d(x, options[i]), naive_pool(xv, options[i], true, false), 0.0);
    require_close(avg_pool2d(x, options[i], true), naive_pool(xv, options[i], false, true), 1e-6);
    require_close(avg_pool2d(x, options[i], false), naive_pool(xv, options[i], false, false), 1e-6);
  }
  // Hand-computed: a 3x3 average with padding 1 at the corner of a ones image: 4 of 9 inside.
  Tensor image = ones({1, 1, 4, 4});
  const Pool2dOptions padded{.kernel = {3, 3}, .stride = {1, 1}, .padding = {1, 1}};
  CHECK(avg_pool2d(image, padded, true).to_vector<float>()[0] == Approx(4.0 / 9.0));
  CHECK(avg_pool2d(image, padded, false).to_vector<float>()[0] == 1.0f);
}

TEST_CASE("max_pool2d propagates NaN and ignores padding", "[unit]") {
  Tensor x = from_vector<float>({1, 2, 3, 4, 5, NAN, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, {1, 1, 4, 4});
  std::vector<float> out = max_pool2d(x, {.kernel = {2, 2}}).to_vector<float>();
  CHECK(std::isnan(out[0]));
  CHECK(out[1] == 8.0f);
  CHECK(out[2] == 14.0f);
  CHECK(out[3] == 16.0f);
  // All-negative input with padding: the zero padding must never win.
  Tensor negative = full({1, 1, 3, 3}, -5.0);
  for (float v : max_pool2d(negative, {.kernel = {3, 3}, .stride = {1, 1}, .padding = {1, 1}}).to_vector<float>())
    CHECK(v == -5.0f);
}

TEST_CASE("adaptive_avg_pool2d uses PyTorch's bins", "[unit]") {
  Generator gen = generator_for("adaptive_avg_pool2d uses PyTorch's bins");
  Tensor x = random_normal({2, 3, 5, 7}, gen, kFloat64);
  const Array xv(x);
  for (Pair size : {Pair{3, 4}, Pair{2, 2}, Pair{5, 7}, Pair{1, 1}, Pair{7, 3}}) {
    INFO("size " << size[0] << "x" << size[1]);
    Array expected({2, 3, size[0], size[1]}, 0.0);
    for_each_index(expected.shape, [&](const std::vector<int64_t>& i) {
      // Bin i covers [floor(i H / O), ceil((i + 1) H / O)).
      const int64_t h0 = i[2] * 5 / size[0], h1 = ((i[2] + 1) * 5 + size[0] - 1) / size[0];
      const int64_t w0 = i[3] * 7 / size[1], w1 = ((i[3] + 1) * 7 + size[1] - 1) / size[1];
      double total = 0;
      for (int64_t h = h0; h < h1; ++h)
        for (int64_t w = w0; w < w1; ++w) total += xv({i[0], i[1], h, w});
      expected(i) = total / static_cast<double>((h1 - h0) * (w1 - w0));
    });
    require_close(adaptive_avg_pool2d(x, size), expected, kFloat64Tolerance);
  }
  // Hand-computed: 5 -> 3 bins are [0, 2), [1, 4), [3, 5).
  Tensor ramp = arange(0.0, 5.0, 1.0, kFloat64).reshape({1, 1, 1, 5});
  CHECK(adaptive_avg_pool2d(ramp, {1, 3}).to_vector<double>() == std::vector<double>{0.5, 2.0, 3.5});
  require_close(global_avg_pool2d(x), reduce_reference(xv, {2, 3}, false, average), kFloat64Tolerance);
}

// ---- normalization ------------------------------------------------------------------------------------------

TEST_CASE("batch_norm training against the formula", "[unit]") {
  Generator gen = generator_for("batch_norm training against the formula");
  for (const Shape& shape : {Shape{8, 3}, Shape{4, 3, 2, 5}}) {
    INFO("shape " << shape_string(shape));
    Tensor x = add(mul(random_normal(shape, gen, kFloat64), 2.0), 1.5);
    Tensor weight = random_normal({3}, gen, kFloat64), bias = random_normal({3}, gen, kFloat64);
    Tensor running_mean = random_normal({3}, gen, kFloat64);
    Tensor running_var = random_uniform({3}, 0.5, 1.5, gen, kFloat64);
    const Array rm0(running_mean), rv0(running_var), xv(x), wv(weight), bv(bias);
    const double momentum = 0.3, eps = 1e-3;
    Tensor y = batch_norm(x, running_mean, running_var, weight, bias, {.momentum = momentum, .eps = eps});
    Array expected(shape, 0.0);
    const int64_t count = shape_numel(shape) / 3;
    for (int64_t c = 0; c < 3; ++c) {
      std::vector<double> values;
      for_each_index(shape, [&](const std::vector<int64_t>& i) {
        if (i[1] == c) values.push_back(xv(i));
      });
      const double m = average(values);
      const double biased = variance_with(0)(values), unbiased = variance_with(1)(values);
      for_each_index(shape, [&](const std::vector<int64_t>& i) {
        if (i[1] == c) expected(i) = (xv(i) - m) / std::sqrt(biased + eps) * wv({c}) + bv({c});
      });
      // PyTorch: running = (1 - momentum) running + momentum batch, with the unbiased variance.
      CHECK(running_mean.to_vector<double>()[c] == Approx((1 - momentum) * rm0({c}) + momentum * m).epsilon(1e-12));
      CHECK(running_var.to_vector<double>()[c] ==
            Approx((1 - momentum) * rv0({c}) + momentum * unbiased).epsilon(1e-12));
      CHECK(count > 1);
    }
    require_close(y, expected, 1e-12);
  }
}

TEST_CASE("batch_norm normalises each channel", "[unit]") {
  Generator gen = generator_for("batch_norm normalises each channel");
  Tensor x = add(mul(random_normal({16, 4, 3, 3}, gen, kFloat32), 5.0), -2.0);
  Tensor y = batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor());
  std::vector<double> means = mean(y, {0, 2, 3}).to_vector<double>();
  std::vector<double> variances = var(y, {0, 2, 3}, 0).to_vector<double>();
  for (int64_t c = 0; c < 4; ++c) {
    CHECK(means[c] == Approx(0.0).margin(1e-5));
    CHECK(variances[c] == Approx(1.0).margin(1e-3));  // var / (var + 1e-5) with var ~ 25
  }
}

TEST_CASE("batch_norm eval uses the running statistics", "[unit]") {
  Tensor x = from_vector<double>({1, 2, 3, 4, 5, 6}, {3, 2});
  Tensor running_mean = from_vector<double>({1.0, -1.0}), running_var = from_vector<double>({4.0, 0.25});
  Tensor weight = from_vector<double>({2.0, 1.0}), bias = from_vector<double>({0.0, 10.0});
  Tensor y = batch_norm(x, running_mean, running_var, weight, bias, {.training = false, .eps = 0.0001});
  // channel 0: 2 (x - 1) / sqrt(4.0001); channel 1: (x + 1) / sqrt(0.2501) + 10.
  const std::vector<double> xs = {1, 2, 3, 4, 5, 6};
  std::vector<double> out = y.to_vector<double>();
  for (size_t i = 0; i < 6; ++i) {
    const double expected = i % 2 == 0 ? 2 * (xs[i] - 1) / std::sqrt(4.0001) : (xs[i] + 1) / std::sqrt(0.2501) + 10;
    CHECK(out[i] == Approx(expected).epsilon(1e-12));
  }
  // Evaluation leaves the running statistics alone.
  CHECK(running_mean.to_vector<double>() == std::vector<double>{1.0, -1.0});
  CHECK(running_var.to_vector<double>() == std::vector<double>{4.0, 0.25});
}

TEST_CASE("normalize gives unit rows", "[unit]") {
  Generator gen = generator_for("normalize gives unit rows");
  Tensor x = random_normal({5, 8}, gen, kFloat32);
  Tensor y = normalize(x);
  const Array xv(x), yv(y);
  for (int64_t i = 0; i < 5; ++i) {
    double norm = 0;
    for (int64_t j = 0; j < 8; ++j) norm += xv({i, j}) * xv({i, j});
    norm = std::sqrt(norm);
    for (int64_t j = 0; j < 8; ++j) CHECK(yv({i, j}) == Approx(xv({i, j}) / norm).epsilon(1e-6));
  }
  // A zero row stays zero (divided by eps, not by 0).
  Tensor zero_row = normalize(zeros({2, 3}));
  CHECK(zero_row.to_vector<float>() == std::vector<float>(6, 0.0f));
  CHECK(normalize(from_vector<double>({3, 4, 0, 5}, {2, 2}), 1).to_vector<double>() ==
        std::vector<double>{0.6, 0.8, 0.0, 1.0});
  CHECK(normalize(from_vector<double>({3, 0, 4, 5}, {2, 2}), 0).to_vector<double>() ==
        std::vector<double>{0.6, 0.0, 0.8, 1.0});
}

// ---- softmax and losses ---------------------------------------------------------------------------------------

TEST_CASE("log_softmax against the formula", "[unit]") {
  Generator gen = generator_for("log_softmax against the formula");
  Tensor x = mul(random_normal({4, 6}, gen, kFloat32), 3.0);
  const Array xv(x);
  Array expected({4, 6}, 0.0);
  for (int64_t i = 0; i < 4; ++i) {
    double total = 0;
    for (int64_t j = 0; j < 6; ++j) total += std::exp(xv({i, j}));
    for (int64_t j = 0; j < 6; ++j) expected({i, j}) = xv({i, j}) - std::log(total);
  }
  require_close(log_softmax(x), expected, 1e-6);
  // Rows of softmax sum to 1; along dim 0 too.
  for (float s : sum(exp(log_softmax(x, 1)), {1}).to_vector<float>()) CHECK(s == Approx(1.0).epsilon(1e-6));
  for (float s : sum(softmax(x, 0), {0}).to_vector<float>()) CHECK(s == Approx(1.0).epsilon(1e-6));
  // A middle dimension.
  Tensor cube = random_normal({2, 5, 3}, gen, kFloat64);
  for (double s : sum(softmax(cube, 1), {1}).to_vector<double>()) CHECK(s == Approx(1.0).epsilon(1e-12));
  // Huge logits do not overflow: the max shift.
  Tensor huge = from_vector<float>({1000.0f, 1000.0f, -1000.0f});
  std::vector<float> out = log_softmax(huge).to_vector<float>();
  CHECK(out[0] == Approx(-std::log(2.0)).epsilon(1e-6));
  CHECK(out[1] == Approx(-std::log(2.0)).epsilon(1e-6));
  CHECK(out[2] == Approx(-2000.0 - std::log(2.0)).epsilon(1e-6));
  // -inf logits get probability 0, not NaN.
  std::vector<double> masked = softmax(from_vector<double>({-INFINITY, 0.0, 0.0})).to_vector<double>();
  CHECK(masked[0] == 0.0);
  CHECK(masked[1] == Approx(0.5).epsilon(1e-15));
  CHECK(masked[2] == Approx(0.5).epsilon(1e-15));
}

namespace {

// -(1 - s) log p[t] - (s / C) sum_c log p[c], with p = softmax(logits row).
double reference_cross_entropy(const std::vector<double>& row, int64_t target, double smoothing) {
  double maximum = *std::max_element(row.begin(), row.end()), total = 0;
  for (double v : row) total += std::exp(v - maximum);
  const double log_total = maximum + std::log(total);
  double sum_log_p = 0;
  for (double v : row) sum_log_p += v - log_total;
  const double classes = static_cast<double>(row.size());
  return -(1 - smoothing) * (row[target] - log_total) - smoothing / classes * sum_log_p;
}

}  // namespace

TEST_CASE("cross_entropy against the formula", "[unit]") {
  Generator gen = generator_for("cross_entropy against the formula");
  const int64_t batch = 6, classes = 5;
  Tensor logits = random_normal({batch, classes}, gen, kFloat64);
  Tensor targets = from_vector<int64_t>({4, 0, -100, 2, 2, 1});
  const Array lv(logits);
  auto row = [&](int64_t i) {
    return std::vector<double>(lv.values.begin() + i * classes, lv.values.begin() + (i + 1) * classes);
  };
  const std::vector<int64_t> t = targets.to_vector<int64_t>();
  for (double smoothing : {0.0, 0.1, 0.5}) {
    INFO("label_smoothing " << smoothing);
    std::vector<double> per_row;
    double total = 0;
    int64_t counted = 0;
    for (int64_t i = 0; i < batch; ++i) {
      const double loss = t[i] == -100 ? 0.0 : reference_cross_entropy(row(i), t[i], smoothing);
      per_row.push_back(loss);
      total += loss;
      counted += t[i] != -100;
    }
    CHECK(cross_entropy(logits, targets, {.label_smoothing = smoothing}).item() ==
          Approx(total / static_cast<double>(counted)).epsilon(1e-12));  // mean over non-ignored rows
    CHECK(cross_entropy(logits, targets, {.label_smoothing = smoothing, .reduction = Reduction::Sum}).item() ==
          Approx(total).epsilon(1e-12));
    Tensor none = cross_entropy(logits, targets, {.label_smoothing = smoothing, .reduction = Reduction::None});
    REQUIRE(none.shape() == Shape{batch});
    std::vector<double> values = none.to_vector<double>();
    for (int64_t i = 0; i < batch; ++i) CHECK(values[i] == Approx(per_row[i]).epsilon(1e-12).margin(1e-15));
  }
  // Soft targets: -sum_c t'_c log p_c with t' = (1 - s) t + s / C; mean over all rows.
  Tensor soft = softmax(random_normal({batch, classes}, gen, kFloat64), 1);
  const Array sv(soft);
  for (double smoothing : {0.0, 0.2}) {
    double total = 0;
    for (int64_t i = 0; i < batch; ++i) {
      std::vector<double> r = row(i);
      const double maximum = *std::max_element(r.begin(), r.end());
      double z = 0;
      for (double v : r) z += std::exp(v - maximum);
      for (int64_t c = 0; c < classes; ++c) {
        const double target = (1 - smoothing) * sv({i, c}) + smoothing / classes;
        total -= target * (r[c] - maximum - std::log(z));
      }
    }
    CHECK(cross_entropy(logits, soft, {.label_smoothing = smoothing}).item() ==
          Approx(total / batch).epsilon(1e-12));
  }
  // One-hot soft targets give the same loss as the class indices.
  Tensor indices = from_vector<int64_t>({4, 0, 1, 2, 2, 1});
  CHECK(cross_entropy(logits, one_hot(indices, classes, kFloat64)).item() ==
        Approx(cross_entropy(logits, indices).item()).epsilon(1e-12));
}

TEST_CASE("nll_loss picks the target log-probabilities", "[unit]") {
  Tensor log_probs = from_vector<double>({-0.1, -2.0, -3.0, -1.5, -0.7, -0.9}, {2, 3});
  CHECK(nll_loss(log_probs, from_vector<int64_t>({0, 2})).item() == Approx((0.1 + 0.9) / 2));
  CHECK(nll_loss(log_probs, from_vector<int64_t>({1, 1}), {.reduction = Reduction::Sum}).item() == Approx(2.7));
  CHECK(nll_loss(log_probs, from_vector<int64_t>({1, -100})).item() == Approx(2.0));
  // Every row ignored: the mean is 0 / 0 = NaN, as in PyTorch.
  CHECK(std::isnan(nll_loss(log_probs, from_vector<int64_t>({-100, -100})).item()));
}

// ---- joining, indexing, padding ---------------------------------------------------------------------------------

TEST_CASE("concat stack split", "[unit]") {
  Tensor a = from_vector<float>({1, 2, 3, 4}, {2, 2});
  Tensor b = from_vector<float>({5, 6}, {2, 1});
  CHECK(concat({a, b}, 1).to_vector<float>() == std::vector<float>{1, 2, 5, 3, 4, 6});
  CHECK(concat({a, b.t()}, 0).to_vector<float>() == std::vector<float>{1, 2, 3, 4, 5, 6});
  CHECK(concat({a.t(), b.t()}, -2).to_vector<float>() == std::vector<float>{1, 3, 2, 4, 5, 6});
  CHECK(stack({a, a}, 0).shape() == Shape{2, 2, 2});
  CHECK(stack({a, mul(a, 10.0)}, 2).to_vector<float>() == std::vector<float>{1, 10, 2, 20, 3, 30, 4, 40});
  CHECK(stack({a, mul(a, 10.0)}, 1).to_vector<float>() == std::vector<float>{1, 2, 10, 20, 3, 4, 30, 40});
  Tensor x = arange(0.0, 7.0, 1.0, kFloat32);
  std::vector<Tensor> pieces = split(x, 3);
  REQUIRE(pieces.size() == 3);
  CHECK(pieces[0].to_vector<float>() == std::vector<float>{0, 1, 2});
  CHECK(pieces[2].to_vector<float>() == std::vector<float>{6});
  CHECK(pieces[1].storage() == x.storage());  // views
  std::vector<Tensor> sized = split(x, std::vector<int64_t>{2, 0, 5});
  REQUIRE(sized.size() == 3);
  CHECK(sized[1].numel() == 0);
  CHECK(sized[2].to_vector<float>() == std::vector<float>{2, 3, 4, 5, 6});
}

TEST_CASE("index_select gather one_hot", "[unit]") {
  Tensor x = from_vector<float>({1, 2, 3, 4, 5, 6}, {3, 2});
  CHECK(index_select(x, 0, from_vector<int64_t>({2, 0, 2})).to_vector<float>() == std::vector<float>{5, 6, 1, 2, 5, 6});
  CHECK(index_select(x, 1, from_vector<int64_t>({1})).to_vector<float>() == std::vector<float>{2, 4, 6});
  CHECK(index_select(x.t(), 1, from_vector<int64_t>({1})).to_vector<float>() == std::vector<float>{3, 4});
  CHECK(gather(x, 1, from_vector<int64_t>({1, 0, 0, 0, 1, 1}, {3, 2})).to_vector<float>() ==
        std::vector<float>{2, 1, 3, 3, 6, 6});
  CHECK(gather(x, 0, from_vector<int64_t>({2, 0}, {1, 2})).to_vector<float>() == std::vector<float>{5, 2});
  CHECK(one_hot(from_vector<int64_t>({2, 0}), 3).to_vector<float>() == std::vector<float>{0, 0, 1, 1, 0, 0});
  CHECK(one_hot(from_vector<int64_t>({1, 0, 1, 1}, {2, 2}), 2, kInt64).shape() == Shape{2, 2, 2});
}

TEST_CASE("pad positive and negative", "[unit]") {
  Tensor x = from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(pad(x, {1, 0}, -1.0).to_vector<float>() == std::vector<float>{-1, 1, 2, 3, -1, 4, 5, 6});
  CHECK(pad(x, {0, 0, 1, 1}).to_vector<float>() == std::vector<float>{0, 0, 0, 1, 2, 3, 4, 5, 6, 0, 0, 0});
  CHECK(pad(x, {-1, -1}).to_vector<float>() == std::vector<float>{2, 5});
  CHECK(pad(x, {1, -2, -1, 0}, 9.0).to_vector<float>() == std::vector<float>{9, 4});
  CHECK(pad(x, {-3, 0}).shape() == Shape{2, 0});
  CHECK(pad(zeros({1, 1, 2, 2}), {1, 1, 1, 1}).shape() == Shape{1, 1, 4, 4});
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
