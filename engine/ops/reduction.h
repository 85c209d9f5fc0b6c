// Reductions over all elements or over a list of dimensions (negative dims count from the
// end). keepdim keeps each reduced dimension with size 1, so the result broadcasts
// against the input. Sums accumulate in double on the CPU.
// Where to look for the rest of the family: kernels/cpu/reduction.h.
#pragma once

#include <initializer_list>
#include <vector>

#include "engine/tensor.h"

namespace visrep {

using Dims = std::vector<int64_t>;

Tensor sum(const Tensor& x);  // every element; integer inputs give int64
Tensor sum(const Tensor& x, const Dims& dims, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const Dims& dims, bool keepdim = false);
// Maximum / minimum values; the gradient goes to the extremal elements (split evenly on ties).
Tensor max(const Tensor& x);
Tensor max(const Tensor& x, const Dims& dims, bool keepdim = false);
Tensor min(const Tensor& x);
Tensor min(const Tensor& x, const Dims& dims, bool keepdim = false);
// Variance with `correction` (1: unbiased, as torch.var; 0: biased).
Tensor var(const Tensor& x, int64_t correction = 1);
Tensor var(const Tensor& x, const Dims& dims, int64_t correction = 1, bool keepdim = false);
// var(x, {1}) means dimension 1, like sum(x, {1}): without this overload the braces would
// silently pick var(x, correction = 1) over all elements (a one-element list converts to int).
Tensor var(const Tensor& x, std::initializer_list<int64_t> dims, int64_t correction = 1, bool keepdim = false);
// Index of the first maximum (minimum) along dim, as int64; without dim, of the flattened tensor.
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& x);
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& x);

// Sums `x` down to `shape`, undoing a broadcast: the gradient of an op that broadcast an
// input of `shape` to x's shape.
Tensor sum_to(const Tensor& x, const Shape& shape);

}  // namespace visrep
