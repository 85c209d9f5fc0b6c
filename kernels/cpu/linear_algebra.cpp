// The GEMM wrapper over OpenBLAS on the CPU, the reference of the CUDA twins
// (kernels/cpu/linear_algebra.h specifies them and lists the family's files).
#include "kernels/cpu/linear_algebra.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <climits>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace visrep::kernels::cpu {
namespace {

blasint to_blas(int64_t value, const char* what) {
  if (value < 0 || value > INT_MAX) {
    throw std::invalid_argument(std::string("gemm: ") + what + " = " + std::to_string(value) +
                                " does not fit OpenBLAS's 32-bit integers");
  }
  return static_cast<blasint>(value);
}

// Multiply-adds below which one thread does the whole product: an OpenMP team costs a few
// microseconds, about what 2^18 multiply-adds take on one core.
constexpr int64_t kParallelWork = int64_t{1} << 18;
// A block of columns is a multiple of this (whole vectors of OpenBLAS's micro-kernels).
constexpr int64_t kColumnGranule = 16;

// OpenBLAS on the calling thread only, set once for the process before its first product.
void hold_openblas_to_caller() {
  static const bool held = [] {
    openblas_set_num_threads(1);
    return true;
  }();
  (void)held;
}

// The product on this thread: one OpenBLAS call.
template <class T>
void gemm_on_this_thread(const GemmShape& shape, T alpha, const T* a, int64_t lda, const T* b, int64_t ldb, T beta,
                         T* c, int64_t ldc) {
  if (shape.m == 0 || shape.n == 0) return;
  const CBLAS_TRANSPOSE trans_a = shape.transpose_a ? CblasTrans : CblasNoTrans;
  const CBLAS_TRANSPOSE trans_b = shape.transpose_b ? CblasTrans : CblasNoTrans;
  const blasint m = to_blas(shape.m, "m"), n = to_blas(shape.n, "n"), k = to_blas(shape.k, "k");
  // BLAS requires leading dimensions >= 1 even for empty operands.
  const blasint la = to_blas(lda < 1 ? 1 : lda, "lda"), lb = to_blas(ldb < 1 ? 1 : ldb, "ldb");
  const blasint lc = to_blas(ldc < 1 ? 1 : ldc, "ldc");
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, trans_a, trans_b, m, n, k, alpha, a, la, b, lb, beta, c, lc);
  } else {
    cblas_dgemm(CblasRowMajor, trans_a, trans_b, m, n, k, alpha, a, la, b, lb, beta, c, lc);
  }
}

}  // namespace

template <class T>
void gemm(const GemmShape& shape, T alpha, const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c,
          int64_t ldc) {
  hold_openblas_to_caller();
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (threads == 1 || shape.m * shape.n * shape.k < kParallelWork) {
    gemm_on_this_thread(shape, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  // Cut C along its longer side: columns in whole granules, or rows.
  const bool by_columns = shape.n >= shape.m;
  const int64_t extent = by_columns ? (shape.n + kColumnGranule - 1) / kColumnGranule : shape.m;
  const int blocks = static_cast<int>(std::min<int64_t>(threads, extent));
#pragma omp parallel for schedule(static) num_threads(blocks)
  for (int block = 0; block < blocks; ++block) {
    const int64_t first = extent * block / blocks, end = extent * (block + 1) / blocks;
    GemmShape part = shape;
    if (by_columns) {
      const int64_t j0 = first * kColumnGranule, j1 = std::min(end * kColumnGranule, shape.n);
      part.n = j1 - j0;
      gemm_on_this_thread(part, alpha, a, lda, shape.transpose_b ? b + j0 * ldb : b + j0, ldb, beta, c + j0, ldc);
    } else {
      part.m = end - first;
      gemm_on_this_thread(part, alpha, shape.transpose_a ? a + first : a + first * lda, lda, b, ldb, beta,
                          c + first * ldc, ldc);
    }
  }
}

template <class T>
void gemm_batched(const GemmBatched<T>& arguments) {
  const GemmShape& shape = arguments.shape;
  const int64_t batch = arguments.batch;
  const T alpha = arguments.alpha;
  const T* a = arguments.a;
  const int64_t lda = arguments.lda;
  const int64_t batch_stride_a = arguments.batch_stride_a;
  const T* b = arguments.b;
  const int64_t ldb = arguments.ldb;
  const int64_t batch_stride_b = arguments.batch_stride_b;
  const T beta = arguments.beta;
  T* c = arguments.c;
  const int64_t ldc = arguments.ldc;
  const int64_t batch_stride_c = arguments.batch_stride_c;
  // Many products, each too small to share: one thread per product (the outputs are
  // distinct matrices unless the stride is 0). Otherwise gemm shares each one.
  const bool small_products = shape.m * shape.n * shape.k < kParallelWork;
  if (batch > 1 && small_products && batch_stride_c != 0 && !omp_in_parallel() &&
      batch * shape.m * shape.n * shape.k >= kParallelWork) {
    hold_openblas_to_caller();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < batch; ++i) {
      gemm_on_this_thread(shape, alpha, a + i * batch_stride_a, lda, b + i * batch_stride_b, ldb, beta,
                          c + i * batch_stride_c, ldc);
    }
    return;
  }
  for (int64_t i = 0; i < batch; ++i) {
    gemm(shape, alpha, a + i * batch_stride_a, lda, b + i * batch_stride_b, ldb, beta, c + i * batch_stride_c, ldc);
  }
}

int openblas_threads() {
  hold_openblas_to_caller();
  return openblas_get_num_threads();
}

template void gemm<float>(const GemmShape&, float, const float*, int64_t, const float*, int64_t, float, float*,
                          int64_t);
template void gemm<double>(const GemmShape&, double, const double*, int64_t, const double*, int64_t, double,
                           double*, int64_t);
template void gemm_batched<float>(const GemmBatched<float>&);
template void gemm_batched<double>(const GemmBatched<double>&);

}  // namespace visrep::kernels::cpu
