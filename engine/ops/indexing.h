// Joining, splitting, padding and indexing.
// Where to look for the rest of the family: kernels/cpu/indexing.h.
#pragma once

#include <vector>

#include "engine/tensor.h"

namespace visrep {

// Joins tensors of equal shape except along `dim`.
Tensor concat(const std::vector<Tensor>& tensors, int64_t dim = 0);
// Joins tensors of equal shape along a new dimension `dim`.
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim = 0);
// Views of consecutive pieces of `size` along dim (the last may be shorter).
std::vector<Tensor> split(const Tensor& x, int64_t size, int64_t dim = 0);
// Views of pieces with the given sizes, which must add up to x.size(dim).
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim = 0);

// out[..., k, ...] = x[..., index[k], ...] along dim; index is 1-D int64.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
// out[i][j][k] = x[i][index[i][j][k]][k] (for dim = 1); index has x's rank and x's sizes
// in every dimension but dim (torch.gather with matching sizes).
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
// labels (int64, any shape) -> labels.shape + [classes], 1 at each label.
Tensor one_hot(const Tensor& labels, int64_t classes, DType dtype = kFloat32);

// Constant padding, torch.nn.functional.pad order: pads = {last_left, last_right,
// second_last_left, second_last_right, ...}; negative pads crop.
Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, double value = 0.0);

}  // namespace visrep
