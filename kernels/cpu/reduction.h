// Reductions over the middle axis of a contiguous (outer, reduced, inner) view: the engine
// permutes or reshapes any set of reduced dimensions into that form. Sums accumulate in
// double, so a float32 sum over millions of elements keeps its precision. This header is
// the specification; kernels/cpu/reduction.cpp computes it with plain loops.
//
// Where to look, reductions:
//   op               engine/ops/reduction.{h,cpp}   sum, mean, max, min, var, argmax, argmin, sum_to
//   CPU reference    kernels/cpu/reduction.{h,cpp}  this header and its loops
//   CUDA twin        kernels/cuda/reduction.{h,cu}
//   unit tests       tests/unit/test_reduction.cpp
//   gradient check   tests/gradcheck/test_reduction_gradcheck.cpp
//   parity cases     tests/parity/test_parity_reduction.cpp
//   benchmark        benchmarks/bench_elementwise.cpp (its reduction rows, GB/s next to a device copy)
#pragma once

#include <cstdint>

namespace visrep::kernels {

enum class ReduceOp { Sum, Mean, Max, Min };

// out[o, i] = op over r of x[o, r, i]. float, double. Max and Min propagate NaN.
template <class T>
struct Reduce {
  ReduceOp op = ReduceOp::Sum;
  const T* x = nullptr;
  int64_t outer = 0;
  int64_t reduced = 0;
  int64_t inner = 0;
  T* out = nullptr;
};

// Integer sum (int32_t, int64_t, uint8_t inputs) into int64, as PyTorch promotes it.
template <class T>
struct SumInteger {
  const T* x = nullptr;
  int64_t outer = 0;
  int64_t reduced = 0;
  int64_t inner = 0;
  int64_t* out = nullptr;
};

// Variance with Bessel-style correction: sum (x - mean)^2 / (reduced - correction), exact
// two-pass in double. correction = 0 is the biased variance, 1 the unbiased one.
template <class T>
struct Variance {
  const T* x = nullptr;
  int64_t outer = 0;
  int64_t reduced = 0;
  int64_t inner = 0;
  int64_t correction = 1;
  T* out = nullptr;
};

// Index (along the reduced axis) of the first maximum (or minimum); a NaN counts as the
// maximum and as the minimum, as in PyTorch.
template <class T>
struct ArgExtremum {
  bool maximum = true;
  const T* x = nullptr;
  int64_t outer = 0;
  int64_t reduced = 0;
  int64_t inner = 0;
  int64_t* out = nullptr;
};

}  // namespace visrep::kernels

namespace visrep::kernels::cpu {

template <class T>
void reduce(const Reduce<T>& arguments);
template <class T>
void sum_integer(const SumInteger<T>& arguments);
template <class T>
void variance(const Variance<T>& arguments);
template <class T>
void arg_extremum(const ArgExtremum<T>& arguments);

}  // namespace visrep::kernels::cpu
