// Elementwise arithmetic over strided operands: unary maps, binary ops with broadcasting,
// comparisons and select. All operands share the output's sizes; a broadcast input has
// stride 0 along the broadcast dimensions, so no kernel ever materialises an expansion.
// This header is the specification; kernels/cpu/elementwise.cpp computes it with plain
// loops (kernels/cpu/strided_loop.h walks the layouts).
//
// Where to look, elementwise ops:
//   op               engine/ops/elementwise.{h,cpp}   add, mul, exp, relu, clamp, eq, where, ...
//   CPU reference    kernels/cpu/elementwise.{h,cpp}  this header and its loops
//   CUDA twin        kernels/cuda/elementwise.{h,cu}  (launches: kernels/cuda/elementwise_launch.cuh)
//   unit tests       tests/unit/test_elementwise.cpp
//   gradient check   tests/gradcheck/test_elementwise_gradcheck.cpp
//   parity cases     tests/parity/test_parity_elementwise.cpp
//   benchmark        benchmarks/bench_elementwise.cpp (GB/s next to a device copy; also reductions);
//                    the CPU rows of benchmarks/bench_cpu_ops.cpp
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

// ReluBackward is relu's backward pass in one pass over memory: out = a > 0 ? b : 0, with a
// relu's input and b the gradient of its output (0 where a is NaN, as where(gt(a, 0), b, 0)
// has it). Not differentiable itself: backward functions run without a graph.
enum class BinaryOp { Add, Subtract, Multiply, Divide, Power, Maximum, Minimum, ReluBackward };

enum class CompareOp { Equal, NotEqual, Less, LessEqual, Greater, GreaterEqual };

// out = op(x). Floating types only (float, double).
template <class T>
struct Unary {
  UnaryOp op = UnaryOp::Negate;
  UnaryParameters parameters;
  const T* x = nullptr;
  StridedLayout x_layout;
  T* out = nullptr;
  StridedLayout out_layout;
};

// out = op(a, b). float, double, int32_t, int64_t, uint8_t.
template <class T>
struct Binary {
  BinaryOp op = BinaryOp::Add;
  const T* a = nullptr;
  StridedLayout a_layout;
  const T* b = nullptr;
  StridedLayout b_layout;
  T* out = nullptr;
  StridedLayout out_layout;
};

// out = (a op b) as 0 or 1. Same types as Binary.
template <class T>
struct Compare {
  CompareOp op = CompareOp::Equal;
  const T* a = nullptr;
  StridedLayout a_layout;
  const T* b = nullptr;
  StridedLayout b_layout;
  uint8_t* out = nullptr;
  StridedLayout out_layout;
};

// out = condition ? a : b. Same types as Binary.
template <class T>
struct Where {
  const uint8_t* condition = nullptr;
  StridedLayout condition_layout;
  const T* a = nullptr;
  StridedLayout a_layout;
  const T* b = nullptr;
  StridedLayout b_layout;
  T* out = nullptr;
  StridedLayout out_layout;
};

}  // namespace visrep::kernels

namespace visrep::kernels::cpu {

template <class T>
void unary(const Unary<T>& arguments);
template <class T>
void binary(const Binary<T>& arguments);
template <class T>
void compare(const Compare<T>& arguments);
template <class T>
void where(const Where<T>& arguments);

}  // namespace visrep::kernels::cpu
