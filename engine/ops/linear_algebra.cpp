// matmul and linear: checks, the kernel call and its backward (kernels/cpu/linear_algebra.h
// lists the family's files); normalize, composed of elementwise ops and a sum.
#include "engine/ops/linear_algebra.h"

#include <algorithm>
#include <optional>

#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduction.h"
#include "kernels/cpu/linear_algebra.h"
#include "kernels/cuda/linear_algebra.h"

namespace visrep {
namespace {

// How one operand's matrices (the last two dims, batch dims flattened) reach BLAS.
struct MatrixOperand {
  Tensor tensor;  // keeps the memory alive
  bool transposed = false;
  int64_t leading = 0;       // BLAS leading dimension
  int64_t batch_stride = 0;  // elements between consecutive matrices (0: one shared matrix)
};

// The stride between consecutive matrices when the batch dims can be walked with one
// stride (contiguous batches, or one matrix broadcast to all); nullopt otherwise.
std::optional<int64_t> uniform_batch_stride(const Tensor& x) {
  std::optional<int64_t> stride;
  int64_t matrices_inside = 1;
  for (int64_t d = x.dim() - 3; d >= 0; --d) {
    if (x.size(d) == 1) continue;
    if (!stride) {
      stride = x.stride(d);
    } else if (x.stride(d) != *stride * matrices_inside) {
      return std::nullopt;
    }
    matrices_inside *= x.size(d);
  }
  return stride.value_or(0);
}

// Reads `x` (already expanded to batch_shape + [rows, cols]) as a batch of matrices,
// copying only when its strides cannot be described to BLAS.
MatrixOperand as_matrices(const Tensor& x) {
  const int64_t rows = x.size(-2), cols = x.size(-1);
  const int64_t row_stride = x.stride(-2), col_stride = x.stride(-1);
  const std::optional<int64_t> batch_stride = uniform_batch_stride(x);
  if (batch_stride && col_stride == 1 && row_stride >= std::max<int64_t>(cols, 1)) {
    return {x, false, row_stride, *batch_stride};
  }
  if (batch_stride && row_stride == 1 && col_stride >= std::max<int64_t>(rows, 1)) {
    return {x, true, col_stride, *batch_stride};
  }
  Tensor copy = x.contiguous();
  return {copy, false, std::max<int64_t>(cols, 1), rows * cols};
}

// (..., M, K) @ (..., K, N) with broadcast batch dims; both operands at least 2-D.
Tensor batched_matmul(const Tensor& a, const Tensor& b) {
  VISREP_CHECK(a.size(-1) == b.size(-2), "matmul: shapes {} and {} cannot be multiplied ({} != {})",
               shape_string(a.shape()), shape_string(b.shape()), a.size(-1), b.size(-2));
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  const Shape a_batch(a.shape().begin(), a.shape().end() - 2);
  const Shape b_batch(b.shape().begin(), b.shape().end() - 2);
  Shape batch_shape;
  try {
    batch_shape = broadcast_shapes(a_batch, b_batch, "matmul");
  } catch (const Error& error) {  // name the whole operands, not only their batch dims
    VISREP_FAIL("{} (operands {} and {})", error.what(), shape_string(a.shape()), shape_string(b.shape()));
  }
  const int64_t batch = shape_numel(batch_shape);

  Shape a_full = batch_shape, b_full = batch_shape, out_shape = batch_shape;
  a_full.insert(a_full.end(), {m, k});
  b_full.insert(b_full.end(), {k, n});
  out_shape.insert(out_shape.end(), {m, n});

  Tensor out = empty(out_shape, TensorOptions(a.dtype(), a.device()));
  if (out.numel() > 0) {
    const MatrixOperand left = as_matrices(a.detach().expand(a_full));
    const MatrixOperand right = as_matrices(b.detach().expand(b_full));
    visit_floating(a.dtype(), "matmul", [&](auto tag) {
      using T = typename decltype(tag)::type;
      VISREP_RUN_KERNEL("matmul", out.device(), gemm_batched,
                        kernels::GemmBatched<T>{.shape = {m, n, k, left.transposed, right.transposed},
                                                .batch = batch,
                                                .alpha = T(1),
                                                .a = data_or_null<const T>(left.tensor),
                                                .lda = left.leading,
                                                .batch_stride_a = left.batch_stride,
                                                .b = data_or_null<const T>(right.tensor),
                                                .ldb = right.leading,
                                                .batch_stride_b = right.batch_stride,
                                                .beta = T(0),
                                                .c = data_or_null<T>(out),
                                                .ldc = n,
                                                .batch_stride_c = m * n});
    });
  }

  const SavedTensor saved_a = needs_grad({a, b}) ? SavedTensor(a) : SavedTensor();
  const SavedTensor saved_b = needs_grad({a, b}) ? SavedTensor(b) : SavedTensor();
  const bool grad_a = a.requires_grad(), grad_b = b.requires_grad();
  const Shape a_shape = a.shape(), b_shape = b.shape();
  return record("matmul", out, {a, b}, [=](const Tensor& g) -> TensorList {
    // dA = G @ B^T, dB = A^T @ G, summed over the batch dims each operand was broadcast along.
    Tensor da, db;
    if (grad_a) da = sum_to(batched_matmul(g, saved_b.get().transpose(-1, -2)), a_shape);
    if (grad_b) db = sum_to(batched_matmul(saved_a.get().transpose(-1, -2), g), b_shape);
    return {da, db};
  });
}

}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  check_defined("matmul", a_in, "a");
  check_defined("matmul", b_in, "b");
  check_same_device("matmul", a_in, b_in);
  check_same_dtype("matmul", a_in, b_in);
  VISREP_CHECK(a_in.dim() >= 1 && b_in.dim() >= 1, "matmul: both operands need at least one dimension, got {} and {}",
               shape_string(a_in.shape()), shape_string(b_in.shape()));
  // Checked here so that the message shows the caller's shapes, before vectors gain a dimension.
  const int64_t b_rows = b_in.dim() == 1 ? b_in.size(0) : b_in.size(-2);
  VISREP_CHECK(a_in.size(-1) == b_rows, "matmul: shapes {} and {} cannot be multiplied ({} != {})",
               shape_string(a_in.shape()), shape_string(b_in.shape()), a_in.size(-1), b_rows);
  if (a_in.dtype() == kBFloat16) return matmul(a_in.to(kFloat32), b_in.to(kFloat32)).to(kBFloat16);
  const bool vector_a = a_in.dim() == 1, vector_b = b_in.dim() == 1;
  const Tensor a = vector_a ? a_in.unsqueeze(0) : a_in;
  const Tensor b = vector_b ? b_in.unsqueeze(-1) : b_in;
  Tensor out = batched_matmul(a, b);
  if (vector_b) out = out.squeeze(-1);
  if (vector_a) out = out.squeeze(vector_b ? -1 : -2);
  return out;
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_defined("linear", x, "x");
  check_defined("linear", weight, "weight");
  VISREP_CHECK(weight.dim() == 2, "linear: weight must be (out_features, in_features), got {}",
               shape_string(weight.shape()));
  VISREP_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(1),
               "linear: input {} does not end in in_features = {} of weight {}", shape_string(x.shape()),
               weight.size(1), shape_string(weight.shape()));
  if (bias.defined()) {
    VISREP_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0), "linear: bias {} does not match out_features {}",
                 shape_string(bias.shape()), weight.size(0));
  }
  // Fold leading dims into the rows so BLAS sees one large GEMM, not a batch of small ones.
  Shape out_shape = x.shape();
  out_shape.back() = weight.size(0);
  Tensor rows = x.dim() == 2 ? x : x.reshape({-1, x.size(-1)});
  Tensor y = matmul(rows, weight.t());
  if (bias.defined()) y = add(y, bias);
  return x.dim() == 2 ? y : y.reshape(out_shape);
}

Tensor normalize(const Tensor& x, int64_t dim, double eps) {
  check_defined("normalize", x, "x");
  VISREP_CHECK(eps > 0, "normalize: eps must be positive, got {}", eps);
  dim = wrap_dim(dim, x.dim(), "normalize");
  // max(||x||, eps) written as sqrt(max(||x||^2, eps^2)): the same value, and the clamp
  // stops the gradient before it reaches sqrt at 0 (where sqrt's derivative is infinite).
  Tensor norm = sqrt(clamp_min(sum(mul(x, x), {dim}, true), eps * eps));
  return div(x, norm);
}

}  // namespace visrep
