// CUDA twins of kernels/cpu/linear_algebra.h on cuBLAS: row-major C = alpha op(A) op(B) + beta C.
// float32 uses TF32 tensor cores only when runtime.h's tf32_enabled() is set.
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/cpu/linear_algebra.h"

namespace visrep::kernels::cuda {

template <class T>
void gemm(const cpu::GemmShape& shape, T alpha, const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c,
          int64_t ldc, cudaStream_t stream);

template <class T>
void gemm_batched(const cpu::GemmShape& shape, int64_t batch, T alpha, const T* a, int64_t lda, int64_t batch_stride_a,
                  const T* b, int64_t ldb, int64_t batch_stride_b, T beta, T* c, int64_t ldc, int64_t batch_stride_c,
                  cudaStream_t stream);

}  // namespace visrep::kernels::cuda
