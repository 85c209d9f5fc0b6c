// Parity cases of the reductions: sum, mean, max, min, var over rows (inner == 1),
// columns (inner > 1), several dims and all of them, with and without keepdim, long enough
// to be split across blocks; integer sums; argmax/argmin (forward only) with ties and NaN.
//
// Tolerances (NMSE, see parity.h), and why:
//   0      max, min, argmax, argmin and integer sums pick or add exactly; their gradients
//          (an equality mask and a division) are exact too.
//   1e-13  float32 sums, means and variances: both devices accumulate in double, in
//          different orders, so a total can (rarely) round to the neighbouring float
//          (1 ulp <= 1.2e-7 relative, squared 1.4e-14); their gradients broadcast and
//          divide exactly.
//   1e-18  float64 sums, means and variances: the CPU adds serially, which over 10^5 to 10^6
//          values leaves errors of ~1e-14 to 1e-12 of the sum of magnitudes (measured: a
//          variance of 300001 values, 8e-13 relative on the CPU, 1e-15 on the GPU's tree);
//          after cancellation in a sum that can reach 1e-10 of the total. Still 1000 times
//          tighter than float32 precision.
// Where to look for the rest of the family: kernels/cpu/reduction.h.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "tests/parity/parity.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

namespace {

using Inputs = ParityInputs;

// The shapes every floating reduction runs over: (name, shape, dims, keepdim). Empty dims
// reduce everything.
struct ReductionShape {
  std::string name;
  Shape shape;
  Dims dims;
  bool keepdim;
};

std::vector<ReductionShape> reduction_shapes() {
  return {
      {"rows (37, 129) dim 1", {37, 129}, {1}, false},
      {"columns (37, 129) dim 0", {37, 129}, {0}, false},
      {"middle (5, 300, 33) dim 1 keepdim", {5, 300, 33}, {1}, true},
      {"dims 0 and 2 of (6, 7, 8)", {6, 7, 8}, {0, 2}, false},
      {"last two of (4, 9, 11) keepdim", {4, 9, 11}, {-2, -1}, true},
      {"all of (31, 67)", {31, 67}, {}, false},
      {"one element", {1}, {}, false},
      {"odd inner (3, 1000, 3) dim 1", {3, 1000, 3}, {1}, false},
      // Long reduced axes with few outputs: the axis is split across blocks, then combined.
      {"one long row (2, 300001) dim 1", {2, 300001}, {1}, false},
      {"all of 1 << 20", {1 << 20}, {}, false},
      {"few long columns (20011, 40) dim 0", {20011, 40}, {0}, false},
  };
}

struct FloatReduction {
  std::string name;
  std::function<Tensor(const Tensor&, const Dims&, bool)> op;
  bool sums;  // summation order matters (tolerance above 0)
};

std::vector<FloatReduction> float_reductions() {
  return {
      {"sum", [](const Tensor& x, const Dims& d, bool k) { return sum(x, d, k); }, true},
      {"mean", [](const Tensor& x, const Dims& d, bool k) { return mean(x, d, k); }, true},
      {"max", [](const Tensor& x, const Dims& d, bool k) { return max(x, d, k); }, false},
      {"min", [](const Tensor& x, const Dims& d, bool k) { return min(x, d, k); }, false},
      {"var", [](const Tensor& x, const Dims& d, bool k) { return var(x, d, 1, k); }, true},
      {"var biased", [](const Tensor& x, const Dims& d, bool k) { return var(x, d, 0, k); }, true},
  };
}

}  // namespace

TEST_CASE("floating reductions forward and backward", "[gpu]") {
  for (const FloatReduction& reduction : float_reductions()) {
    for (const ReductionShape& s : reduction_shapes()) {
      // The unbiased variance of one element is 0 / 0: NaN on both sides, and so is its gradient.
      const bool undefined_gradient = reduction.name == "var" && s.name == "one element";
      for (DType dtype : {kFloat32, kFloat64}) {
        const double tolerance = !reduction.sums ? 0.0 : dtype == kFloat32 ? 1e-13 : 1e-18;
        check_parity({.name = reduction.name + " " + s.name + dtype_suffix(dtype),
                      .make_inputs = [&](Generator& g) -> Inputs {
                        // Distinct values: max and min have one winner, so their gradients are defined.
                        Tensor x = reduction.sums ? random_normal(s.shape, g, dtype)
                                                  : random_distinct(s.shape, 1e-3, g, dtype);
                        return {x.set_requires_grad()};
                      },
                      .function = [&](const Inputs& in) { return reduction.op(in[0], s.dims, s.keepdim); },
                      .tolerance = tolerance,
                      .compare_backward = !undefined_gradient});
      }
    }
  }
}

TEST_CASE("reductions of strided views", "[gpu]") {
  check_parity({.name = "sum of a transposed view dim 1",
                .make_inputs = [](Generator& g) -> Inputs {
                  return {random_normal({50, 70}, g, kFloat32).set_requires_grad()};
                },
                .function = [](const Inputs& in) { return sum(in[0].t(), {1}); },
                .tolerance = 1e-13});
  check_parity({.name = "mean of a sliced view dims 0 and 1",
                .make_inputs = [](Generator& g) -> Inputs {
                  return {random_normal({9, 40, 6}, g, kFloat64).set_requires_grad()};
                },
                .function = [](const Inputs& in) { return mean(in[0].slice(1, 1, 39, 2), {0, 1}, true); },
                .tolerance = 1e-18});
}

TEST_CASE("max and min with NaN and infinities (forward)", "[gpu]") {
  for (DType dtype : {kFloat32, kFloat64}) {
    check_parity({.name = "max and min with NaN" + dtype_suffix(dtype),
                  .make_inputs = [dtype](Generator& g) -> Inputs {
                    Tensor x = random_normal({40, 513}, g, kFloat64);
                    Tensor nan_rows = lt(random_uniform({40, 1}, 0.0, 1.0, g), 0.3);
                    Tensor nan_places = lt(random_uniform({40, 513}, 0.0, 1.0, g), 0.01);
                    return {where(mul(nan_rows, nan_places), full_like(x, NAN), x).to(dtype)};
                  },
                  .function = [](const Inputs& in) {
                    // Rows and columns side by side: (40,) and (513,) joined as one 1-d result.
                    Tensor rows = max(in[0], {1});
                    Tensor columns = min(in[0], {0});
                    Tensor joined = empty({rows.numel() + columns.numel()}, TensorOptions(rows.dtype(), rows.device()));
                    joined.slice(0, 0, rows.numel()).copy_(rows);
                    joined.slice(0, rows.numel(), joined.numel()).copy_(columns);
                    return joined;
                  },
                  .tolerance = 0,
                  .compare_backward = false});
    check_parity({.name = "max of all -inf and min of all +inf" + dtype_suffix(dtype),
                  .make_inputs = [dtype](Generator&) -> Inputs { return {full({3, 7}, -INFINITY, dtype)}; },
                  .function = [](const Inputs& in) { return sub(max(in[0], {1}), min(neg(in[0]), {1})); },
                  .tolerance = 0,
                  .compare_backward = false});
  }
}

TEST_CASE("empty reductions", "[gpu]") {
  check_parity({.name = "sum over an empty dim is 0",
                .make_inputs = [](Generator&) -> Inputs { return {zeros({3, 0, 4})}; },
                .function = [](const Inputs& in) { return sum(in[0], {1}); },
                .tolerance = 0,
                .compare_backward = false});
  check_parity({.name = "mean over an empty dim is NaN",
                .make_inputs = [](Generator&) -> Inputs { return {zeros({3, 0})}; },
                .function = [](const Inputs& in) { return mean(in[0], {1}); },
                .tolerance = 0,
                .compare_backward = false});
}

TEST_CASE("integer sums into int64", "[gpu]") {
  for (DType dtype : {kInt32, kInt64, kUInt8}) {
    for (const ReductionShape& s : reduction_shapes()) {
      check_parity({.name = "integer sum " + s.name + dtype_suffix(dtype),
                    .make_inputs = [&](Generator& g) -> Inputs {
                      return {dtype == kUInt8 ? randint(0, 256, s.shape, dtype, g)
                                              : randint(-1000000, 1000000, s.shape, dtype, g)};
                    },
                    .function = [&](const Inputs& in) { return sum(in[0], s.dims, s.keepdim); },
                    .tolerance = 0,  // integer addition is exact in any order
                    .compare_backward = false});
    }
  }
}

TEST_CASE("argmax and argmin (forward)", "[gpu]") {
  struct ArgCase {
    std::string name;
    Shape shape;
    std::optional<int64_t> dim;
    bool keepdim;
  };
  const std::vector<ArgCase> cases = {
      {"rows", {37, 129}, 1, false},
      {"columns keepdim", {37, 129}, 0, true},
      {"middle", {5, 300, 33}, 1, false},
      {"flattened", {31, 67}, std::nullopt, false},
      // Split across blocks, with many ties: the first index must still win.
      {"long rows", {3, 300001}, 1, false},
      {"long columns", {20011, 40}, 0, false},
  };
  for (const ArgCase& c : cases) {
    for (DType dtype : {kFloat32, kFloat64}) {
      for (bool maximum : {true, false}) {
        const std::string name = std::string(maximum ? "argmax " : "argmin ") + c.name;
        auto op = [&c, maximum](const Tensor& x) {
          if (!c.dim) return maximum ? argmax(x) : argmin(x);
          return maximum ? argmax(x, *c.dim, c.keepdim) : argmin(x, *c.dim, c.keepdim);
        };
        // Values from a small set, so that the extremum appears several times per row.
        check_parity({.name = name + " with ties" + dtype_suffix(dtype),
                      .make_inputs = [&](Generator& g) -> Inputs { return {randint(-20, 21, c.shape, dtype, g)}; },
                      .function = [&](const Inputs& in) { return op(in[0]); },
                      .tolerance = 0,
                      .compare_backward = false});
        // NaN counts as the extremum: the first NaN of a row wins.
        check_parity({.name = name + " with NaN" + dtype_suffix(dtype),
                      .make_inputs = [&](Generator& g) -> Inputs {
                        Tensor x = randint(-20, 21, c.shape, kFloat64, g);
                        Tensor nan_places = lt(random_uniform(c.shape, 0.0, 1.0, g), 0.002);
                        return {where(nan_places, full_like(x, NAN), x).to(dtype)};
                      },
                      .function = [&](const Inputs& in) { return op(in[0]); },
                      .tolerance = 0,
                      .compare_backward = false});
      }
    }
  }
}
