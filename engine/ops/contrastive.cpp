#include "engine/ops/contrastive.h"

#include <cmath>
#include <string>

#include "engine/autograd.h"
#include "engine/cuda.h"
#include "engine/dispatch.h"
#include "kernels/cpu/contrastive.h"
#if VISREP_WITH_CUDA
#include "kernels/cuda/contrastive.h"
#endif

namespace visrep {
namespace {

struct ContrastiveArguments {
  std::string_view op;
  Tensor h;       // R x D
  Tensor extra;   // M x D or undefined
  Tensor labels;  // int64, N or 2N, or undefined
  double temperature = 1.0;
  double loss_scale = 1.0;  // tau / base_tau
  ContrastMode mode = ContrastMode::All;
};

void check_arguments(const ContrastiveArguments& a) {
  const std::string_view op = a.op;
  check_defined(op, a.h, "h");
  VISREP_CHECK(a.h.dim() == 2, "{}: expected embeddings h of shape (2N, D), got shape {}", op,
               shape_string(a.h.shape()));
  VISREP_CHECK(is_floating(a.h.dtype()), "{}: embeddings must be float32, float64 or bfloat16, got {}", op,
               dtype_name(a.h.dtype()));
  const int64_t rows = a.h.size(0), dim = a.h.size(1);
  VISREP_CHECK(rows >= 2 && rows % 2 == 0,
               "{}: h must hold an even number of rows, 2N >= 2 (rows i and i + N are two views of image i), got {} "
               "rows",
               op, rows);
  VISREP_CHECK(dim >= 1, "{}: embeddings of dimension 0 (h has shape {})", op, shape_string(a.h.shape()));
  VISREP_CHECK(std::isfinite(a.temperature) && a.temperature > 0.0,
               "{}: the temperature must be positive and finite, got {}", op, a.temperature);
  VISREP_CHECK(std::isfinite(a.loss_scale) && a.loss_scale > 0.0,
               "{}: the base temperature must be positive and finite (tau / base_tau = {})", op, a.loss_scale);
  if (a.extra.defined()) {
    VISREP_CHECK(a.extra.dim() == 2 && a.extra.size(1) == dim,
                 "{}: extra_negatives must have shape (M, {}) like h's rows, got shape {}", op, dim,
                 shape_string(a.extra.shape()));
    check_same_dtype(op, a.h, a.extra);
    check_same_device(op, a.h, a.extra);
  }
  if (a.labels.defined()) {
    VISREP_CHECK(a.labels.dtype() == kInt64, "{}: labels must be int64, got {}", op, dtype_name(a.labels.dtype()));
    VISREP_CHECK(a.labels.dim() == 1 && (a.labels.size(0) == rows / 2 || a.labels.size(0) == rows),
                 "{}: labels of shape {} do not match h's {} rows: give one label per image ({}) or one per row ({})",
                 op, shape_string(a.labels.shape()), rows, rows / 2, rows);
    check_same_device(op, a.h, a.labels);
  }
}

kernels::ContrastiveProblem make_problem(const ContrastiveArguments& a, const Tensor& labels) {
  kernels::ContrastiveProblem problem;
  problem.rows = a.h.size(0);
  problem.extra_rows = a.extra.defined() ? a.extra.size(0) : 0;
  problem.dim = a.h.size(1);
  problem.anchors = a.mode == ContrastMode::All ? problem.rows : problem.rows / 2;
  if (labels.defined()) {
    problem.labels = static_cast<const int64_t*>(labels.raw_data());
    problem.label_count = labels.size(0);
  }
  problem.temperature = a.temperature;
  problem.loss_scale = a.loss_scale;
  return problem;
}

template <class T>
const T* data_or_null(const Tensor& tensor) {
  return tensor.defined() ? static_cast<const T*>(tensor.raw_data()) : nullptr;
}

template <class T>
T* mutable_data_or_null(const Tensor& tensor) {
  return tensor.defined() ? static_cast<T*>(tensor.raw_data()) : nullptr;
}

// ---- CPU: the double-precision reference ---------------------------------------------------

Tensor contrastive_on_cpu(const ContrastiveArguments& a) {
  // bfloat16 is a storage format: the CPU computes in float32 and hands back a bfloat16 gradient.
  const DType input_dtype = a.h.dtype();
  const DType compute = input_dtype == kBFloat16 ? kFloat32 : input_dtype;
  const Tensor h = a.h.to(compute).contiguous();
  const Tensor extra = a.extra.defined() && a.extra.size(0) > 0 ? a.extra.to(compute).contiguous() : Tensor();
  const Tensor labels = a.labels.defined() ? a.labels.contiguous() : Tensor();
  ContrastiveArguments arguments = a;
  arguments.extra = extra;
  const kernels::ContrastiveProblem problem = make_problem(arguments, labels);

  // The state the backward pass needs, in double: O(C x D) + O(C).
  struct SavedState {
    Tensor z, norm, log_sum_exp, positive_count;
    kernels::cpu::ContrastiveSavedCpu pointers() const {
      return {z.data<double>(), norm.data<double>(), log_sum_exp.data<double>(), positive_count.data<int32_t>()};
    }
  };
  const SavedState state{empty({problem.columns(), problem.dim}, kFloat64), empty({problem.columns()}, kFloat64),
                         empty({problem.anchors}, kFloat64), empty({problem.anchors}, kInt32)};
  const kernels::cpu::ContrastiveSavedCpu saved = state.pointers();
  const kernels::cpu::ContrastiveForwardResult result = visit_floating(compute, a.op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return kernels::cpu::contrastive_forward<T>(data_or_null<T>(h), data_or_null<T>(extra), problem, saved);
  });
  if (result.first_non_finite_row >= 0) {
    const bool in_h = result.first_non_finite_row < problem.rows;
    VISREP_FAIL("{}: {} row {} holds a NaN or Inf; the loss of non-finite embeddings is undefined", a.op,
                in_h ? "h" : "extra_negatives",
                in_h ? result.first_non_finite_row : result.first_non_finite_row - problem.rows);
  }

  const Tensor loss = scalar_tensor(result.loss, compute);
  const bool extra_wants_grad = extra.defined() && a.extra.requires_grad();
  const int64_t counted = result.counted_anchors;
  const DType extra_dtype = input_dtype;
  return record(a.op, loss, {a.h, a.extra},
                [=](const Tensor& grad_output) -> TensorList {
                  const double grad_loss = grad_output.item();
                  Tensor grad_h = empty({problem.rows, problem.dim}, compute);
                  Tensor grad_extra =
                      extra_wants_grad ? empty({problem.extra_rows, problem.dim}, compute) : Tensor();
                  kernels::ContrastiveProblem p = problem;  // labels alive through the capture below
                  p.labels = labels.defined() ? static_cast<const int64_t*>(labels.raw_data()) : nullptr;
                  visit_floating(compute, "contrastive backward", [&](auto tag) {
                    using T = typename decltype(tag)::type;
                    kernels::cpu::contrastive_backward<T>(grad_loss, p, state.pointers(), counted,
                                                          grad_h.data<T>(), mutable_data_or_null<T>(grad_extra));
                  });
                  if (input_dtype != compute) {
                    grad_h = grad_h.to(input_dtype);
                    if (grad_extra.defined()) grad_extra = grad_extra.to(extra_dtype);
                  }
                  return {grad_h, grad_extra};
                });
}

// ---- CUDA: the fused kernels ---------------------------------------------------------------

#if VISREP_WITH_CUDA
template <class F>
decltype(auto) visit_contrastive_cuda(DType dtype, F&& f) {
  switch (dtype) {
    case DType::Float32: return f(std::type_identity<float>{});
    case DType::Float64: return f(std::type_identity<double>{});
    case DType::BFloat16: return f(std::type_identity<bfloat16>{});
    default: VISREP_FAIL("contrastive loss: no CUDA kernel for {}", dtype_name(dtype));
  }
}

Tensor contrastive_on_cuda(const ContrastiveArguments& a) {
  const Device device = a.h.device();
  const DType dtype = a.h.dtype();
  const DType stat_dtype = dtype == kFloat64 ? kFloat64 : kFloat32;
  const Tensor h = a.h.contiguous();
  const Tensor extra = a.extra.defined() && a.extra.size(0) > 0 ? a.extra.contiguous() : Tensor();
  const Tensor labels = a.labels.defined() ? a.labels.contiguous() : Tensor();
  ContrastiveArguments arguments = a;
  arguments.extra = extra;
  const kernels::ContrastiveProblem problem = make_problem(arguments, labels);
  // Chosen once, so the backward pass recomputes the similarities exactly as forward did.
  const bool tensor_cores = dtype == kBFloat16 || (dtype == kFloat32 && cuda::tf32_enabled());

  const Tensor z = empty({problem.columns(), problem.dim}, TensorOptions(dtype, device));
  const Tensor norm = empty({problem.columns()}, TensorOptions(stat_dtype, device));
  const Tensor log_sum_exp = empty({problem.anchors}, TensorOptions(stat_dtype, device));
  const Tensor positive_count = empty({problem.anchors}, TensorOptions(kInt32, device));
  const Tensor loss = empty({}, TensorOptions(stat_dtype, device));
  const Tensor counted = empty({}, TensorOptions(kInt32, device));
  const cudaStream_t stream = cuda_stream(h);
  // Non-finite embeddings are an error with a message, not a NaN loss discovered steps
  // later; but reading the verdict back here would make every training step wait for the
  // forward pass. So the kernel marks a deferred check (engine/dispatch.h), reported at the
  // next synchronisation, typically the loss's item() for logging in the same step.
  const int64_t h_rows = problem.rows;
  const auto message = [op = std::string(a.op), h_rows](long long row, long long) {
    const bool in_h = row < h_rows;
    return fmt::format("{}: {} row {} holds a NaN or Inf (or values so large that their squares overflow float32); "
                       "the loss of non-finite embeddings is undefined",
                       op, in_h ? "h" : "extra_negatives", in_h ? row : row - h_rows);
  };
  long long* first_non_finite_row = defer_cuda_check(a.op, h, message);

  visit_contrastive_cuda(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Stat = kernels::cuda::ContrastiveStat<T>;
    const kernels::cuda::ContrastiveSavedCuda<T> saved{static_cast<T*>(z.raw_data()), static_cast<Stat*>(norm.raw_data()),
                                                       static_cast<Stat*>(log_sum_exp.raw_data()),
                                                       static_cast<int32_t*>(positive_count.raw_data())};
    VISREP_ON_CUDA(a.op, kernels::cuda::contrastive_forward<T>(
                             data_or_null<T>(h), data_or_null<T>(extra), problem, tensor_cores, saved,
                             static_cast<Stat*>(loss.raw_data()), static_cast<int32_t*>(counted.raw_data()),
                             first_non_finite_row, stream));
  });

  const bool extra_wants_grad = extra.defined() && a.extra.requires_grad();
  const SavedTensor saved_h(h);
  const SavedTensor saved_extra = extra.defined() ? SavedTensor(extra) : SavedTensor();
  return record(a.op, loss, {a.h, a.extra}, [=](const Tensor& grad_output) -> TensorList {
    const Tensor grad = grad_output.contiguous();
    const Tensor& h_saved = saved_h.get();
    const Tensor extra_saved = saved_extra.defined() ? saved_extra.get() : Tensor();
    Tensor grad_h = empty_like(h_saved);
    Tensor grad_extra = extra_wants_grad ? empty_like(extra_saved) : Tensor();
    kernels::ContrastiveProblem p = problem;
    p.labels = labels.defined() ? static_cast<const int64_t*>(labels.raw_data()) : nullptr;
    visit_contrastive_cuda(dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      using Stat = kernels::cuda::ContrastiveStat<T>;
      const kernels::cuda::ContrastiveSavedCuda<T> saved{
          static_cast<T*>(z.raw_data()), static_cast<Stat*>(norm.raw_data()),
          static_cast<Stat*>(log_sum_exp.raw_data()), static_cast<int32_t*>(positive_count.raw_data())};
      VISREP_ON_CUDA("contrastive backward",
                     kernels::cuda::contrastive_backward<T>(
                         static_cast<const Stat*>(grad.raw_data()), data_or_null<T>(h_saved),
                         data_or_null<T>(extra_saved), p, tensor_cores, saved,
                         static_cast<const int32_t*>(counted.raw_data()), static_cast<T*>(grad_h.raw_data()),
                         mutable_data_or_null<T>(grad_extra), cuda_stream(grad)));
    });
    return {grad_h, grad_extra};
  });
}
#endif

Tensor contrastive_loss(const ContrastiveArguments& arguments) {
  check_arguments(arguments);
  if (arguments.h.device().is_cuda()) {
#if VISREP_WITH_CUDA
    return contrastive_on_cuda(arguments);
#else
    VISREP_FAIL("{}: visrep was built without the CUDA backend", arguments.op);
#endif
  }
  return contrastive_on_cpu(arguments);
}

}  // namespace

Tensor nt_xent_loss(const Tensor& h, double temperature, const Tensor& extra_negatives) {
  return contrastive_loss({.op = "nt_xent_loss", .h = h, .extra = extra_negatives, .temperature = temperature});
}

Tensor supcon_loss(const Tensor& h, const Tensor& labels, double temperature, double base_temperature,
                   ContrastMode mode) {
  VISREP_CHECK(std::isfinite(base_temperature) && base_temperature > 0.0,
               "supcon_loss: the base temperature must be positive and finite, got {}", base_temperature);
  return contrastive_loss({.op = "supcon_loss",
                           .h = h,
                           .labels = labels,
                           .temperature = temperature,
                           .loss_scale = temperature / base_temperature,
                           .mode = mode});
}

}  // namespace visrep
