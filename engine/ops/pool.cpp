// max_pool2d, avg_pool2d, adaptive_avg_pool2d and global_avg_pool2d: checks, the kernel
// calls and their backward (kernels/cpu/pool.h lists the family's files).
#include "engine/ops/pool.h"

#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "engine/ops/reduction.h"
#include "kernels/cpu/pool.h"
#include "kernels/cuda/pool.h"

namespace visrep {
namespace {

kernels::Pool2dGeometry pool_geometry(std::string_view op, const Tensor& x, const Pool2dOptions& options) {
  kernels::Pool2dGeometry g;
  const Pair stride = options.stride == Pair{0, 0} ? options.kernel : options.stride;
  check_pair_at_least(op, "kernel", options.kernel, 1);
  check_pair_at_least(op, "stride", stride, 1);
  check_pair_at_least(op, "padding", options.padding, 0);
  VISREP_CHECK(options.padding[0] * 2 <= options.kernel[0] && options.padding[1] * 2 <= options.kernel[1],
               "{}: padding ({}, {}) must be at most half the kernel ({}, {})", op, options.padding[0],
               options.padding[1], options.kernel[0], options.kernel[1]);
  g.planes = x.size(0) * x.size(1);
  g.in_height = x.size(2);
  g.in_width = x.size(3);
  g.kernel_height = options.kernel[0];
  g.kernel_width = options.kernel[1];
  g.stride_height = stride[0];
  g.stride_width = stride[1];
  g.padding_height = options.padding[0];
  g.padding_width = options.padding[1];
  // Compared directly: out_height() divides a negative span toward zero, so a window larger
  // than the padded input could still give an output size of 1.
  const bool fits = g.in_height + 2 * g.padding_height >= g.kernel_height &&
                    g.in_width + 2 * g.padding_width >= g.kernel_width;
  VISREP_CHECK(fits && g.out_height() >= 1 && g.out_width() >= 1,
               "{}: a ({}, {}) window does not fit the input of shape {} with padding ({}, {})", op, g.kernel_height,
               g.kernel_width, shape_string(x.shape()), g.padding_height, g.padding_width);
  return g;
}

}  // namespace

Tensor max_pool2d(const Tensor& x_in, const Pool2dOptions& options) {
  check_nchw("max_pool2d", x_in);
  if (x_in.dtype() == kBFloat16) return max_pool2d(x_in.to(kFloat32), options).to(kBFloat16);
  const kernels::Pool2dGeometry g = pool_geometry("max_pool2d", x_in, options);
  const Tensor x = x_in.contiguous();
  const Shape out_shape = {x.size(0), x.size(1), g.out_height(), g.out_width()};
  Tensor out = empty(out_shape, TensorOptions(x.dtype(), x.device()));
  Tensor argmax = empty(out_shape, TensorOptions(kInt64, x.device()));
  visit_floating(x.dtype(), "max_pool2d", [&](auto tag) {
    using T = typename decltype(tag)::type;
    VISREP_RUN_KERNEL("max_pool2d", x.device(), max_pool2d_forward,
                      kernels::MaxPool2dForward<T>{.geometry = g,
                                                   .input = data_or_null<const T>(x),
                                                   .output = data_or_null<T>(out),
                                                   .argmax = data_or_null<int64_t>(argmax)});
  });
  const Shape input_shape = x.shape();
  return record("max_pool2d", out, {x_in}, [=](const Tensor& g_out) -> TensorList {
    const Tensor grad = g_out.contiguous();
    Tensor dx = empty(input_shape, TensorOptions(grad.dtype(), grad.device()));
    visit_floating(grad.dtype(), "max_pool2d", [&](auto tag) {
      using T = typename decltype(tag)::type;
      VISREP_RUN_KERNEL("max_pool2d", grad.device(), max_pool2d_backward,
                        kernels::MaxPool2dBackward<T>{.geometry = g,
                                                      .grad_output = data_or_null<const T>(grad),
                                                      .argmax = data_or_null<const int64_t>(argmax),
                                                      .grad_input = data_or_null<T>(dx)});
    });
    return {dx};
  });
}

Tensor avg_pool2d(const Tensor& x_in, const Pool2dOptions& options, bool count_include_pad) {
  check_nchw("avg_pool2d", x_in);
  if (x_in.dtype() == kBFloat16) return avg_pool2d(x_in.to(kFloat32), options, count_include_pad).to(kBFloat16);
  const kernels::Pool2dGeometry g = pool_geometry("avg_pool2d", x_in, options);
  const Tensor x = x_in.contiguous();
  Tensor out = empty({x.size(0), x.size(1), g.out_height(), g.out_width()}, TensorOptions(x.dtype(), x.device()));
  visit_floating(x.dtype(), "avg_pool2d", [&](auto tag) {
    using T = typename decltype(tag)::type;
    VISREP_RUN_KERNEL("avg_pool2d", x.device(), avg_pool2d_forward,
                      kernels::AvgPool2dForward<T>{.geometry = g,
                                                   .count_include_pad = count_include_pad,
                                                   .input = data_or_null<const T>(x),
                                                   .output = data_or_null<T>(out)});
  });
  const Shape input_shape = x.shape();
  return record("avg_pool2d", out, {x_in}, [=](const Tensor& g_out) -> TensorList {
    const Tensor grad = g_out.contiguous();
    Tensor dx = empty(input_shape, TensorOptions(grad.dtype(), grad.device()));
    visit_floating(grad.dtype(), "avg_pool2d", [&](auto tag) {
      using T = typename decltype(tag)::type;
      VISREP_RUN_KERNEL("avg_pool2d", grad.device(), avg_pool2d_backward,
                        kernels::AvgPool2dBackward<T>{.geometry = g,
                                                      .count_include_pad = count_include_pad,
                                                      .grad_output = data_or_null<const T>(grad),
                                                      .grad_input = data_or_null<T>(dx)});
    });
    return {dx};
  });
}

Tensor adaptive_avg_pool2d(const Tensor& x_in, Pair size) {
  check_nchw("adaptive_avg_pool2d", x_in);
  check_pair_at_least("adaptive_avg_pool2d", "output size", size, 1);
  if (x_in.dtype() == kBFloat16) return adaptive_avg_pool2d(x_in.to(kFloat32), size).to(kBFloat16);
  VISREP_CHECK(x_in.size(2) >= 1 && x_in.size(3) >= 1, "adaptive_avg_pool2d: empty input plane in shape {}",
               shape_string(x_in.shape()));
  const Tensor x = x_in.contiguous();
  const int64_t planes = x.size(0) * x.size(1), height = x.size(2), width = x.size(3);
  Tensor out = empty({x.size(0), x.size(1), size[0], size[1]}, TensorOptions(x.dtype(), x.device()));
  visit_floating(x.dtype(), "adaptive_avg_pool2d", [&](auto tag) {
    using T = typename decltype(tag)::type;
    VISREP_RUN_KERNEL("adaptive_avg_pool2d", x.device(), adaptive_avg_pool2d_forward,
                      kernels::AdaptiveAvgPool2dForward<T>{.planes = planes,
                                                           .in_height = height,
                                                           .in_width = width,
                                                           .out_height = size[0],
                                                           .out_width = size[1],
                                                           .input = data_or_null<const T>(x),
                                                           .output = data_or_null<T>(out)});
  });
  const Shape input_shape = x.shape();
  return record("adaptive_avg_pool2d", out, {x_in}, [=](const Tensor& g_out) -> TensorList {
    const Tensor grad = g_out.contiguous();
    Tensor dx = empty(input_shape, TensorOptions(grad.dtype(), grad.device()));
    visit_floating(grad.dtype(), "adaptive_avg_pool2d", [&](auto tag) {
      using T = typename decltype(tag)::type;
      VISREP_RUN_KERNEL("adaptive_avg_pool2d", grad.device(), adaptive_avg_pool2d_backward,
                        kernels::AdaptiveAvgPool2dBackward<T>{.planes = planes,
                                                              .in_height = height,
                                                              .in_width = width,
                                                              .out_height = size[0],
                                                              .out_width = size[1],
                                                              .grad_output = data_or_null<const T>(grad),
                                                              .grad_input = data_or_null<T>(dx)});
    });
    return {dx};
  });
}

Tensor global_avg_pool2d(const Tensor& x) {
  check_nchw("global_avg_pool2d", x);
  return mean(x, {2, 3});
}

}  // namespace visrep
