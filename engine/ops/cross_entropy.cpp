// log_softmax, nll_loss and cross_entropy: checks, the kernel calls and their backward
// (kernels/cpu/cross_entropy.h lists the family's files).
#include "engine/ops/cross_entropy.h"

#include <vector>

#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduction.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cuda/cross_entropy.h"

namespace visrep {
namespace {

Tensor reduce_losses(const Tensor& losses, Reduction reduction, double count) {
  switch (reduction) {
    case Reduction::None: return losses;
    case Reduction::Sum: return sum(losses);
    case Reduction::Mean: return div(sum(losses), count);
  }
  return losses;
}

}  // namespace

Tensor log_softmax(const Tensor& x_in, int64_t dim) {
  check_defined("log_softmax", x_in, "x");
  if (x_in.dtype() == kBFloat16) return log_softmax(x_in.to(kFloat32), dim).to(kBFloat16);
  VISREP_CHECK(x_in.dim() >= 1, "log_softmax: expected at least one dimension, got a scalar");
  dim = wrap_dim(dim, x_in.dim(), "log_softmax");
  const Tensor x = x_in.contiguous();
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= x.size(d);
  for (int64_t d = dim + 1; d < x.dim(); ++d) inner *= x.size(d);
  const int64_t classes = x.size(dim);
  Tensor y = empty_like(x);
  visit_floating(x.dtype(), "log_softmax", [&](auto tag) {
    using T = typename decltype(tag)::type;
    VISREP_RUN_KERNEL("log_softmax", x.device(), log_softmax_forward,
                      kernels::LogSoftmaxForward<T>{.x = data_or_null<const T>(x),
                                                    .outer = outer,
                                                    .classes = classes,
                                                    .inner = inner,
                                                    .y = data_or_null<T>(y)});
  });
  const SavedTensor saved_y = needs_grad({x_in}) ? SavedTensor(y) : SavedTensor();
  return record("log_softmax", y, {x_in}, [=](const Tensor& g_out) -> TensorList {
    const Tensor grad = g_out.contiguous();
    const Tensor& out = saved_y.get();
    Tensor dx = empty_like(out);
    visit_floating(grad.dtype(), "log_softmax", [&](auto tag) {
      using T = typename decltype(tag)::type;
      VISREP_RUN_KERNEL("log_softmax", grad.device(), log_softmax_backward,
                        kernels::LogSoftmaxBackward<T>{.grad_y = data_or_null<const T>(grad),
                                                       .y = data_or_null<const T>(out),
                                                       .outer = outer,
                                                       .classes = classes,
                                                       .inner = inner,
                                                       .grad_x = data_or_null<T>(dx)});
    });
    return {dx};
  });
}

Tensor softmax(const Tensor& x, int64_t dim) { return exp(log_softmax(x, dim)); }

Tensor nll_loss(const Tensor& log_probs_in, const Tensor& targets_in, const CrossEntropyOptions& options) {
  check_defined("nll_loss", log_probs_in, "log_probs");
  check_defined("nll_loss", targets_in, "targets");
  VISREP_CHECK(log_probs_in.dim() == 2, "nll_loss: expected (N, C) log-probabilities, got shape {}",
               shape_string(log_probs_in.shape()));
  VISREP_CHECK(targets_in.dtype() == kInt64, "nll_loss: class-index targets must be int64, got {}",
               dtype_name(targets_in.dtype()));
  VISREP_CHECK(targets_in.dim() == 1 && targets_in.size(0) == log_probs_in.size(0),
               "nll_loss: targets of shape {} do not match {} rows of log-probabilities {}",
               shape_string(targets_in.shape()), log_probs_in.size(0), shape_string(log_probs_in.shape()));
  VISREP_CHECK(options.label_smoothing >= 0.0 && options.label_smoothing <= 1.0,
               "nll_loss: label_smoothing must be in [0, 1], got {}", options.label_smoothing);
  check_same_device("nll_loss", log_probs_in, targets_in);
  if (log_probs_in.dtype() == kBFloat16) return nll_loss(log_probs_in.to(kFloat32), targets_in, options).to(kBFloat16);
  const Tensor log_probs = log_probs_in.contiguous();
  const Tensor targets = targets_in.contiguous();
  const int64_t batch = log_probs.size(0), classes = log_probs.size(1);
  // The range check of the targets (ignore_index excepted): at once on the CPU (its kernel
  // would read outside a row), at the next synchronisation on CUDA (engine/dispatch.h; the
  // kernel gives such a row a NaN loss without reading it). Then the count of the rows that
  // are not ignored, which divides the mean: on the host for the CPU, a device tensor on the
  // GPU so that nothing waits for the device.
  check_indices_in_range(
      "nll_loss", targets, classes, options.ignore_index, [classes](int64_t value, int64_t position) {
        return fmt::format("nll_loss: target {} at row {} is out of range for {} classes", value, position, classes);
      });
  int64_t counted = 0;
  Tensor counted_on_device;
  if (targets.device().is_cuda()) {
    counted_on_device = sum(ne(targets, static_cast<double>(options.ignore_index))).to(log_probs.dtype());
  } else {
    const int64_t* target_values = data_or_null<const int64_t>(targets);
    for (int64_t i = 0; i < batch; ++i) counted += target_values[i] != options.ignore_index;
  }

  Tensor losses = empty({batch}, TensorOptions(log_probs.dtype(), log_probs.device()));
  visit_floating(log_probs.dtype(), "nll_loss", [&](auto tag) {
    using T = typename decltype(tag)::type;
    VISREP_RUN_KERNEL("nll_loss", log_probs.device(), nll_loss_forward,
                      kernels::NllLossForward<T>{.log_probs = data_or_null<const T>(log_probs),
                                                 .targets = data_or_null<const int64_t>(targets),
                                                 .batch = batch,
                                                 .classes = classes,
                                                 .ignore_index = options.ignore_index,
                                                 .label_smoothing = options.label_smoothing,
                                                 .losses = data_or_null<T>(losses)});
  });
  losses = record("nll_loss", losses, {log_probs_in}, [=](const Tensor& g_out) -> TensorList {
    const Tensor grad = g_out.contiguous();
    Tensor dlog_probs = empty({batch, classes}, TensorOptions(grad.dtype(), grad.device()));
    visit_floating(grad.dtype(), "nll_loss", [&](auto tag) {
      using T = typename decltype(tag)::type;
      VISREP_RUN_KERNEL("nll_loss", grad.device(), nll_loss_backward,
                        kernels::NllLossBackward<T>{.grad_losses = data_or_null<const T>(grad),
                                                    .targets = data_or_null<const int64_t>(targets),
                                                    .batch = batch,
                                                    .classes = classes,
                                                    .ignore_index = options.ignore_index,
                                                    .label_smoothing = options.label_smoothing,
                                                    .grad_log_probs = data_or_null<T>(dlog_probs)});
    });
    return {dlog_probs};
  });
  // Mean over the rows that count; all rows ignored gives NaN (0 / 0), as in PyTorch.
  if (options.reduction == Reduction::Mean && counted_on_device.defined()) return div(sum(losses), counted_on_device);
  return reduce_losses(losses, options.reduction, static_cast<double>(counted));
}

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, const CrossEntropyOptions& options) {
  check_defined("cross_entropy", logits, "logits");
  check_defined("cross_entropy", targets, "targets");
  VISREP_CHECK(logits.dim() == 2, "cross_entropy: expected (N, C) logits, got shape {}", shape_string(logits.shape()));
  if (targets.dtype() == kInt64) {
    try {
      return nll_loss(log_softmax(logits, 1), targets, options);
    } catch (const Error& error) {  // the user called cross_entropy: say so
      VISREP_FAIL("cross_entropy: {}", error.what());
    }
  }

  // Soft targets: loss_i = -sum_c t'_ic log p_ic with t' = (1 - s) t + s / C.
  VISREP_CHECK(is_floating(targets.dtype()),
               "cross_entropy: targets must be int64 class indices or floating probabilities, got {}",
               dtype_name(targets.dtype()));
  VISREP_CHECK(targets.shape() == logits.shape(),
               "cross_entropy: soft targets of shape {} must match the logits' shape {}", shape_string(targets.shape()),
               shape_string(logits.shape()));
  VISREP_CHECK(options.label_smoothing >= 0.0 && options.label_smoothing <= 1.0,
               "cross_entropy: label_smoothing must be in [0, 1], got {}", options.label_smoothing);
  check_same_device("cross_entropy", logits, targets);
  const double classes = static_cast<double>(logits.size(1));
  Tensor smoothed = options.label_smoothing == 0.0
                        ? targets
                        : add(mul(targets, 1.0 - options.label_smoothing), options.label_smoothing / classes);
  Tensor losses = neg(sum(mul(smoothed.to(logits.dtype()), log_softmax(logits, 1)), {1}));
  return reduce_losses(losses, options.reduction, static_cast<double>(logits.size(0)));
}

}  // namespace visrep
