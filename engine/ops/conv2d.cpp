#include "engine/ops/conv2d.h"

#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "engine/ops/reduction.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/pool.h"
#if VISREP_WITH_CUDA
#include "kernels/cuda/conv2d.h"
#include "kernels/cuda/pool.h"
#endif

namespace visrep {
namespace {

void check_nchw(std::string_view op, const Tensor& x) {
  check_defined(op, x, "x");
  VISREP_CHECK(x.dim() == 4, "{}: expected an (N, C, H, W) input, got shape {}", op, shape_string(x.shape()));
}

void check_positive(std::string_view op, std::string_view what, Pair value, int64_t minimum) {
  VISREP_CHECK(value[0] >= minimum && value[1] >= minimum, "{}: {} must be >= {}, got ({}, {})", op, what, minimum,
               value[0], value[1]);
}

kernels::Pool2dGeometry pool_geometry(std::string_view op, const Tensor& x, const Pool2dOptions& options) {
  kernels::Pool2dGeometry g;
  const Pair stride = options.stride == Pair{0, 0} ? options.kernel : options.stride;
  check_positive(op, "kernel", options.kernel, 1);
  check_positive(op, "stride", stride, 1);
  check_positive(op, "padding", options.padding, 0);
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
  check_positive("conv2d", "stride", options.stride, 1);
  check_positive("conv2d", "dilation", options.dilation, 1);
  check_positive("conv2d", "padding", options.padding, 0);
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
    const T* input = static_cast<const T*>(x.raw_data());
    const T* w = static_cast<const T*>(weight.raw_data());
    const T* b = bias.defined() ? static_cast<const T*>(bias.raw_data()) : nullptr;
    T* output = static_cast<T*>(out.raw_data());
    if (x.device().is_cuda()) {
      VISREP_ON_CUDA("conv2d", kernels::cuda::conv2d_forward<T>(g, input, w, b, output, cuda_stream(x)));
    } else {
      kernels::cpu::conv2d_forward<T>(g, input, w, b, output);
    }
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
      const T* dy = static_cast<const T*>(grad.raw_data());
      const T* x_data = static_cast<const T*>(input.raw_data());
      const T* w_data = static_cast<const T*>(w.raw_data());
      T* dx_data = dx.defined() ? static_cast<T*>(dx.raw_data()) : nullptr;
      T* dw_data = dw.defined() ? static_cast<T*>(dw.raw_data()) : nullptr;
      T* db_data = db.defined() ? static_cast<T*>(db.raw_data()) : nullptr;
      if (grad.device().is_cuda()) {
        VISREP_ON_CUDA("conv2d", kernels::cuda::conv2d_backward<T>(g, dy, x_data, w_data, dx_data, dw_data, db_data,
                                                                   cuda_stream(grad)));
      } else {
        kernels::cpu::conv2d_backward<T>(g, dy, x_data, w_data, dx_data, dw_data, db_data);
      }
    });
    return {dx, dw, db};
  });
}

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
    const T* input = static_cast<const T*>(x.raw_data());
    T* output = static_cast<T*>(out.raw_data());
    int64_t* indices = static_cast<int64_t*>(argmax.raw_data());
    if (x.device().is_cuda()) {
      VISREP_ON_CUDA("max_pool2d", kernels::cuda::max_pool2d_forward<T>(g, input, output, indices, cuda_stream(x)));
    } else {
      kernels::cpu::max_pool2d_forward<T>(g, input, output, indices);
    }
  });
  const Shape input_shape = x.shape();
  return record("max_pool2d", out, {x_in}, [=](const Tensor& g_out) -> TensorList {
    const Tensor grad = g_out.contiguous();
    Tensor dx = empty(input_shape, TensorOptions(grad.dtype(), grad.device()));
    visit_floating(grad.dtype(), "max_pool2d", [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* dy = static_cast<const T*>(grad.raw_data());
      const int64_t* indices = static_cast<const int64_t*>(argmax.raw_data());
      T* dx_data = static_cast<T*>(dx.raw_data());
      if (grad.device().is_cuda()) {
        VISREP_ON_CUDA("max_pool2d", kernels::cuda::max_pool2d_backward<T>(g, dy, indices, dx_data, cuda_stream(grad)));
      } else {
        kernels::cpu::max_pool2d_backward<T>(g, dy, indices, dx_data);
      }
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
    const T* input = static_cast<const T*>(x.raw_data());
    T* output = static_cast<T*>(out.raw_data());
    if (x.device().is_cuda()) {
      VISREP_ON_CUDA("avg_pool2d",
                     kernels::cuda::avg_pool2d_forward<T>(g, count_include_pad, input, output, cuda_stream(x)));
    } else {
      kernels::cpu::avg_pool2d_forward<T>(g, count_include_pad, input, output);
    }
  });
  const Shape input_shape = x.shape();
  return record("avg_pool2d", out, {x_in}, [=](const Tensor& g_out) -> TensorList {
    const Tensor grad = g_out.contiguous();
    Tensor dx = empty(input_shape, TensorOptions(grad.dtype(), grad.device()));
    visit_floating(grad.dtype(), "avg_pool2d", [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* dy = static_cast<const T*>(grad.raw_data());
      T* dx_data = static_cast<T*>(dx.raw_data());
      if (grad.device().is_cuda()) {
        VISREP_ON_CUDA("avg_pool2d",
                       kernels::cuda::avg_pool2d_backward<T>(g, count_include_pad, dy, dx_data, cuda_stream(grad)));
      } else {
        kernels::cpu::avg_pool2d_backward<T>(g, count_include_pad, dy, dx_data);
      }
    });
    return {dx};
  });
}

Tensor adaptive_avg_pool2d(const Tensor& x_in, Pair size) {
  check_nchw("adaptive_avg_pool2d", x_in);
  check_positive("adaptive_avg_pool2d", "output size", size, 1);
  if (x_in.dtype() == kBFloat16) return adaptive_avg_pool2d(x_in.to(kFloat32), size).to(kBFloat16);
  VISREP_CHECK(x_in.size(2) >= 1 && x_in.size(3) >= 1, "adaptive_avg_pool2d: empty input plane in shape {}",
               shape_string(x_in.shape()));
  const Tensor x = x_in.contiguous();
  const int64_t planes = x.size(0) * x.size(1), height = x.size(2), width = x.size(3);
  Tensor out = empty({x.size(0), x.size(1), size[0], size[1]}, TensorOptions(x.dtype(), x.device()));
  visit_floating(x.dtype(), "adaptive_avg_pool2d", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* input = static_cast<const T*>(x.raw_data());
    T* output = static_cast<T*>(out.raw_data());
    if (x.device().is_cuda()) {
      VISREP_ON_CUDA("adaptive_avg_pool2d", kernels::cuda::adaptive_avg_pool2d_forward<T>(
                                                planes, height, width, size[0], size[1], input, output, cuda_stream(x)));
    } else {
      kernels::cpu::adaptive_avg_pool2d_forward<T>(planes, height, width, size[0], size[1], input, output);
    }
  });
  const Shape input_shape = x.shape();
  return record("adaptive_avg_pool2d", out, {x_in}, [=](const Tensor& g_out) -> TensorList {
    const Tensor grad = g_out.contiguous();
    Tensor dx = empty(input_shape, TensorOptions(grad.dtype(), grad.device()));
    visit_floating(grad.dtype(), "adaptive_avg_pool2d", [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* dy = static_cast<const T*>(grad.raw_data());
      T* dx_data = static_cast<T*>(dx.raw_data());
      if (grad.device().is_cuda()) {
        VISREP_ON_CUDA("adaptive_avg_pool2d",
                       kernels::cuda::adaptive_avg_pool2d_backward<T>(planes, height, width, size[0], size[1], dy,
                                                                      dx_data, cuda_stream(grad)));
      } else {
        kernels::cpu::adaptive_avg_pool2d_backward<T>(planes, height, width, size[0], size[1], dy, dx_data);
      }
    });
    return {dx};
  });
}

Tensor global_avg_pool2d(const Tensor& x) {
  check_nchw("global_avg_pool2d", x);
  return mean(x, {2, 3});
}

}  // namespace visrep
