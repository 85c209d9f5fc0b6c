// Elementwise arithmetic over strided operands: unary maps, binary ops with broadcasting,
// comparisons and select. All operands share the output's sizes; a broadcast input has
// stride 0 along the broadcast dimensions, so no kernel ever materialises an expansion.
#pragma once

#include <cstdint>

#include "kernels/strided_layout.h"

namespace visrep::kernels {

enum class UnaryOp {
  Negate,
  Exp,
  Log,
  Sqrt,
  Rsqrt,        // 1 / sqrt(x)
  Abs,
  Sign,         // -1, 0 or +1
  Relu,         // max(x, 0)
  PowScalar,    // x ^ parameters.first
  Clamp,        // min(max(x, parameters.first), parameters.second)
};

// The scalar arguments of a parameterised unary op (PowScalar's exponent, Clamp's bounds).
struct UnaryParameters {
  double first = 0.0;
  double second = 0.0;
};

enum class BinaryOp { Add, Subtract, Multiply, Divide, Power, Maximum, Minimum };

enum class CompareOp { Equal, NotEqual, Less, LessEqual, Greater, GreaterEqual };

}  // namespace visrep::kernels

namespace visrep::kernels::cpu {

// out = op(x). Floating types only (float, double).
template <class T>
void unary(UnaryOp op, UnaryParameters parameters, const T* x, const StridedLayout& x_layout, T* out,
           const StridedLayout& out_layout);

// out = op(a, b). float, double, int32_t, int64_t, uint8_t.
template <class T>
void binary(BinaryOp op, const T* a, const StridedLayout& a_layout, const T* b, const StridedLayout& b_layout,
            T* out, const StridedLayout& out_layout);

// out = (a op b) as 0 or 1. Same types as binary.
template <class T>
void compare(CompareOp op, const T* a, const StridedLayout& a_layout, const T* b, const StridedLayout& b_layout,
             uint8_t* out, const StridedLayout& out_layout);

// out = condition ? a : b.
template <class T>
void where(const uint8_t* condition, const StridedLayout& condition_layout, const T* a, const StridedLayout& a_layout,
           const T* b, const StridedLayout& b_layout, T* out, const StridedLayout& out_layout);

}  // namespace visrep::kernels::cpu
