// Forward values of matmul, linear and normalize (engine/ops/linear_algebra.h);
// kernels/cpu/linear_algebra.h lists the family's files.
// Expected values are hand-computed or come from the double-precision loops in
// tests/support/reference.h, never from the engine's own output.
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
