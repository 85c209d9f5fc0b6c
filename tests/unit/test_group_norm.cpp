// group_norm (engine/ops/group_norm.h) on the CPU against a float64 reference written here
// as plain loops (Wu & He 2018 eq. 1-3 and 6-7; the gradients by the chain rule through the
// mean and 1 / sqrt(var + eps)), plus the fused ReLU, large offsets, degenerate groups, bad
// input, the module nn::GroupNorm, and the fast float32 CPU kernel against the reference. kernels/cpu/group_norm.h lists the family's files (the
// CUDA twin is compared with these CPU ops by tests/parity/test_parity_group_norm.cpp).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "engine/nn/layers.h"
#include "engine/ops.h"
#include "kernels/cpu/reference/reference_kernels.h"
#include "tests/support/reference.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;
using Catch::Matchers::Contains;

namespace {

// ---- float64 references ---------------------------------------------------------------------

// y = group_norm(x) and, for L = sum(y * direction), dL/dx, dL/dgamma, dL/dbeta.
struct GroupNormReference {
  std::vector<double> y, dx, dgamma, dbeta;
};

GroupNormReference group_norm_reference(const Tensor& x_tensor, int64_t groups, const Tensor& gamma_tensor,
                                        const Tensor& beta_tensor, double eps, bool relu,
                                        const Tensor& direction_tensor) {
  const std::vector<double> x = x_tensor.to_vector<double>(), r = direction_tensor.to_vector<double>();
  const int64_t batch = x_tensor.size(0), channels = x_tensor.size(1);
  const int64_t spatial = x_tensor.numel() / (batch * channels), per_group = channels / groups;
  const std::vector<double> gamma =
      gamma_tensor.defined() ? gamma_tensor.to_vector<double>() : std::vector<double>(channels, 1.0);
  const std::vector<double> beta =
      beta_tensor.defined() ? beta_tensor.to_vector<double>() : std::vector<double>(channels, 0.0);
  GroupNormReference out{std::vector<double>(x.size()), std::vector<double>(x.size()),
                         std::vector<double>(channels, 0.0), std::vector<double>(channels, 0.0)};
  const auto at = [&](int64_t n, int64_t c, int64_t s) {
    return static_cast<size_t>((n * channels + c) * spatial + s);
  };
  const double count = static_cast<double>(per_group * spatial);
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t c0 = g * per_group, c1 = c0 + per_group;
      double mean = 0.0, variance = 0.0;
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t s = 0; s < spatial; ++s) mean += x[at(n, c, s)];
      mean /= count;
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t s = 0; s < spatial; ++s) variance += (x[at(n, c, s)] - mean) * (x[at(n, c, s)] - mean);
      variance /= count;
      const double invstd = 1.0 / std::sqrt(variance + eps);
      // Forward, and the upstream gradient reaching the affine output (0 where the ReLU is off).
      double mean_dxhat = 0.0, mean_dxhat_xhat = 0.0;  // dL/dxhat = gamma * d, averaged over the group
      for (int64_t c = c0; c < c1; ++c) {
        for (int64_t s = 0; s < spatial; ++s) {
          const size_t i = at(n, c, s);
          const double xhat = (x[i] - mean) * invstd;
          const double pre = gamma[c] * xhat + beta[c];
          out.y[i] = relu ? std::max(pre, 0.0) : pre;
          const double d = relu && pre <= 0.0 ? 0.0 : r[i];
          out.dbeta[c] += d;
          out.dgamma[c] += d * xhat;
          mean_dxhat += gamma[c] * d / count;
          mean_dxhat_xhat += gamma[c] * d * xhat / count;
        }
      }
      // dL/dx = invstd * (dL/dxhat - mean(dL/dxhat) - xhat * mean(dL/dxhat * xhat)), the
      // chain rule through mean and invstd (both depend on every x of the group).
      for (int64_t c = c0; c < c1; ++c) {
        for (int64_t s = 0; s < spatial; ++s) {
          const size_t i = at(n, c, s);
          const double xhat = (x[i] - mean) * invstd;
          const double pre = gamma[c] * xhat + beta[c];
          const double d = relu && pre <= 0.0 ? 0.0 : r[i];
          out.dx[i] = invstd * (gamma[c] * d - mean_dxhat - xhat * mean_dxhat_xhat);
        }
      }
    }
  }
  return out;
}

// Runs group_norm forward and backward (seeded with a random direction) on x and compares
// y and every gradient with the float64 reference of the same (rounded) inputs. A negative
// gradient_tolerance means the same as tolerance.
void check_group_norm(const Shape& shape, int64_t groups, DType dtype, bool affine, bool relu, double offset,
                      double tolerance, Generator& gen, double gradient_tolerance = -1.0) {
  if (gradient_tolerance < 0) gradient_tolerance = tolerance;
  INFO("group_norm " << shape_string(shape) << " groups " << groups << " " << dtype_name(dtype)
                     << (affine ? " affine" : "") << (relu ? " relu" : "") << " offset " << offset);
  const int64_t channels = shape[1];
  Tensor x = add(random_normal(shape, gen), offset).to(dtype).set_requires_grad();
  Tensor gamma = affine ? random_uniform({channels}, 0.5, 1.5, gen, dtype).set_requires_grad() : Tensor();
  Tensor beta = affine ? random_normal({channels}, gen, dtype).set_requires_grad() : Tensor();
  const Tensor direction = random_normal(shape, gen, dtype);
  const Tensor y = group_norm(x, groups, gamma, beta, 1e-5, relu);
  REQUIRE(y.dtype() == dtype);
  REQUIRE(y.shape() == shape);
  y.backward(direction);
  const GroupNormReference expected = group_norm_reference(x, groups, gamma, beta, 1e-5, relu, direction);
  CHECK(error_of(y, expected.y) <= tolerance);
  CHECK(error_of(x.grad(), expected.dx) <= gradient_tolerance);
  if (affine) {
    CHECK(error_of(gamma.grad(), expected.dgamma) <= gradient_tolerance);
    CHECK(error_of(beta.grad(), expected.dbeta) <= gradient_tolerance);
  }
}

}  // namespace

// ---- group_norm --------------------------------------------------------------------------------

TEST_CASE("group_norm matches the float64 reference", "[unit]") {
  Generator gen = generator_for("group_norm matches the float64 reference");
  for (DType dtype : {kFloat32, kFloat64, kBFloat16}) {
    check_group_norm({2, 6, 3, 4}, 3, dtype, true, false, 0.0, tolerance_for(dtype), gen);
    check_group_norm({3, 8}, 2, dtype, true, false, 0.0, tolerance_for(dtype), gen);         // (N, C)
    check_group_norm({2, 4, 2, 3, 2}, 4, dtype, false, false, 0.0, tolerance_for(dtype), gen);  // 5-D, no affine
    check_group_norm({2, 6, 5, 5}, 1, dtype, true, true, 0.0, tolerance_for(dtype), gen);     // one group, relu
  }
}

TEST_CASE("group_norm fused relu equals group_norm followed by relu", "[unit]") {
  Generator gen = generator_for("group_norm fused relu equals group_norm followed by relu");
  for (DType dtype : {kFloat32, kFloat64}) {
    INFO(dtype_name(dtype));
    const Shape shape{3, 8, 5, 4};
    const Tensor x_values = random_normal(shape, gen, dtype);
    const Tensor gamma_values = random_uniform({8}, 0.5, 1.5, gen, dtype);
    const Tensor beta_values = random_normal({8}, gen, dtype);
    const Tensor direction = random_normal(shape, gen, dtype);
    // The same leaves twice, so each path accumulates its own gradients.
    Tensor x1 = x_values.clone().set_requires_grad(), x2 = x_values.clone().set_requires_grad();
    Tensor g1 = gamma_values.clone().set_requires_grad(), g2 = gamma_values.clone().set_requires_grad();
    Tensor b1 = beta_values.clone().set_requires_grad(), b2 = beta_values.clone().set_requires_grad();
    const Tensor fused = group_norm(x1, 4, g1, b1, 1e-5, true);
    const Tensor separate = relu(group_norm(x2, 4, g2, b2, 1e-5, false));
    REQUIRE(max_abs_difference(fused, separate) == 0.0);  // the same arithmetic, then max(0, .)
    REQUIRE(min(fused).item() == 0.0);                    // the ReLU did clip something
    fused.backward(direction);
    separate.backward(direction);
    const double tolerance = dtype == kFloat64 ? 1e-12 : 1e-5;
    CHECK(max_abs_difference(x1.grad(), x2.grad()) <= tolerance);
    CHECK(max_abs_difference(g1.grad(), g2.grad()) <= tolerance);
    CHECK(max_abs_difference(b1.grad(), b2.grad()) <= tolerance);
  }
}

TEST_CASE("group_norm of inputs offset by 1e4 matches the float64 reference", "[unit]") {
  Generator gen = generator_for("group_norm of inputs offset by 1e4 matches the float64 reference");
  // The statistics are sums in double of the offsets from the group's first element (the
  // fast float32 kernel) or exact two-pass sums in double (the reference), so y keeps
  // float32 accuracy. The
  // backward pass recomputes xhat from the saved statistics; were the mean saved as a
  // float32 (1e4 + m rounded to 5e-4), every xhat would shift by up to 5e-4 and dgamma would
  // be off by ~1e-3 here. It is saved relative to the group's first element instead.
  check_group_norm({2, 8, 6, 6}, 4, kFloat32, true, false, 1e4, 1e-5, gen);
  check_group_norm({2, 8, 6, 6}, 4, kFloat32, true, true, 1e4, 1e-5, gen);
  check_group_norm({2, 8, 6, 6}, 4, kFloat64, true, false, 1e4, 1e-9, gen);
}

TEST_CASE("group_norm with one element per group (N = 1, H = W = 1, C = 32, 32 groups)", "[unit]") {
  Generator gen = generator_for("group_norm with one element per group");
  // Each group is a single value: variance 0, xhat 0, so y = beta and dx = 0 exactly.
  Tensor x = random_normal({1, 32, 1, 1}, gen, kFloat32).set_requires_grad();
  Tensor gamma = random_normal({32}, gen, kFloat32).set_requires_grad();
  Tensor beta = random_normal({32}, gen, kFloat32).set_requires_grad();
  const Tensor y = group_norm(x, 32, gamma, beta);
  REQUIRE(max_abs_difference(y.flatten(), beta) == 0.0);
  const Tensor direction = random_normal({1, 32, 1, 1}, gen, kFloat32);
  y.backward(direction);
  REQUIRE(max_abs_difference(x.grad(), zeros({1, 32, 1, 1})) == 0.0);
  REQUIRE(max_abs_difference(gamma.grad(), zeros({32})) == 0.0);
  REQUIRE(max_abs_difference(beta.grad(), direction.flatten()) == 0.0);
  check_group_norm({1, 32, 1, 1}, 32, kFloat32, true, false, 0.0, 1e-5, gen);
  check_group_norm({1, 32, 1, 1}, 32, kFloat32, true, true, 0.0, 1e-5, gen);
  check_group_norm({1, 32, 3, 3}, 32, kFloat32, true, false, 0.0, 1e-5, gen);  // one channel per group
}

TEST_CASE("group_norm of an empty batch or empty images: empty outputs, zero parameter gradients", "[unit]") {
  // Sums over no elements are 0: what the CUDA twin must write too (the parity case "group_norm
  // with no elements" compares the two; the op allocates the gradients without initialising).
  for (const Shape& shape : {Shape{0, 8, 4, 4}, Shape{2, 8, 0, 3}}) {
    INFO("x of shape " << shape_string(shape));
    Tensor x = zeros(shape).set_requires_grad();
    Tensor gamma = ones({8}).set_requires_grad();
    Tensor beta = zeros({8}).set_requires_grad();
    const Tensor y = group_norm(x, 4, gamma, beta, 1e-5, true);
    REQUIRE(y.shape() == shape);
    y.backward(zeros(shape));
    REQUIRE(x.grad().shape() == shape);
    CHECK(gamma.grad().to_vector<float>() == std::vector<float>(8, 0.0f));
    CHECK(beta.grad().to_vector<float>() == std::vector<float>(8, 0.0f));
  }
}

TEST_CASE("group_norm non-contiguous input and gradients reach only what requires them", "[unit]") {
  Generator gen = generator_for("group_norm non-contiguous input");
  Tensor base = random_normal({4, 2, 3, 5}, gen).set_requires_grad();
  const Tensor x = base.permute({1, 0, 2, 3});  // (2, 4, 3, 5), not contiguous
  const Tensor gamma = random_normal({4}, gen);  // no gradient wanted
  const Tensor direction = random_normal({2, 4, 3, 5}, gen);
  const Tensor y = group_norm(x, 2, gamma, Tensor());
  y.backward(direction);
  const GroupNormReference expected = group_norm_reference(x.contiguous(), 2, gamma, Tensor(), 1e-5, false, direction);
  CHECK(error_of(y, expected.y) <= 1e-12);
  CHECK(error_of(base.grad().permute({1, 0, 2, 3}).contiguous(), expected.dx) <= 1e-12);
  REQUIRE_FALSE(gamma.grad().defined());
}

TEST_CASE("group_norm rejects bad input with a clear error", "[unit]") {
  const Tensor x = ones({2, 6, 4, 4});
  REQUIRE_THROWS_WITH(group_norm(x, 4), Contains("group_norm") && Contains("4 groups") && Contains("6 channels"));
  REQUIRE_THROWS_WITH(group_norm(x, 0), Contains("group_norm") && Contains("0 groups"));
  REQUIRE_THROWS_WITH(group_norm(x, 3, Tensor(), Tensor(), 0.0), Contains("group_norm: eps") && Contains("got 0"));
  REQUIRE_THROWS_WITH(group_norm(x, 3, Tensor(), Tensor(), -1e-5), Contains("group_norm: eps"));
  REQUIRE_THROWS_WITH(group_norm(x, 3, ones({5})), Contains("group_norm: gamma has shape [5]") && Contains("[6]"));
  REQUIRE_THROWS_WITH(group_norm(x, 3, ones({6}), ones({6, 1})), Contains("group_norm: beta has shape [6, 1]"));
  REQUIRE_THROWS_WITH(group_norm(x, 3, ones({6}, kFloat64)), Contains("group_norm: gamma is float64 but x is float32"));
  REQUIRE_THROWS_WITH(group_norm(ones({2, 6}, kInt64), 3), Contains("group_norm") && Contains("int64"));
  REQUIRE_THROWS_WITH(group_norm(ones({6}), 3), Contains("group_norm") && Contains("[6]"));
  REQUIRE_THROWS_WITH(group_norm(Tensor(), 3), Contains("group_norm") && Contains("undefined"));
}

// ---- nn::GroupNorm ----------------------------------------------------------------------------

TEST_CASE("nn GroupNorm: parameters, forward and backward", "[unit]") {
  Generator gen = generator_for("nn GroupNorm");
  nn::GroupNorm norm(4, 8);
  REQUIRE(norm.named_parameters().size() == 2);
  REQUIRE(norm.named_parameters()[0].first == "weight");
  REQUIRE(norm.named_parameters()[1].first == "bias");
  REQUIRE(norm.weight.shape() == Shape{8});
  REQUIRE(norm.weight.requires_grad());
  REQUIRE(norm.describe() == "GroupNorm(4, 8, eps=1e-05, affine=true)");
  // Non-trivial parameters, so the module's output is checked against the op with them.
  {
    NoGradGuard no_grad;
    norm.weight.copy_(random_uniform({8}, 0.5, 1.5, gen, kFloat32));
    norm.bias.copy_(random_normal({8}, gen, kFloat32));
  }
  Tensor x = random_normal({2, 8, 3, 3}, gen, kFloat32).set_requires_grad();
  const Tensor y = norm(x);
  REQUIRE(max_abs_difference(y, group_norm(x.detach(), 4, norm.weight.detach(), norm.bias.detach())) == 0.0);
  sum(mul(y, y)).backward();
  REQUIRE(x.grad().shape() == x.shape());
  REQUIRE(norm.weight.grad().shape() == Shape{8});
  REQUIRE(norm.bias.grad().shape() == Shape{8});

  nn::GroupNorm bare(2, 8, {.affine = false, .relu = true});
  REQUIRE(bare.named_parameters().empty());
  REQUIRE(bare.describe() == "GroupNorm(2, 8, eps=1e-05, affine=false, relu=true)");
  REQUIRE(min(bare(x)).item() == 0.0);
  REQUIRE_THROWS_WITH(bare(ones({2, 6, 3, 3})), Contains("GroupNorm(2, 8)") && Contains("[2, 6, 3, 3]"));
  REQUIRE_THROWS_WITH(nn::GroupNorm(3, 8), Contains("GroupNorm") && Contains("3 groups"));
}

TEST_CASE("group_norm parity inputs are kept away from the fused ReLU's boundary", "[unit]") {
  // The parity cases' helper (tests/support/test_data.h): afterwards no pre-ReLU value lies
  // within the margin of 0, and only the values that did were moved.
  Generator gen = generator_for("group_norm parity inputs are kept away from the fused ReLU's boundary");
  struct Case {
    Shape shape;
    int64_t groups;
    DType dtype;
    double offset;
    int64_t start;
  };
  for (const Case& c : {Case{{2, 64, 28, 28}, 32, kFloat32, 0.0, 0}, Case{{2, 64, 14, 14}, 32, kFloat32, 1e4, 1},
                        Case{{2, 256, 7, 7}, 32, kBFloat16, 0.0, 0}, Case{{3, 6, 5, 5}, 3, kFloat64, 0.0, 0}}) {
    INFO(shape_string(c.shape) << " " << dtype_name(c.dtype));
    const int64_t numel = shape_numel(c.shape), channels = c.shape[1];
    const Tensor values = add(random_normal({numel + c.start}, gen), c.offset);
    const Tensor gamma = random_uniform({channels}, 0.5, 1.5, gen), beta = random_uniform({channels}, -0.5, 0.5, gen);
    const auto pre_relu = [&](const Tensor& v) {
      const Tensor x = v.to(c.dtype).to(kFloat64).narrow(0, c.start, numel).view(c.shape);
      return group_norm(x, c.groups, gamma.to(c.dtype).to(kFloat64), beta.to(c.dtype).to(kFloat64), 1e-5, false)
          .to_vector<double>();
    };
    const auto near_boundary = [](const std::vector<double>& y) {
      return std::count_if(y.begin(), y.end(), [](double v) { return std::abs(v) < 0.01; });
    };
    const std::vector<double> before = pre_relu(values);
    const Tensor moved = away_from_group_norm_relu_boundary(values, c.start, c.shape, c.groups, gamma, beta, c.dtype);
    const std::vector<double> after = pre_relu(moved);
    if (numel > 1000) CHECK(near_boundary(before) > 0);  // ~0.8% of standard normal values
    CHECK(near_boundary(after) == 0);
    const std::vector<double> old_values = values.to_vector<double>(), new_values = moved.to_vector<double>();
    int64_t changed = 0;
    for (int64_t i = 0; i < numel; ++i) {
      if (new_values[c.start + i] == old_values[c.start + i]) continue;
      ++changed;
      CHECK(std::abs(before[i]) < 0.011);  // near the boundary, or pushed there by the moved ones' shift
    }
    CHECK(changed >= near_boundary(before));
    if (c.start == 1) CHECK(new_values[0] == old_values[0]);
  }
}

// ---- the fast float32 kernel against the reference -----------------------------------------------

namespace {

struct GroupNormResults {
  Tensor y, dx, dgamma, dbeta;
};

GroupNormResults run_group_norm(const Tensor& x_values, int64_t groups, const Tensor& gamma_values,
                                const Tensor& beta_values, bool relu, const Tensor& direction) {
  Tensor x = x_values.clone().set_requires_grad();
  Tensor gamma = gamma_values.defined() ? gamma_values.clone().set_requires_grad() : Tensor();
  Tensor beta = beta_values.defined() ? beta_values.clone().set_requires_grad() : Tensor();
  const Tensor y = group_norm(x, groups, gamma, beta, 1e-5, relu);
  y.backward(direction);
  return {y, x.grad(), gamma.defined() ? gamma.grad() : Tensor(), beta.defined() ? beta.grad() : Tensor()};
}

double largest(const Tensor& t) { return std::max(max_abs_difference(t, zeros_like(t)), 1e-30); }

// float32 through the fast kernel and through the reference (kernels::cpu::ScopedReferenceKernels),
// same inputs. Tolerances, relative to the largest reference value of each output: y 2e-6,
// dx, dgamma and dbeta 1e-5 (float statistics and per-channel float sums; measured: y and dx
// about 1e-7, dgamma and dbeta below 1e-6).
void check_fast_against_reference(const Shape& shape, int64_t groups, bool affine, bool relu, double offset,
                                  Generator& gen) {
  INFO("group_norm " << shape_string(shape) << " groups " << groups << (affine ? " affine" : "")
                     << (relu ? " relu" : "") << " offset " << offset);
  const int64_t channels = shape[1];
  const Tensor x = add(random_normal(shape, gen), offset).to(kFloat32);
  const Tensor gamma = affine ? random_uniform({channels}, 0.5, 1.5, gen, kFloat32) : Tensor();
  const Tensor beta = affine ? random_uniform({channels}, -0.5, 0.5, gen, kFloat32) : Tensor();
  const Tensor direction = random_normal(shape, gen, kFloat32);
  const GroupNormResults fast = run_group_norm(x, groups, gamma, beta, relu, direction);
  GroupNormResults reference;
  {
    const kernels::cpu::ScopedReferenceKernels use_reference;
    reference = run_group_norm(x, groups, gamma, beta, relu, direction);
  }
  CHECK(max_abs_difference(fast.y, reference.y) <= 2e-6 * largest(reference.y));
  CHECK(max_abs_difference(fast.dx, reference.dx) <= 1e-5 * largest(reference.dx));
  if (affine) {
    CHECK(max_abs_difference(fast.dgamma, reference.dgamma) <= 1e-5 * largest(reference.dgamma));
    CHECK(max_abs_difference(fast.dbeta, reference.dbeta) <= 1e-5 * largest(reference.dbeta));
  }
}

}  // namespace

TEST_CASE("group_norm: the fast float32 kernel follows the reference", "[unit]") {
  Generator gen = generator_for("group_norm: the fast float32 kernel follows the reference");
  // bit-tiny's norms (8 groups; 7x7, 4x4, 2x2 and 1x1 maps), with and without the fused ReLU.
  for (const bool relu : {true, false}) {
    check_fast_against_reference({4, 16, 7, 7}, 8, true, relu, 0.0, gen);
    check_fast_against_reference({4, 64, 7, 7}, 8, true, relu, 0.0, gen);
    check_fast_against_reference({4, 128, 4, 4}, 8, true, relu, 0.0, gen);
    check_fast_against_reference({4, 256, 2, 2}, 8, true, relu, 0.0, gen);
    check_fast_against_reference({4, 512, 1, 1}, 8, true, relu, 0.0, gen);
  }
  // Channels and maps that are no multiple of a vector, batch 1, no affine, (N, C) inputs.
  check_fast_against_reference({1, 12, 5, 3}, 3, true, true, 0.0, gen);
  check_fast_against_reference({3, 10, 3, 3}, 5, false, true, 0.0, gen);
  check_fast_against_reference({2, 6, 3, 3}, 6, true, false, 0.0, gen);  // one channel per group
  check_fast_against_reference({5, 24}, 4, true, true, 0.0, gen);
  check_fast_against_reference({1, 32, 1, 1}, 32, true, false, 0.0, gen);  // one element per group
  // A large group (BiT-R50's first stage has 8 x 56 x 56), and inputs offset by 1e4.
  check_fast_against_reference({1, 64, 56, 56}, 8, true, true, 0.0, gen);
  check_fast_against_reference({2, 8, 6, 6}, 4, true, true, 1e4, gen);
  check_fast_against_reference({2, 8, 6, 6}, 4, true, false, 1e4, gen);
}
