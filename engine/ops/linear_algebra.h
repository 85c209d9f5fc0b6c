// Matrix products on OpenBLAS (sgemm/dgemm) and cuBLAS, with PyTorch's matmul semantics
// (kernels/cpu/linear_algebra.h specifies the kernel and lists the family's files), and the
// L2 normalisation of vectors.
#pragma once

#include "engine/tensor.h"

namespace visrep {

// 1-D @ 1-D is a dot product; a 1-D operand is treated as a row (left) or column (right)
// vector and the added dimension removed; beyond 2-D the leading (batch) dimensions
// broadcast. Transposed views are passed to BLAS as transposes, never copied.
Tensor matmul(const Tensor& a, const Tensor& b);

// y = x @ weight^T + bias, with x (..., in_features), weight (out_features, in_features)
// and bias (out_features) or undefined.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// x / max(||x||_2, eps) along `dim` (torch.nn.functional.normalize).
Tensor normalize(const Tensor& x, int64_t dim = -1, double eps = 1e-12);

}  // namespace visrep
