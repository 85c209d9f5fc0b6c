// CUDA twins of kernels/cpu/elementwise.h: unary maps, binary arithmetic with
// broadcasting, comparisons and where, over strided operands.
//
// Each op is a tiny per-element function (the structs below, one template per family with
// the op as a template argument, so the switch over ops happens once on the host and the
// kernel body is straight-line code). The launch machinery, the memory traffic and why it
// is shaped this way are in elementwise_launch.cuh: one read of each input and one write of
// the output, 16-byte packs on the contiguous path, offsets from the linear index otherwise.
//
// The per-element functions copy the CPU reference expression by expression, so NaN
// propagation (relu, clamp, maximum, minimum) and integer division by zero (= 0) agree.
// Transcendentals (exp, log, pow) come from CUDA's math library: within a few ulp of
// glibc's, not bit-identical; sqrt and division are correctly rounded on both.
// Where to look for the rest of the family: kernels/cpu/elementwise.h.
#include "kernels/cuda/elementwise.h"

#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <type_traits>

#include "kernels/cuda/elementwise_launch.cuh"

namespace visrep::kernels::cuda {
namespace {

using elementwise_detail::launch;
using elementwise_detail::make_plan;
using elementwise_detail::Map2;
using elementwise_detail::Map3;

template <class T>
__device__ __forceinline__ bool is_nan(T value) {
  if constexpr (std::is_floating_point_v<T>) return value != value;
  else return false;
}

// ---- unary (float, double) ------------------------------------------------------------------

template <class T, UnaryOp kOp>
struct UnaryFunction {
  T first;   // PowScalar's exponent, Clamp's lower bound
  T second;  // Clamp's upper bound
  __device__ __forceinline__ T operator()(T v) const {
    if constexpr (kOp == UnaryOp::Negate) return -v;
    if constexpr (kOp == UnaryOp::Exp) return ::exp(v);
    if constexpr (kOp == UnaryOp::Log) return ::log(v);
    if constexpr (kOp == UnaryOp::Sqrt) return ::sqrt(v);
    if constexpr (kOp == UnaryOp::Rsqrt) return T(1) / ::sqrt(v);  // not rsqrt(): that one is approximate
    if constexpr (kOp == UnaryOp::Abs) return ::fabs(v);
    if constexpr (kOp == UnaryOp::Sign) return static_cast<T>((T(0) < v) - (v < T(0)));  // NaN -> 0
    if constexpr (kOp == UnaryOp::Relu) return v > T(0) || is_nan(v) ? v : T(0);
    if constexpr (kOp == UnaryOp::PowScalar) return ::pow(v, first);
    if constexpr (kOp == UnaryOp::Clamp) {
      if (is_nan(v)) return v;
      const T low = v < first ? first : v;  // std::max(v, first)
      return second < low ? second : low;   // std::min(low, second)
    }
  }
};

// ---- binary (float, double, int32, int64, uint8) ------------------------------------------------

template <class T, BinaryOp kOp>
struct BinaryFunction {
  __device__ __forceinline__ T operator()(T x, T y) const {
    if constexpr (kOp == BinaryOp::Add) return static_cast<T>(x + y);
    if constexpr (kOp == BinaryOp::Subtract) return static_cast<T>(x - y);
    if constexpr (kOp == BinaryOp::Multiply) return static_cast<T>(x * y);
    if constexpr (kOp == BinaryOp::Divide) {
      if constexpr (std::is_integral_v<T>) return y == 0 ? T(0) : static_cast<T>(x / y);
      else return x / y;
    }
    if constexpr (kOp == BinaryOp::Power) {
      // The CPU's std::pow on integers computes in double and converts back; so does this.
      if constexpr (std::is_integral_v<T>) return static_cast<T>(::pow(static_cast<double>(x), static_cast<double>(y)));
      else return ::pow(x, y);
    }
    if constexpr (kOp == BinaryOp::Maximum) {
      if (is_nan(x) || is_nan(y)) return x + y;  // NaN wins
      return x < y ? y : x;                      // std::max
    }
    if constexpr (kOp == BinaryOp::Minimum) {
      if (is_nan(x) || is_nan(y)) return x + y;
      return y < x ? y : x;  // std::min
    }
    if constexpr (kOp == BinaryOp::ReluBackward) return x > T(0) ? y : T(0);
  }
};

template <class T, CompareOp kOp>
struct CompareFunction {
  __device__ __forceinline__ uint8_t operator()(T x, T y) const {
    if constexpr (kOp == CompareOp::Equal) return x == y;
    if constexpr (kOp == CompareOp::NotEqual) return x != y;
    if constexpr (kOp == CompareOp::Less) return x < y;
    if constexpr (kOp == CompareOp::LessEqual) return x <= y;
    if constexpr (kOp == CompareOp::Greater) return x > y;
    if constexpr (kOp == CompareOp::GreaterEqual) return x >= y;
  }
};

template <class T>
struct SelectFunction {
  __device__ __forceinline__ T operator()(uint8_t condition, T a, T b) const { return condition ? a : b; }
};

// Runs a two-input function (binary or compare) over out = f(a, b).
template <class Out, class T, class Function>
void run_binary(Function f, const T* a, const StridedLayout& a_layout, const T* b, const StridedLayout& b_layout,
                Out* out, const StridedLayout& out_layout, cudaStream_t stream) {
  const auto plan = make_plan<3>({&out_layout, &a_layout, &b_layout});
  launch(Map2<Out, T, T, Function>{f, out, a, b, plan.broadcast[1], plan.broadcast[2]}, plan, stream);
}

}  // namespace

template <class T>
void unary(const Unary<T>& arguments, cudaStream_t stream) {
  const UnaryOp op = arguments.op;
  const UnaryParameters parameters = arguments.parameters;
  const T* x = arguments.x;
  const StridedLayout& x_layout = arguments.x_layout;
  T* out = arguments.out;
  const StridedLayout& out_layout = arguments.out_layout;
  static_assert(std::is_floating_point_v<T>);
  const auto plan = make_plan<2>({&out_layout, &x_layout});
  const T first = static_cast<T>(parameters.first);
  const T second = static_cast<T>(parameters.second);
  auto run = [&](auto f) {
    launch(elementwise_detail::Map1<T, T, decltype(f)>{f, out, x, plan.broadcast[1]}, plan, stream);
  };
  switch (op) {
    case UnaryOp::Negate: return run(UnaryFunction<T, UnaryOp::Negate>{first, second});
    case UnaryOp::Exp: return run(UnaryFunction<T, UnaryOp::Exp>{first, second});
    case UnaryOp::Log: return run(UnaryFunction<T, UnaryOp::Log>{first, second});
    case UnaryOp::Sqrt: return run(UnaryFunction<T, UnaryOp::Sqrt>{first, second});
    case UnaryOp::Rsqrt: return run(UnaryFunction<T, UnaryOp::Rsqrt>{first, second});
    case UnaryOp::Abs: return run(UnaryFunction<T, UnaryOp::Abs>{first, second});
    case UnaryOp::Sign: return run(UnaryFunction<T, UnaryOp::Sign>{first, second});
    case UnaryOp::Relu: return run(UnaryFunction<T, UnaryOp::Relu>{first, second});
    case UnaryOp::PowScalar: return run(UnaryFunction<T, UnaryOp::PowScalar>{first, second});
    case UnaryOp::Clamp: return run(UnaryFunction<T, UnaryOp::Clamp>{first, second});
  }
  throw std::logic_error("unary: unknown op");
}

template <class T>
void binary(const Binary<T>& arguments, cudaStream_t stream) {
  auto run = [&](auto f) {
    run_binary<T>(f, arguments.a, arguments.a_layout, arguments.b, arguments.b_layout, arguments.out,
                  arguments.out_layout, stream);
  };
  switch (arguments.op) {
    case BinaryOp::Add: return run(BinaryFunction<T, BinaryOp::Add>{});
    case BinaryOp::Subtract: return run(BinaryFunction<T, BinaryOp::Subtract>{});
    case BinaryOp::Multiply: return run(BinaryFunction<T, BinaryOp::Multiply>{});
    case BinaryOp::Divide: return run(BinaryFunction<T, BinaryOp::Divide>{});
    case BinaryOp::Power: return run(BinaryFunction<T, BinaryOp::Power>{});
    case BinaryOp::Maximum: return run(BinaryFunction<T, BinaryOp::Maximum>{});
    case BinaryOp::Minimum: return run(BinaryFunction<T, BinaryOp::Minimum>{});
    case BinaryOp::ReluBackward: return run(BinaryFunction<T, BinaryOp::ReluBackward>{});
  }
  throw std::logic_error("binary: unknown op");
}

template <class T>
void compare(const Compare<T>& arguments, cudaStream_t stream) {
  auto run = [&](auto f) {
    run_binary<uint8_t>(f, arguments.a, arguments.a_layout, arguments.b, arguments.b_layout, arguments.out,
                        arguments.out_layout, stream);
  };
  switch (arguments.op) {
    case CompareOp::Equal: return run(CompareFunction<T, CompareOp::Equal>{});
    case CompareOp::NotEqual: return run(CompareFunction<T, CompareOp::NotEqual>{});
    case CompareOp::Less: return run(CompareFunction<T, CompareOp::Less>{});
    case CompareOp::LessEqual: return run(CompareFunction<T, CompareOp::LessEqual>{});
    case CompareOp::Greater: return run(CompareFunction<T, CompareOp::Greater>{});
    case CompareOp::GreaterEqual: return run(CompareFunction<T, CompareOp::GreaterEqual>{});
  }
  throw std::logic_error("compare: unknown op");
}

template <class T>
void where(const Where<T>& arguments, cudaStream_t stream) {
  const auto plan =
      make_plan<4>({&arguments.out_layout, &arguments.condition_layout, &arguments.a_layout, &arguments.b_layout});
  launch(
      Map3<T, uint8_t, T, T, SelectFunction<T>>{SelectFunction<T>{}, arguments.out, arguments.condition, arguments.a,
                                                arguments.b, plan.broadcast[1], plan.broadcast[2], plan.broadcast[3]},
      plan, stream);
}

#define VISREP_INSTANTIATE_ARITHMETIC(T)                     \
  template void binary<T>(const Binary<T>&, cudaStream_t);   \
  template void compare<T>(const Compare<T>&, cudaStream_t); \
  template void where<T>(const Where<T>&, cudaStream_t);

VISREP_INSTANTIATE_ARITHMETIC(float)
VISREP_INSTANTIATE_ARITHMETIC(double)
VISREP_INSTANTIATE_ARITHMETIC(int32_t)
VISREP_INSTANTIATE_ARITHMETIC(int64_t)
VISREP_INSTANTIATE_ARITHMETIC(uint8_t)
#undef VISREP_INSTANTIATE_ARITHMETIC

template void unary<float>(const Unary<float>&, cudaStream_t);
template void unary<double>(const Unary<double>&, cudaStream_t);

}  // namespace visrep::kernels::cuda
