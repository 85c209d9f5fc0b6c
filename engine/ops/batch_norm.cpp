#include "engine/ops/batch_norm.h"

#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduction.h"
#include "kernels/cpu/batch_norm.h"
#if VISREP_WITH_CUDA
#include "kernels/cuda/batch_norm.h"
#endif

namespace visrep {
namespace {

void check_channel_vector(const Tensor& t, int64_t channels, std::string_view name) {
  if (!t.defined()) return;
  VISREP_CHECK(t.dim() == 1 && t.size(0) == channels, "batch_norm: {} has shape {}, expected [{}]", name,
               shape_string(t.shape()), channels);
}

// The first element of a tensor on either device, or null for an undefined tensor (an
// optional argument). The caller has checked the dtype.
template <class T>
T* pointer_or_null(const Tensor& t) {
  return t.defined() ? static_cast<T*>(t.raw_data()) : nullptr;
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

  const bool on_cuda = x.device().is_cuda();
  visit_floating(x.dtype(), "batch_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* x_data = pointer_or_null<const T>(x);
    const T* gamma = pointer_or_null<const T>(weight);
    const T* beta = pointer_or_null<const T>(bias);
    T* y_data = pointer_or_null<T>(y);
    T* mean_data = pointer_or_null<T>(mean);
    T* invstd_data = pointer_or_null<T>(invstd);
    if (options.training) {
      VISREP_CHECK(!running_mean.defined() || (running_mean.is_contiguous() && running_var.is_contiguous()),
                   "batch_norm: running statistics must be contiguous");
      T* rm = pointer_or_null<T>(running_mean);
      T* rv = pointer_or_null<T>(running_var);
      if (on_cuda) {
        VISREP_ON_CUDA("batch_norm",
                       kernels::cuda::batch_norm_forward_training<T>(shape, x_data, gamma, beta, options.eps,
                                                                     options.momentum, rm, rv, y_data, mean_data,
                                                                     invstd_data, cuda_stream(x)));
      } else {
        kernels::cpu::batch_norm_forward_training<T>(shape, x_data, gamma, beta, options.eps, options.momentum, rm, rv,
                                                     y_data, mean_data, invstd_data);
      }
    } else {
      // The backward pass of evaluation mode treats the running statistics as constants:
      // mean and invstd are computed from them once, here.
      const Tensor rm_tensor = running_mean.contiguous(), rv_tensor = running_var.contiguous();
      const T* rm = pointer_or_null<const T>(rm_tensor);
      const T* rv = pointer_or_null<const T>(rv_tensor);
      if (on_cuda) {
        VISREP_ON_CUDA("batch_norm", {
          kernels::cuda::batch_norm_forward_inference<T>(shape, x_data, gamma, beta, rm, rv, options.eps, y_data,
                                                         cuda_stream(x));
          kernels::cuda::batch_norm_inference_statistics<T>(channels, rm, rv, options.eps, mean_data, invstd_data,
                                                            cuda_stream(x));
        });
      } else {
        kernels::cpu::batch_norm_forward_inference<T>(shape, x_data, gamma, beta, rm, rv, options.eps, y_data);
        kernels::cpu::batch_norm_inference_statistics<T>(channels, rm, rv, options.eps, mean_data, invstd_data);
      }
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
      const T* dy = pointer_or_null<const T>(grad);
      const T* x_data = pointer_or_null<const T>(input);
      const T* gamma = pointer_or_null<const T>(w);
      const T* mean_data = pointer_or_null<const T>(mean);
      const T* invstd_data = pointer_or_null<const T>(invstd);
      T* dx_data = pointer_or_null<T>(dx);
      T* dw_data = pointer_or_null<T>(dw);
      T* db_data = pointer_or_null<T>(db);
      if (grad.device().is_cuda()) {
        VISREP_ON_CUDA("batch_norm",
                       kernels::cuda::batch_norm_backward<T>(shape, training, dy, x_data, gamma, mean_data, invstd_data,
                                                             dx_data, dw_data, db_data, cuda_stream(grad)));
      } else {
        kernels::cpu::batch_norm_backward<T>(shape, training, dy, x_data, gamma, mean_data, invstd_data, dx_data,
                                             dw_data, db_data);
      }
    });
    return {dx, dw, db};
  });
}

Tensor normalize(const Tensor& x, int64_t dim, double eps) {
  check_defined("normalize", x, "x");
  VISREP_CHECK(eps > 0, "normalize: eps must be positive, got {}", eps);
  dim = wrap_dim(dim, x.dim(), "normalize");
  // max(||x||, eps) written as sqrt(max(||x||^2, eps^2)): the same value, and the clamp
  // stops the gradient before it reaches sqrt at 0 (where sqrt's derivative is infinite).
  Tensor norm = sqrt(clamp_min(sum(mul(x, x), {dim}, true), eps * eps));
  return div(x, norm);
}

}  // namespace visrep
