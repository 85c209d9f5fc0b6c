#include "engine/shape.h"

#include <fmt/format.h>

#include "engine/error.h"

namespace visrep {

int64_t shape_numel(const Shape& shape) {
  int64_t count = 1;
  for (int64_t size : shape) count *= size;
  return count;
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t stride = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    strides[d] = stride;
    stride *= shape[d] > 0 ? shape[d] : 1;
  }
  return strides;
}

std::string shape_string(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

int64_t wrap_dim(int64_t dim, int64_t ndim, std::string_view op) {
  const int64_t wrapped = dim < 0 ? dim + ndim : dim;
  VISREP_CHECK(wrapped >= 0 && wrapped < ndim, "{}: dimension {} is out of range for a tensor of rank {}", op, dim,
               ndim);
  return wrapped;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, std::string_view op) {
  const size_t rank = std::max(a.size(), b.size());
  Shape result(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t size_a = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const int64_t size_b = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    VISREP_CHECK(size_a == size_b || size_a == 1 || size_b == 1,
                 "{}: shapes {} and {} cannot be broadcast together (dimension {}: {} vs {})", op, shape_string(a),
                 shape_string(b), i, size_a, size_b);
    result[i] = size_a == 1 ? size_b : size_a;
  }
  return result;
}

Shape broadcast_strides(const Shape& shape, const Shape& strides, const Shape& target) {
  Shape result(target.size(), 0);
  const size_t lead = target.size() - shape.size();
  for (size_t i = 0; i < shape.size(); ++i) {
    result[lead + i] = shape[i] == 1 && target[lead + i] != 1 ? 0 : strides[i];
  }
  return result;
}

kernels::StridedLayout make_layout(const Shape& shape, const Shape& strides) {
  VISREP_CHECK(shape.size() <= static_cast<size_t>(kernels::kMaxDims),
               "tensors of rank {} are not supported (at most {} dimensions)", shape.size(), kernels::kMaxDims);
  kernels::StridedLayout layout;
  layout.ndim = static_cast<int>(shape.size());
  for (size_t d = 0; d < shape.size(); ++d) {
    layout.sizes[d] = shape[d];
    layout.strides[d] = strides[d];
  }
  return layout;
}

}  // namespace visrep
