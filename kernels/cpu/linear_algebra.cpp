// The GEMM wrapper over OpenBLAS on the CPU, the reference of the CUDA twins
// (kernels/cpu/linear_algebra.h specifies them and lists the family's files).
#include "kernels/cpu/linear_algebra.h"

#include <cblas.h>

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

}  // namespace

template <class T>
void gemm(const GemmShape& shape, T alpha, const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c,
          int64_t ldc) {
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
  for (int64_t i = 0; i < batch; ++i) {
    gemm(shape, alpha, a + i * batch_stride_a, lda, b + i * batch_stride_b, ldb, beta, c + i * batch_stride_c, ldc);
  }
}

void set_gemm_threads(int threads) { openblas_set_num_threads(threads); }
int gemm_threads() { return openblas_get_num_threads(); }

template void gemm<float>(const GemmShape&, float, const float*, int64_t, const float*, int64_t, float, float*,
                          int64_t);
template void gemm<double>(const GemmShape&, double, const double*, int64_t, const double*, int64_t, double,
                           double*, int64_t);
template void gemm_batched<float>(const GemmBatched<float>&);
template void gemm_batched<double>(const GemmBatched<double>&);

}  // namespace visrep::kernels::cpu
