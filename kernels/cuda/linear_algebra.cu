// Matrix products on cuBLAS, the CUDA twins of kernels/cpu/linear_algebra.h: row-major
// C = alpha op(A) op(B) + beta C, one product or a strided batch of them.
//
// cuBLAS is column-major. A row-major matrix read column-major is its transpose, so the
// row-major product C (m x n) = op(A) op(B) is the column-major product
// C^T (n x m) = op(B)^T op(A)^T: cuBLAS gets B as its first operand and A as its second,
// n and m swapped, each operand keeping its own transposition flag, and the same leading
// dimensions (a row stride is the column-major leading dimension of the transpose).
//
// float32 computes in fp32 (CUBLAS_COMPUTE_32F) unless tf32_enabled() asks for TF32
// tensor cores (CUBLAS_COMPUTE_32F_FAST_TF32); the compute type is explicit in every call,
// so the handle's math mode cannot switch TF32 on behind our back. float64 uses
// CUBLAS_COMPUTE_64F. A batch stride of 0 reuses one matrix for the whole batch
// (broadcasting); cuBLAS allows it for the inputs.
//
// k == 0 is a product of empty matrices: C = beta C, done by a small kernel (writing zeros
// when beta is 0, so NaN left in C does not survive as 0 * NaN).
#include "kernels/cuda/linear_algebra.h"

#include <algorithm>
#include <climits>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/cuda/library_handles.h"
#include "kernels/cuda/library_status.h"
#include "kernels/cuda/runtime.h"

namespace visrep::kernels::cuda {
namespace {

int to_cublas_int(int64_t value, const char* what) {
  if (value < 0 || value > INT_MAX) {
    throw std::runtime_error(std::string("gemm: ") + what + " = " + std::to_string(value) +
                             " does not fit cuBLAS's 32-bit integers");
  }
  return static_cast<int>(value);
}

template <class T>
constexpr cudaDataType data_type() {
  return std::is_same_v<T, float> ? CUDA_R_32F : CUDA_R_64F;
}

template <class T>
cublasComputeType_t compute_type() {
  if constexpr (std::is_same_v<T, float>) {
    return tf32_enabled() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  } else {
    return CUBLAS_COMPUTE_64F;
  }
}

// C = beta C over `batch` row-major m x n matrices (k == 0).
template <class T>
__global__ void scale_matrices_kernel(int64_t batch, int64_t m, int64_t n, T beta, T* c, int64_t ldc,
                                      int64_t batch_stride_c) {
  const int64_t matrix_elements = m * n, total = batch * matrix_elements;
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; index < total; index += step) {
    const int64_t matrix = index / matrix_elements, rest = index - matrix * matrix_elements;
    const int64_t row = rest / n, column = rest - row * n;
    T* element = c + matrix * batch_stride_c + row * ldc + column;
    *element = beta == T(0) ? T(0) : beta * *element;
  }
}

// cuBLAS counts a batch in an int.
constexpr int64_t kMaxBatchPerCall = INT_MAX;

}  // namespace

template <class T>
void gemm_batched(const GemmBatched<T>& arguments, cudaStream_t stream) {
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
  if (shape.m < 0 || shape.n < 0 || shape.k < 0 || batch < 0) {
    throw std::runtime_error("gemm: negative size (m " + std::to_string(shape.m) + ", n " + std::to_string(shape.n) +
                             ", k " + std::to_string(shape.k) + ", batch " + std::to_string(batch) + ")");
  }
  if (shape.m == 0 || shape.n == 0 || batch == 0) return;
  if (shape.k == 0) {
    scale_matrices_kernel<T><<<grid_size_for(batch * shape.m * shape.n), kThreadsPerBlock, 0, stream>>>(
        batch, shape.m, shape.n, beta, c, ldc, batch_stride_c);
    VISREP_CUDA_CHECK_LAUNCH("scale_matrices_kernel");
    return;
  }
  const int m = to_cublas_int(shape.m, "m"), n = to_cublas_int(shape.n, "n"), k = to_cublas_int(shape.k, "k");
  // As the CPU twin: leading dimensions of at least 1 even where a matrix has one row.
  const int la = to_cublas_int(std::max<int64_t>(lda, 1), "lda");
  const int lb = to_cublas_int(std::max<int64_t>(ldb, 1), "ldb");
  const int lc = to_cublas_int(std::max<int64_t>(ldc, 1), "ldc");
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T (see the top of the file).
  const cublasOperation_t op_a = shape.transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = shape.transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cudaDataType type = data_type<T>();
  const cublasComputeType_t compute = compute_type<T>();

  CublasLease cublas(stream);
  if (batch == 1) {
    VISREP_CUBLAS_CHECK(cublasGemmEx(cublas.get(), op_b, op_a, n, m, k, &alpha, b, type, lb, a, type, la, &beta, c,
                                     type, lc, compute, CUBLAS_GEMM_DEFAULT));
    return;
  }
  for (int64_t first = 0; first < batch; first += kMaxBatchPerCall) {
    const int count = static_cast<int>(std::min(kMaxBatchPerCall, batch - first));
    VISREP_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
        cublas.get(), op_b, op_a, n, m, k, &alpha, b + first * batch_stride_b, type, lb, batch_stride_b,
        a + first * batch_stride_a, type, la, batch_stride_a, &beta, c + first * batch_stride_c, type, lc,
        batch_stride_c, count, compute, CUBLAS_GEMM_DEFAULT));
  }
}

template void gemm_batched<float>(const GemmBatched<float>&, cudaStream_t);
template void gemm_batched<double>(const GemmBatched<double>&, cudaStream_t);

}  // namespace visrep::kernels::cuda
