// nt_xent_loss and supcon_loss: one contract on both devices (kernels/cpu/contrastive.h
// defines the losses and lists the family's files): checks, the saved state in the device's
// precision, one kernel call forward, one backward.
#include "engine/ops/contrastive.h"

#include <cmath>
#include <string>

#include "engine/autograd.h"
#include "engine/cuda.h"
#include "engine/dispatch.h"
#include "engine/ops/collectives.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/indexing.h"
#include "kernels/cpu/contrastive.h"
#include "kernels/cuda/contrastive.h"

namespace visrep {
namespace {

struct ContrastiveArguments {
  std::string_view op;
  Tensor h;       // R x D
  Tensor extra;   // M x D or undefined
  Tensor labels;  // int64, N or 2N, or undefined
  Tensor extra_labels;  // int64, M: the extra rows' classes (SupCon), or undefined
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
  if (a.extra_labels.defined()) {
    VISREP_CHECK(a.labels.defined() && a.extra.defined(),
                 "{}: extra_labels need labels for h's rows and the extra rows they label", op);
    VISREP_CHECK(a.extra_labels.dtype() == kInt64 && a.extra_labels.dim() == 1 &&
                     a.extra_labels.size(0) == a.extra.size(0),
                 "{}: extra_labels must be int64 of shape ({}), one per extra row, got {}", op, a.extra.size(0),
                 a.extra_labels.description());
    check_same_device(op, a.h, a.extra_labels);
  } else {
    VISREP_CHECK(!a.labels.defined() || !a.extra.defined() || a.op != "supcon_loss",
                 "{}: extra rows of shape {} need their labels (extra_labels)", op, shape_string(a.extra.shape()));
  }
}

// The class of every column, h's rows then the extra rows (kernels/cpu/contrastive.h: per-column
// labels make the extra rows positives of the anchors of their class).
Tensor column_labels(const Tensor& labels, const Tensor& extra_labels, int64_t rows) {
  const Tensor per_row = labels.size(0) == rows ? labels : concat({labels, labels});
  return concat({per_row, extra_labels}).contiguous();
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

// What the forward pass keeps for the backward pass, in the precision the device's kernels
// compute in (kernels::ContrastiveForward): double for the CPU reference; on CUDA, z in the
// embeddings' dtype and the statistics in its accumulate type. O(C x D) + O(C).
struct SavedState {
  Tensor z, norm, log_sum_exp, positive_count;

  template <class Z, class Stat>
  kernels::ContrastiveSaved<Z, Stat> pointers() const {
    return {data_or_null<Z>(z), data_or_null<Stat>(norm), data_or_null<Stat>(log_sum_exp),
            data_or_null<int32_t>(positive_count)};
  }
};

SavedState allocate_state(const kernels::ContrastiveProblem& problem, const Tensor& h) {
  const bool on_cpu = h.device().is_cpu();
  const TensorOptions z_options(on_cpu ? kFloat64 : h.dtype(), h.device());
  const TensorOptions statistic_options = on_cpu ? TensorOptions(kFloat64) : accumulate_options(h);
  return {empty({problem.columns(), problem.dim}, z_options), empty({problem.columns()}, statistic_options),
          empty({problem.anchors}, statistic_options), empty({problem.anchors}, TensorOptions(kInt32, h.device()))};
}

// The loss, and into *counted_anchors (when given) K, the anchors with a positive (an int32
// scalar on the device).
Tensor contrastive_loss(const ContrastiveArguments& a, Tensor* counted_anchors = nullptr) {
  check_arguments(a);
  const Device device = a.h.device();
  const bool on_cpu = device.is_cpu();
  const Tensor h = a.h.contiguous();
  const bool with_extra = a.extra.defined() && a.extra.size(0) > 0;
  const Tensor extra = with_extra ? a.extra.contiguous() : Tensor();
  const Tensor labels = !a.labels.defined()                      ? Tensor()
                        : with_extra && a.extra_labels.defined() ? column_labels(a.labels, a.extra_labels, h.size(0))
                                                                 : a.labels.contiguous();
  ContrastiveArguments arguments = a;
  arguments.extra = extra;
  const kernels::ContrastiveProblem problem = make_problem(arguments, labels);
  // Chosen once, so the backward pass recomputes the similarities exactly as forward did.
  const bool tensor_cores = h.dtype() == kBFloat16 || (h.dtype() == kFloat32 && cuda::tf32_enabled());
  const SavedState state = allocate_state(problem, h);
  const Tensor loss = empty({}, accumulate_options(h));  // float32 for float32 and bfloat16, float64 for float64
  const Tensor counted = empty({}, TensorOptions(kInt32, device));

  // Non-finite embeddings are an error with a message, not a NaN loss discovered steps
  // later: the kernel marks the first such row. The CPU reports it at once; on CUDA the
  // report comes at the next synchronisation, typically the loss's item() for logging in
  // the same step (engine/dispatch.h's InputCheck), so the step does not wait here.
  const int64_t h_rows = problem.rows;
  const std::string overflow_note = on_cpu ? "" : " (or values so large that their squares overflow float32)";
  const InputCheck non_finite(a.op, device, [op = std::string(a.op), h_rows, overflow_note](long long row, long long) {
    const bool in_h = row < h_rows;
    return fmt::format("{}: {} row {} holds a NaN or Inf{}; the loss of non-finite embeddings is undefined", op,
                       in_h ? "h" : "extra_negatives", in_h ? row : row - h_rows, overflow_note);
  });
  visit_floating_or_bfloat16(h.dtype(), a.op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using S = kernels::AccumulateType<T>;
    VISREP_RUN_KERNEL(
        a.op, device, contrastive_forward,
        kernels::ContrastiveForward<T>{
            .h = data_or_null<const T>(h),
            .extra = data_or_null<const T>(extra),
            .problem = problem,
            .tensor_cores = tensor_cores,
            .saved_cpu = on_cpu ? state.pointers<double, double>() : kernels::ContrastiveSaved<double, double>{},
            .saved_cuda = on_cpu ? kernels::ContrastiveSaved<T, S>{} : state.pointers<T, S>(),
            .loss = data_or_null<S>(loss),
            .counted_anchors = data_or_null<int32_t>(counted),
            .first_non_finite_row = non_finite.slot()});
  });
  non_finite.report();
  if (counted_anchors != nullptr) *counted_anchors = counted;

  const bool extra_wants_grad = extra.defined() && a.extra.requires_grad();
  // The CUDA backward recomputes z from the embeddings; the CPU keeps z itself.
  const SavedTensor saved_h = on_cpu ? SavedTensor() : SavedTensor(h);
  const SavedTensor saved_extra = on_cpu || !extra.defined() ? SavedTensor() : SavedTensor(extra);
  const std::string op(a.op);
  const DType dtype = h.dtype();
  return record(op, loss, {a.h, a.extra}, [=](const Tensor& grad_output) -> TensorList {
    const Tensor grad_loss = grad_output.contiguous();
    const Tensor h_saved = saved_h.defined() ? saved_h.get() : Tensor();
    const Tensor extra_saved = saved_extra.defined() ? saved_extra.get() : Tensor();
    Tensor grad_h = empty({problem.rows, problem.dim}, TensorOptions(dtype, device));
    Tensor grad_extra =
        extra_wants_grad ? empty({problem.extra_rows, problem.dim}, TensorOptions(dtype, device)) : Tensor();
    kernels::ContrastiveProblem p = problem;  // labels alive through the capture
    p.labels = data_or_null<const int64_t>(labels);
    visit_floating_or_bfloat16(dtype, op, [&](auto tag) {
      using T = typename decltype(tag)::type;
      using S = kernels::AccumulateType<T>;
      VISREP_RUN_KERNEL(
          op, device, contrastive_backward,
          kernels::ContrastiveBackward<T>{
              .grad_loss = data_or_null<const S>(grad_loss),
              .h = data_or_null<const T>(h_saved),
              .extra = data_or_null<const T>(extra_saved),
              .problem = p,
              .tensor_cores = tensor_cores,
              .saved_cpu = on_cpu ? state.pointers<double, double>() : kernels::ContrastiveSaved<double, double>{},
              .saved_cuda = on_cpu ? kernels::ContrastiveSaved<T, S>{} : state.pointers<T, S>(),
              .counted_anchors = data_or_null<const int32_t>(counted),
              .grad_h = data_or_null<T>(grad_h),
              .grad_extra = data_or_null<T>(grad_extra)});
    });
    return {grad_h, grad_extra};
  });
}

}  // namespace

Tensor nt_xent_loss(const Tensor& h, double temperature, const Tensor& extra_negatives) {
  return contrastive_loss({.op = "nt_xent_loss", .h = h, .extra = extra_negatives, .temperature = temperature});
}

Tensor supcon_loss(const Tensor& h, const Tensor& labels, double temperature, double base_temperature,
                   ContrastMode mode, const Tensor& extra, const Tensor& extra_labels) {
  VISREP_CHECK(std::isfinite(base_temperature) && base_temperature > 0.0,
               "supcon_loss: the base temperature must be positive and finite, got {}", base_temperature);
  return contrastive_loss({.op = "supcon_loss",
                           .h = h,
                           .extra = extra,
                           .labels = labels,
                           .extra_labels = extra_labels,
                           .temperature = temperature,
                           .loss_scale = temperature / base_temperature,
                           .mode = mode});
}

// ---- across ranks -------------------------------------------------------------------------------

namespace {

// The rows of `gathered` (rank-major blocks of `block` rows) that are not rank r's: the blocks
// before it, then those after it. Undefined when there are none (P = 1).
Tensor other_ranks_rows(const Tensor& gathered, int rank, int ranks, int64_t block) {
  std::vector<Tensor> pieces;
  if (rank > 0) pieces.push_back(gathered.narrow(0, 0, rank * block));
  if (rank + 1 < ranks) pieces.push_back(gathered.narrow(0, (rank + 1) * block, (ranks - 1 - rank) * block));
  if (pieces.empty()) return Tensor();
  return pieces.size() == 1 ? pieces[0] : concat(pieces);
}

// This rank's share of the global loss (the header): its anchors against [h; the other ranks'
// rows], then scaled from the mean over its own K_r counted anchors to P * K_r / K of it.
Tensor cross_rank_loss(ContrastiveArguments a, distributed::Collectives& ranks) {
  check_arguments(a);
  const int rank = ranks.rank(), size = ranks.size();
  const int64_t rows = a.h.size(0);
  a.extra = other_ranks_rows(all_gather_rows(a.h, ranks), rank, size, rows);
  if (a.labels.defined() && a.extra.defined()) {
    const Tensor row_labels = a.labels.size(0) == rows ? a.labels.contiguous() : concat({a.labels, a.labels});
    a.extra_labels = other_ranks_rows(ranks.all_gather(row_labels), rank, size, rows);
  }
  Tensor counted;
  const Tensor local_mean = contrastive_loss(a, &counted);
  // K = sum of K_r, exchanged as a tensor so that a GPU job does not wait for the device here.
  const Tensor counted_everywhere = counted.to(kInt64);
  ranks.all_reduce(counted_everywhere, distributed::ReduceOp::Sum);
  const Tensor share = div(mul(counted.to(local_mean.dtype()), static_cast<double>(size)),
                           clamp_min(counted_everywhere.to(local_mean.dtype()), 1.0));
  return mul(local_mean, share);
}

}  // namespace

Tensor nt_xent_loss(const Tensor& h, double temperature, distributed::Collectives& ranks) {
  return cross_rank_loss({.op = "nt_xent_loss", .h = h, .temperature = temperature}, ranks);
}

Tensor supcon_loss(const Tensor& h, const Tensor& labels, double temperature, double base_temperature,
                   ContrastMode mode, distributed::Collectives& ranks) {
  VISREP_CHECK(std::isfinite(base_temperature) && base_temperature > 0.0,
               "supcon_loss: the base temperature must be positive and finite, got {}", base_temperature);
  return cross_rank_loss({.op = "supcon_loss",
                          .h = h,
                          .labels = labels,
                          .temperature = temperature,
                          .loss_scale = temperature / base_temperature,
                          .mode = mode},
                         ranks);
}

}  // namespace visrep
