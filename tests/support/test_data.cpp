#include "tests/support/test_data.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <numeric>
#include <string>

namespace visrep::testing {

Generator generator_for(const char* test_name) {
  return Generator(std::hash<std::string>{}(test_name) & 0xffffffffu);
}

Tensor random_normal(const Shape& shape, Generator& generator, DType dtype) {
  return randn(shape, dtype, generator);
}

Tensor random_uniform(const Shape& shape, double low, double high, Generator& generator, DType dtype) {
  return uniform(shape, low, high, dtype, generator);
}

Tensor random_away_from_zero(const Shape& shape, double margin, Generator& generator, DType dtype) {
  Tensor x = randn(shape, kFloat64, generator);
  Tensor magnitude = add(abs(x), margin);
  return mul(where(ge(x, 0.0), ones_like(x), full_like(x, -1.0)), magnitude).to(dtype);
}

Tensor random_distinct(const Shape& shape, double gap, Generator& generator, DType dtype) {
  const int64_t count = shape_numel(shape);
  Tensor order = permutation(count, generator).to(kFloat64);
  Tensor noise = uniform({count}, -0.1 * gap, 0.1 * gap, kFloat64, generator);
  Tensor centred = sub(order, static_cast<double>(count - 1) / 2.0);
  return add(mul(centred, gap), noise).reshape(shape).to(dtype);
}

Tensor random_away_from_points(const Shape& shape, double low, double high, const std::vector<double>& points,
                               double margin, Generator& generator, DType dtype) {
  Tensor x = uniform(shape, low, high, kFloat64, generator);
  double* values = x.data<double>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    // Push a value that is too close to a point out to `margin` on its own side; the points
    // are assumed to be more than 2 * margin apart, so this never lands near another one.
    for (double point : points) {
      const double offset = values[i] - point;
      if (std::abs(offset) < margin) values[i] = point + (offset >= 0 ? margin : -margin);
    }
  }
  return x.to(dtype);
}

Tensor away_from_group_norm_relu_boundary(Tensor values, int64_t start, const Shape& shape, int64_t groups,
                                          const Tensor& gamma, const Tensor& beta, DType dtype, double margin) {
  const int64_t numel = shape_numel(shape);
  if (numel == 0 || numel / (shape[0] * groups) <= 1) return values;
  values = values.to(kFloat64);
  const auto as_seen = [dtype](const Tensor& t) { return t.defined() ? t.to(dtype).to(kFloat64) : Tensor(); };
  for (int round = 0; round < 8; ++round) {
    const Tensor x = as_seen(values).narrow(0, start, numel).view(shape);
    const std::vector<double> pre_relu =
        group_norm(x, groups, as_seen(gamma), as_seen(beta), 1e-5, false).to_vector<double>();
    std::vector<double> moved = values.to_vector<double>();
    bool any = false;
    for (int64_t i = 0; i < numel; ++i) {
      if (std::abs(pre_relu[i]) >= margin) continue;
      moved[static_cast<size_t>(start + i)] += (pre_relu[i] < 0 ? -5.0 : 5.0) * margin;
      any = true;
    }
    if (!any) return values;
    values = from_vector<double>(moved);
  }
  FAIL("could not move the inputs of group_norm " << shape_string(shape) << " away from the ReLU boundary");
  return values;
}

double max_abs_difference(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return INFINITY;
  Tensor difference = abs(sub(a.detach().cpu().to(kFloat64), b.detach().cpu().to(kFloat64)));
  return difference.numel() == 0 ? 0.0 : max(difference).item();
}

double mean_of(const std::vector<double>& values, size_t begin, size_t count) {
  return std::accumulate(values.begin() + static_cast<std::ptrdiff_t>(begin),
                         values.begin() + static_cast<std::ptrdiff_t>(begin + count), 0.0) /
         static_cast<double>(count);
}

}  // namespace visrep::testing
