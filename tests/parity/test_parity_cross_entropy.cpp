// Parity cases of the softmax family and the classification losses
// (kernels/cuda/cross_entropy.cu, plus the elementwise and reduction ops cross_entropy is built from).
// log_softmax accumulates in float on the GPU for float32 and in double on the CPU, so
// float32 cases agree to a few ulps per element (~1e-7 relative, NMSE ~1e-13): tolerance
// 1e-10. float64 cases differ only in the order of the row sums: tolerance 1e-24.
// Where to look for the rest of the family: kernels/cpu/cross_entropy.h.
#include <catch2/catch.hpp>

#include "tests/parity/parity.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

namespace {

using Inputs = ParityInputs;

}  // namespace

TEST_CASE("log_softmax over the last dim", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs { return {parity_leaf(mul(random_normal({37, 101}, g), 3.0))}; },
                .function = [](const Inputs& in) { return log_softmax(in[0], -1); },
                .tolerance = 1e-10});  // float accumulation vs the CPU's double
}

TEST_CASE("log_softmax over dim 1 of a 4-D tensor", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs { return {parity_leaf(mul(random_normal({2, 7, 5, 3}, g), 3.0))}; },
                .function = [](const Inputs& in) { return log_softmax(in[0], 1); },
                .tolerance = 1e-10});  // the per-column path (inner = 15), float accumulation
}

TEST_CASE("log_softmax float64 wide rows", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(mul(random_normal({13, 1000}, g), 4.0), kFloat64)};
                },
                .function = [](const Inputs& in) { return log_softmax(in[0], 1); },
                .tolerance = 1e-24});  // double on both sides, sums in another order
}

TEST_CASE("log_softmax many narrow rows, grid-stride loops", "[gpu]") {
  // 40000 rows of 10 classes: 22 lanes of each warp idle, and more warps than one grid holds.
  check_parity({.make_inputs = [](Generator& g) -> Inputs { return {parity_leaf(random_normal({40000, 10}, g))}; },
                .function = [](const Inputs& in) { return log_softmax(in[0], -1); },
                .tolerance = 1e-10});  // float accumulation vs the CPU's double
}

TEST_CASE("log_softmax with -inf entries", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  Tensor x = random_normal({6, 9}, g);
                  x.data<double>()[3] = -INFINITY;   // one masked logit
                  x.data<double>()[20] = -INFINITY;
                  return {x.to(kFloat32)};
                },
                .function = [](const Inputs& in) { return log_softmax(in[0], -1); },
                .tolerance = 1e-10});  // -inf must stay at the same places; the rest as above
}

TEST_CASE("softmax over dim 0 of a 3-D tensor", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs { return {parity_leaf(random_normal({6, 4, 5}, g))}; },
                .function = [](const Inputs& in) { return softmax(in[0], 0); },
                .tolerance = 1e-10});  // float accumulation, then exp
}

TEST_CASE("softmax over the last dim", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs { return {parity_leaf(random_normal({9, 33}, g))}; },
                .function = [](const Inputs& in) { return softmax(in[0], -1); },
                .tolerance = 1e-10});  // float accumulation, then exp
}

TEST_CASE("cross_entropy with class indices", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(mul(random_normal({64, 10}, g), 2.0)), randint(0, 10, {64}, kInt64, g)};
                },
                .function = [](const Inputs& in) { return cross_entropy(in[0], in[1]); },
                .tolerance = 1e-10});  // log_softmax in float, then a float mean in another order
}

TEST_CASE("cross_entropy float64 sum reduction", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(random_normal({31, 17}, g), kFloat64), randint(0, 17, {31}, kInt64, g)};
                },
                .function = [](const Inputs& in) {
                  return cross_entropy(in[0], in[1], {.reduction = Reduction::Sum});
                },
                .tolerance = 1e-24});  // double throughout, sums in another order
}

TEST_CASE("cross_entropy with label smoothing", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(random_normal({40, 12}, g)), randint(0, 12, {40}, kInt64, g)};
                },
                .function = [](const Inputs& in) {
                  return cross_entropy(in[0], in[1], {.label_smoothing = 0.1});
                },
                .tolerance = 1e-10});  // as with class indices
}

TEST_CASE("cross_entropy with ignore_index rows", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  Tensor targets = randint(0, 8, {24}, kInt64, g);
                  int64_t* t = targets.data<int64_t>();
                  t[0] = t[5] = t[17] = -100;  // the default ignore_index
                  return {parity_leaf(random_normal({24, 8}, g)), targets};
                },
                .function = [](const Inputs& in) { return cross_entropy(in[0], in[1], {.label_smoothing = 0.2}); },
                .tolerance = 1e-10});  // the mean over the 21 counted rows, float as above
}

TEST_CASE("cross_entropy with an in-range ignore_index, no reduction", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(random_normal({30, 5}, g)), randint(0, 5, {30}, kInt64, g)};
                },
                .function = [](const Inputs& in) {
                  // Every row whose target is class 3 is ignored (loss 0, gradient 0).
                  return cross_entropy(in[0], in[1], {.ignore_index = 3, .reduction = Reduction::None});
                },
                .tolerance = 1e-10});  // log_softmax in float
}

TEST_CASE("cross_entropy with soft targets and smoothing", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  Tensor targets = softmax(mul(random_normal({20, 6}, g), 2.0), 1).to(kFloat32);
                  return {parity_leaf(random_normal({20, 6}, g)), targets};
                },
                .function = [](const Inputs& in) { return cross_entropy(in[0], in[1], {.label_smoothing = 0.2}); },
                .tolerance = 1e-10});  // log_softmax in float, then float products and sums
}

TEST_CASE("nll_loss on log-probabilities, no reduction", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(random_normal({50, 7}, g)), randint(0, 7, {50}, kInt64, g)};
                },
                .function = [](const Inputs& in) {
                  return nll_loss(in[0], in[1], {.label_smoothing = 0.3, .reduction = Reduction::None});
                },
                .tolerance = 1e-14});  // the CPU's double expression in the CPU's order: bit-identical
}

TEST_CASE("nll_loss mean with ignored rows", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  Tensor targets = randint(0, 9, {33}, kInt64, g);
                  targets.data<int64_t>()[7] = -1;
                  targets.data<int64_t>()[32] = -1;
                  return {parity_leaf(random_normal({33, 9}, g)), targets};
                },
                .function = [](const Inputs& in) { return nll_loss(in[0], in[1], {.ignore_index = -1}); },
                .tolerance = 1e-10});  // a float mean over 31 rows, summed in another order
}
