#include "tests/support/test_data.h"

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
