// index_select, gather, one_hot, concat, stack, split and pad: checks, the kernel calls and
// their backward (kernels/cpu/indexing.h lists the family's files).
#include "engine/ops/indexing.h"

#include <algorithm>
#include <string>

#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "kernels/cpu/indexing.h"
#include "kernels/cuda/indexing.h"

namespace visrep {
namespace {

// Sizes of x before, along and after `dim`: the (outer, size, inner) view the kernels use.
struct AxisView {
  int64_t outer = 1, size = 1, inner = 1;
};

AxisView axis_view(const Shape& shape, int64_t dim) {
  AxisView view;
  for (int64_t d = 0; d < dim; ++d) view.outer *= shape[d];
  view.size = shape[dim];
  for (int64_t d = dim + 1; d < static_cast<int64_t>(shape.size()); ++d) view.inner *= shape[d];
  return view;
}

void check_index_tensor(std::string_view op, const Tensor& x, const Tensor& index) {
  check_defined(op, index, "index");
  VISREP_CHECK(index.dtype() == kInt64, "{}: index must be int64, got {}", op, dtype_name(index.dtype()));
  check_same_device(op, x, index);
}

// Every index in [0, size) of dimension `dim` of x (shape): at once on the CPU (its kernels
// would read outside the tensor), at the next synchronisation on CUDA (engine/dispatch.h).
void check_in_range(std::string_view op, const Tensor& index, int64_t size, int64_t dim, const Shape& shape) {
  check_indices_in_range(
      op, index, size, std::nullopt, [op = std::string(op), size, dim, shape](int64_t value, int64_t position) {
        return fmt::format("{}: index {} (at position {}) is out of range for dimension {} of size {} in shape {}", op,
                           value, position, dim, size, shape_string(shape));
      });
}

}  // namespace

Tensor concat(const std::vector<Tensor>& tensors, int64_t dim) {
  VISREP_CHECK(!tensors.empty(), "concat: no tensors given");
  const Tensor& first = tensors.front();
  check_defined("concat", first, "tensors[0]");
  dim = wrap_dim(dim, first.dim(), "concat");
  Shape out_shape = first.shape();
  out_shape[dim] = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    check_defined("concat", t, "tensors[i]");
    check_same_device("concat", first, t);
    check_same_dtype("concat", first, t);
    VISREP_CHECK(t.dim() == first.dim(), "concat: tensor {} has rank {}, tensor 0 has rank {}", i, t.dim(), first.dim());
    for (int64_t d = 0; d < t.dim(); ++d) {
      VISREP_CHECK(d == dim || t.size(d) == first.size(d),
                   "concat: tensor {} of shape {} does not match tensor 0 of shape {} outside dimension {}", i,
                   shape_string(t.shape()), shape_string(first.shape()), dim);
    }
    out_shape[dim] += t.size(dim);
  }
  Tensor out = empty(out_shape, TensorOptions(first.dtype(), first.device()));
  std::vector<int64_t> sizes;
  {
    NoGradGuard no_grad;
    int64_t offset = 0;
    for (const Tensor& t : tensors) {
      out.narrow(dim, offset, t.size(dim)).copy_(t);
      offset += t.size(dim);
      sizes.push_back(t.size(dim));
    }
  }
  return record("concat", out, tensors, [sizes, dim](const Tensor& g) -> TensorList {
    TensorList grads;
    int64_t offset = 0;
    for (int64_t size : sizes) {
      grads.push_back(g.narrow(dim, offset, size));
      offset += size;
    }
    return grads;
  });
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  VISREP_CHECK(!tensors.empty(), "stack: no tensors given");
  check_defined("stack", tensors.front(), "tensors[0]");
  dim = wrap_dim(dim, tensors.front().dim() + 1, "stack");
  std::vector<Tensor> expanded;
  for (size_t i = 0; i < tensors.size(); ++i) {
    check_defined("stack", tensors[i], "tensors[i]");
    VISREP_CHECK(tensors[i].shape() == tensors.front().shape(), "stack: tensor {} has shape {}, tensor 0 has {}", i,
                 shape_string(tensors[i].shape()), shape_string(tensors.front().shape()));
    expanded.push_back(tensors[i].unsqueeze(dim));
  }
  return concat(expanded, dim);
}

std::vector<Tensor> split(const Tensor& x, int64_t size, int64_t dim) {
  check_defined("split", x, "x");
  VISREP_CHECK(size > 0, "split: piece size must be positive, got {}", size);
  dim = wrap_dim(dim, x.dim(), "split");
  std::vector<Tensor> pieces;
  for (int64_t start = 0; start < x.size(dim); start += size) {
    pieces.push_back(x.narrow(dim, start, std::min(size, x.size(dim) - start)));
  }
  return pieces;
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  check_defined("split", x, "x");
  dim = wrap_dim(dim, x.dim(), "split");
  int64_t total = 0;
  for (int64_t size : sizes) {
    VISREP_CHECK(size >= 0, "split: negative piece size in {}", shape_string(sizes));
    total += size;
  }
  VISREP_CHECK(total == x.size(dim), "split: sizes {} add up to {}, not to dimension {} of size {}",
               shape_string(sizes), total, dim, x.size(dim));
  std::vector<Tensor> pieces;
  int64_t start = 0;
  for (int64_t size : sizes) {
    pieces.push_back(x.narrow(dim, start, size));
    start += size;
  }
  return pieces;
}

Tensor index_select(const Tensor& x_in, int64_t dim, const Tensor& index_in) {
  check_defined("index_select", x_in, "x");
  check_index_tensor("index_select", x_in, index_in);
  VISREP_CHECK(index_in.dim() == 1, "index_select: index must be 1-D, got shape {}", shape_string(index_in.shape()));
  dim = wrap_dim(dim, x_in.dim(), "index_select");
  const Tensor x = x_in.contiguous(), index = index_in.contiguous();
  const AxisView view = axis_view(x.shape(), dim);
  check_in_range("index_select", index, view.size, dim, x.shape());
  Shape out_shape = x.shape();
  out_shape[dim] = index.numel();
  Tensor out = empty(out_shape, TensorOptions(x.dtype(), x.device()));
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    VISREP_RUN_KERNEL("index_select", x.device(), index_select,
                      kernels::IndexSelect<T>{.x = data_or_null<const T>(x),
                                              .outer = view.outer,
                                              .size = view.size,
                                              .inner = view.inner,
                                              .indices = data_or_null<const int64_t>(index),
                                              .count = index.numel(),
                                              .out = data_or_null<T>(out)});
  });
  const Shape input_shape = x.shape();
  return record("index_select", out, {x_in}, [=](const Tensor& g_out) -> TensorList {
    const Tensor grad = g_out.contiguous();
    Tensor dx = zeros(input_shape, TensorOptions(grad.dtype(), grad.device()));
    visit_floating(grad.dtype(), "index_select", [&](auto tag) {
      using T = typename decltype(tag)::type;
      VISREP_RUN_KERNEL("index_select", grad.device(), index_add,
                        kernels::IndexAdd<T>{.src = data_or_null<const T>(grad),
                                             .outer = view.outer,
                                             .count = index.numel(),
                                             .inner = view.inner,
                                             .indices = data_or_null<const int64_t>(index),
                                             .size = view.size,
                                             .dst = data_or_null<T>(dx)});
    });
    return {dx};
  });
}

Tensor gather(const Tensor& x_in, int64_t dim, const Tensor& index_in) {
  check_defined("gather", x_in, "x");
  check_index_tensor("gather", x_in, index_in);
  dim = wrap_dim(dim, x_in.dim(), "gather");
  VISREP_CHECK(index_in.dim() == x_in.dim(), "gather: index of rank {} for an input of rank {}", index_in.dim(),
               x_in.dim());
  for (int64_t d = 0; d < x_in.dim(); ++d) {
    VISREP_CHECK(d == dim || index_in.size(d) == x_in.size(d),
                 "gather: index shape {} must match the input shape {} outside dimension {}",
                 shape_string(index_in.shape()), shape_string(x_in.shape()), dim);
  }
  const Tensor x = x_in.contiguous(), index = index_in.contiguous();
  const AxisView view = axis_view(x.shape(), dim);
  const int64_t count = index.size(dim);
  check_in_range("gather", index, view.size, dim, x.shape());
  Tensor out = empty(index.shape(), TensorOptions(x.dtype(), x.device()));
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    VISREP_RUN_KERNEL("gather", x.device(), gather,
                      kernels::Gather<T>{.x = data_or_null<const T>(x),
                                         .outer = view.outer,
                                         .size = view.size,
                                         .inner = view.inner,
                                         .indices = data_or_null<const int64_t>(index),
                                         .count = count,
                                         .out = data_or_null<T>(out)});
  });
  const Shape input_shape = x.shape();
  return record("gather", out, {x_in}, [=](const Tensor& g_out) -> TensorList {
    const Tensor grad = g_out.contiguous();
    Tensor dx = zeros(input_shape, TensorOptions(grad.dtype(), grad.device()));
    visit_floating(grad.dtype(), "gather", [&](auto tag) {
      using T = typename decltype(tag)::type;
      VISREP_RUN_KERNEL("gather", grad.device(), scatter_add,
                        kernels::ScatterAdd<T>{.src = data_or_null<const T>(grad),
                                               .outer = view.outer,
                                               .count = count,
                                               .inner = view.inner,
                                               .indices = data_or_null<const int64_t>(index),
                                               .size = view.size,
                                               .dst = data_or_null<T>(dx)});
    });
    return {dx};
  });
}

Tensor one_hot(const Tensor& labels_in, int64_t classes, DType dtype) {
  check_defined("one_hot", labels_in, "labels");
  VISREP_CHECK(labels_in.dtype() == kInt64, "one_hot: labels must be int64, got {}", dtype_name(labels_in.dtype()));
  VISREP_CHECK(classes > 0, "one_hot: the number of classes must be positive, got {}", classes);
  const Tensor labels = labels_in.contiguous();
  check_indices_in_range("one_hot", labels, classes, std::nullopt, [classes](int64_t value, int64_t position) {
    return fmt::format("one_hot: label {} (at position {}) is out of range for {} classes", value, position, classes);
  });
  Shape out_shape = labels.shape();
  out_shape.push_back(classes);
  Tensor out = empty(out_shape, TensorOptions(dtype, labels.device()));
  visit_arithmetic(dtype, "one_hot", [&](auto tag) {
    using T = typename decltype(tag)::type;
    VISREP_RUN_KERNEL("one_hot", labels.device(), one_hot,
                      kernels::OneHot<T>{.labels = data_or_null<const int64_t>(labels),
                                         .count = labels.numel(),
                                         .classes = classes,
                                         .out = data_or_null<T>(out)});
  });
  return out;
}

Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, double value) {
  check_defined("pad", x, "x");
  VISREP_CHECK(pads.size() % 2 == 0 && static_cast<int64_t>(pads.size()) <= 2 * x.dim(),
               "pad: {} padding values for a tensor of rank {} (need pairs, at most two per dimension)", pads.size(),
               x.dim());
  // Per padded dim: the kept range of x [source_start, source_start + length) lands at
  // [target_start, target_start + length) of the output (negative pads crop x).
  struct Region {
    int64_t dim, source_start, target_start, length;
  };
  std::vector<Region> regions;
  Shape out_shape = x.shape();
  for (size_t pair = 0; pair < pads.size() / 2; ++pair) {
    const int64_t d = x.dim() - 1 - static_cast<int64_t>(pair);
    const int64_t before = pads[2 * pair], after = pads[2 * pair + 1];
    out_shape[d] = x.size(d) + before + after;
    VISREP_CHECK(out_shape[d] >= 0, "pad: padding ({}, {}) leaves dimension {} of size {} negative", before, after, d,
                 x.size(d));
    const int64_t source_start = std::max<int64_t>(-before, 0);
    const int64_t source_end = x.size(d) - std::max<int64_t>(-after, 0);
    regions.push_back({d, source_start, std::max<int64_t>(before, 0), std::max<int64_t>(source_end - source_start, 0)});
  }
  auto window = [](Tensor t, const std::vector<Region>& regions, bool source) {
    for (const Region& r : regions) t = t.narrow(r.dim, source ? r.source_start : r.target_start, r.length);
    return t;
  };

  Tensor out = full(out_shape, value, TensorOptions(x.dtype(), x.device()));
  {
    NoGradGuard no_grad;
    window(out, regions, false).copy_(window(x, regions, true));
  }
  const Shape input_shape = x.shape();
  return record("pad", out, {x}, [=](const Tensor& g) -> TensorList {
    // The kept region's gradient flows back to where it came from; padding gets none.
    Tensor dx = zeros(input_shape, TensorOptions(g.dtype(), g.device()));
    window(dx, regions, true).copy_(window(g, regions, false));
    return {dx};
  });
}

}  // namespace visrep
