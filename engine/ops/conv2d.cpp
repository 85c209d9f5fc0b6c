// conv2d: checks, the kernel call and its backward (kernels/cpu/conv2d.h lists the
// family's files).
#include "engine/ops/conv2d.h"

#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cuda/conv2d.h"

namespace visrep {

Tensor conv2d(const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in, const Conv2dOptions& options) {
  check_nchw("conv2d", x_in);
  check_defined("conv2d", weight_in, "weight");
  VISREP_CHECK(weight_in.dim() == 4, "conv2d: weight must be (C_out, C_in / groups, kH, kW), got {}",
               shape_string(weight_in.shape()));
  check_same_device("conv2d", x_in, weight_in);
  check_same_dtype("conv2d", x_in, weight_in);
  if (bias_in.defined()) {
    check_same_device("conv2d", x_in, bias_in);
    check_same_dtype("conv2d", x_in, bias_in);
  }
  if (x_in.dtype() == kBFloat16) {
    return conv2d(x_in.to(kFloat32), weight_in.to(kFloat32), bias_in.defined() ? bias_in.to(kFloat32) : bias_in,
                  options)
        .to(kBFloat16);
  }
  check_pair_at_least("conv2d", "stride", options.stride, 1);
  check_pair_at_least("conv2d", "dilation", options.dilation, 1);
  check_pair_at_least("conv2d", "padding", options.padding, 0);
  VISREP_CHECK(options.groups >= 1, "conv2d: groups must be >= 1, got {}", options.groups);

  kernels::Conv2dGeometry g;
  g.batch = x_in.size(0);
  g.in_channels = x_in.size(1);
  g.in_height = x_in.size(2);
  g.in_width = x_in.size(3);
  g.out_channels = weight_in.size(0);
  g.kernel_height = weight_in.size(2);
  g.kernel_width = weight_in.size(3);
  g.stride_height = options.stride[0];
  g.stride_width = options.stride[1];
  g.padding_height = options.padding[0];
  g.padding_width = options.padding[1];
  g.dilation_height = options.dilation[0];
  g.dilation_width = options.dilation[1];
  g.groups = options.groups;
  VISREP_CHECK(g.in_channels % g.groups == 0 && g.out_channels % g.groups == 0,
               "conv2d: {} input and {} output channels are not divisible by groups = {} (input {}, weight {})",
               g.in_channels, g.out_channels, g.groups, shape_string(x_in.shape()), shape_string(weight_in.shape()));
  VISREP_CHECK(weight_in.size(1) * g.groups == g.in_channels,
               "conv2d: weight {} expects {} input channels (groups = {}), the input {} has {}",
               shape_string(weight_in.shape()), weight_in.size(1) * g.groups, g.groups, shape_string(x_in.shape()),
               g.in_channels);
  if (bias_in.defined()) {
    VISREP_CHECK(bias_in.dim() == 1 && bias_in.size(0) == g.out_channels, "conv2d: bias {} does not match C_out = {}",
                 shape_string(bias_in.shape()), g.out_channels);
  }
  // The dilated kernel must fit the padded input; checked directly because out_height()
  // divides a negative span toward zero (a too-large kernel with stride > 1 would give 1).
  const bool fits = g.in_height + 2 * g.padding_height >= g.dilation_height * (g.kernel_height - 1) + 1 &&
                    g.in_width + 2 * g.padding_width >= g.dilation_width * (g.kernel_width - 1) + 1;
  VISREP_CHECK(fits && g.out_height() >= 1 && g.out_width() >= 1,
               "conv2d: a {}x{} kernel (dilation {}x{}) does not fit the input {} with padding ({}, {})",
               g.kernel_height, g.kernel_width, g.dilation_height, g.dilation_width, shape_string(x_in.shape()),
               g.padding_height, g.padding_width);

  const Tensor x = x_in.contiguous(), weight = weight_in.contiguous();
  const Tensor bias = bias_in.defined() ? bias_in.contiguous() : bias_in;
  Tensor out = empty({g.batch, g.out_channels, g.out_height(), g.out_width()}, TensorOptions(x.dtype(), x.device()));
  visit_floating(x.dtype(), "conv2d", [&](auto tag) {
    using T = typename decltype(tag)::type;
    VISREP_RUN_KERNEL("conv2d", x.device(), conv2d_forward,
                      kernels::Conv2dForward<T>{.geometry = g,
                                                .input = data_or_null<const T>(x),
                                                .weight = data_or_null<const T>(weight),
                                                .bias = data_or_null<const T>(bias),
                                                .output = data_or_null<T>(out)});
  });

  const bool grad_x = x_in.requires_grad(), grad_w = weight_in.requires_grad();
  const bool grad_b = bias_in.defined() && bias_in.requires_grad();
  const SavedTensor saved_x = needs_grad({x_in, weight_in, bias_in}) ? SavedTensor(x) : SavedTensor();
  const SavedTensor saved_w = needs_grad({x_in, weight_in, bias_in}) ? SavedTensor(weight) : SavedTensor();
  return record("conv2d", out, {x_in, weight_in, bias_in}, [=](const Tensor& g_out) -> TensorList {
    const Tensor grad = g_out.contiguous();
    const Tensor& input = saved_x.get();
    const Tensor& w = saved_w.get();
    Tensor dx = grad_x ? empty_like(input) : Tensor();
    Tensor dw = grad_w ? empty_like(w) : Tensor();
    Tensor db = grad_b ? empty({g.out_channels}, TensorOptions(w.dtype(), w.device())) : Tensor();
    visit_floating(grad.dtype(), "conv2d", [&](auto tag) {
      using T = typename decltype(tag)::type;
      VISREP_RUN_KERNEL("conv2d", grad.device(), conv2d_backward,
                        kernels::Conv2dBackward<T>{.geometry = g,
                                                   .grad_output = data_or_null<const T>(grad),
                                                   .input = data_or_null<const T>(input),
                                                   .weight = data_or_null<const T>(w),
                                                   .grad_input = data_or_null<T>(dx),
                                                   .grad_weight = data_or_null<T>(dw),
                                                   .grad_bias = data_or_null<T>(db)});
    });
    return {dx, dw, db};
  });
}

}  // namespace visrep
