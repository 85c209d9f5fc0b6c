// Parity cases of the elementwise ops (kernels/cuda/elementwise.cu; kernels/cpu/elementwise.h
// lists the family's files) on contiguous tensors, views and broadcasts; the copy kernels'
// cases are tests/parity/test_parity_copy.cpp.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "tests/parity/parity.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

namespace {

using Inputs = ParityInputs;

}  // namespace

TEST_CASE("add broadcast odd sizes", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(random_normal({7, 1, 5}, g)), parity_leaf(random_normal({3, 1}, g))};
                },
                .function = [](const Inputs& in) { return add(in[0], in[1]); },
                .tolerance = 1e-12});
}

TEST_CASE("mul of a transposed view", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(random_normal({33, 17}, g)), parity_leaf(random_normal({17, 33}, g))};
                },
                .function = [](const Inputs& in) { return mul(in[0].t(), in[1]); },
                .tolerance = 1e-12});
}

TEST_CASE("exp log relu chain", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs { return {parity_leaf(random_away_from_zero({1000, 3}, 0.05, g))}; },
                .function = [](const Inputs& in) { return relu(log(add(exp(in[0]), 0.5))); },
                .tolerance = 1e-10});
}

// ---- the tables below: many cases per TEST_CASE, each reported on its own line ----------
//
// Tolerances (NMSE, see parity.h), and why:
//   0      the op and its gradient are IEEE-exact on both devices (negation, abs, sign,
//          relu, clamp, sqrt and division are correctly rounded; selects and copies move
//          bits): any difference at all is a bug.
//   1e-13  float32 results that are exact elementwise but pass through a sum (the gradient
//          of a broadcast input is reduced by sum_to): both sides sum in double, in
//          different orders, so a total may (rarely) round to the neighbouring float
//          (1 ulp <= 1.2e-7 relative, squared 1.4e-14).
//   1e-12  float32 transcendentals (exp, log, pow): CUDA's expf/logf/powf are within 1-2
//          ulp of glibc's, so each element may differ by ~2e-7 relative (NMSE ~1e-13).
//   1e-26  float64 transcendentals (1-2 ulp of 1e-16 each).
//   1e-22  float64 results that pass through a sum: the summation orders differ, and after
//          cancellation (a gradient summed over a thousand broadcast copies) the totals can
//          differ by ~1e-13 relative.

namespace {

// A float tensor with NaNs at about a tenth of its elements (everything else normal).
Tensor with_nans(const Shape& shape, Generator& g, DType dtype) {
  Tensor x = random_normal(shape, g, kFloat64);
  Tensor pick = lt(random_uniform(shape, 0.0, 1.0, g), 0.1);
  return where(pick, full_like(x, NAN), x).to(dtype);
}

struct UnaryCase {
  std::string name;
  std::function<Tensor(const Tensor&)> op;
  std::function<Tensor(Generator&, DType)> input;
  double tolerance_float32;
  double tolerance_float64;
};

std::vector<UnaryCase> unary_cases() {
  const Shape shape{37, 29};
  auto normal = [shape](Generator& g, DType d) { return random_normal(shape, g, d); };
  auto positive = [shape](Generator& g, DType d) { return random_uniform(shape, 0.1, 10.0, g, d); };
  auto nonzero = [shape](Generator& g, DType d) { return random_away_from_zero(shape, 0.05, g, d); };
  return {
      {"neg", [](const Tensor& x) { return neg(x); }, normal, 0, 0},
      {"exp", [](const Tensor& x) { return exp(x); }, normal, 1e-12, 1e-26},
      {"log", [](const Tensor& x) { return log(x); }, positive, 1e-12, 1e-26},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, positive, 0, 0},
      // The gradient is -0.5 g y^3 with y^3 from pow(): transcendental.
      {"rsqrt", [](const Tensor& x) { return rsqrt(x); }, positive, 1e-12, 1e-26},
      {"abs", [](const Tensor& x) { return abs(x); }, nonzero, 0, 0},
      {"sign", [](const Tensor& x) { return sign(x); }, normal, 0, 0},
      {"relu", [](const Tensor& x) { return relu(x); }, nonzero, 0, 0},
      {"pow 2.5", [](const Tensor& x) { return pow(x, 2.5); }, positive, 1e-12, 1e-26},
      {"pow 3 of negatives too", [](const Tensor& x) { return pow(x, 3.0); }, normal, 1e-12, 1e-26},
      {"clamp", [](const Tensor& x) { return clamp(x, -0.5, 0.7); },
       [shape](Generator& g, DType d) { return random_away_from_points(shape, -2.0, 2.0, {-0.5, 0.7}, 0.01, g, d); },
       0, 0},
  };
}

}  // namespace

TEST_CASE("unary ops forward and backward, float32 and float64", "[gpu]") {
  for (const UnaryCase& c : unary_cases()) {
    for (DType dtype : {kFloat32, kFloat64}) {
      check_parity({.name = c.name + dtype_suffix(dtype),
                    .make_inputs = [&](Generator& g) -> Inputs { return {c.input(g, dtype).set_requires_grad()}; },
                    .function = [&](const Inputs& in) { return c.op(in[0]); },
                    .tolerance = dtype == kFloat32 ? c.tolerance_float32 : c.tolerance_float64});
    }
  }
}

TEST_CASE("unary ops on strided views", "[gpu]") {
  // Transposed, sliced with a step and offset by one element: the strided path.
  check_parity({.name = "exp of a transposed slice",
                .make_inputs = [](Generator& g) -> Inputs { return {parity_leaf(random_normal({40, 33}, g))}; },
                .function = [](const Inputs& in) { return exp(in[0].slice(0, 1, 40, 3).t()); },
                .tolerance = 1e-12});
  check_parity({.name = "relu of a permuted 4-d view",
                .make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(random_away_from_zero({3, 5, 7, 9}, 0.05, g))};
                },
                .function = [](const Inputs& in) { return relu(in[0].permute({3, 1, 0, 2})); },
                .tolerance = 0});
}

TEST_CASE("NaN propagation", "[gpu]") {
  const Shape shape{13, 31};
  const std::vector<std::pair<std::string, std::function<Tensor(const Inputs&)>>> ops = {
      {"relu", [](const Inputs& in) { return relu(in[0]); }},
      {"clamp", [](const Inputs& in) { return clamp(in[0], -0.3, 0.4); }},
      {"sign", [](const Inputs& in) { return sign(in[0]); }},
      {"abs", [](const Inputs& in) { return abs(in[0]); }},
      {"maximum", [](const Inputs& in) { return maximum(in[0], in[1]); }},
      {"minimum", [](const Inputs& in) { return minimum(in[0], in[1]); }},
      {"maximum broadcast", [](const Inputs& in) { return maximum(in[0], in[1].slice(0, 0, 1)); }},
  };
  for (const auto& [name, op] : ops) {
    for (DType dtype : {kFloat32, kFloat64}) {
      check_parity({.name = "nan " + name + dtype_suffix(dtype),
                    .make_inputs = [&](Generator& g) -> Inputs {
                      return {with_nans(shape, g, dtype), with_nans(shape, g, dtype)};
                    },
                    .function = op,
                    .tolerance = 0});  // NaN positions must match; the rest is exact
    }
  }
}

TEST_CASE("binary float ops with broadcasting and views", "[gpu]") {
  struct BinaryCase {
    std::string name;
    std::function<Tensor(const Tensor&, const Tensor&)> op;
    bool positive_base;  // pow needs a > 0
    double tolerance_float32, tolerance_float64;
  };
  const std::vector<BinaryCase> cases = {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }, false, 1e-13, 1e-22},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }, false, 1e-13, 1e-22},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }, false, 1e-13, 1e-22},
      {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }, false, 1e-13, 1e-22},
      {"pow", [](const Tensor& a, const Tensor& b) { return pow(a, b); }, true, 1e-12, 1e-22},
      {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); }, false, 1e-13, 1e-22},
      {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); }, false, 1e-13, 1e-22},
  };
  for (const BinaryCase& c : cases) {
    for (DType dtype : {kFloat32, kFloat64}) {
      auto operand = [&](const Shape& shape, Generator& g) {
        Tensor x = c.positive_base ? random_uniform(shape, 0.5, 2.0, g, dtype)
                                   : random_away_from_zero(shape, 0.1, g, dtype);
        return x.set_requires_grad();
      };
      const double tolerance = dtype == kFloat32 ? c.tolerance_float32 : c.tolerance_float64;
      // Broadcasting on both sides: (7, 1, 5) with (3, 1) -> (7, 3, 5).
      check_parity({.name = c.name + " broadcast" + dtype_suffix(dtype),
                    .make_inputs = [&](Generator& g) -> Inputs { return {operand({7, 1, 5}, g), operand({3, 1}, g)}; },
                    .function = [&](const Inputs& in) { return c.op(in[0], in[1]); },
                    .tolerance = tolerance});
      // A per-channel operand against NCHW: the bias-add pattern.
      check_parity({.name = c.name + " per channel" + dtype_suffix(dtype),
                    .make_inputs = [&](Generator& g) -> Inputs {
                      return {operand({4, 6, 5, 3}, g), operand({6, 1, 1}, g)};
                    },
                    .function = [&](const Inputs& in) { return c.op(in[0], in[1]); },
                    .tolerance = tolerance});
      // Non-contiguous on both sides: a transpose against a stepped slice.
      check_parity({.name = c.name + " views" + dtype_suffix(dtype),
                    .make_inputs = [&](Generator& g) -> Inputs { return {operand({19, 23}, g), operand({23, 40}, g)}; },
                    .function = [&](const Inputs& in) { return c.op(in[0].t(), in[1].slice(1, 1, 39, 2)); },
                    .tolerance = tolerance});
      // A scalar operand (x op 0-d): the contiguous path with a broadcast element.
      check_parity({.name = c.name + " scalar" + dtype_suffix(dtype),
                    .make_inputs = [&](Generator& g) -> Inputs { return {operand({1001}, g), operand({}, g)}; },
                    .function = [&](const Inputs& in) { return c.op(in[0], in[1]); },
                    .tolerance = tolerance});
    }
  }
}

TEST_CASE("binary ops with double scalars", "[gpu]") {
  check_parity({.name = "x * 2 + 0.5 - 1 / x",
                .make_inputs = [](Generator& g) -> Inputs { return {parity_leaf(random_away_from_zero({515}, 0.1, g))}; },
                .function = [](const Inputs& in) { return sub(add(mul(in[0], 2.0), 0.5), 1.0 / in[0]); },
                .tolerance = 0});
}

TEST_CASE("integer binary ops", "[gpu]") {
  struct IntegerCase {
    std::string name;
    std::function<Tensor(const Tensor&, const Tensor&)> op;
  };
  const std::vector<IntegerCase> cases = {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }},
      {"div (some by zero)", [](const Tensor& a, const Tensor& b) { return div(a, b); }},
      {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); }},
      {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); }},
      {"pow", [](const Tensor& a, const Tensor& b) { return pow(a, b); }},
  };
  for (const IntegerCase& c : cases) {
    for (DType dtype : {kInt32, kInt64, kUInt8}) {
      const bool is_pow = c.name == "pow";
      const bool is_div = c.name.starts_with("div");
      const bool is_unsigned = dtype == kUInt8;
      // uint8 wraps modulo 256 on both sides; pow stays small enough to be exact in double;
      // the divisors of div come from a small range so that zeros are common.
      const int64_t a_low = is_unsigned ? 0 : (is_pow ? -4 : -50);
      const int64_t a_high = is_unsigned ? (is_pow ? 5 : 256) : (is_pow ? 5 : 50);
      const int64_t b_low = is_pow || is_unsigned ? 0 : (is_div ? -3 : -50);
      const int64_t b_high = is_pow ? (is_unsigned ? 4 : 6) : (is_div ? 4 : a_high);
      check_parity({.name = "int " + c.name + dtype_suffix(dtype),
                    .make_inputs = [&](Generator& g) -> Inputs {
                      return {randint(a_low, a_high, {9, 1, 257}, dtype, g), randint(b_low, b_high, {5, 1}, dtype, g)};
                    },
                    .function = [&](const Inputs& in) { return c.op(in[0], in[1]); },
                    .tolerance = 0});  // integer arithmetic is exact
    }
  }
}

TEST_CASE("comparisons (forward only)", "[gpu]") {
  // Values from a small integer set, so that equal elements (ties) are common.
  const std::vector<std::pair<std::string, std::function<Tensor(const Tensor&, const Tensor&)>>> ops = {
      {"eq", [](const Tensor& a, const Tensor& b) { return eq(a, b); }},
      {"ne", [](const Tensor& a, const Tensor& b) { return ne(a, b); }},
      {"lt", [](const Tensor& a, const Tensor& b) { return lt(a, b); }},
      {"le", [](const Tensor& a, const Tensor& b) { return le(a, b); }},
      {"gt", [](const Tensor& a, const Tensor& b) { return gt(a, b); }},
      {"ge", [](const Tensor& a, const Tensor& b) { return ge(a, b); }},
  };
  for (const auto& [name, op] : ops) {
    for (DType dtype : {kFloat32, kFloat64, kInt32, kInt64, kUInt8}) {
      check_parity({.name = name + " broadcast" + dtype_suffix(dtype),
                    .make_inputs = [&](Generator& g) -> Inputs {
                      return {randint(0, 4, {6, 1, 131}, dtype, g), randint(0, 4, {5, 1}, dtype, g)};
                    },
                    .function = [&](const Inputs& in) { return op(in[0], in[1]); },
                    .tolerance = 0,
                    .compare_backward = false});
    }
  }
  check_parity({.name = "gt against a scalar, strided",
                .make_inputs = [](Generator& g) -> Inputs { return {random_normal({50, 21}, g, kFloat32)}; },
                .function = [](const Inputs& in) { return gt(in[0].t(), 0.25); },
                .tolerance = 0,
                .compare_backward = false});
  check_parity({.name = "int32 lt 2.5 (compared in float64)",
                .make_inputs = [](Generator& g) -> Inputs { return {randint(-5, 6, {99}, kInt32, g)}; },
                .function = [](const Inputs& in) { return lt(in[0], 2.5); },
                .tolerance = 0,
                .compare_backward = false});
  check_parity({.name = "eq with NaNs",
                .make_inputs = [](Generator& g) -> Inputs { return {with_nans({77}, g, kFloat32)}; },
                .function = [](const Inputs& in) { return eq(in[0], in[0]); },
                .tolerance = 0,
                .compare_backward = false});
}

TEST_CASE("where with broadcasting", "[gpu]") {
  for (DType dtype : {kFloat32, kFloat64}) {
    check_parity({.name = "where broadcast" + dtype_suffix(dtype),
                  .make_inputs = [&](Generator& g) -> Inputs {
                    return {randint(0, 2, {4, 1, 9}, kUInt8, g), random_normal({3, 9}, g, dtype).set_requires_grad(),
                            random_normal({4, 3, 1}, g, dtype).set_requires_grad()};
                  },
                  .function = [](const Inputs& in) { return where(in[0], in[1], in[2]); },
                  .tolerance = dtype == kFloat32 ? 1e-13 : 1e-22});  // the gradients are summed over broadcasts
    check_parity({.name = "where contiguous" + dtype_suffix(dtype),
                  .make_inputs = [&](Generator& g) -> Inputs {
                    return {randint(0, 2, {4099}, kUInt8, g), random_normal({4099}, g, dtype).set_requires_grad(),
                            random_normal({4099}, g, dtype).set_requires_grad()};
                  },
                  .function = [](const Inputs& in) { return where(in[0], in[1], in[2]); },
                  .tolerance = 0});
  }
  check_parity({.name = "where int64 with a scalar",
                .make_inputs = [](Generator& g) -> Inputs {
                  return {randint(0, 2, {5, 17}, kUInt8, g), randint(-100, 100, {5, 17}, kInt64, g)};
                },
                .function = [](const Inputs& in) {
                  return where(in[0], in[1], scalar_tensor(-7.0, TensorOptions(kInt64, in[1].device())));
                },
                .tolerance = 0,
                .compare_backward = false});
}

TEST_CASE("odd sizes and the vector path's tail", "[gpu]") {
  // 1 and 3 are below one float4; 1023 and 4097 leave a tail; 5000003 makes every thread
  // go round the grid-stride loop more than once.
  for (int64_t n : {int64_t{1}, int64_t{3}, int64_t{1023}, int64_t{4097}, int64_t{5000003}}) {
    const std::string size = " n=" + std::to_string(n);
    check_parity({.name = "add" + size,
                  .make_inputs = [n](Generator& g) -> Inputs {
                    return {parity_leaf(random_normal({n}, g)), parity_leaf(random_normal({n}, g))};
                  },
                  .function = [](const Inputs& in) { return add(in[0], in[1]); },
                  .tolerance = 0});
    check_parity({.name = "relu" + size,
                  .make_inputs = [n](Generator& g) -> Inputs {
                    return {parity_leaf(random_away_from_zero({n}, 0.01, g))};
                  },
                  .function = [](const Inputs& in) { return relu(in[0]); },
                  .tolerance = 0});
    check_parity({.name = "exp float64" + size,
                  .make_inputs = [n](Generator& g) -> Inputs { return {random_normal({n}, g).set_requires_grad()}; },
                  .function = [](const Inputs& in) { return exp(in[0]); },
                  .tolerance = 1e-26});
    check_parity({.name = "uint8 add (16 per pack)" + size,
                  .make_inputs = [n](Generator& g) -> Inputs {
                    return {randint(0, 256, {n}, kUInt8, g), randint(0, 256, {n}, kUInt8, g)};
                  },
                  .function = [](const Inputs& in) { return add(in[0], in[1]); },
                  .tolerance = 0});
  }
}

TEST_CASE("misaligned views fall back from the vector path", "[gpu]") {
  // slice(0, 1, ...) starts one element into the storage: no longer 16-byte aligned.
  check_parity({.name = "add of views offset by one element",
                .make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(random_normal({4098}, g)), parity_leaf(random_normal({4098}, g))};
                },
                .function = [](const Inputs& in) { return add(in[0].slice(0, 1, 4098), in[1].slice(0, 1, 4098)); },
                .tolerance = 0});
  check_parity({.name = "mul of an aligned and a misaligned operand",
                .make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(random_normal({1029}, g)), parity_leaf(random_normal({1030}, g))};
                },
                .function = [](const Inputs& in) { return mul(in[0], in[1].slice(0, 1, 1030)); },
                .tolerance = 0});
  check_parity({.name = "relu of a view offset by three elements",
                .make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(random_away_from_zero({2003}, 0.01, g))};
                },
                .function = [](const Inputs& in) { return relu(in[0].slice(0, 3, 2003)); },
                .tolerance = 0});
  check_parity({.name = "bfloat16 conversion of a misaligned view",
                .make_inputs = [](Generator& g) -> Inputs { return {random_normal({1031}, g, kFloat32)}; },
                .function = [](const Inputs& in) { return in[0].slice(0, 1, 1031).to(kBFloat16); },
                .tolerance = 0});
}

TEST_CASE("large strided ops go round the grid-stride loop", "[gpu]") {
  check_parity({.name = "add of a transposed 2048 x 1031 and a row",
                .make_inputs = [](Generator& g) -> Inputs {
                  return {random_normal({1031, 2048}, g, kFloat32), random_normal({1031}, g, kFloat32)};
                },
                .function = [](const Inputs& in) { return add(in[0].t(), in[1]); },
                .tolerance = 0,
                .compare_backward = false});
}
