// The elementwise ops on the CPU, the reference of the CUDA twins
// (kernels/cpu/elementwise.h specifies them and lists the family's files).
#include "kernels/cpu/elementwise.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <type_traits>

#include "kernels/cpu/strided_loop.h"

namespace visrep::kernels::cpu {
namespace {

template <class T, class Function>
void map_unary(const T* x, const StridedLayout& x_layout, T* out, const StridedLayout& out_layout, Function f) {
  for_each_strided<2>({&out_layout, &x_layout},
                      [&](const std::array<int64_t, 2>& at) { out[at[0]] = f(x[at[1]]); });
}

template <class T, class Result, class Function>
void map_binary(const T* a, const StridedLayout& a_layout, const T* b, const StridedLayout& b_layout, Result* out,
                const StridedLayout& out_layout, Function f) {
  for_each_strided<3>({&out_layout, &a_layout, &b_layout},
                      [&](const std::array<int64_t, 3>& at) { out[at[0]] = f(a[at[1]], b[at[2]]); });
}

}  // namespace

template <class T>
void unary(const Unary<T>& arguments) {
  const UnaryOp op = arguments.op;
  const UnaryParameters parameters = arguments.parameters;
  const T* x = arguments.x;
  const StridedLayout& x_layout = arguments.x_layout;
  T* out = arguments.out;
  const StridedLayout& out_layout = arguments.out_layout;
  static_assert(std::is_floating_point_v<T>);
  const T first = static_cast<T>(parameters.first);
  const T second = static_cast<T>(parameters.second);
  auto run = [&](auto f) { map_unary(x, x_layout, out, out_layout, f); };
  switch (op) {
    case UnaryOp::Negate: return run([](T v) { return -v; });
    case UnaryOp::Exp: return run([](T v) { return std::exp(v); });
    case UnaryOp::Log: return run([](T v) { return std::log(v); });
    case UnaryOp::Sqrt: return run([](T v) { return std::sqrt(v); });
    case UnaryOp::Rsqrt: return run([](T v) { return T(1) / std::sqrt(v); });
    case UnaryOp::Abs: return run([](T v) { return std::abs(v); });
    case UnaryOp::Sign: return run([](T v) { return static_cast<T>((T(0) < v) - (v < T(0))); });
    // NaN propagates through relu and clamp, as in PyTorch.
    case UnaryOp::Relu: return run([](T v) { return v > T(0) || std::isnan(v) ? v : T(0); });
    case UnaryOp::PowScalar: return run([first](T v) { return std::pow(v, first); });
    case UnaryOp::Clamp:
      return run([first, second](T v) { return std::isnan(v) ? v : std::min(std::max(v, first), second); });
  }
  throw std::logic_error("unary: unknown op");
}

template <class T>
void binary(const Binary<T>& arguments) {
  const BinaryOp op = arguments.op;
  const T* a = arguments.a;
  const StridedLayout& a_layout = arguments.a_layout;
  const T* b = arguments.b;
  const StridedLayout& b_layout = arguments.b_layout;
  T* out = arguments.out;
  const StridedLayout& out_layout = arguments.out_layout;
  auto run = [&](auto f) { map_binary(a, a_layout, b, b_layout, out, out_layout, f); };
  switch (op) {
    case BinaryOp::Add: return run([](T x, T y) -> T { return x + y; });
    case BinaryOp::Subtract: return run([](T x, T y) -> T { return x - y; });
    case BinaryOp::Multiply: return run([](T x, T y) -> T { return x * y; });
    case BinaryOp::Divide:
      if constexpr (std::is_integral_v<T>) {
        // Integer division by zero is undefined behaviour in C++; define it as 0.
        return run([](T x, T y) -> T { return y == 0 ? T(0) : static_cast<T>(x / y); });
      } else {
        return run([](T x, T y) -> T { return x / y; });
      }
    case BinaryOp::Power: return run([](T x, T y) -> T { return static_cast<T>(std::pow(x, y)); });
    case BinaryOp::Maximum:
      return run([](T x, T y) -> T {
        if constexpr (std::is_floating_point_v<T>) {
          if (std::isnan(x) || std::isnan(y)) return x + y;  // NaN wins
        }
        return std::max(x, y);
      });
    case BinaryOp::Minimum:
      return run([](T x, T y) -> T {
        if constexpr (std::is_floating_point_v<T>) {
          if (std::isnan(x) || std::isnan(y)) return x + y;
        }
        return std::min(x, y);
      });
    case BinaryOp::ReluBackward: return run([](T x, T y) -> T { return x > T(0) ? y : T(0); });
  }
  throw std::logic_error("binary: unknown op");
}

template <class T>
void compare(const Compare<T>& arguments) {
  const CompareOp op = arguments.op;
  const T* a = arguments.a;
  const StridedLayout& a_layout = arguments.a_layout;
  const T* b = arguments.b;
  const StridedLayout& b_layout = arguments.b_layout;
  uint8_t* out = arguments.out;
  const StridedLayout& out_layout = arguments.out_layout;
  auto run = [&](auto f) { map_binary(a, a_layout, b, b_layout, out, out_layout, f); };
  switch (op) {
    case CompareOp::Equal: return run([](T x, T y) -> uint8_t { return x == y; });
    case CompareOp::NotEqual: return run([](T x, T y) -> uint8_t { return x != y; });
    case CompareOp::Less: return run([](T x, T y) -> uint8_t { return x < y; });
    case CompareOp::LessEqual: return run([](T x, T y) -> uint8_t { return x <= y; });
    case CompareOp::Greater: return run([](T x, T y) -> uint8_t { return x > y; });
    case CompareOp::GreaterEqual: return run([](T x, T y) -> uint8_t { return x >= y; });
  }
  throw std::logic_error("compare: unknown op");
}

template <class T>
void where(const Where<T>& arguments) {
  const uint8_t* condition = arguments.condition;
  const StridedLayout& condition_layout = arguments.condition_layout;
  const T* a = arguments.a;
  const StridedLayout& a_layout = arguments.a_layout;
  const T* b = arguments.b;
  const StridedLayout& b_layout = arguments.b_layout;
  T* out = arguments.out;
  const StridedLayout& out_layout = arguments.out_layout;
  for_each_strided<4>({&out_layout, &condition_layout, &a_layout, &b_layout},
                      [&](const std::array<int64_t, 4>& at) { out[at[0]] = condition[at[1]] ? a[at[2]] : b[at[3]]; });
}

#define VISREP_INSTANTIATE_ARITHMETIC(T)       \
  template void binary<T>(const Binary<T>&);   \
  template void compare<T>(const Compare<T>&); \
  template void where<T>(const Where<T>&);

VISREP_INSTANTIATE_ARITHMETIC(float)
VISREP_INSTANTIATE_ARITHMETIC(double)
VISREP_INSTANTIATE_ARITHMETIC(int32_t)
VISREP_INSTANTIATE_ARITHMETIC(int64_t)
VISREP_INSTANTIATE_ARITHMETIC(uint8_t)
#undef VISREP_INSTANTIATE_ARITHMETIC

template void unary<float>(const Unary<float>&);
template void unary<double>(const Unary<double>&);

}  // namespace visrep::kernels::cpu
