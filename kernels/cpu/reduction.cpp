#include "kernels/cpu/reduction.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace visrep::kernels::cpu {
namespace {

// Runs body(o, i) for every output position; threads split whichever of the two
// axes is longer.
template <class Body>
void for_each_output(int64_t outer, int64_t inner, int64_t reduced, Body&& body) {
  const bool parallel = outer * inner * reduced >= 32768;
  if (outer >= inner) {
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) body(o, i);
  } else {
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t i = 0; i < inner; ++i)
      for (int64_t o = 0; o < outer; ++o) body(o, i);
  }
}

template <class T>
double sum_along(const T* x, int64_t reduced, int64_t inner) {
  double total = 0.0;
  for (int64_t r = 0; r < reduced; ++r) total += static_cast<double>(x[r * inner]);
  return total;
}

}  // namespace

template <class T>
void reduce(ReduceOp op, const T* x, int64_t outer, int64_t reduced, int64_t inner, T* out) {
  for_each_output(outer, inner, reduced, [&](int64_t o, int64_t i) {
    const T* row = x + o * reduced * inner + i;
    T& result = out[o * inner + i];
    switch (op) {
      case ReduceOp::Sum: result = static_cast<T>(sum_along(row, reduced, inner)); break;
      case ReduceOp::Mean: result = static_cast<T>(sum_along(row, reduced, inner) / static_cast<double>(reduced)); break;
      case ReduceOp::Max:
      case ReduceOp::Min: {
        const bool maximum = op == ReduceOp::Max;
        T best = maximum ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::infinity();
        for (int64_t r = 0; r < reduced; ++r) {
          T value = row[r * inner];
          if (std::isnan(value)) {
            best = value;
            break;
          }
          if (maximum ? value > best : value < best) best = value;
        }
        result = best;
        break;
      }
    }
  });
}

template <class T>
void sum_integer(const T* x, int64_t outer, int64_t reduced, int64_t inner, int64_t* out) {
  for_each_output(outer, inner, reduced, [&](int64_t o, int64_t i) {
    const T* row = x + o * reduced * inner + i;
    int64_t total = 0;
    for (int64_t r = 0; r < reduced; ++r) total += static_cast<int64_t>(row[r * inner]);
    out[o * inner + i] = total;
  });
}

template <class T>
void variance(const T* x, int64_t outer, int64_t reduced, int64_t inner, int64_t correction, T* out) {
  // reduced <= correction divides by zero: NaN (or inf), as in PyTorch.
  const double divisor = std::max(0.0, static_cast<double>(reduced - correction));
  for_each_output(outer, inner, reduced, [&](int64_t o, int64_t i) {
    const T* row = x + o * reduced * inner + i;
    const double mean = sum_along(row, reduced, inner) / static_cast<double>(reduced);
    double squares = 0.0;
    for (int64_t r = 0; r < reduced; ++r) {
      double deviation = static_cast<double>(row[r * inner]) - mean;
      squares += deviation * deviation;
    }
    out[o * inner + i] = static_cast<T>(squares / divisor);
  });
}

template <class T>
void arg_extremum(bool maximum, const T* x, int64_t outer, int64_t reduced, int64_t inner, int64_t* out) {
  for_each_output(outer, inner, reduced, [&](int64_t o, int64_t i) {
    const T* row = x + o * reduced * inner + i;
    int64_t best_index = 0;
    T best = row[0];
    for (int64_t r = 1; r < reduced && !std::isnan(best); ++r) {
      T value = row[r * inner];
      if (std::isnan(value) || (maximum ? value > best : value < best)) {
        best = value;
        best_index = r;
      }
    }
    out[o * inner + i] = best_index;
  });
}

template void reduce<float>(ReduceOp, const float*, int64_t, int64_t, int64_t, float*);
template void reduce<double>(ReduceOp, const double*, int64_t, int64_t, int64_t, double*);
template void variance<float>(const float*, int64_t, int64_t, int64_t, int64_t, float*);
template void variance<double>(const double*, int64_t, int64_t, int64_t, int64_t, double*);
template void arg_extremum<float>(bool, const float*, int64_t, int64_t, int64_t, int64_t*);
template void arg_extremum<double>(bool, const double*, int64_t, int64_t, int64_t, int64_t*);
template void sum_integer<int32_t>(const int32_t*, int64_t, int64_t, int64_t, int64_t*);
template void sum_integer<int64_t>(const int64_t*, int64_t, int64_t, int64_t, int64_t*);
template void sum_integer<uint8_t>(const uint8_t*, int64_t, int64_t, int64_t, int64_t*);

}  // namespace visrep::kernels::cpu
