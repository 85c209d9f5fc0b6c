// Elementwise ops: broadcasting, dtype rules, the kernel calls and their backward
// (kernels/cpu/elementwise.h lists the family's files).
#include "engine/ops/elementwise.h"

#include <cmath>
#include <limits>
#include <stdexcept>

#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "engine/ops/reduction.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cuda/elementwise.h"

namespace visrep {
namespace {

using kernels::BinaryOp;
using kernels::CompareOp;
using kernels::UnaryOp;

std::string_view binary_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return "add";
    case BinaryOp::Subtract: return "sub";
    case BinaryOp::Multiply: return "mul";
    case BinaryOp::Divide: return "div";
    case BinaryOp::Power: return "pow";
    case BinaryOp::Maximum: return "maximum";
    case BinaryOp::Minimum: return "minimum";
    case BinaryOp::ReluBackward: return "relu_backward";
  }
  return "binary";
}

// A zero-dimensional operand adopts the other operand's dtype (x * 2.0 on a float64 x);
// otherwise the dtypes must match: no silent promotion.
void unify_dtypes(std::string_view op, Tensor& a, Tensor& b) {
  if (a.dtype() == b.dtype()) return;
  if (b.dim() == 0) {
    b = b.to(a.dtype());
  } else if (a.dim() == 0) {
    a = a.to(b.dtype());
  } else {
    check_same_dtype(op, a, b);
  }
}

// Runs a binary kernel over the broadcast shape; no autograd.
Tensor binary_kernel(BinaryOp op, const Tensor& a, const Tensor& b) {
  const std::string_view name = binary_name(op);
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = empty(shape, TensorOptions(a.dtype(), a.device()));
  const auto a_layout = make_layout(shape, broadcast_strides(a.shape(), a.strides(), shape));
  const auto b_layout = make_layout(shape, broadcast_strides(b.shape(), b.strides(), shape));
  visit_arithmetic(a.dtype(), name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    VISREP_RUN_KERNEL(name, a.device(), binary,
                      kernels::Binary<T>{.op = op,
                                         .a = data_or_null<const T>(a),
                                         .a_layout = a_layout,
                                         .b = data_or_null<const T>(b),
                                         .b_layout = b_layout,
                                         .out = data_or_null<T>(out),
                                         .out_layout = out.layout()});
  });
  return out;
}

Tensor binary(BinaryOp op, Tensor a, Tensor b) {
  const std::string_view name = binary_name(op);
  check_defined(name, a, "a");
  check_defined(name, b, "b");
  check_same_device(name, a, b);
  unify_dtypes(name, a, b);
  if (a.dtype() == kBFloat16) return binary(op, a.to(kFloat32), b.to(kFloat32)).to(kBFloat16);

  Tensor out = binary_kernel(op, a, b);
  const Shape a_shape = a.shape(), b_shape = b.shape();
  const SavedTensor saved_a = needs_grad({a, b}) ? SavedTensor(a) : SavedTensor();
  const SavedTensor saved_b = needs_grad({a, b}) ? SavedTensor(b) : SavedTensor();
  const SavedTensor saved_out = op == BinaryOp::Power && needs_grad({a, b}) ? SavedTensor(out) : SavedTensor();
  const bool grad_a = a.requires_grad(), grad_b = b.requires_grad();

  return record(name, out, {a, b}, [=](const Tensor& g) -> TensorList {
    Tensor da, db;
    switch (op) {
      case BinaryOp::Add:
        da = g;
        db = g;
        break;
      case BinaryOp::Subtract:
        da = g;
        if (grad_b) db = neg(g);
        break;
      case BinaryOp::Multiply:
        if (grad_a) da = mul(g, saved_b.get());
        if (grad_b) db = mul(g, saved_a.get());
        break;
      case BinaryOp::Divide:
        if (grad_a) da = div(g, saved_b.get());
        if (grad_b) db = neg(div(mul(g, saved_a.get()), mul(saved_b.get(), saved_b.get())));
        break;
      case BinaryOp::Power: {
        // d/da a^b = b a^(b-1);  d/db a^b = a^b log(a), taken as 0 where a = 0 (PyTorch's choice).
        const Tensor& base = saved_a.get();
        const Tensor& exponent = saved_b.get();
        if (grad_a) {
          // b a^(b-1) is 0 * a^-1 = NaN at a = 0, b = 0; the derivative of a^0 is 0 (as in PyTorch).
          Tensor slope = mul(exponent, pow(base, sub(exponent, 1.0)));
          da = mul(g, where(eq(exponent, 0.0), zeros_like(slope), slope));
        }
        if (grad_b) {
          Tensor log_base = where(eq(base, 0.0), zeros_like(base), log(base));
          db = mul(g, mul(saved_out.get(), log_base));
        }
        break;
      }
      case BinaryOp::Maximum:
      case BinaryOp::Minimum: {
        // The larger (smaller) input takes the gradient; on a tie each takes half.
        const Tensor& x = saved_a.get();
        const Tensor& y = saved_b.get();
        Tensor a_wins = op == BinaryOp::Maximum ? gt(x, y) : lt(x, y);
        Tensor half = mul(g, 0.5);
        Tensor a_share = where(a_wins, g, where(eq(x, y), half, zeros_like(g)));
        if (grad_a) da = a_share;
        if (grad_b) db = sub(g, a_share);
        break;
      }
      case BinaryOp::ReluBackward:  // only ever run as relu's backward, through binary_kernel
        throw std::logic_error("relu_backward has no backward");
    }
    return {da.defined() ? sum_to(da, a_shape) : da, db.defined() ? sum_to(db, b_shape) : db};
  });
}

Tensor unary_kernel(UnaryOp op, kernels::UnaryParameters parameters, const Tensor& x, std::string_view name) {
  Tensor out = empty(x.shape(), TensorOptions(x.dtype(), x.device()));
  visit_floating(x.dtype(), name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    VISREP_RUN_KERNEL(name, x.device(), unary,
                      kernels::Unary<T>{.op = op,
                                        .parameters = parameters,
                                        .x = data_or_null<const T>(x),
                                        .x_layout = x.layout(),
                                        .out = data_or_null<T>(out),
                                        .out_layout = out.layout()});
  });
  return out;
}

// The shared front of every unary op: checks, bfloat16 handling, kernel, then autograd with
// `derivative(x, y, g)` giving the input gradient.
template <class Derivative>
Tensor unary(UnaryOp op, std::string_view name, const Tensor& x, Derivative derivative,
             kernels::UnaryParameters parameters = {}) {
  check_defined(name, x, "x");
  if (x.dtype() == kBFloat16) {
    return unary(op, name, x.to(kFloat32), derivative, parameters).to(kBFloat16);
  }
  Tensor y = unary_kernel(op, parameters, x, name);
  const SavedTensor saved_x = needs_grad({x}) ? SavedTensor(x) : SavedTensor();
  const SavedTensor saved_y = needs_grad({x}) ? SavedTensor(y) : SavedTensor();
  return record(name, y, {x}, [=](const Tensor& g) -> TensorList {
    return {derivative(saved_x.get(), saved_y.get(), g)};
  });
}

Tensor scalar_like(double value, const Tensor& like) {
  return scalar_tensor(value, TensorOptions(like.dtype() == kBFloat16 ? kFloat32 : like.dtype(), like.device()));
}

// A zero that where() broadcasts: the masked gradients below read g and the mask and write
// the result, with no zero-filled tensor of g's size in between.
Tensor zero_for(const Tensor& g) { return scalar_tensor(0.0, TensorOptions(g.dtype(), g.device())); }

Tensor compare(CompareOp op, std::string_view name, Tensor a, Tensor b) {
  check_defined(name, a, "a");
  check_defined(name, b, "b");
  check_same_device(name, a, b);
  unify_dtypes(name, a, b);
  if (a.dtype() == kBFloat16) return compare(op, name, a.to(kFloat32), b.to(kFloat32));
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = empty(shape, TensorOptions(kUInt8, a.device()));
  const auto a_layout = make_layout(shape, broadcast_strides(a.shape(), a.strides(), shape));
  const auto b_layout = make_layout(shape, broadcast_strides(b.shape(), b.strides(), shape));
  visit_arithmetic(a.dtype(), name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    VISREP_RUN_KERNEL(name, a.device(), compare,
                      kernels::Compare<T>{.op = op,
                                          .a = data_or_null<const T>(a),
                                          .a_layout = a_layout,
                                          .b = data_or_null<const T>(b),
                                          .b_layout = b_layout,
                                          .out = data_or_null<uint8_t>(out),
                                          .out_layout = out.layout()});
  });
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Subtract, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Multiply, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Divide, a, b); }
Tensor pow(const Tensor& base, const Tensor& exponent) { return binary(BinaryOp::Power, base, exponent); }
Tensor maximum(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Maximum, a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Minimum, a, b); }

Tensor add(const Tensor& a, double b) { return add(a, scalar_like(b, a)); }
Tensor sub(const Tensor& a, double b) { return sub(a, scalar_like(b, a)); }
Tensor mul(const Tensor& a, double b) { return mul(a, scalar_like(b, a)); }
Tensor div(const Tensor& a, double b) { return div(a, scalar_like(b, a)); }
Tensor operator/(double a, const Tensor& b) { return div(scalar_like(a, b), b); }

Tensor pow(const Tensor& base, double exponent) {
  return unary(
      UnaryOp::PowScalar, "pow", base,
      [exponent](const Tensor& x, const Tensor&, const Tensor& g) {
        // x^0 is constant: its derivative is 0 everywhere, not 0 * x^-1 (NaN at x = 0), as in PyTorch.
        if (exponent == 0.0) return zeros_like(g);
        return mul(g, mul(pow(x, exponent - 1.0), exponent));
      },
      {exponent, 0.0});
}

Tensor neg(const Tensor& x) {
  return unary(UnaryOp::Negate, "neg", x, [](const Tensor&, const Tensor&, const Tensor& g) { return neg(g); });
}

Tensor exp(const Tensor& x) {
  return unary(UnaryOp::Exp, "exp", x, [](const Tensor&, const Tensor& y, const Tensor& g) { return mul(g, y); });
}

Tensor log(const Tensor& x) {
  return unary(UnaryOp::Log, "log", x, [](const Tensor& x, const Tensor&, const Tensor& g) { return div(g, x); });
}

Tensor sqrt(const Tensor& x) {
  // d sqrt(x) = 1 / (2 sqrt(x))
  return unary(UnaryOp::Sqrt, "sqrt", x,
               [](const Tensor&, const Tensor& y, const Tensor& g) { return div(mul(g, 0.5), y); });
}

Tensor rsqrt(const Tensor& x) {
  // d x^(-1/2) = -1/2 x^(-3/2) = -1/2 y^3
  return unary(UnaryOp::Rsqrt, "rsqrt", x,
               [](const Tensor&, const Tensor& y, const Tensor& g) { return mul(g, mul(pow(y, 3.0), -0.5)); });
}

Tensor abs(const Tensor& x) {
  return unary(UnaryOp::Abs, "abs", x, [](const Tensor& x, const Tensor&, const Tensor& g) { return mul(g, sign(x)); });
}

Tensor sign(const Tensor& x) {
  return unary(UnaryOp::Sign, "sign", x, [](const Tensor&, const Tensor&, const Tensor& g) { return zeros_like(g); });
}

Tensor relu(const Tensor& x) {
  return unary(UnaryOp::Relu, "relu", x,
               [](const Tensor& x, const Tensor&, const Tensor& g) {
                 // One pass (g where x > 0, else 0) where the dtypes allow it; bfloat16 takes
                 // the composed form, which converts.
                 if (x.dtype() == g.dtype() && x.dtype() != kBFloat16 && x.shape() == g.shape())
                   return binary_kernel(BinaryOp::ReluBackward, x, g);
                 return where(gt(x, 0.0), g, zero_for(g));
               });
}

Tensor clamp(const Tensor& x, double min, double max) {
  VISREP_CHECK(!(min > max), "clamp: min {} is greater than max {}", min, max);
  return unary(
      UnaryOp::Clamp, "clamp", x,
      [min, max](const Tensor& x, const Tensor&, const Tensor& g) {
        Tensor inside = mul(ge(x, min), le(x, max));
        return where(inside, g, zero_for(g));
      },
      {min, max});
}

Tensor clamp_min(const Tensor& x, double min) { return clamp(x, min, INFINITY); }
Tensor clamp_max(const Tensor& x, double max) { return clamp(x, -INFINITY, max); }

Tensor eq(const Tensor& a, const Tensor& b) { return compare(CompareOp::Equal, "eq", a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return compare(CompareOp::NotEqual, "ne", a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return compare(CompareOp::Less, "lt", a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return compare(CompareOp::LessEqual, "le", a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return compare(CompareOp::Greater, "gt", a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return compare(CompareOp::GreaterEqual, "ge", a, b); }
namespace {
// An integer tensor against a scalar its dtype cannot hold (2.5, -1 for uint8, NaN, inf)
// compares in float64: converting the scalar to the tensor's dtype would truncate it, and
// lt(x, 2.5) would become lt(x, 2) (PyTorch compares by value too).
Tensor compare_scalar(CompareOp op, std::string_view name, const Tensor& a, double b) {
  check_defined(name, a, "a");
  const bool representable = !is_floating(a.dtype()) && visit_arithmetic(a.dtype(), name, [b](auto tag) {
    using T = typename decltype(tag)::type;
    return std::trunc(b) == b && std::abs(b) <= 9007199254740992.0 &&  // 2^53: exact in float64
           b >= static_cast<double>(std::numeric_limits<T>::lowest()) &&
           b <= static_cast<double>(std::numeric_limits<T>::max());
  });
  if (!is_floating(a.dtype()) && !representable) {
    return compare(op, name, a.to(kFloat64), scalar_tensor(b, TensorOptions(kFloat64, a.device())));
  }
  return compare(op, name, a, scalar_like(b, a));
}
}  // namespace

Tensor eq(const Tensor& a, double b) { return compare_scalar(CompareOp::Equal, "eq", a, b); }
Tensor ne(const Tensor& a, double b) { return compare_scalar(CompareOp::NotEqual, "ne", a, b); }
Tensor lt(const Tensor& a, double b) { return compare_scalar(CompareOp::Less, "lt", a, b); }
Tensor le(const Tensor& a, double b) { return compare_scalar(CompareOp::LessEqual, "le", a, b); }
Tensor gt(const Tensor& a, double b) { return compare_scalar(CompareOp::Greater, "gt", a, b); }
Tensor ge(const Tensor& a, double b) { return compare_scalar(CompareOp::GreaterEqual, "ge", a, b); }

Tensor where(const Tensor& condition, const Tensor& a_in, const Tensor& b_in) {
  check_defined("where", condition, "condition");
  check_defined("where", a_in, "a");
  check_defined("where", b_in, "b");
  VISREP_CHECK(condition.dtype() == kUInt8, "where: the condition must be uint8 (a comparison's result), got {}",
               dtype_name(condition.dtype()));
  check_same_device("where", condition, a_in);
  check_same_device("where", a_in, b_in);
  Tensor a = a_in, b = b_in;
  unify_dtypes("where", a, b);
  if (a.dtype() == kBFloat16) return where(condition, a.to(kFloat32), b.to(kFloat32)).to(kBFloat16);

  const Shape shape = broadcast_shapes(broadcast_shapes(condition.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = empty(shape, TensorOptions(a.dtype(), a.device()));
  const auto c_layout = make_layout(shape, broadcast_strides(condition.shape(), condition.strides(), shape));
  const auto a_layout = make_layout(shape, broadcast_strides(a.shape(), a.strides(), shape));
  const auto b_layout = make_layout(shape, broadcast_strides(b.shape(), b.strides(), shape));
  visit_arithmetic(a.dtype(), "where", [&](auto tag) {
    using T = typename decltype(tag)::type;
    VISREP_RUN_KERNEL("where", a.device(), where,
                      kernels::Where<T>{.condition = data_or_null<const uint8_t>(condition),
                                        .condition_layout = c_layout,
                                        .a = data_or_null<const T>(a),
                                        .a_layout = a_layout,
                                        .b = data_or_null<const T>(b),
                                        .b_layout = b_layout,
                                        .out = data_or_null<T>(out),
                                        .out_layout = out.layout()});
  });
  const Shape a_shape = a.shape(), b_shape = b.shape();
  const SavedTensor saved_condition = needs_grad({a, b}) ? SavedTensor(condition) : SavedTensor();
  return record("where", out, {a, b}, [=](const Tensor& g) -> TensorList {
    Tensor zero = zeros_like(g);
    return {sum_to(where(saved_condition.get(), g, zero), a_shape),
            sum_to(where(saved_condition.get(), zero, g), b_shape)};
  });
}

}  // namespace visrep
