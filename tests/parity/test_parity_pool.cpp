// Parity cases of the pooling ops (kernels/cuda/pool.cu). The max and average kernels
// compute the CPU's expressions in the CPU's order (the averages accumulate in double on
// both devices, the backward passes add the windows in the same (oh, ow) order), so they
// should agree bit for bit: the tolerances of 1e-14 only leave room for surprises in the
// last bit, while an element routed to the wrong place shows up as NMSE ~1e-2 or more.
// Max pooling inputs are pairwise distinct (random_distinct) so no tie can make the argmax
// differ between the devices.
// Where to look for the rest of the family: kernels/cpu/pool.h.
#include <catch2/catch.hpp>

#include "tests/parity/parity.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

namespace {

using Inputs = ParityInputs;

}  // namespace

TEST_CASE("max_pool2d 3x3 stride 2 padding 1 odd sizes", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs { return {parity_leaf(random_distinct({2, 3, 9, 11}, 0.01, g))}; },
                .function = [](const Inputs& in) {
                  return max_pool2d(in[0], {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}});
                },
                .tolerance = 1e-14});  // bit-identical: values copied, gradients summed in the same order
}

TEST_CASE("max_pool2d stride different from kernel, uneven padding", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs { return {parity_leaf(random_distinct({3, 2, 10, 7}, 0.01, g))}; },
                .function = [](const Inputs& in) {
                  // Windows overlap along W (stride 1 < kernel 3) and skip rows along H (stride 3 > kernel 2).
                  return max_pool2d(in[0], {.kernel = {2, 3}, .stride = {3, 1}, .padding = {1, 0}});
                },
                .tolerance = 1e-14});  // bit-identical, as above
}

TEST_CASE("max_pool2d all-negative input with NaN and -inf, padding never wins", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  // Every value is negative, so a zero from the padding would win if it counted.
                  Tensor x = sub(random_distinct({2, 2, 7, 6}, 0.01, g), 100.0);
                  double* v = x.data<double>();
                  v[3] = NAN;        // plane 0, row 0: the windows over it output NaN
                  v[4] = NAN;        // a second NaN in the same window: the first one wins
                  v[50] = -INFINITY;  // a -inf never beats a finite value
                  v[100] = NAN;
                  return {parity_leaf(x)};
                },
                .function = [](const Inputs& in) {
                  return max_pool2d(in[0], {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}});
                },
                .tolerance = 1e-14});  // NaN at the same places; the rest bit-identical
}

TEST_CASE("max_pool2d float64 default stride", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(random_distinct({2, 5, 8, 9}, 0.01, g), kFloat64)};
                },
                .function = [](const Inputs& in) { return max_pool2d(in[0], {.kernel = {2, 2}}); },
                .tolerance = 1e-28});  // bit-identical in double
}

TEST_CASE("max_pool2d large input, grid-stride loops", "[gpu]") {
  // 2M input elements: more threads than one grid launches (4224 blocks of 256), so the
  // backward kernel's grid-stride loop runs more than once per thread.
  check_parity({.make_inputs = [](Generator& g) -> Inputs { return {parity_leaf(random_distinct({8, 64, 64, 64}, 1.0, g))}; },
                .function = [](const Inputs& in) {
                  return max_pool2d(in[0], {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}});
                },
                .tolerance = 1e-14});  // bit-identical, as above
}

TEST_CASE("avg_pool2d count_include_pad", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs { return {parity_leaf(random_normal({2, 3, 9, 11}, g))}; },
                .function = [](const Inputs& in) {
                  return avg_pool2d(in[0], {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}, true);
                },
                .tolerance = 1e-14});  // double sums in the same order on both devices
}

TEST_CASE("avg_pool2d without count_include_pad", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs { return {parity_leaf(random_normal({2, 3, 9, 11}, g))}; },
                .function = [](const Inputs& in) {
                  return avg_pool2d(in[0], {.kernel = {3, 2}, .stride = {1, 2}, .padding = {1, 1}}, false);
                },
                .tolerance = 1e-14});  // as above; the edge windows divide by their in-bounds count
}

TEST_CASE("avg_pool2d float64 overlapping windows", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs { return {parity_leaf(random_normal({3, 2, 7, 8}, g), kFloat64)}; },
                .function = [](const Inputs& in) {
                  return avg_pool2d(in[0], {.kernel = {4, 3}, .stride = {1, 2}, .padding = {2, 1}}, false);
                },
                .tolerance = 1e-28});  // bit-identical in double
}

TEST_CASE("adaptive_avg_pool2d to non-divisible sizes", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs { return {parity_leaf(random_normal({2, 3, 10, 9}, g))}; },
                .function = [](const Inputs& in) { return adaptive_avg_pool2d(in[0], {3, 4}); },
                .tolerance = 1e-14});  // double sums in the same order; bins overlap by one row/column
}

TEST_CASE("adaptive_avg_pool2d to a larger size", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs { return {parity_leaf(random_normal({2, 3, 5, 7}, g))}; },
                .function = [](const Inputs& in) { return adaptive_avg_pool2d(in[0], {7, 3}); },
                .tolerance = 1e-14});  // each input row lands in one or two output rows; same order
}

TEST_CASE("adaptive_avg_pool2d to 1x1 float64", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs { return {parity_leaf(random_normal({4, 6, 7, 7}, g), kFloat64)}; },
                .function = [](const Inputs& in) { return adaptive_avg_pool2d(in[0], {1, 1}); },
                .tolerance = 1e-28});  // bit-identical in double
}

TEST_CASE("global_avg_pool2d", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs { return {parity_leaf(random_normal({4, 5, 7, 9}, g))}; },
                .function = [](const Inputs& in) { return global_avg_pool2d(in[0]); },
                .tolerance = 1e-10});  // a mean over 63 floats, reduced in another order on the GPU
}
