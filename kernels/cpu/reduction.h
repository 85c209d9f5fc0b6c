// Reductions over the middle axis of a contiguous (outer, reduced, inner) view: the engine
// permutes or reshapes any set of reduced dimensions into that form. Sums accumulate in
// double, so a float32 sum over millions of elements keeps its precision.
#pragma once

#include <cstdint>

namespace visrep::kernels {
enum class ReduceOp { Sum, Mean, Max, Min };
}

namespace visrep::kernels::cpu {

// out[o, i] = op over r of x[o, r, i]. float, double. Max and Min propagate NaN.
template <class T>
void reduce(ReduceOp op, const T* x, int64_t outer, int64_t reduced, int64_t inner, T* out);

// Integer sum (int32_t, int64_t, uint8_t inputs) into int64, as PyTorch promotes it.
template <class T>
void sum_integer(const T* x, int64_t outer, int64_t reduced, int64_t inner, int64_t* out);

// Variance with Bessel-style correction: sum (x - mean)^2 / (reduced - correction), exact
// two-pass in double. correction = 0 is the biased variance, 1 the unbiased one.
template <class T>
void variance(const T* x, int64_t outer, int64_t reduced, int64_t inner, int64_t correction, T* out);

// Index (along the reduced axis) of the first maximum (or minimum); a NaN counts as the
// maximum and as the minimum, as in PyTorch.
template <class T>
void arg_extremum(bool maximum, const T* x, int64_t outer, int64_t reduced, int64_t inner, int64_t* out);

}  // namespace visrep::kernels::cpu
