// group_norm: checks, the kernel call and its backward (kernels/cpu/group_norm.h lists the
// family's files).
#include "engine/ops/group_norm.h"

#include <string_view>

#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "kernels/cpu/group_norm.h"
#include "kernels/cuda/group_norm.h"

namespace visrep {
namespace {

void check_channel_parameter(const Tensor& x, const Tensor& parameter, std::string_view name) {
  if (!parameter.defined()) return;
  const int64_t channels = x.size(1);
  VISREP_CHECK(parameter.dim() == 1 && parameter.size(0) == channels,
               "group_norm: {} has shape {}, expected [{}] (one value per channel of x, shape {})", name,
               shape_string(parameter.shape()), channels, shape_string(x.shape()));
  VISREP_CHECK(parameter.device() == x.device(), "group_norm: {} is on {} but x is on {}; move one with .to()", name,
               parameter.device().str(), x.device().str());
  VISREP_CHECK(parameter.dtype() == x.dtype(), "group_norm: {} is {} but x is {}; convert one with .to()", name,
               dtype_name(parameter.dtype()), dtype_name(x.dtype()));
}

kernels::GroupNormShape group_norm_shape(const Tensor& x, int64_t groups) {
  int64_t spatial = 1;
  for (int64_t d = 2; d < x.dim(); ++d) spatial *= x.size(d);
  return {.batch = x.size(0), .channels = x.size(1), .spatial = spatial, .groups = groups};
}

Tensor contiguous_or_undefined(const Tensor& t) { return t.defined() ? t.contiguous() : t; }

}  // namespace

Tensor group_norm(const Tensor& x_in, int64_t groups, const Tensor& gamma_in, const Tensor& beta_in, double eps,
                  bool relu) {
  check_defined("group_norm", x_in, "x");
  VISREP_CHECK(x_in.dim() >= 2, "group_norm: expected x of shape (N, C, ...), got shape {}",
               shape_string(x_in.shape()));
  check_floating_or_bfloat16("group_norm", x_in, "x");
  VISREP_CHECK(groups >= 1 && x_in.size(1) % groups == 0,
               "group_norm: {} groups do not divide the {} channels of x (shape {}); the group count must be a "
               "positive divisor of C",
               groups, x_in.size(1), shape_string(x_in.shape()));
  check_eps("group_norm", eps);
  check_channel_parameter(x_in, gamma_in, "gamma");
  check_channel_parameter(x_in, beta_in, "beta");

  const kernels::GroupNormShape shape = group_norm_shape(x_in, groups);
  const Tensor x = x_in.contiguous();
  const Tensor gamma = contiguous_or_undefined(gamma_in);
  const Tensor beta = contiguous_or_undefined(beta_in);
  Tensor y = empty_like(x);
  // One (mean, invstd) per (sample, group), kept for the backward pass.
  const Tensor mean = empty({shape.group_count()}, accumulate_options(x));
  const Tensor invstd = empty({shape.group_count()}, accumulate_options(x));
  visit_floating_or_bfloat16(x.dtype(), "group_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using S = kernels::AccumulateType<T>;
    VISREP_RUN_KERNEL("group_norm", x.device(), group_norm_forward,
                      kernels::GroupNormForward<T>{.shape = shape,
                                                   .x = data_or_null<const T>(x),
                                                   .gamma = data_or_null<const T>(gamma),
                                                   .beta = data_or_null<const T>(beta),
                                                   .eps = eps,
                                                   .relu = relu,
                                                   .y = data_or_null<T>(y),
                                                   .mean = data_or_null<S>(mean),
                                                   .invstd = data_or_null<S>(invstd)});
  });

  if (!needs_grad({x_in, gamma_in, beta_in})) return y;
  const bool want_x = x_in.requires_grad();
  const bool want_gamma = gamma_in.defined() && gamma_in.requires_grad();
  const bool want_beta = beta_in.defined() && beta_in.requires_grad();
  const SavedTensor saved_x(x), saved_gamma(gamma), saved_beta(beta);
  return record("group_norm", y, {x_in, gamma_in, beta_in}, [=](const Tensor& grad_output) -> TensorList {
    const Tensor grad = grad_output.contiguous();
    const Tensor& input = saved_x.get();
    const TensorOptions parameter_options(input.dtype(), input.device());
    Tensor dx = want_x ? empty_like(input) : Tensor();
    Tensor dgamma = want_gamma ? empty({shape.channels}, parameter_options) : Tensor();
    Tensor dbeta = want_beta ? empty({shape.channels}, parameter_options) : Tensor();
    visit_floating_or_bfloat16(input.dtype(), "group_norm", [&](auto tag) {
      using T = typename decltype(tag)::type;
      using S = kernels::AccumulateType<T>;
      VISREP_RUN_KERNEL("group_norm", input.device(), group_norm_backward,
                        kernels::GroupNormBackward<T>{.shape = shape,
                                                      .relu = relu,
                                                      .grad_y = data_or_null<const T>(grad),
                                                      .x = data_or_null<const T>(input),
                                                      .gamma = data_or_null<const T>(saved_gamma.get()),
                                                      .beta = data_or_null<const T>(saved_beta.get()),
                                                      .mean = data_or_null<const S>(mean),
                                                      .invstd = data_or_null<const S>(invstd),
                                                      .grad_x = data_or_null<T>(dx),
                                                      .grad_gamma = data_or_null<T>(dgamma),
                                                      .grad_beta = data_or_null<T>(dbeta)});
    });
    return {dx, dgamma, dbeta};
  });
}

}  // namespace visrep
