// The contrastive losses on the CPU, the fast kernel training runs (definitions in
// kernels/cpu/contrastive.h; kernels/cpu/reference/contrastive.cpp is the double-loop
// reference, which float64 and bfloat16 still run).
//
// float32. The similarities are matrix products, so they are computed as such, a block of
// kBlock anchors at a time against every column (S = Z_block Z^T / tau, one single-threaded
// sgemm, kBlock x C floats that stay in L2), and never all at once (memory O(kBlock x C) per
// thread, not O(R x C)). Each block then makes one pass over its rows with the vectorised
// exponential of kernels/cpu/vector_math.h:
//   forward   lse_i = max_j + log sum_{j != i} exp(s_ij - max_j), and the sum of s_ip over
//             the positives;
//   backward  the same S again, turned in place into G_ij / coefficient = p_ij - [j in
//             P(i)] / |P(i)|, then dz_block = G_block Z (the anchor terms). The column terms
//             sum_i G_ik z_i come from blocks of columns against every anchor, S^T_block =
//             Z_block Z_anchors^T, so every row of dz is written by the products of one
//             block of anchors and one block of columns: no row is shared between threads
//             and the result does not depend on the thread count.
// z, the norms and lse are kept in double in the state the reference keeps (so either
// backward pass reads either forward's state); the GEMMs read a float copy of z. Working
// memory is the threads' scratch (kernels/cpu/scratch.h).
#include "kernels/cpu/contrastive.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/bfloat16.h"
#include "kernels/cpu/linear_algebra.h"
#include "kernels/cpu/reference/reference_kernels.h"
#include "kernels/cpu/scratch.h"
#include "kernels/cpu/vector_math.h"

namespace visrep::kernels::cpu {
namespace {

constexpr int64_t kBlock = 64;  // anchors (or columns) per GEMM block

int64_t blocks_of(int64_t count) { return (count + kBlock - 1) / kBlock; }

// class(j) of the header for the Q columns that may be positives (the rows of h, or every
// column with per-column labels: the cross-rank SupCon form): labels[j mod label_count], or
// j mod N.
std::vector<int64_t> classes_of(const ContrastiveProblem& problem) {
  const int64_t positive_columns = problem.positive_columns();
  std::vector<int64_t> classes(static_cast<size_t>(positive_columns));
  for (int64_t j = 0; j < positive_columns; ++j) {
    classes[static_cast<size_t>(j)] =
        problem.labels != nullptr ? problem.labels[j % problem.label_count] : j % problem.images();
  }
  return classes;
}

// S (rows x columns) = alpha * A (rows x dim) B^T (columns x dim), both row-major; on this
// thread (the callers run inside parallel loops).
void similarities(const float* a, int64_t rows, const float* b, int64_t columns, int64_t dim, float alpha, float* s) {
  gemm<float>(GemmShape{rows, columns, dim, false, true}, alpha, a, dim, b, dim, 0.0f, s, columns);
}

void contrastive_forward_float(const ContrastiveForward<float>& a) {
  const ContrastiveProblem& problem = a.problem;
  const ContrastiveSaved<double, double>& saved = a.saved_cpu;
  const int64_t rows = problem.rows, columns = problem.columns(), dim = problem.dim, anchors = problem.anchors;

  // z_j = h_j / max(||h_j||, eps), as the reference (in double, kept), and its float copy.
  float* z = thread_scratch<float>(ScratchSlot::kContrastiveZ, columns * dim);
  for (int64_t j = 0; j < columns; ++j) {
    const float* source = j < rows ? a.h + j * dim : a.extra + (j - rows) * dim;
    double squares = 0.0;
#pragma omp simd reduction(+ : squares)
    for (int64_t d = 0; d < dim; ++d) squares += static_cast<double>(source[d]) * static_cast<double>(source[d]);
    if (!std::isfinite(squares)) {
      a.first_non_finite_row[0] = j;
      a.first_non_finite_row[1] = 0;
      return;
    }
    const double norm = std::sqrt(squares);
    const double scale = 1.0 / std::max(norm, problem.norm_eps);
    saved.norm[j] = norm;
    for (int64_t d = 0; d < dim; ++d) {
      saved.z[j * dim + d] = static_cast<double>(source[d]) * scale;
      z[j * dim + d] = static_cast<float>(saved.z[j * dim + d]);
    }
  }

  const std::vector<int64_t> classes = classes_of(problem);
  const int64_t positive_columns = problem.positive_columns();  // Q of the header
  const float inverse_tau = static_cast<float>(1.0 / problem.temperature);
  std::vector<double> positive_sum(static_cast<size_t>(anchors));
#pragma omp parallel if (anchors * columns * dim >= 1 << 16)
  {
    float* block = thread_scratch<float>(ScratchSlot::kContrastiveBlock, kBlock * columns);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks_of(anchors); ++b) {
      const int64_t first = b * kBlock, count = std::min(kBlock, anchors - first);
      similarities(z + first * dim, count, z, columns, dim, inverse_tau, block);
      for (int64_t r = 0; r < count; ++r) {
        const int64_t i = first + r;
        float* s = block + r * columns;
        s[i] = -std::numeric_limits<float>::infinity();  // the self term is excluded
        float maximum = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : maximum)
        for (int64_t j = 0; j < columns; ++j) maximum = std::max(maximum, s[j]);
        float exponentials = 0.0f;
#pragma omp simd reduction(+ : exponentials)
        for (int64_t j = 0; j < columns; ++j) exponentials += j == i ? 0.0f : exp_float(s[j] - maximum);
        double positives = 0.0;
        int32_t count_positive = 0;
        const int64_t own_class = classes[static_cast<size_t>(i)];
        for (int64_t j = 0; j < positive_columns; ++j) {
          if (j == i || classes[static_cast<size_t>(j)] != own_class) continue;
          positives += s[j];
          ++count_positive;
        }
        // R >= 2, so every anchor has at least one other column and the sum is >= 1.
        saved.log_sum_exp[i] = static_cast<double>(maximum) + std::log(static_cast<double>(exponentials));
        saved.positive_count[i] = count_positive;
        positive_sum[static_cast<size_t>(i)] = positives;
      }
    }
  }

  // The mean over counted anchors, summed in anchor order (deterministic).
  double total = 0.0;
  int64_t counted = 0;
  for (int64_t i = 0; i < anchors; ++i) {
    if (saved.positive_count[i] == 0) continue;
    total += -problem.loss_scale * (positive_sum[static_cast<size_t>(i)] / saved.positive_count[i] -
                                    saved.log_sum_exp[i]);
    ++counted;
  }
  *a.loss = static_cast<float>(counted > 0 ? total / static_cast<double>(counted) : 0.0);
  *a.counted_anchors = static_cast<int32_t>(counted);
}

void contrastive_backward_float(const ContrastiveBackward<float>& a) {
  const ContrastiveProblem& problem = a.problem;
  const ContrastiveSaved<double, double>& saved = a.saved_cpu;
  const int64_t rows = problem.rows, dim = problem.dim, anchors = problem.anchors, columns = problem.columns();
  const int64_t wanted = a.grad_extra != nullptr ? columns : rows;  // rows of dz to compute
  const double coefficient = *a.counted_anchors > 0 ? static_cast<double>(*a.grad_loss) * problem.loss_scale /
                                                          static_cast<double>(*a.counted_anchors) / problem.temperature
                                                    : 0.0;
  const float inverse_tau = static_cast<float>(1.0 / problem.temperature);
  // z in float, then dz (wanted x D).
  float* z = thread_scratch<float>(ScratchSlot::kContrastiveZ, (columns + wanted) * dim);
  for (int64_t e = 0; e < columns * dim; ++e) z[e] = static_cast<float>(saved.z[e]);
  float* grad_z = z + columns * dim;
  std::fill(grad_z, grad_z + wanted * dim, 0.0f);
  const std::vector<int64_t> classes = classes_of(problem);
  // Per anchor: lse_i, and the weight 1 / |P(i)| of each positive (0: the anchor is not counted).
  std::vector<float> lse(static_cast<size_t>(anchors)), positive_weight(static_cast<size_t>(anchors));
  for (int64_t i = 0; i < anchors; ++i) {
    lse[static_cast<size_t>(i)] = static_cast<float>(saved.log_sum_exp[i]);
    positive_weight[static_cast<size_t>(i)] = saved.positive_count[i] > 0 ? 1.0f / saved.positive_count[i] : 0.0f;
  }
  const int64_t positive_columns = problem.positive_columns();  // Q of the header
  const auto is_positive = [&](int64_t i, int64_t j) {
    return j < positive_columns && j != i && classes[static_cast<size_t>(j)] == classes[static_cast<size_t>(i)];
  };

  const bool parallel = anchors * columns * dim >= 1 << 16;
#pragma omp parallel if (parallel)
  {
    float* block = thread_scratch<float>(ScratchSlot::kContrastiveBlock, kBlock * std::max(columns, anchors));
    // Pass 1, k as an anchor: dz_k = sum_j G_kj z_j.
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks_of(anchors); ++b) {
      const int64_t first = b * kBlock, count = std::min(kBlock, anchors - first);
      similarities(z + first * dim, count, z, columns, dim, inverse_tau, block);
      for (int64_t r = 0; r < count; ++r) {
        const int64_t k = first + r;
        float* g = block + r * columns;
        const float counted = positive_weight[static_cast<size_t>(k)] > 0.0f ? 1.0f : 0.0f;
        const float shift = lse[static_cast<size_t>(k)];
#pragma omp simd
        for (int64_t j = 0; j < columns; ++j) g[j] = j == k ? 0.0f : counted * exp_float(g[j] - shift);
        for (int64_t j = 0; j < positive_columns; ++j)
          if (counted > 0.0f && is_positive(k, j)) g[j] -= positive_weight[static_cast<size_t>(k)];
      }
      gemm<float>(GemmShape{count, dim, columns, false, false}, 1.0f, block, columns, z, dim, 0.0f,
                  grad_z + first * dim, dim);
    }
    // Pass 2, k as a column: dz_k += sum_i G_ik z_i over the counted anchors i.
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks_of(wanted); ++b) {
      const int64_t first = b * kBlock, count = std::min(kBlock, wanted - first);
      similarities(z + first * dim, count, z, anchors, dim, inverse_tau, block);
      for (int64_t r = 0; r < count; ++r) {
        const int64_t k = first + r;
        float* g = block + r * anchors;  // g[i] = s_ik
#pragma omp simd
        for (int64_t i = 0; i < anchors; ++i) {
          const float counted = positive_weight[static_cast<size_t>(i)] > 0.0f ? 1.0f : 0.0f;
          g[i] = i == k ? 0.0f : counted * exp_float(g[i] - lse[static_cast<size_t>(i)]);
        }
        for (int64_t i = 0; i < anchors; ++i)
          if (is_positive(i, k)) g[i] -= positive_weight[static_cast<size_t>(i)];
      }
      gemm<float>(GemmShape{count, dim, anchors, false, false}, 1.0f, block, anchors, z, dim, 1.0f,
                  grad_z + first * dim, dim);
    }
    // Through the normalisation: dh = (dz - z (z . dz)) / ||h||, or dz / eps where clamped.
#pragma omp for schedule(static)
    for (int64_t k = 0; k < wanted; ++k) {
      const float* g = grad_z + k * dim;
      const float* zk = z + k * dim;
      float* out = k < rows ? a.grad_h + k * dim : a.grad_extra + (k - rows) * dim;
      const double norm = saved.norm[k];
      if (norm > problem.norm_eps) {
        double projection = 0.0;
#pragma omp simd reduction(+ : projection)
        for (int64_t d = 0; d < dim; ++d) projection += static_cast<double>(zk[d]) * static_cast<double>(g[d]);
        const float gain = static_cast<float>(coefficient / norm), along = static_cast<float>(projection);
#pragma omp simd
        for (int64_t d = 0; d < dim; ++d) out[d] = gain * (g[d] - zk[d] * along);
      } else {
        const float gain = static_cast<float>(coefficient / problem.norm_eps);
#pragma omp simd
        for (int64_t d = 0; d < dim; ++d) out[d] = gain * g[d];
      }
    }
  }
}

}  // namespace

template <class T>
void contrastive_forward(const ContrastiveForward<T>& arguments) {
  if constexpr (std::is_same_v<T, float>) {
    if (!reference_kernels_enabled()) return contrastive_forward_float(arguments);
  }
  reference::contrastive_forward(arguments);
}

template <class T>
void contrastive_backward(const ContrastiveBackward<T>& arguments) {
  if constexpr (std::is_same_v<T, float>) {
    if (!reference_kernels_enabled()) return contrastive_backward_float(arguments);
  }
  reference::contrastive_backward(arguments);
}

template void contrastive_forward<float>(const ContrastiveForward<float>&);
template void contrastive_forward<double>(const ContrastiveForward<double>&);
template void contrastive_forward<bfloat16>(const ContrastiveForward<bfloat16>&);
template void contrastive_backward<float>(const ContrastiveBackward<float>&);
template void contrastive_backward<double>(const ContrastiveBackward<double>&);
template void contrastive_backward<bfloat16>(const ContrastiveBackward<bfloat16>&);

}  // namespace visrep::kernels::cpu
