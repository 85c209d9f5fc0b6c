// batch_norm: checks, the kernel calls and their backward (kernels/cpu/batch_norm.h lists
// the family's files).
#include "engine/ops/batch_norm.h"

#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "kernels/cpu/batch_norm.h"
#include "kernels/cuda/batch_norm.h"

namespace visrep {
namespace {

void check_channel_vector(const Tensor& t, int64_t channels, std::string_view name) {
  if (!t.defined()) return;
  VISREP_CHECK(t.dim() == 1 && t.size(0) == channels, "batch_norm: {} has shape {}, expected [{}]", name,
               shape_string(t.shape()), channels);
}

}  // namespace

Tensor batch_norm(const Tensor& x_in, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight_in,
                  const Tensor& bias_in, const BatchNormOptions& options) {
  check_defined("batch_norm", x_in, "x");
  VISREP_CHECK(x_in.dim() == 2 || x_in.dim() == 4, "batch_norm: expected (N, C) or (N, C, H, W), got shape {}",
               shape_string(x_in.shape()));
  VISREP_CHECK(options.eps > 0, "batch_norm: eps must be positive, got {}", options.eps);
  const int64_t channels = x_in.size(1);
  check_channel_vector(running_mean, channels, "running_mean");
  check_channel_vector(running_var, channels, "running_var");
  check_channel_vector(weight_in, channels, "weight");
  check_channel_vector(bias_in, channels, "bias");
  VISREP_CHECK(running_mean.defined() == running_var.defined(),
               "batch_norm: running_mean and running_var must be given together");
  VISREP_CHECK(options.training || running_mean.defined(),
               "batch_norm: evaluation mode needs running_mean and running_var");
  for (const Tensor* t : {&running_mean, &running_var, &weight_in, &bias_in}) {
    if (!t->defined()) continue;
    check_same_device("batch_norm", x_in, *t);
    check_same_dtype("batch_norm", x_in, *t);
  }
  const kernels::BatchNormShape shape{x_in.size(0), channels, x_in.dim() == 4 ? x_in.size(2) * x_in.size(3) : 1};
  VISREP_CHECK(!options.training || shape.batch * shape.spatial > 1,
               "batch_norm: training needs more than one value per channel, got input of shape {}",
               shape_string(x_in.shape()));
  VISREP_CHECK(x_in.dtype() != kBFloat16, "batch_norm: bfloat16 input of shape {} on {}: convert it to float32 first",
               shape_string(x_in.shape()), x_in.device().str());

  const Tensor x = x_in.contiguous();
  const Tensor weight = weight_in.defined() ? weight_in.contiguous() : weight_in;
  const Tensor bias = bias_in.defined() ? bias_in.contiguous() : bias_in;
  Tensor y = empty_like(x);
  Tensor mean = empty({channels}, TensorOptions(x.dtype(), x.device()));
  Tensor invstd = empty({channels}, TensorOptions(x.dtype(), x.device()));

  visit_floating(x.dtype(), "batch_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (options.training) {
      VISREP_CHECK(!running_mean.defined() || (running_mean.is_contiguous() && running_var.is_contiguous()),
                   "batch_norm: running statistics must be contiguous");
      VISREP_RUN_KERNEL("batch_norm", x.device(), batch_norm_forward_training,
                        kernels::BatchNormForwardTraining<T>{.shape = shape,
                                                             .x = data_or_null<const T>(x),
                                                             .gamma = data_or_null<const T>(weight),
                                                             .beta = data_or_null<const T>(bias),
                                                             .eps = options.eps,
                                                             .momentum = options.momentum,
                                                             .running_mean = data_or_null<T>(running_mean),
                                                             .running_var = data_or_null<T>(running_var),
                                                             .y = data_or_null<T>(y),
                                                             .saved_mean = data_or_null<T>(mean),
                                                             .saved_invstd = data_or_null<T>(invstd)});
    } else {
      // The backward pass of evaluation mode treats the running statistics as constants:
      // mean and invstd are computed from them once, here.
      const Tensor rm = running_mean.contiguous(), rv = running_var.contiguous();
      VISREP_RUN_KERNEL("batch_norm", x.device(), batch_norm_forward_inference,
                        kernels::BatchNormForwardInference<T>{.shape = shape,
                                                              .x = data_or_null<const T>(x),
                                                              .gamma = data_or_null<const T>(weight),
                                                              .beta = data_or_null<const T>(bias),
                                                              .running_mean = data_or_null<const T>(rm),
                                                              .running_var = data_or_null<const T>(rv),
                                                              .eps = options.eps,
                                                              .y = data_or_null<T>(y)});
      VISREP_RUN_KERNEL("batch_norm", x.device(), batch_norm_inference_statistics,
                        kernels::BatchNormInferenceStatistics<T>{.channels = channels,
                                                                 .running_mean = data_or_null<const T>(rm),
                                                                 .running_var = data_or_null<const T>(rv),
                                                                 .eps = options.eps,
                                                                 .mean = data_or_null<T>(mean),
                                                                 .invstd = data_or_null<T>(invstd)});
    }
  });
  if (running_mean.defined() && options.training) {
    running_mean.storage()->bump_version();
    running_var.storage()->bump_version();
  }

  const bool training = options.training;
  const bool grad_x = x_in.requires_grad();
  const bool grad_w = weight_in.defined() && weight_in.requires_grad();
  const bool grad_b = bias_in.defined() && bias_in.requires_grad();
  const bool wants_grad = needs_grad({x_in, weight_in, bias_in});
  const SavedTensor saved_x = wants_grad ? SavedTensor(x) : SavedTensor();
  const SavedTensor saved_weight = wants_grad ? SavedTensor(weight) : SavedTensor();
  return record("batch_norm", y, {x_in, weight_in, bias_in}, [=](const Tensor& g_out) -> TensorList {
    const Tensor grad = g_out.contiguous();
    const Tensor& input = saved_x.get();
    const Tensor& w = saved_weight.get();
    Tensor dx = grad_x ? empty_like(input) : Tensor();
    Tensor dw = grad_w ? empty({channels}, TensorOptions(input.dtype(), input.device())) : Tensor();
    Tensor db = grad_b ? empty({channels}, TensorOptions(input.dtype(), input.device())) : Tensor();
    visit_floating(grad.dtype(), "batch_norm", [&](auto tag) {
      using T = typename decltype(tag)::type;
      VISREP_RUN_KERNEL("batch_norm", grad.device(), batch_norm_backward,
                        kernels::BatchNormBackward<T>{.shape = shape,
                                                      .training = training,
                                                      .grad_y = data_or_null<const T>(grad),
                                                      .x = data_or_null<const T>(input),
                                                      .gamma = data_or_null<const T>(w),
                                                      .mean = data_or_null<const T>(mean),
                                                      .invstd = data_or_null<const T>(invstd),
                                                      .grad_x = data_or_null<T>(dx),
                                                      .grad_gamma = data_or_null<T>(dw),
                                                      .grad_beta = data_or_null<T>(db)});
    });
    return {dx, dw, db};
  });
}

}  // namespace visrep
