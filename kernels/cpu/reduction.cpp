// The reductions on the CPU, the reference of the CUDA twins (kernels/cpu/reduction.h
// specifies them and lists the family's files).
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
void reduce(const Reduce<T>& arguments) {
  const ReduceOp op = arguments.op;
  const T* x = arguments.x;
  const int64_t outer = arguments.outer;
  const int64_t reduced = arguments.reduced;
  const int64_t inner = arguments.inner;
  T* out = arguments.out;
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
void sum_integer(const SumInteger<T>& arguments) {
  const T* x = arguments.x;
  const int64_t outer = arguments.outer;
  const int64_t reduced = arguments.reduced;
  const int64_t inner = arguments.inner;
  int64_t* out = arguments.out;
  for_each_output(outer, inner, reduced, [&](int64_t o, int64_t i) {
    const T* row = x + o * reduced * inner + i;
    int64_t total = 0;
    for (int64_t r = 0; r < reduced; ++r) total += static_cast<int64_t>(row[r * inner]);
    out[o * inner + i] = total;
  });
}

template <class T>
void variance(const Variance<T>& arguments) {
  const T* x = arguments.x;
  const int64_t outer = arguments.outer;
  const int64_t reduced = arguments.reduced;
  const int64_t inner = arguments.inner;
  const int64_t correction = arguments.correction;
  T* out = arguments.out;
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
void arg_extremum(const ArgExtremum<T>& arguments) {
  const bool maximum = arguments.maximum;
  const T* x = arguments.x;
  const int64_t outer = arguments.outer;
  const int64_t reduced = arguments.reduced;
  const int64_t inner = arguments.inner;
  int64_t* out = arguments.out;
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

template void reduce<float>(const Reduce<float>&);
template void reduce<double>(const Reduce<double>&);
template void variance<float>(const Variance<float>&);
template void variance<double>(const Variance<double>&);
template void arg_extremum<float>(const ArgExtremum<float>&);
template void arg_extremum<double>(const ArgExtremum<double>&);
template void sum_integer<int32_t>(const SumInteger<int32_t>&);
template void sum_integer<int64_t>(const SumInteger<int64_t>&);
template void sum_integer<uint8_t>(const SumInteger<uint8_t>&);

}  // namespace visrep::kernels::cpu
