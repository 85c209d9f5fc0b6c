// Parity cases of indexing and joining (kernels/cuda/indexing.cu, and copy_ for
// concat/stack/split/pad). Forward passes only move data, so they must be exact; the
// backward passes of index_select and gather add repeated indices with float atomics in an
// order that varies, so they get 1e-12 (float rounding of sums of a few terms).
// Where to look for the rest of the family: kernels/cpu/indexing.h.
#include <catch2/catch.hpp>

#include "engine/cuda.h"
#include "tests/parity/parity.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

namespace {

using Inputs = ParityInputs;

}  // namespace

TEST_CASE("index_select dim 0 with repeated indices", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(random_normal({6, 5, 4}, g)), from_vector<int64_t>({5, 0, 5, 2, 5})};
                },
                .function = [](const Inputs& in) { return index_select(in[0], 0, in[1]); },
                .tolerance = 1e-12});  // forward exact; backward adds row 5 three times by atomics
}

TEST_CASE("index_select middle dim with repeated indices", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(random_normal({3, 7, 4}, g)), from_vector<int64_t>({6, 6, 1, 0, 6})};
                },
                .function = [](const Inputs& in) { return index_select(in[0], 1, in[1]); },
                .tolerance = 1e-12});  // as above
}

TEST_CASE("index_select last dim of a transposed view", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(random_normal({9, 3, 4}, g)), from_vector<int64_t>({8, 0, 3, 3})};
                },
                .function = [](const Inputs& in) { return index_select(in[0].transpose(0, 2), 2, in[1]); },
                .tolerance = 1e-12});  // inner = 1: one element per index; as above
}

TEST_CASE("index_select large with many repeats, float64", "[gpu]") {
  // 1.2M output elements (more than one grid's threads) and 4000 draws from 500 rows, so
  // every row is added about eight times in the backward pass.
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(random_normal({500, 300}, g), kFloat64), randint(0, 500, {4000}, kInt64, g)};
                },
                .function = [](const Inputs& in) { return index_select(in[0], 0, in[1]); },
                .tolerance = 1e-26});  // double atomics in another order
}

TEST_CASE("index_select int32 and bfloat16 forward", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {randint(-50, 50, {4, 6, 3}, kInt32, g), randint(0, 6, {9}, kInt64, g)};
                },
                .function = [](const Inputs& in) { return index_select(in[0], 1, in[1]); },
                .tolerance = 0.0,  // pure data movement
                .compare_backward = false});
  check_parity({.name = "index_select bfloat16 forward",
                .make_inputs = [](Generator& g) -> Inputs {
                  return {random_normal({5, 7}, g).to(kBFloat16), randint(0, 5, {8}, kInt64, g)};
                },
                .function = [](const Inputs& in) { return index_select(in[0], 0, in[1]); },
                .tolerance = 0.0,  // pure data movement
                .compare_backward = false});
}

TEST_CASE("gather along each dim", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(random_normal({4, 6, 5}, g)), randint(0, 6, {4, 3, 5}, kInt64, g)};
                },
                .function = [](const Inputs& in) { return gather(in[0], 1, in[1]); },
                .tolerance = 1e-12});  // forward exact; backward scatter-adds repeats by atomics
  check_parity({.name = "gather dim 0",
                .make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(random_normal({4, 6, 5}, g)), randint(0, 4, {7, 6, 5}, kInt64, g)};
                },
                .function = [](const Inputs& in) { return gather(in[0], 0, in[1]); },
                .tolerance = 1e-12});  // as above
  check_parity({.name = "gather last dim",
                .make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(random_normal({4, 6, 5}, g)), randint(0, 5, {4, 6, 2}, kInt64, g)};
                },
                .function = [](const Inputs& in) { return gather(in[0], -1, in[1]); },
                .tolerance = 1e-12});  // as above
}

TEST_CASE("one_hot in several dtypes", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs { return {randint(0, 7, {2, 3}, kInt64, g)}; },
                .function = [](const Inputs& in) { return one_hot(in[0], 7); },
                .tolerance = 0.0,  // zeros and ones
                .compare_backward = false});
  check_parity({.name = "one_hot int64",
                .make_inputs = [](Generator& g) -> Inputs { return {randint(0, 4, {11}, kInt64, g)}; },
                .function = [](const Inputs& in) { return one_hot(in[0], 4, kInt64); },
                .tolerance = 0.0,
                .compare_backward = false});
  check_parity({.name = "one_hot uint8",
                .make_inputs = [](Generator& g) -> Inputs { return {randint(0, 300, {5}, kInt64, g)}; },
                .function = [](const Inputs& in) { return one_hot(in[0], 300, kUInt8); },
                .tolerance = 0.0,
                .compare_backward = false});
  check_parity({.name = "one_hot float64",
                .make_inputs = [](Generator& g) -> Inputs { return {randint(0, 3, {4, 2, 3}, kInt64, g)}; },
                .function = [](const Inputs& in) { return one_hot(in[0], 3, kFloat64); },
                .tolerance = 0.0,
                .compare_backward = false});
}

TEST_CASE("concat along a middle dim", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(random_normal({2, 3, 4}, g)), parity_leaf(random_normal({2, 1, 4}, g)),
                          parity_leaf(random_normal({2, 5, 4}, g))};
                },
                .function = [](const Inputs& in) { return concat({in[0], in[1], in[2]}, 1); },
                .tolerance = 0.0});  // copies, both ways
}

TEST_CASE("stack along the last dim", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(random_normal({3, 5}, g)), parity_leaf(random_normal({3, 5}, g))};
                },
                .function = [](const Inputs& in) { return stack({in[0], in[1]}, -1); },
                .tolerance = 0.0});  // copies, both ways
}

TEST_CASE("split and concat in another order", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs { return {parity_leaf(random_normal({3, 9, 2}, g))}; },
                .function = [](const Inputs& in) {
                  const std::vector<Tensor> pieces = split(in[0], std::vector<int64_t>{2, 3, 4}, 1);
                  const std::vector<Tensor> even = split(in[0], 4, 1);  // 4, 4, 1
                  return concat({pieces[2], pieces[0], pieces[1], even[2]}, 1);
                },
                .tolerance = 1e-14});  // copies; the last column's two gradient terms are summed by autograd
}

TEST_CASE("pad with positive and negative pads", "[gpu]") {
  check_parity({.make_inputs = [](Generator& g) -> Inputs { return {parity_leaf(random_normal({2, 3, 6, 7}, g))}; },
                .function = [](const Inputs& in) { return pad(in[0], {2, -1, -2, 3}, 0.5); },
                .tolerance = 0.0});  // a fill and a copy; the cropped border gets zero gradient
  check_parity({.name = "pad three dims",
                .make_inputs = [](Generator& g) -> Inputs { return {parity_leaf(random_normal({4, 5, 3}, g))}; },
                .function = [](const Inputs& in) { return pad(in[0], {1, 1, 0, -2, -1, 2}); },
                .tolerance = 0.0});
}

// Not a parity case: the range checks of CUDA index tensors run on the device without
// waiting for it (kernels/cuda/deferred_errors.h); the op returns, its kernels skip the bad
// indices, and the next synchronisation (here the copy to the host) reports the first bad
// value and its position, as the CPU's immediate check does.
TEST_CASE("out-of-range indices on the device name the value and its position", "[gpu]") {
  using Catch::Contains;
  REQUIRE(cuda_available());
  Generator generator(7);
  const Tensor x = randn({5, 4}, kFloat32, generator).to(Device::cuda());
  const Tensor bad_index = from_vector<int64_t>({0, 7, 2, 9}).to(Device::cuda());
  Tensor selected;
  REQUIRE_NOTHROW(selected = index_select(x, 0, bad_index));
  REQUIRE_THROWS_WITH(selected.cpu(), Contains("index_select") && Contains("index 7") && Contains("position 1") &&
                                          Contains("next synchronisation"));
  REQUIRE_THROWS_WITH(index_select(x, 1, from_vector<int64_t>({3, 0, -2}).to(Device::cuda())).cpu(),
                      Contains("index -2") && Contains("position 2"));
  REQUIRE_THROWS_WITH(gather(x, 1, from_vector<int64_t>({0, 1, 2, 3, 0, 0, 4, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3},
                                                        {5, 4})
                                       .to(Device::cuda()))
                          .cpu(),
                      Contains("gather") && Contains("index 4") && Contains("position 6"));
  REQUIRE_THROWS_WITH(one_hot(from_vector<int64_t>({1, 0, 5}).to(Device::cuda()), 3).cpu(),
                      Contains("one_hot") && Contains("label 5") && Contains("position 2"));
  const Tensor logits = randn({3, 4}, kFloat32, generator).to(Device::cuda());
  REQUIRE_THROWS_WITH(cross_entropy(logits, from_vector<int64_t>({0, 9, 1}).to(Device::cuda())).item(),
                      Contains("target 9") && Contains("row 1") && Contains("4 classes"));
  // The first of several bad ops is the one reported; cuda::synchronize() reports too.
  REQUIRE_THROWS_WITH(
      [&] {
        index_select(x, 0, from_vector<int64_t>({5}).to(Device::cuda()));
        one_hot(from_vector<int64_t>({9}).to(Device::cuda()), 3);
        cuda::synchronize();
      }(),
      Contains("index_select") && Contains("index 5"));
  // The ignored rows are skipped by the check, and the device is still usable after the errors.
  const Tensor loss = cross_entropy(logits, from_vector<int64_t>({-100, 3, -100}).to(Device::cuda()));
  const Tensor expected = cross_entropy(logits.cpu(), from_vector<int64_t>({-100, 3, -100}));
  CHECK(loss.item() == Approx(expected.item()).epsilon(1e-6));
  CHECK(index_select(x, 0, from_vector<int64_t>({4, 4}).to(Device::cuda())).cpu().to_vector<float>() ==
        index_select(x.cpu(), 0, from_vector<int64_t>({4, 4})).to_vector<float>());
}
