// Parity cases of batch_norm (kernels/cuda/batch_norm.cu): training and evaluation mode,
// (N, C) and (N, C, H, W) inputs, with and without the affine transform, and the running
// statistics a training step leaves behind; and of sync_batch_norm's kernels (local
// statistics, normalisation with merged ones, the backward sums, grad_x from summed ones)
// over mirrored ranks (tests/support/mirrored_ranks.h), which give them other ranks'
// statistics to merge and a global count larger than the local one.
//
// Tolerances: the CUDA kernels evaluate the CPU's expressions in double (two-pass
// variance, the same formulas for y and the gradients); only the order of the double
// additions differs, far below float32's rounding. So the float32 outputs agree to about
// one ulp (NMSE ~1e-15): 1e-12 catches any formula slip (a biased/unbiased mix-up in the
// running variance alone is ~1e-4) while leaving room for the rounding. float64: 1e-26.
// Where to look for the rest of the family: kernels/cpu/batch_norm.h.
#include <catch2/catch.hpp>

#include "tests/parity/parity.h"
#include "tests/support/mirrored_ranks.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

namespace {

using Inputs = ParityInputs;

constexpr double kFloatTolerance = 1e-12;   // the same double arithmetic, float results (see the top)
constexpr double kDoubleTolerance = 1e-26;  // the same, in double

struct BatchNormCase {
  Shape input;  // (N, C) or (N, C, H, W)
  bool training = true;
  bool affine = true;
  bool running_statistics = true;  // always in evaluation mode
  DType dtype = kFloat32;
  double tolerance = kFloatTolerance;
  // 0: compare y and the gradients; 1 / 2: compare running_mean / running_var after the call.
  int output = 0;
  int ranks = 0;  // > 0: sync_batch_norm as the last of that many mirrored ranks
};

// Inputs: x (values around 2, so the mean is far from 0 and a one-pass variance would
// show), weight and bias (or undefined), running mean and variance (or undefined).
void check_batch_norm(const std::string& name, const BatchNormCase& c) {
  const int64_t channels = c.input[1];
  check_parity({.name = name,
                .make_inputs = [c, channels](Generator& g) -> Inputs {
                  Inputs in = {parity_leaf(random_uniform(c.input, 0.5, 3.5, g), c.dtype)};
                  in.push_back(c.affine ? parity_leaf(random_uniform({channels}, 0.5, 1.5, g), c.dtype) : Tensor());
                  in.push_back(c.affine ? parity_leaf(random_normal({channels}, g), c.dtype) : Tensor());
                  in.push_back(c.running_statistics ? random_normal({channels}, g).to(c.dtype) : Tensor());
                  in.push_back(c.running_statistics ? random_uniform({channels}, 0.5, 2.0, g).to(c.dtype) : Tensor());
                  return in;
                },
                .function = [c](const Inputs& in) {
                  const BatchNormOptions options{.training = c.training, .momentum = 0.1, .eps = 1e-5};
                  MirroredRanks job(c.ranks - 1, c.ranks);
                  const Tensor y = c.ranks > 0 ? sync_batch_norm(in[0], in[3], in[4], in[1], in[2], options, job)
                                               : batch_norm(in[0], in[3], in[4], in[1], in[2], options);
                  return c.output == 0 ? y : in[2 + c.output];
                },
                .tolerance = c.tolerance,
                .compare_backward = c.output == 0});
}

}  // namespace

TEST_CASE("batch_norm training 4-D affine", "[gpu]") {
  check_batch_norm("batch_norm training [4, 3, 5, 6] affine", {.input = {4, 3, 5, 6}});
}

TEST_CASE("batch_norm training 4-D without affine", "[gpu]") {
  check_batch_norm("batch_norm training [3, 5, 4, 4] no affine", {.input = {3, 5, 4, 4}, .affine = false});
}

TEST_CASE("batch_norm training 2-D affine", "[gpu]") {
  check_batch_norm("batch_norm training [16, 10] affine", {.input = {16, 10}});
}

TEST_CASE("batch_norm training 2-D without affine or running statistics", "[gpu]") {
  check_batch_norm("batch_norm training [8, 6] bare",
                   {.input = {8, 6}, .affine = false, .running_statistics = false});
}

TEST_CASE("batch_norm training with large planes (several chunks per channel)", "[gpu]") {
  // 8 * 64 * 64 = 32768 elements per channel: the reduction splits each channel into chunks.
  check_batch_norm("batch_norm training [8, 4, 64, 64]", {.input = {8, 4, 64, 64}});
  check_batch_norm("batch_norm training [2, 1, 90, 70]", {.input = {2, 1, 90, 70}});
}

TEST_CASE("batch_norm training with many channels", "[gpu]") {
  check_batch_norm("batch_norm training [64, 2100]", {.input = {64, 2100}});
}

TEST_CASE("batch_norm evaluation 4-D affine", "[gpu]") {
  check_batch_norm("batch_norm eval [3, 4, 5, 5] affine", {.input = {3, 4, 5, 5}, .training = false});
}

TEST_CASE("batch_norm evaluation 2-D without affine", "[gpu]") {
  check_batch_norm("batch_norm eval [9, 7] no affine", {.input = {9, 7}, .training = false, .affine = false});
}

TEST_CASE("batch_norm evaluation with a batch of one", "[gpu]") {
  check_batch_norm("batch_norm eval [1, 6] affine", {.input = {1, 6}, .training = false});
}

TEST_CASE("batch_norm running mean after a training step", "[gpu]") {
  check_batch_norm("batch_norm running_mean [5, 3, 4, 4]", {.input = {5, 3, 4, 4}, .output = 1});
  check_batch_norm("batch_norm running_mean [12, 7]", {.input = {12, 7}, .affine = false, .output = 1});
}

TEST_CASE("batch_norm running variance after a training step (unbiased)", "[gpu]") {
  check_batch_norm("batch_norm running_var [5, 3, 4, 4]", {.input = {5, 3, 4, 4}, .output = 2});
  check_batch_norm("batch_norm running_var [12, 7]", {.input = {12, 7}, .affine = false, .output = 2});
}

TEST_CASE("batch_norm float64", "[gpu]") {
  check_batch_norm("batch_norm training [4, 3, 5, 6] float64",
                   {.input = {4, 3, 5, 6}, .dtype = kFloat64, .tolerance = kDoubleTolerance});
  check_batch_norm("batch_norm eval [4, 3, 5, 6] float64",
                   {.input = {4, 3, 5, 6}, .training = false, .dtype = kFloat64, .tolerance = kDoubleTolerance});
}

TEST_CASE("sync_batch_norm training over mirrored ranks", "[gpu]") {
  check_batch_norm("sync_batch_norm training [4, 3, 5, 6] affine, 1 rank", {.input = {4, 3, 5, 6}, .ranks = 1});
  check_batch_norm("sync_batch_norm training [4, 3, 5, 6] affine, rank 3 of 3", {.input = {4, 3, 5, 6}, .ranks = 3});
  check_batch_norm("sync_batch_norm training [16, 10] no affine, rank 2 of 2",
                   {.input = {16, 10}, .affine = false, .ranks = 2});
  check_batch_norm("sync_batch_norm training [8, 4, 64, 64], rank 2 of 2", {.input = {8, 4, 64, 64}, .ranks = 2});
  check_batch_norm("sync_batch_norm training [4, 3, 5, 6] float64, rank 2 of 2",
                   {.input = {4, 3, 5, 6}, .dtype = kFloat64, .tolerance = kDoubleTolerance, .ranks = 2});
}

TEST_CASE("sync_batch_norm running statistics over mirrored ranks (unbiased with the global count)", "[gpu]") {
  check_batch_norm("sync_batch_norm running_mean [5, 3, 4, 4], rank 3 of 3",
                   {.input = {5, 3, 4, 4}, .output = 1, .ranks = 3});
  check_batch_norm("sync_batch_norm running_var [5, 3, 4, 4], rank 3 of 3",
                   {.input = {5, 3, 4, 4}, .output = 2, .ranks = 3});
}
