// Matrix products on OpenBLAS (sgemm/dgemm) and cuBLAS, with PyTorch's matmul semantics.
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

}  // namespace visrep
