// Reductions: dims, keepdim, the kernel calls and their backward (kernels/cpu/reduction.h
// lists the family's files).
#include "engine/ops/reduction.h"

#include <algorithm>
#include <numeric>

#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "engine/ops/elementwise.h"
#include "kernels/cpu/reduction.h"
#include "kernels/cuda/reduction.h"

namespace visrep {
namespace {

using kernels::ReduceOp;

// The reduced dims as a sorted, duplicate-free list; empty means all of them.
Dims normalize_dims(const Dims& dims, int64_t ndim, std::string_view op) {
  Dims result;
  if (dims.empty()) {
    result.resize(static_cast<size_t>(ndim));
    std::iota(result.begin(), result.end(), 0);
    return result;
  }
  for (int64_t d : dims) result.push_back(wrap_dim(d, ndim, op));
  std::sort(result.begin(), result.end());
  VISREP_CHECK(std::adjacent_find(result.begin(), result.end()) == result.end(), "{}: dimension repeated in {}", op,
               shape_string(dims));
  return result;
}

bool contains(const Dims& dims, int64_t d) { return std::binary_search(dims.begin(), dims.end(), d); }

// The input laid out as a contiguous (outer, reduced, inner) block for the kernels, and
// the output shapes with and without the reduced dims.
struct ReductionPlan {
  Tensor input;  // contiguous, reduced dims forming the middle block
  int64_t outer = 1, reduced = 1, inner = 1;
  Shape kept_shape;  // keepdim=true
  Shape result_shape;
};

ReductionPlan plan_reduction(const Tensor& x, const Dims& dims) {
  ReductionPlan plan;
  const int64_t ndim = x.dim();
  for (int64_t d = 0; d < ndim; ++d) {
    plan.kept_shape.push_back(contains(dims, d) ? 1 : x.size(d));
    if (!contains(dims, d)) plan.result_shape.push_back(x.size(d));
  }
  const bool block = dims.empty() || dims.back() - dims.front() + 1 == static_cast<int64_t>(dims.size());
  if (block) {
    plan.input = x.detach().contiguous();
    if (!dims.empty()) {
      for (int64_t d = 0; d < dims.front(); ++d) plan.outer *= x.size(d);
      for (int64_t d : dims) plan.reduced *= x.size(d);
      for (int64_t d = dims.back() + 1; d < ndim; ++d) plan.inner *= x.size(d);
    }
  } else {
    // Move the reduced dims last: (kept..., reduced...).
    Dims order;
    for (int64_t d = 0; d < ndim; ++d)
      if (!contains(dims, d)) order.push_back(d);
    for (int64_t d : dims) {
      order.push_back(d);
      plan.reduced *= x.size(d);
    }
    plan.input = x.detach().permute(order).contiguous();
    plan.outer = x.numel() / std::max<int64_t>(plan.reduced, 1);
  }
  return plan;
}

Tensor reduce_values(ReduceOp op, std::string_view name, const Tensor& x, const Dims& dims, bool keepdim) {
  const ReductionPlan plan = plan_reduction(x, dims);
  const bool integer_sum = op == ReduceOp::Sum && !is_floating(x.dtype());
  Tensor out = empty(plan.kept_shape, TensorOptions(integer_sum ? kInt64 : x.dtype(), x.device()));
  if (integer_sum) {
    visit_arithmetic(x.dtype(), name, [&](auto tag) {
      using T = typename decltype(tag)::type;
      if constexpr (std::is_integral_v<T>) {
        VISREP_RUN_KERNEL(name, x.device(), sum_integer,
                          kernels::SumInteger<T>{.x = data_or_null<const T>(plan.input),
                                                 .outer = plan.outer,
                                                 .reduced = plan.reduced,
                                                 .inner = plan.inner,
                                                 .out = data_or_null<int64_t>(out)});
      }
    });
  } else {
    VISREP_CHECK(op == ReduceOp::Sum || op == ReduceOp::Mean || plan.reduced > 0,
                 "{}: cannot reduce an empty dimension of shape {}", name, shape_string(x.shape()));
    visit_floating(x.dtype(), name, [&](auto tag) {
      using T = typename decltype(tag)::type;
      VISREP_RUN_KERNEL(name, x.device(), reduce,
                        kernels::Reduce<T>{.op = op,
                                           .x = data_or_null<const T>(plan.input),
                                           .outer = plan.outer,
                                           .reduced = plan.reduced,
                                           .inner = plan.inner,
                                           .out = data_or_null<T>(out)});
    });
  }
  return keepdim ? out : out.reshape(plan.result_shape);
}

// Reads the gradient of a reduction as if keepdim had been set, expanded over the input.
Tensor expand_back(const Tensor& g, const Shape& kept_shape, const Shape& input_shape) {
  return g.reshape(kept_shape).expand(input_shape);
}

Tensor reduce(ReduceOp op, std::string_view name, const Tensor& x, const Dims& dims_in, bool keepdim) {
  check_defined(name, x, "x");
  if (x.dtype() == kBFloat16) return reduce(op, name, x.to(kFloat32), dims_in, keepdim).to(kBFloat16);
  const Dims dims = normalize_dims(dims_in, x.dim(), name);
  Tensor out = reduce_values(op, name, x, dims, keepdim);
  if (!needs_grad({x})) return out;

  Shape kept_shape;
  int64_t count = 1;
  for (int64_t d = 0; d < x.dim(); ++d) {
    kept_shape.push_back(contains(dims, d) ? 1 : x.size(d));
    if (contains(dims, d)) count *= x.size(d);
  }
  const Shape input_shape = x.shape();
  const SavedTensor saved_x = (op == ReduceOp::Max || op == ReduceOp::Min) ? SavedTensor(x) : SavedTensor();
  const SavedTensor saved_out = (op == ReduceOp::Max || op == ReduceOp::Min) ? SavedTensor(out) : SavedTensor();
  return record(name, out, {x}, [=](const Tensor& g) -> TensorList {
    switch (op) {
      case ReduceOp::Sum: return {expand_back(g, kept_shape, input_shape).contiguous()};
      case ReduceOp::Mean: return {div(expand_back(g, kept_shape, input_shape), static_cast<double>(count))};
      case ReduceOp::Max:
      case ReduceOp::Min: {
        // Every element equal to the extremum shares the gradient equally (as torch.amax).
        Tensor is_extremum = eq(saved_x.get(), saved_out.get().reshape(kept_shape));
        Tensor ties = sum(is_extremum, dims, true).to(g.dtype());
        Tensor share = div(g.reshape(kept_shape), ties);
        const Tensor zero = scalar_tensor(0.0, TensorOptions(g.dtype(), g.device()));
        return {where(is_extremum, share.expand(input_shape), zero)};
      }
    }
    return {};
  });
}

Tensor arg_extremum(bool maximum, const Tensor& x_in, std::optional<int64_t> dim, bool keepdim) {
  const std::string_view name = maximum ? "argmax" : "argmin";
  check_defined(name, x_in, "x");
  Tensor x = x_in.dtype() == kBFloat16 ? x_in.to(kFloat32) : x_in;
  if (!dim) x = x.reshape({-1});
  VISREP_CHECK(x.numel() > 0, "{}: the input of shape {} is empty", name, shape_string(x_in.shape()));
  const int64_t d = dim ? wrap_dim(*dim, x.dim(), name) : 0;
  const ReductionPlan plan = plan_reduction(x.detach(), {d});
  Tensor out = empty(plan.kept_shape, TensorOptions(kInt64, x.device()));
  visit_floating(x.dtype(), name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    VISREP_RUN_KERNEL(name, x.device(), arg_extremum,
                      kernels::ArgExtremum<T>{.maximum = maximum,
                                              .x = data_or_null<const T>(plan.input),
                                              .outer = plan.outer,
                                              .reduced = plan.reduced,
                                              .inner = plan.inner,
                                              .out = data_or_null<int64_t>(out)});
  });
  if (!dim) return out.reshape({});
  return keepdim ? out : out.reshape(plan.result_shape);
}

}  // namespace

Tensor sum(const Tensor& x) { return sum(x, {}, false); }
Tensor sum(const Tensor& x, const Dims& dims, bool keepdim) { return reduce(ReduceOp::Sum, "sum", x, dims, keepdim); }
Tensor mean(const Tensor& x) { return mean(x, {}, false); }
Tensor mean(const Tensor& x, const Dims& dims, bool keepdim) {
  return reduce(ReduceOp::Mean, "mean", x, dims, keepdim);
}
Tensor max(const Tensor& x) { return max(x, {}, false); }
Tensor max(const Tensor& x, const Dims& dims, bool keepdim) { return reduce(ReduceOp::Max, "max", x, dims, keepdim); }
Tensor min(const Tensor& x) { return min(x, {}, false); }
Tensor min(const Tensor& x, const Dims& dims, bool keepdim) { return reduce(ReduceOp::Min, "min", x, dims, keepdim); }

Tensor var(const Tensor& x, int64_t correction) { return var(x, {}, correction, false); }

Tensor var(const Tensor& x, const Dims& dims_in, int64_t correction, bool keepdim) {
  check_defined("var", x, "x");
  VISREP_CHECK(correction >= 0, "var: correction must be >= 0, got {}", correction);
  if (x.dtype() == kBFloat16) return var(x.to(kFloat32), dims_in, correction, keepdim).to(kBFloat16);
  const Dims dims = normalize_dims(dims_in, x.dim(), "var");
  const ReductionPlan plan = plan_reduction(x, dims);
  Tensor out = empty(plan.kept_shape, TensorOptions(x.dtype(), x.device()));
  visit_floating(x.dtype(), "var", [&](auto tag) {
    using T = typename decltype(tag)::type;
    VISREP_RUN_KERNEL("var", x.device(), variance,
                      kernels::Variance<T>{.x = data_or_null<const T>(plan.input),
                                           .outer = plan.outer,
                                           .reduced = plan.reduced,
                                           .inner = plan.inner,
                                           .correction = correction,
                                           .out = data_or_null<T>(out)});
  });
  if (!keepdim) out = out.reshape(plan.result_shape);
  const Shape kept_shape = plan.kept_shape;
  const double divisor = static_cast<double>(std::max<int64_t>(plan.reduced - correction, 0));
  const SavedTensor saved_x = needs_grad({x}) ? SavedTensor(x) : SavedTensor();
  return record("var", out, {x}, [=](const Tensor& g) -> TensorList {
    // d var / dx_i = 2 (x_i - mean) / (n - correction)
    const Tensor& input = saved_x.get();
    Tensor centered = sub(input, mean(input, dims, true));
    return {mul(centered, g.reshape(kept_shape)) * (2.0 / divisor)};
  });
}

Tensor var(const Tensor& x, std::initializer_list<int64_t> dims, int64_t correction, bool keepdim) {
  return var(x, Dims(dims), correction, keepdim);
}

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) { return arg_extremum(true, x, dim, keepdim); }
Tensor argmax(const Tensor& x) { return arg_extremum(true, x, std::nullopt, false); }
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) { return arg_extremum(false, x, dim, keepdim); }
Tensor argmin(const Tensor& x) { return arg_extremum(false, x, std::nullopt, false); }

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  VISREP_CHECK(static_cast<int64_t>(shape.size()) <= x.dim(), "sum_to: cannot reduce {} to the larger rank of {}",
               shape_string(x.shape()), shape_string(shape));
  const int64_t lead = x.dim() - static_cast<int64_t>(shape.size());
  Dims dims;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d < lead) {
      dims.push_back(d);
    } else if (shape[d - lead] == 1 && x.size(d) != 1) {
      dims.push_back(d);
    } else {
      VISREP_CHECK(shape[d - lead] == x.size(d), "sum_to: shape {} is not a broadcast of {}", shape_string(x.shape()),
                   shape_string(shape));
    }
  }
  if (dims.empty()) return x.reshape(shape);
  return sum(x, dims, true).reshape(shape);
}

}  // namespace visrep
