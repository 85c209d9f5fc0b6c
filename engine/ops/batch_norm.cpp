// batch_norm and sync_batch_norm: checks, the kernel calls and their backward
// (kernels/cpu/batch_norm.h lists the family's files).
#include "engine/ops/batch_norm.h"

#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "engine/ops/elementwise.h"
#include "kernels/cpu/batch_norm.h"
#include "kernels/cuda/batch_norm.h"

namespace visrep {
namespace {

void check_channel_vector(const Tensor& t, int64_t channels, std::string_view name) {
  if (!t.defined()) return;
  VISREP_CHECK(t.dim() == 1 && t.size(0) == channels, "batch_norm: {} has shape {}, expected [{}]", name,
               shape_string(t.shape()), channels);
}

// The checks both forms share; the "more than one value" check of training needs the count
// over every rank for sync_batch_norm, which does it itself.
kernels::BatchNormShape check_arguments(std::string_view op, const Tensor& x_in, const Tensor& running_mean,
                                        const Tensor& running_var, const Tensor& weight_in, const Tensor& bias_in,
                                        const BatchNormOptions& options) {
  check_defined(op, x_in, "x");
  VISREP_CHECK(x_in.dim() == 2 || x_in.dim() == 4, "{}: expected (N, C) or (N, C, H, W), got shape {}", op,
               shape_string(x_in.shape()));
  VISREP_CHECK(options.eps > 0, "{}: eps must be positive, got {}", op, options.eps);
  const int64_t channels = x_in.size(1);
  check_channel_vector(running_mean, channels, "running_mean");
  check_channel_vector(running_var, channels, "running_var");
  check_channel_vector(weight_in, channels, "weight");
  check_channel_vector(bias_in, channels, "bias");
  VISREP_CHECK(running_mean.defined() == running_var.defined(),
               "{}: running_mean and running_var must be given together", op);
  VISREP_CHECK(options.training || running_mean.defined(),
               "{}: evaluation mode needs running_mean and running_var", op);
  for (const Tensor* t : {&running_mean, &running_var, &weight_in, &bias_in}) {
    if (!t->defined()) continue;
    check_same_device(op, x_in, *t);
    check_same_dtype(op, x_in, *t);
  }
  VISREP_CHECK(x_in.dtype() != kBFloat16, "{}: bfloat16 input of shape {} on {}: convert it to float32 first", op,
               shape_string(x_in.shape()), x_in.device().str());
  VISREP_CHECK(!options.training || !running_mean.defined() || (running_mean.is_contiguous() && running_var.is_contiguous()),
               "{}: running statistics must be contiguous", op);
  return {x_in.size(0), channels, x_in.dim() == 4 ? x_in.size(2) * x_in.size(3) : 1};
}

}  // namespace

Tensor batch_norm(const Tensor& x_in, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight_in,
                  const Tensor& bias_in, const BatchNormOptions& options) {
  const kernels::BatchNormShape shape =
      check_arguments("batch_norm", x_in, running_mean, running_var, weight_in, bias_in, options);
  const int64_t channels = shape.channels;
  VISREP_CHECK(!options.training || shape.batch * shape.spatial > 1,
               "batch_norm: training needs more than one value per channel, got input of shape {}",
               shape_string(x_in.shape()));

  const Tensor x = x_in.contiguous();
  const Tensor weight = weight_in.defined() ? weight_in.contiguous() : weight_in;
  const Tensor bias = bias_in.defined() ? bias_in.contiguous() : bias_in;
  Tensor y = empty_like(x);
  Tensor mean = empty({channels}, TensorOptions(x.dtype(), x.device()));
  Tensor invstd = empty({channels}, TensorOptions(x.dtype(), x.device()));

  visit_floating(x.dtype(), "batch_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (options.training) {
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

// ---- SyncBatchNorm ------------------------------------------------------------------------------

namespace {

// The per-channel statistics of every rank's batch merged in rank order (the header's formula):
// counts[k] elements of rank k, whose mean and M2 are rows k of `means` and `squares` [P, C]
// (float64). Ranks with no elements add nothing. Returns {mean, M2} [C] of all of them.
std::pair<Tensor, Tensor> merge_statistics(const std::vector<int64_t>& counts, const Tensor& means,
                                           const Tensor& squares) {
  Tensor mean, m2;
  double count = 0;
  for (size_t k = 0; k < counts.size(); ++k) {
    const auto n_k = static_cast<double>(counts[k]);
    if (n_k == 0) continue;
    const Tensor mean_k = means.select(0, static_cast<int64_t>(k)), m2_k = squares.select(0, static_cast<int64_t>(k));
    if (count == 0) {
      mean = mean_k.clone();
      m2 = m2_k.clone();
    } else {
      const double total = count + n_k;
      const Tensor delta = sub(mean_k, mean);
      mean = add(mean, mul(delta, n_k / total));
      m2 = add(add(m2, m2_k), mul(mul(delta, delta), count * n_k / total));
    }
    count += n_k;
  }
  return {mean, m2};
}

}  // namespace

Tensor sync_batch_norm(const Tensor& x_in, const Tensor& running_mean, const Tensor& running_var,
                       const Tensor& weight_in, const Tensor& bias_in, const BatchNormOptions& options,
                       distributed::Collectives& ranks) {
  if (!options.training) return batch_norm(x_in, running_mean, running_var, weight_in, bias_in, options);
  constexpr std::string_view op = "sync_batch_norm";
  const kernels::BatchNormShape shape =
      check_arguments(op, x_in, running_mean, running_var, weight_in, bias_in, options);
  const int64_t channels = shape.channels;
  const Tensor x = x_in.contiguous();
  const Tensor weight = weight_in.defined() ? weight_in.contiguous() : weight_in;
  const Tensor bias = bias_in.defined() ? bias_in.contiguous() : bias_in;
  const Device device = x.device();
  const TensorOptions statistics_options(kFloat64, device);

  // This rank's count (on the host: every rank needs every count) and its mean and M2 per
  // channel (on the device), exchanged, then merged.
  Tensor local_count = from_vector(std::vector<int64_t>{shape.batch * shape.spatial}, {1});
  const std::vector<int64_t> counts = ranks.all_gather(local_count).to_vector<int64_t>();
  int64_t count = 0;
  for (int64_t n : counts) count += n;
  VISREP_CHECK(count > 1,
               "{}: training needs more than one value per channel over all {} ranks, got {} (this rank's input has "
               "shape {})",
               op, ranks.size(), count, shape_string(x_in.shape()));
  const Tensor local = empty({2, channels}, statistics_options);  // mean, M2
  visit_floating(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    VISREP_RUN_KERNEL(op, device, batch_norm_statistics,
                      kernels::BatchNormStatistics<T>{.shape = shape,
                                                      .x = data_or_null<const T>(x),
                                                      .mean = data_or_null<double>(local),
                                                      .squares = data_or_null<double>(local) + channels});
  });
  const Tensor gathered = ranks.all_gather(local.unsqueeze(0)).contiguous();  // [P, 2, C]
  const auto [global_mean, global_m2] =
      merge_statistics(counts, gathered.select(1, 0).contiguous(), gathered.select(1, 1).contiguous());
  const Tensor merged_mean = global_mean.contiguous(), merged_m2 = global_m2.contiguous();

  Tensor y = empty_like(x);
  Tensor mean = empty({channels}, TensorOptions(x.dtype(), device));
  Tensor invstd = empty({channels}, TensorOptions(x.dtype(), device));
  visit_floating(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    VISREP_RUN_KERNEL(op, device, batch_norm_forward_with_statistics,
                      kernels::BatchNormForwardWithStatistics<T>{.shape = shape,
                                                                 .x = data_or_null<const T>(x),
                                                                 .gamma = data_or_null<const T>(weight),
                                                                 .beta = data_or_null<const T>(bias),
                                                                 .mean = data_or_null<const double>(merged_mean),
                                                                 .squares = data_or_null<const double>(merged_m2),
                                                                 .count = static_cast<double>(count),
                                                                 .eps = options.eps,
                                                                 .momentum = options.momentum,
                                                                 .running_mean = data_or_null<T>(running_mean),
                                                                 .running_var = data_or_null<T>(running_var),
                                                                 .y = data_or_null<T>(y),
                                                                 .saved_mean = data_or_null<T>(mean),
                                                                 .saved_invstd = data_or_null<T>(invstd)});
  });
  if (running_mean.defined()) {
    running_mean.storage()->bump_version();
    running_var.storage()->bump_version();
  }

  const bool grad_x = x_in.requires_grad();
  const bool grad_w = weight_in.defined() && weight_in.requires_grad();
  const bool grad_b = bias_in.defined() && bias_in.requires_grad();
  const bool wants_grad = needs_grad({x_in, weight_in, bias_in});
  const SavedTensor saved_x = wants_grad ? SavedTensor(x) : SavedTensor();
  const SavedTensor saved_weight = wants_grad ? SavedTensor(weight) : SavedTensor();
  distributed::Collectives* group = &ranks;
  return record(op, y, {x_in, weight_in, bias_in}, [=](const Tensor& g_out) -> TensorList {
    const Tensor grad = g_out.contiguous();
    const Tensor& input = saved_x.get();
    const Tensor& w = saved_weight.get();
    const Tensor sums = empty({2, channels}, statistics_options);  // sum dy, sum dy * xhat: this rank's
    visit_floating(grad.dtype(), op, [&](auto tag) {
      using T = typename decltype(tag)::type;
      VISREP_RUN_KERNEL(op, device, batch_norm_backward_sums,
                        kernels::BatchNormBackwardSums<T>{.shape = shape,
                                                          .grad_y = data_or_null<const T>(grad),
                                                          .x = data_or_null<const T>(input),
                                                          .mean = data_or_null<const T>(mean),
                                                          .invstd = data_or_null<const T>(invstd),
                                                          .sum_dy = data_or_null<double>(sums),
                                                          .sum_dy_xhat = data_or_null<double>(sums) + channels});
    });
    // The weight's and bias's gradients are this rank's sums; grad_x needs every rank's. (Copies:
    // the all-reduce below sums `sums` in place, and a view of it would become the global sums.)
    const Tensor dw = grad_w ? sums.select(0, 1).to(input.dtype()).clone() : Tensor();
    const Tensor db = grad_b ? sums.select(0, 0).to(input.dtype()).clone() : Tensor();
    if (!grad_x) return {Tensor(), dw, db};
    group->all_reduce(sums, distributed::ReduceOp::Sum);
    Tensor dx = empty_like(input);
    visit_floating(grad.dtype(), op, [&](auto tag) {
      using T = typename decltype(tag)::type;
      VISREP_RUN_KERNEL(op, device, batch_norm_backward_with_sums,
                        kernels::BatchNormBackwardWithSums<T>{.shape = shape,
                                                              .grad_y = data_or_null<const T>(grad),
                                                              .x = data_or_null<const T>(input),
                                                              .gamma = data_or_null<const T>(w),
                                                              .mean = data_or_null<const T>(mean),
                                                              .invstd = data_or_null<const T>(invstd),
                                                              .sum_dy = data_or_null<const double>(sums),
                                                              .sum_dy_xhat = data_or_null<const double>(sums) + channels,
                                                              .count = static_cast<double>(count),
                                                              .grad_x = data_or_null<T>(dx)});
    });
    return {dx, dw, db};
  });
}

}  // namespace visrep
