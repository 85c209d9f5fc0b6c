// Group normalisation and weight standardisation: checks, autograd wiring and dispatch to
// kernels/{cpu,cuda}/group_norm and kernels/{cpu,cuda}/weight_standardization.
#include "engine/ops/group_norm.h"

#include <cmath>
#include <memory>
#include <string_view>
#include <utility>

#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "kernels/cpu/group_norm.h"
#include "kernels/cpu/weight_standardization.h"
#if VISREP_WITH_CUDA
#include "kernels/cuda/group_norm.h"
#include "kernels/cuda/weight_standardization.h"
#endif

namespace visrep {
namespace {

// float32, float64 and bfloat16: the types the normalisation kernels are instantiated for
// (bfloat16 natively: statistics in float32, no conversion pass over the tensor).
template <class F>
decltype(auto) visit_normalization_dtype(DType dtype, std::string_view op, F&& f) {
  switch (dtype) {
    case DType::Float32: return f(std::type_identity<float>{});
    case DType::Float64: return f(std::type_identity<double>{});
    case DType::BFloat16: return f(std::type_identity<bfloat16>{});
    default: VISREP_FAIL("{}: expected a float32, bfloat16 or float64 tensor, got {}", op, dtype_name(dtype));
  }
}

void check_normalization_dtype(std::string_view op, const Tensor& t, std::string_view argument) {
  VISREP_CHECK(t.dtype() == kFloat32 || t.dtype() == kFloat64 || t.dtype() == kBFloat16,
               "{}: {} must be float32, bfloat16 or float64, got {}", op, argument, t.description());
}

void check_eps(std::string_view op, double eps) {
  VISREP_CHECK(eps > 0 && std::isfinite(eps), "{}: eps must be positive and finite, got {}", op, eps);
}

// The statistics (mean, 1 / sqrt(var + eps)) are float32 for float32 and bfloat16 tensors
// and float64 for float64 ones (kernels::NormalizationStatistic).
TensorOptions statistic_options(const Tensor& like) {
  return TensorOptions(like.dtype() == kFloat64 ? kFloat64 : kFloat32, like.device());
}

// The first element of a tensor on either device, or null for an undefined tensor.
template <class T>
T* pointer_or_null(const Tensor& t) {
  return t.defined() ? static_cast<T*>(t.raw_data()) : nullptr;
}

Tensor contiguous_or_undefined(const Tensor& t) { return t.defined() ? t.contiguous() : t; }

// ---- group normalisation ------------------------------------------------------------------

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

}  // namespace

Tensor group_norm(const Tensor& x_in, int64_t groups, const Tensor& gamma_in, const Tensor& beta_in, double eps,
                  bool relu) {
  check_defined("group_norm", x_in, "x");
  VISREP_CHECK(x_in.dim() >= 2, "group_norm: expected x of shape (N, C, ...), got shape {}",
               shape_string(x_in.shape()));
  check_normalization_dtype("group_norm", x_in, "x");
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
  const Tensor mean = empty({shape.group_count()}, statistic_options(x));
  const Tensor invstd = empty({shape.group_count()}, statistic_options(x));

  visit_normalization_dtype(x.dtype(), "group_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using S = kernels::NormalizationStatistic<T>;
    const T* x_data = pointer_or_null<const T>(x);
    const T* gamma_data = pointer_or_null<const T>(gamma);
    const T* beta_data = pointer_or_null<const T>(beta);
    T* y_data = pointer_or_null<T>(y);
    S* mean_data = pointer_or_null<S>(mean);
    S* invstd_data = pointer_or_null<S>(invstd);
    if (x.device().is_cuda()) {
      VISREP_ON_CUDA("group_norm", kernels::cuda::group_norm_forward<T>(shape, x_data, gamma_data, beta_data, eps, relu,
                                                                         y_data, mean_data, invstd_data,
                                                                         cuda_stream(x)));
    } else {
      kernels::cpu::group_norm_forward<T>(shape, x_data, gamma_data, beta_data, eps, relu, y_data, mean_data,
                                          invstd_data);
    }
  });

  if (!needs_grad({x_in, gamma_in, beta_in})) return y;
  const bool want_x = x_in.requires_grad();
  const bool want_gamma = gamma_in.defined() && gamma_in.requires_grad();
  const bool want_beta = beta_in.defined() && beta_in.requires_grad();
  const SavedTensor saved_x(x), saved_gamma(gamma), saved_beta(beta);
  return record("group_norm", y, {x_in, gamma_in, beta_in}, [=](const Tensor& grad_output) -> TensorList {
    const Tensor grad = grad_output.contiguous();
    const Tensor& input = saved_x.get();
    const Tensor& g = saved_gamma.get();
    const Tensor& b = saved_beta.get();
    const TensorOptions parameter_options(input.dtype(), input.device());
    Tensor dx = want_x ? empty_like(input) : Tensor();
    Tensor dgamma = want_gamma ? empty({shape.channels}, parameter_options) : Tensor();
    Tensor dbeta = want_beta ? empty({shape.channels}, parameter_options) : Tensor();
    visit_normalization_dtype(input.dtype(), "group_norm", [&](auto tag) {
      using T = typename decltype(tag)::type;
      using S = kernels::NormalizationStatistic<T>;
      const T* dy_data = pointer_or_null<const T>(grad);
      const T* x_data = pointer_or_null<const T>(input);
      const T* gamma_data = pointer_or_null<const T>(g);
      const T* beta_data = pointer_or_null<const T>(b);
      const S* mean_data = pointer_or_null<const S>(mean);
      const S* invstd_data = pointer_or_null<const S>(invstd);
      if (input.device().is_cuda()) {
        VISREP_ON_CUDA("group_norm", kernels::cuda::group_norm_backward<T>(
                                         shape, relu, dy_data, x_data, gamma_data, beta_data, mean_data, invstd_data,
                                         pointer_or_null<T>(dx), pointer_or_null<T>(dgamma), pointer_or_null<T>(dbeta),
                                         cuda_stream(input)));
      } else {
        kernels::cpu::group_norm_backward<T>(shape, relu, dy_data, x_data, gamma_data, beta_data, mean_data,
                                             invstd_data, pointer_or_null<T>(dx), pointer_or_null<T>(dgamma),
                                             pointer_or_null<T>(dbeta));
      }
    });
    return {dx, dgamma, dbeta};
  });
}

// ---- weight standardisation -----------------------------------------------------------------

namespace {

constexpr std::string_view kStandardization = "weight_standardization";

// Rows (output channels) and fan-in of a weight (C_out, ...).
std::pair<int64_t, int64_t> rows_and_fan_in(const Tensor& weight) {
  int64_t fan_in = 1;
  for (int64_t d = 1; d < weight.dim(); ++d) fan_in *= weight.size(d);
  return {weight.size(0), fan_in};
}

// The forward pass over a list: one kernel call for every weight. The outputs are views of
// one buffer; the statistics of weight i are rows [first_row[i], first_row[i + 1]) of
// mean and invstd.
struct Standardized {
  std::vector<Tensor> weights;  // the inputs, contiguous
  std::vector<Tensor> outputs;
  Tensor mean, invstd;
  std::vector<int64_t> first_row;
};

Standardized standardize(const std::vector<Tensor>& weights_in, double eps) {
  check_eps(kStandardization, eps);
  Standardized result;
  if (weights_in.empty()) return result;
  int64_t elements = 0, rows = 0;
  for (size_t i = 0; i < weights_in.size(); ++i) {
    const Tensor& w = weights_in[i];
    VISREP_CHECK(w.defined(), "{}: weight {} of the list is an undefined tensor", kStandardization, i);
    VISREP_CHECK(w.dim() >= 2, "{}: weight {} has shape {}; expected (C_out, fan-in dimensions...), at least 2-D",
                 kStandardization, i, shape_string(w.shape()));
    check_normalization_dtype(kStandardization, w, "the weight");
    const Tensor& first = weights_in.front();
    VISREP_CHECK(w.device() == first.device() && w.dtype() == first.dtype(),
                 "{}: all weights must share dtype and device; weight 0 is {} but weight {} is {}", kStandardization,
                 first.description(), i, w.description());
    result.weights.push_back(w.contiguous());
    result.first_row.push_back(rows);
    rows += w.size(0);
    elements += w.numel();
  }
  result.first_row.push_back(rows);
  const Tensor& first = result.weights.front();
  const Tensor flat = empty({elements}, TensorOptions(first.dtype(), first.device()));
  result.mean = empty({rows}, statistic_options(first));
  result.invstd = empty({rows}, statistic_options(first));
  int64_t offset = 0;
  for (const Tensor& w : result.weights) {
    result.outputs.push_back(flat.narrow(0, offset, w.numel()).view(w.shape()));
    offset += w.numel();
  }

  visit_normalization_dtype(first.dtype(), kStandardization, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using S = kernels::NormalizationStatistic<T>;
    std::vector<kernels::WeightStandardizationForward<T>> list;
    for (size_t i = 0; i < result.weights.size(); ++i) {
      const auto [weight_rows, fan_in] = rows_and_fan_in(result.weights[i]);
      list.push_back({.weight = pointer_or_null<const T>(result.weights[i]),
                      .standardized = pointer_or_null<T>(result.outputs[i]),
                      .mean = pointer_or_null<S>(result.mean) + result.first_row[i],
                      .invstd = pointer_or_null<S>(result.invstd) + result.first_row[i],
                      .rows = weight_rows,
                      .fan_in = fan_in});
    }
    const auto count = static_cast<int64_t>(list.size());
    if (first.device().is_cuda()) {
      VISREP_ON_CUDA(kStandardization,
                     kernels::cuda::weight_standardization_forward<T>(list.data(), count, eps, cuda_stream(first)));
    } else {
      kernels::cpu::weight_standardization_forward<T>(list.data(), count, eps);
    }
  });
  return result;
}

// dL/dw for every weight whose gradient dL/dw_hat is defined, in one kernel call; undefined
// for the others.
TensorList standardize_backward(const std::vector<SavedTensor>& saved_weights, const std::vector<Tensor>& grads,
                                const Tensor& mean, const Tensor& invstd, const std::vector<int64_t>& first_row) {
  TensorList result(saved_weights.size());
  std::vector<Tensor> weights(saved_weights.size()), contiguous_grads(saved_weights.size());
  for (size_t i = 0; i < saved_weights.size(); ++i) {
    if (!grads[i].defined()) continue;
    weights[i] = saved_weights[i].get();
    contiguous_grads[i] = grads[i].contiguous();
    result[i] = empty_like(weights[i]);
  }
  const DType dtype = saved_weights.front().get().dtype();
  visit_normalization_dtype(dtype, kStandardization, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using S = kernels::NormalizationStatistic<T>;
    std::vector<kernels::WeightStandardizationBackward<T>> list;
    for (size_t i = 0; i < weights.size(); ++i) {
      if (!result[i].defined()) continue;
      const auto [weight_rows, fan_in] = rows_and_fan_in(weights[i]);
      list.push_back({.weight = pointer_or_null<const T>(weights[i]),
                      .grad_standardized = pointer_or_null<const T>(contiguous_grads[i]),
                      .grad_weight = pointer_or_null<T>(result[i]),
                      .mean = pointer_or_null<const S>(mean) + first_row[i],
                      .invstd = pointer_or_null<const S>(invstd) + first_row[i],
                      .rows = weight_rows,
                      .fan_in = fan_in});
    }
    if (list.empty()) return;
    const auto count = static_cast<int64_t>(list.size());
    if (mean.device().is_cuda()) {
      VISREP_ON_CUDA(kStandardization,
                     kernels::cuda::weight_standardization_backward<T>(list.data(), count, cuda_stream(mean)));
    } else {
      kernels::cpu::weight_standardization_backward<T>(list.data(), count);
    }
  });
  return result;
}

std::vector<SavedTensor> save_all(const std::vector<Tensor>& tensors) {
  return {tensors.begin(), tensors.end()};
}

// The gradients of the outputs of one multi-tensor call, gathered during a backward pass
// until the shared node computes them all (see the header).
struct GatheredGradients {
  std::vector<Tensor> grads;  // dL/dw_hat per output; undefined: none arrived
  bool token_passed = false;  // whether an output has passed the shared node its (empty) gradient
};

}  // namespace

Tensor weight_standardization(const Tensor& weight, double eps) {
  check_defined(kStandardization, weight, "weight");
  Standardized s = standardize({weight}, eps);
  if (!needs_grad({weight})) return s.outputs.front();
  return record(kStandardization, s.outputs.front(), {weight},
                [saved = save_all(s.weights), mean = s.mean, invstd = s.invstd,
                 first_row = s.first_row](const Tensor& grad_output) -> TensorList {
                  return standardize_backward(saved, {grad_output}, mean, invstd, first_row);
                });
}

std::vector<Tensor> weight_standardization(const std::vector<Tensor>& weights, double eps) {
  Standardized s = standardize(weights, eps);
  if (!needs_grad(weights)) return s.outputs;

  // The shared node hangs off an empty "token" tensor that depends on every weight; each
  // output depends on the token. Gradients flow output -> token -> weights, and the token's
  // node runs after every output's node that received a gradient.
  const size_t count = weights.size();
  auto gathered = std::make_shared<GatheredGradients>();
  gathered->grads.resize(count);
  const TensorOptions token_options(s.weights.front().dtype(), s.weights.front().device());
  const Tensor token = record(
      "weight_standardization (all weights)", empty({0}, token_options), weights,
      [gathered, count, saved = save_all(s.weights), mean = s.mean, invstd = s.invstd,
       first_row = s.first_row](const Tensor&) -> TensorList {
        std::vector<Tensor> grads = std::move(gathered->grads);
        gathered->grads.assign(count, Tensor());  // ready for another backward pass over the graph
        gathered->token_passed = false;
        return standardize_backward(saved, grads, mean, invstd, first_row);
      });
  // The token's gradient is empty: only the first output to run passes it on (so the
  // engine has no sums to form); the others return none.
  const Tensor token_gradient = empty({0}, token_options);
  for (size_t i = 0; i < count; ++i) {
    s.outputs[i] = record("weight_standardization (gather)", s.outputs[i], {token},
                          [gathered, i, token_gradient](const Tensor& grad_output) -> TensorList {
                            gathered->grads[i] = grad_output;
                            if (gathered->token_passed) return {Tensor()};
                            gathered->token_passed = true;
                            return {token_gradient};
                          });
  }
  return s.outputs;
}

}  // namespace visrep
