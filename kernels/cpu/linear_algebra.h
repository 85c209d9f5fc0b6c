// Dense matrix multiplication, row-major: C = alpha * op(A) @ op(B) + beta * C, where
// op(X) is X or its transpose. OpenBLAS does the arithmetic (sgemm/dgemm); this wrapper
// keeps the rest of the CPU code free of the CBLAS API.
#pragma once

#include <cstdint>

namespace visrep::kernels::cpu {

struct GemmShape {
  int64_t m = 0;  // rows of op(A) and C
  int64_t n = 0;  // columns of op(B) and C
  int64_t k = 0;  // columns of op(A), rows of op(B)
  bool transpose_a = false;
  bool transpose_b = false;
};

// lda/ldb/ldc: the row strides (in elements) of A, B and C as stored.
template <class T>
void gemm(const GemmShape& shape, T alpha, const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c,
          int64_t ldc);

// `batch` independent products; matrix i of A starts at a + i * batch_stride_a (a stride of
// 0 reuses one matrix for the whole batch, as broadcasting does).
template <class T>
void gemm_batched(const GemmShape& shape, int64_t batch, T alpha, const T* a, int64_t lda, int64_t batch_stride_a,
                  const T* b, int64_t ldb, int64_t batch_stride_b, T beta, T* c, int64_t ldc,
                  int64_t batch_stride_c);

// Threads OpenBLAS may use (0 restores its default), and how many it uses now.
void set_gemm_threads(int threads);
int gemm_threads();

}  // namespace visrep::kernels::cpu
