// Shapes and strides: lists of int64, row-major. Helpers every op uses for shape algebra
// (numel, contiguous strides, broadcasting, dimension wrapping) and for error messages.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/strided_layout.h"

namespace visrep {

using Shape = std::vector<int64_t>;
// (height, width) of a 2-D window, stride, padding or dilation.
using Pair = std::array<int64_t, 2>;

int64_t shape_numel(const Shape& shape);
Shape contiguous_strides(const Shape& shape);
std::string shape_string(const Shape& shape);  // "[2, 3, 4]"

// Maps a possibly negative dimension (-1 = last) into [0, ndim); throws naming `op`.
int64_t wrap_dim(int64_t dim, int64_t ndim, std::string_view op);

// NumPy broadcasting: align trailing dimensions; each pair must be equal or contain a 1.
Shape broadcast_shapes(const Shape& a, const Shape& b, std::string_view op);

// The strides that read a tensor of (shape, strides) as if it had `target` shape: 0 for
// broadcast dimensions. `shape` must broadcast to `target`.
Shape broadcast_strides(const Shape& shape, const Shape& strides, const Shape& target);

// Kernel-side description of (shape, strides); throws if the rank exceeds kMaxDims.
kernels::StridedLayout make_layout(const Shape& shape, const Shape& strides);

}  // namespace visrep
