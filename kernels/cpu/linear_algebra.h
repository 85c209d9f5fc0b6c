// Dense matrix multiplication, row-major: C = alpha * op(A) @ op(B) + beta * C, where
// op(X) is X or its transpose. OpenBLAS does the arithmetic (sgemm/dgemm); this wrapper
// keeps the rest of the CPU code free of the CBLAS API. float32 and float64.
//
// Where to look, matrix products:
//   op               engine/ops/linear_algebra.{h,cpp}   matmul(), linear(); the module nn::Linear is in
//                    engine/nn/layers.h
//   CPU reference    kernels/cpu/linear_algebra.{h,cpp}  this header (OpenBLAS)
//   CUDA twin        kernels/cuda/linear_algebra.{h,cu}  (cuBLAS)
//   unit tests       tests/unit/test_linear_algebra.cpp
//   gradient check   tests/gradcheck/test_linear_algebra_gradcheck.cpp
//   parity cases     tests/parity/test_parity_linear_algebra.cpp
//   benchmark        benchmarks/bench_cpu_ops.cpp (matmul through the engine against gemm into a buffer)
#pragma once

#include <cstdint>

namespace visrep::kernels {

struct GemmShape {
  int64_t m = 0;  // rows of op(A) and C
  int64_t n = 0;  // columns of op(B) and C
  int64_t k = 0;  // columns of op(A), rows of op(B)
  bool transpose_a = false;
  bool transpose_b = false;
};

// `batch` independent products C_i = alpha op(A_i) op(B_i) + beta C_i; matrix i of A starts
// at a + i * batch_stride_a (a stride of 0 reuses one matrix for the whole batch, as
// broadcasting does). lda/ldb/ldc: the row strides (in elements) of A, B and C as stored.
template <class T>
struct GemmBatched {
  GemmShape shape;
  int64_t batch = 1;
  T alpha = T(1);
  const T* a = nullptr;
  int64_t lda = 0;
  int64_t batch_stride_a = 0;
  const T* b = nullptr;
  int64_t ldb = 0;
  int64_t batch_stride_b = 0;
  T beta = T(0);
  T* c = nullptr;
  int64_t ldc = 0;
  int64_t batch_stride_c = 0;
};

}  // namespace visrep::kernels

namespace visrep::kernels::cpu {

template <class T>
void gemm_batched(const GemmBatched<T>& arguments);

// One product, the CPU kernels' building block (conv2d's im2col GEMMs).
template <class T>
void gemm(const GemmShape& shape, T alpha, const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c,
          int64_t ldc);

// Threads OpenBLAS may use (0 restores its default), and how many it uses now.
void set_gemm_threads(int threads);
int gemm_threads();

}  // namespace visrep::kernels::cpu
