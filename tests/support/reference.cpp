#include "tests/support/reference.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace visrep::testing {

double worst_error(const std::vector<double>& actual, const std::vector<double>& expected) {
  if (actual.size() != expected.size()) return INFINITY;
  double worst = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    if (std::isnan(actual[i]) || std::isnan(expected[i])) {
      if (std::isnan(actual[i]) != std::isnan(expected[i])) return INFINITY;
      continue;
    }
    if (std::isinf(expected[i]) || std::isinf(actual[i])) {
      if (actual[i] != expected[i]) return INFINITY;
      continue;
    }
    worst = std::max(worst, std::abs(actual[i] - expected[i]) / (1.0 + std::abs(expected[i])));
  }
  return worst;
}

double error_of(const Tensor& actual, const std::vector<double>& expected) {
  REQUIRE(actual.defined());
  return worst_error(actual.detach().to_vector<double>(), expected);
}

double tolerance_for(DType dtype) {
  if (dtype == kFloat64) return 1e-12;
  if (dtype == kBFloat16) return 2e-2;
  return 1e-5;
}

void require_close(const Tensor& actual, const Array& expected, double tolerance) {
  INFO("shape " << shape_string(actual.shape()) << " expected " << shape_string(expected.shape));
  REQUIRE(actual.shape() == expected.shape);
  CHECK(worst_error(actual.to_vector<double>(), expected.values) <= tolerance);
}

void for_each_index(const Shape& shape, const std::function<void(const std::vector<int64_t>&)>& f) {
  std::vector<int64_t> index(shape.size(), 0);
  if (shape_numel(shape) == 0) return;
  while (true) {
    f(index);
    int64_t d = static_cast<int64_t>(shape.size()) - 1;
    for (; d >= 0; --d) {
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
    if (d < 0) return;
  }
}

Array reduce_reference(const Array& x, const Dims& dims, bool keepdim,
                       const std::function<double(const std::vector<double>&)>& f) {
  const int64_t ndim = static_cast<int64_t>(x.shape.size());
  auto reduced = [&](int64_t d) {
    if (dims.empty()) return true;
    for (int64_t r : dims)
      if ((r + ndim) % ndim == d) return true;
    return false;
  };
  Shape kept;
  for (int64_t d = 0; d < ndim; ++d) kept.push_back(reduced(d) ? 1 : x.shape[d]);
  Array out(kept, 0.0);
  for_each_index(kept, [&](const std::vector<int64_t>& o) {
    std::vector<double> selected;
    for_each_index(x.shape, [&](const std::vector<int64_t>& i) {
      for (int64_t d = 0; d < ndim; ++d)
        if (!reduced(d) && i[d] != o[d]) return;
      selected.push_back(x(i));
    });
    out(o) = f(selected);
  });
  if (!keepdim) {
    Shape squeezed;
    for (int64_t d = 0; d < ndim; ++d)
      if (!reduced(d)) squeezed.push_back(x.shape[d]);
    out.shape = squeezed;
  }
  return out;
}

double total(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0); }
double average(const std::vector<double>& v) { return total(v) / static_cast<double>(v.size()); }
double largest(const std::vector<double>& v) {
  for (double value : v)
    if (std::isnan(value)) return value;
  return *std::max_element(v.begin(), v.end());
}
double smallest(const std::vector<double>& v) {
  for (double value : v)
    if (std::isnan(value)) return value;
  return *std::min_element(v.begin(), v.end());
}
std::function<double(const std::vector<double>&)> variance_with(int64_t correction) {
  return [correction](const std::vector<double>& v) {
    const double m = average(v);
    double squares = 0;
    for (double value : v) squares += (value - m) * (value - m);
    return squares / static_cast<double>(static_cast<int64_t>(v.size()) - correction);
  };
}

Array naive_matmul(const Array& a, const Array& b) {
  const int64_t m = a.shape[a.shape.size() - 2], k = a.shape.back(), n = b.shape.back();
  REQUIRE(b.shape[b.shape.size() - 2] == k);
  const Shape a_batch(a.shape.begin(), a.shape.end() - 2), b_batch(b.shape.begin(), b.shape.end() - 2);
  const Shape batch = broadcast_shapes(a_batch, b_batch, "naive");
  Shape out_shape = batch;
  out_shape.push_back(m);
  out_shape.push_back(n);
  Array out(out_shape, 0.0);
  auto operand_index = [](const Shape& own_batch, const std::vector<int64_t>& index, int64_t r, int64_t c) {
    std::vector<int64_t> result;
    const size_t lead = index.size() - 2 - own_batch.size();
    for (size_t d = 0; d < own_batch.size(); ++d) result.push_back(own_batch[d] == 1 ? 0 : index[lead + d]);
    result.push_back(r);
    result.push_back(c);
    return result;
  };
  for_each_index(out_shape, [&](const std::vector<int64_t>& index) {
    const int64_t i = index[index.size() - 2], j = index.back();
    double total = 0;
    for (int64_t p = 0; p < k; ++p) total += a(operand_index(a_batch, index, i, p)) * b(operand_index(b_batch, index, p, j));
    out(index) = total;
  });
  return out;
}

}  // namespace visrep::testing
