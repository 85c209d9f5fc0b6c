// Dense matrix multiplication, row-major: C = alpha * op(A) @ op(B) + beta * C, where
// op(X) is X or its transpose. OpenBLAS does the arithmetic (sgemm/dgemm); this wrapper
// keeps the rest of the CPU code free of the CBLAS API. float32 and float64.
//
// One threading policy for the whole CPU backend: OpenMP's threads are the only ones that
// compute. OpenBLAS is set, once, to run every call on the calling thread (its own pthread
// pool would otherwise spin and yield next to OpenMP's, two pools handing the same cores back
// and forth), and gemm shares a product large enough to be worth it between OpenMP's threads
// itself: C is cut into one block of rows or columns per thread, each one single-threaded
// OpenBLAS call over the whole of k. Called inside a parallel region (conv2d's workers, the
// contrastive loss's blocks) it runs on the calling thread. Every element of C is computed by
// one call, in an order fixed by the thread count, so results repeat run to run.
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

// The threads OpenBLAS itself runs a call on: 1 once any gemm has run (the policy above).
int openblas_threads();

}  // namespace visrep::kernels::cpu
