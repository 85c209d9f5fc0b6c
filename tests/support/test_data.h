// Inputs for tests: fresh random tensors (never all zeros), and values kept away from the
// points where an op is not differentiable, so a finite difference does not straddle a kink.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/ops.h"

namespace visrep::testing {

// A generator seeded from the test's name, so every test draws its own numbers and a
// failure reproduces exactly.
Generator generator_for(const char* test_name);

// Normal values in float64 (the gradient checks' dtype) unless told otherwise.
Tensor random_normal(const Shape& shape, Generator& generator, DType dtype = kFloat64);
// Uniform in [low, high).
Tensor random_uniform(const Shape& shape, double low, double high, Generator& generator, DType dtype = kFloat64);
// Normal values with magnitude at least `margin` (sign kept): away from the kink of relu/abs at 0.
Tensor random_away_from_zero(const Shape& shape, double margin, Generator& generator, DType dtype = kFloat64);
// Values that are pairwise at least `gap` apart (a shuffled ramp plus small noise), so a
// max/min/argmax has one clear winner and a small step never changes it.
Tensor random_distinct(const Shape& shape, double gap, Generator& generator, DType dtype = kFloat64);

// Uniform values in [low, high) kept at least `margin` away from every point in `points`
// (e.g. clamp's bounds), so a finite difference never straddles a kink there.
Tensor random_away_from_points(const Shape& shape, double low, double high, const std::vector<double>& points,
                               double margin, Generator& generator, DType dtype = kFloat64);

// group_norm inputs kept away from the fused ReLU's boundary: `values` (float64) holds x of
// `shape` at [start, start + numel); every x whose pre-ReLU value gamma * xhat + beta, as
// the CPU computes it in float64 from the inputs rounded to `dtype`, lies within `margin`
// of 0 is pushed 5 margins further to its own side (groups spread ~1, gamma >= 0.5: it
// lands beyond the margin), repeated until none is left, since the statistics move a
// little with it. Groups of one element are left alone: their y is beta, exactly, on any
// device. gamma and beta may be undefined (1 and 0).
Tensor away_from_group_norm_relu_boundary(Tensor values, int64_t start, const Shape& shape, int64_t groups,
                                          const Tensor& gamma, const Tensor& beta, DType dtype,
                                          double margin = 0.01);

// The mean of values[begin, begin + count): a stretch of a loss curve.
double mean_of(const std::vector<double>& values, size_t begin, size_t count);

// Largest |a - b| over all elements (both converted to float64 on the CPU).
double max_abs_difference(const Tensor& a, const Tensor& b);

}  // namespace visrep::testing
