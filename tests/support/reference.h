// Double-precision references for the ops' forward values: a dense row-major copy of a
// tensor, index loops, reference reductions and matmul, and the comparison every ops test
// uses. The references are plain loops written here, never the engine's own ops, so a bug
// in an op cannot hide in its expected value.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include "engine/ops.h"

namespace visrep::testing {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A dense row-major float64 copy of a tensor, for the reference loops.
struct Array {
  Shape shape;
  std::vector<double> values;

  explicit Array(const Tensor& t) : shape(t.shape()), values(t.detach().to_vector<double>()) {}
  Array(Shape s, double fill) : shape(std::move(s)), values(static_cast<size_t>(shape_numel(shape)), fill) {}

  int64_t flat(const std::vector<int64_t>& index) const {
    int64_t offset = 0;
    for (size_t d = 0; d < shape.size(); ++d) offset = offset * shape[d] + index[d];
    return offset;
  }
  double& operator()(const std::vector<int64_t>& index) { return values[static_cast<size_t>(flat(index))]; }
  double operator()(const std::vector<int64_t>& index) const { return values[static_cast<size_t>(flat(index))]; }
};

// Largest |a - b| / (1 + |b|) with NaN matching NaN (a NaN on one side only is infinite).
double worst_error(const std::vector<double>& actual, const std::vector<double>& expected);

// Inside a Catch2 test: the shapes must match and worst_error must be <= tolerance.
void require_close(const Tensor& actual, const Array& expected, double tolerance);

// worst_error of a defined tensor (REQUIREd) against a flat reference.
double error_of(const Tensor& actual, const std::vector<double>& expected);

// What the normalisation ops (group_norm, weight_standardization) may differ from their
// float64 references in `dtype`: float32 statistics and outputs, or bfloat16 inputs, outputs
// and gradients rounded to 8 bits.
double tolerance_for(DType dtype);

// Calls f(index) for every index of `shape` in row-major order.
void for_each_index(const Shape& shape, const std::function<void(const std::vector<int64_t>&)>& f);

// float32 results of float64 references: a few float32 roundings of O(1) values.
inline constexpr double kFloat32Tolerance = 2e-6;
inline constexpr double kFloat64Tolerance = 1e-12;

// Reference reduction over `dims` of a row-major array: f folds the selected values.
Array reduce_reference(const Array& x, const Dims& dims, bool keepdim,
                       const std::function<double(const std::vector<double>&)>& f);

// Folds for reduce_reference. largest/smallest return NaN when any value is NaN.
double total(const std::vector<double>& v);
double average(const std::vector<double>& v);
double largest(const std::vector<double>& v);
double smallest(const std::vector<double>& v);
std::function<double(const std::vector<double>&)> variance_with(int64_t correction);

// out[batch..., i, j] = sum_k a[batch..., i, k] b[batch..., k, j] with broadcast batches;
// both operands at least 2-D (callers unsqueeze vectors themselves).
Array naive_matmul(const Array& a, const Array& b);

}  // namespace visrep::testing
