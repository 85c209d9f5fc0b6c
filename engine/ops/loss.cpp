#include "engine/ops/loss.h"

#include <vector>

#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduction.h"
#include "kernels/cpu/softmax.h"
#if VISREP_WITH_CUDA
#include "kernels/cuda/softmax.h"
#endif

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
    const T* input = static_cast<const T*>(x.raw_data());
    T* output = static_cast<T*>(y.raw_data());
    if (x.device().is_cuda()) {
      VISREP_ON_CUDA("log_softmax",
                     kernels::cuda::log_softmax_forward<T>(input, outer, classes, inner, output, cuda_stream(x)));
    } else {
      kernels::cpu::log_softmax_forward<T>(input, outer, classes, inner, output);
    }
  });
  const SavedTensor saved_y = needs_grad({x_in}) ? SavedTensor(y) : SavedTensor();
  return record("log_softmax", y, {x_in}, [=](const Tensor& g_out) -> TensorList {
    const Tensor grad = g_out.contiguous();
    const Tensor& out = saved_y.get();
    Tensor dx = empty_like(out);
    visit_floating(grad.dtype(), "log_softmax", [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* dy = static_cast<const T*>(grad.raw_data());
      const T* y_data = static_cast<const T*>(out.raw_data());
      T* dx_data = static_cast<T*>(dx.raw_data());
      if (grad.device().is_cuda()) {
        VISREP_ON_CUDA("log_softmax", kernels::cuda::log_softmax_backward<T>(dy, y_data, outer, classes, inner, dx_data,
                                                                             cuda_stream(grad)));
      } else {
        kernels::cpu::log_softmax_backward<T>(dy, y_data, outer, classes, inner, dx_data);
      }
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
  // The range check of the targets (ignore_index excepted) and the count of the rows that are
  // not ignored, which divides the mean. The CPU checks and counts on the host before its
  // kernel runs (an out-of-range target would read outside its row). On the GPU neither waits
  // for the device: the check is deferred to the next synchronisation (engine/dispatch.h; the
  // kernel gives such a row a NaN loss without reading it) and the count is a device tensor.
  int64_t counted = 0;
  Tensor counted_on_device;
  if (targets.device().is_cuda()) {
#if VISREP_WITH_CUDA
    check_cuda_indices_deferred("nll_loss", targets, classes, options.ignore_index,
                                [classes](int64_t value, int64_t position) {
                                  return fmt::format("nll_loss: target {} at row {} is out of range for {} classes",
                                                     value, position, classes);
                                });
    counted_on_device = sum(ne(targets, static_cast<double>(options.ignore_index))).to(log_probs.dtype());
#endif
  } else {
    const int64_t* target_values = static_cast<const int64_t*>(targets.raw_data());
    for (int64_t i = 0; i < batch; ++i) {
      if (target_values[i] == options.ignore_index) continue;
      VISREP_CHECK(target_values[i] >= 0 && target_values[i] < classes,
                   "nll_loss: target {} at row {} is out of range for {} classes", target_values[i], i, classes);
      ++counted;
    }
  }

  Tensor losses = empty({batch}, TensorOptions(log_probs.dtype(), log_probs.device()));
  visit_floating(log_probs.dtype(), "nll_loss", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* input = static_cast<const T*>(log_probs.raw_data());
    const int64_t* target_data = static_cast<const int64_t*>(targets.raw_data());
    T* output = static_cast<T*>(losses.raw_data());
    if (log_probs.device().is_cuda()) {
      VISREP_ON_CUDA("nll_loss",
                     kernels::cuda::nll_loss_forward<T>(input, target_data, batch, classes, options.ignore_index,
                                                        options.label_smoothing, output, cuda_stream(log_probs)));
    } else {
      kernels::cpu::nll_loss_forward<T>(input, target_data, batch, classes, options.ignore_index,
                                        options.label_smoothing, output);
    }
  });
  losses = record("nll_loss", losses, {log_probs_in}, [=](const Tensor& g_out) -> TensorList {
    const Tensor grad = g_out.contiguous();
    Tensor dlog_probs = empty({batch, classes}, TensorOptions(grad.dtype(), grad.device()));
    visit_floating(grad.dtype(), "nll_loss", [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* dy = static_cast<const T*>(grad.raw_data());
      const int64_t* target_data = static_cast<const int64_t*>(targets.raw_data());
      T* dx_data = static_cast<T*>(dlog_probs.raw_data());
      if (grad.device().is_cuda()) {
        VISREP_ON_CUDA("nll_loss",
                       kernels::cuda::nll_loss_backward<T>(dy, target_data, batch, classes, options.ignore_index,
                                                           options.label_smoothing, dx_data, cuda_stream(grad)));
      } else {
        kernels::cpu::nll_loss_backward<T>(dy, target_data, batch, classes, options.ignore_index,
                                           options.label_smoothing, dx_data);
      }
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
