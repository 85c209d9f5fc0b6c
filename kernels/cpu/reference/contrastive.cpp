// The CPU reference of the contrastive losses (definitions in kernels/cpu/contrastive.h), the
// specification the fast CPU kernel (kernels/cpu/contrastive.cpp) and the CUDA twins are held
// to: direct loops in double, one anchor (or one column) per OpenMP iteration, recomputing the
// similarities wherever they are needed instead of storing the R x C matrix. The backward
// pass has the same two-pass shape as the CUDA kernels (rows, then columns), so each output
// row is written by exactly one iteration and the result does not depend on the thread count.
#include "kernels/cpu/contrastive.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/double_accumulation.h"

namespace visrep::kernels::cpu::reference {
namespace {

double dot(const double* a, const double* b, int64_t n) {
  double total = 0.0;
  for (int64_t d = 0; d < n; ++d) total += a[d] * b[d];
  return total;
}

// class(j) of the header: labels[j mod label_count], or j mod N without labels.
int64_t class_of(const ContrastiveProblem& problem, int64_t row) {
  return problem.labels != nullptr ? problem.labels[row % problem.label_count] : row % problem.images();
}

// j in P(i): another column of the same class among the first Q (the rows of h, or every
// column when the labels are per column).
bool is_positive(const ContrastiveProblem& problem, int64_t anchor, int64_t column) {
  return column < problem.positive_columns() && column != anchor &&
         class_of(problem, column) == class_of(problem, anchor);
}

}  // namespace

template <class T>
void contrastive_forward(const ContrastiveForward<T>& arguments) {
  const T* h = arguments.h;
  const T* extra = arguments.extra;
  const ContrastiveProblem& problem = arguments.problem;
  const ContrastiveSaved<double, double>& saved = arguments.saved_cpu;
  const int64_t rows = problem.rows, columns = problem.columns(), dim = problem.dim, anchors = problem.anchors;

  // z_j = h_j / max(||h_j||, eps); a row with a NaN or Inf stops everything here.
  for (int64_t j = 0; j < columns; ++j) {
    const T* source = j < rows ? h + j * dim : extra + (j - rows) * dim;
    double squares = 0.0;
    for (int64_t d = 0; d < dim; ++d) squares += to_double(source[d]) * to_double(source[d]);
    if (!std::isfinite(squares)) {
      arguments.first_non_finite_row[0] = j;
      arguments.first_non_finite_row[1] = 0;
      return;
    }
    const double norm = std::sqrt(squares);
    const double scale = 1.0 / std::max(norm, problem.norm_eps);
    saved.norm[j] = norm;
    for (int64_t d = 0; d < dim; ++d) saved.z[j * dim + d] = to_double(source[d]) * scale;
  }

  // lse_i, the positives' sum of s_ip and their count, one anchor per iteration.
  const double inverse_tau = 1.0 / problem.temperature;
  std::vector<double> positive_sum(static_cast<size_t>(anchors));
#pragma omp parallel if (anchors * columns * dim >= 1 << 16)
  {
    std::vector<double> logits(static_cast<size_t>(columns));
#pragma omp for schedule(static)
    for (int64_t i = 0; i < anchors; ++i) {
      const double* zi = saved.z + i * dim;
      double maximum = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < columns; ++j) {
        if (j == i) continue;
        logits[j] = dot(zi, saved.z + j * dim, dim) * inverse_tau;
        maximum = std::max(maximum, logits[j]);
      }
      double exponentials = 0.0, positives = 0.0;
      int32_t count = 0;
      for (int64_t j = 0; j < columns; ++j) {
        if (j == i) continue;
        exponentials += std::exp(logits[j] - maximum);
        if (is_positive(problem, i, j)) {
          positives += logits[j];
          ++count;
        }
      }
      // R >= 2, so every anchor has at least one other column and the sum is >= 1.
      saved.log_sum_exp[i] = maximum + std::log(exponentials);
      saved.positive_count[i] = count;
      positive_sum[i] = positives;
    }
  }

  // The mean over counted anchors, summed in anchor order (deterministic).
  double total = 0.0;
  int64_t counted = 0;
  for (int64_t i = 0; i < anchors; ++i) {
    if (saved.positive_count[i] == 0) continue;
    total += -problem.loss_scale * (positive_sum[i] / saved.positive_count[i] - saved.log_sum_exp[i]);
    ++counted;
  }
  *arguments.loss = static_cast<AccumulateType<T>>(counted > 0 ? total / static_cast<double>(counted) : 0.0);
  *arguments.counted_anchors = static_cast<int32_t>(counted);
}

template <class T>
void contrastive_backward(const ContrastiveBackward<T>& arguments) {
  const double grad_loss = static_cast<double>(*arguments.grad_loss);
  const ContrastiveProblem& problem = arguments.problem;
  const ContrastiveSaved<double, double>& saved = arguments.saved_cpu;
  const int64_t counted_anchors = *arguments.counted_anchors;
  T* grad_h = arguments.grad_h;
  T* grad_extra = arguments.grad_extra;
  const int64_t rows = problem.rows, dim = problem.dim, anchors = problem.anchors;
  // Columns whose gradient is wanted: the rows of h, and the extra rows when asked for.
  const int64_t columns = problem.columns();
  const int64_t wanted = grad_extra != nullptr ? columns : rows;
  const double inverse_tau = 1.0 / problem.temperature;
  // dL/dz = coefficient * sum (p - positive / |P|) z: scale / K from the mean, 1 / tau from s.
  const double coefficient =
      counted_anchors > 0 ? grad_loss * problem.loss_scale / static_cast<double>(counted_anchors) * inverse_tau : 0.0;
  const double* z = saved.z;
  // G_ij / coefficient for a counted anchor i and a column j != i.
  const auto weight = [&](int64_t i, int64_t j) {
    const double s = dot(z + i * dim, z + j * dim, dim) * inverse_tau;
    const double p = std::exp(s - saved.log_sum_exp[i]);
    return is_positive(problem, i, j) ? p - 1.0 / saved.positive_count[i] : p;
  };

  std::vector<double> grad_z(static_cast<size_t>(wanted * dim), 0.0);
  const bool parallel = anchors * columns * dim >= 1 << 16;
  // Pass 1, k as an anchor: dz_k = sum_j G_kj z_j.
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t k = 0; k < std::min(anchors, wanted); ++k) {
    if (saved.positive_count[k] == 0) continue;
    double* out = grad_z.data() + k * dim;
    for (int64_t j = 0; j < columns; ++j) {
      if (j == k) continue;
      const double g = weight(k, j);
      for (int64_t d = 0; d < dim; ++d) out[d] += g * z[j * dim + d];
    }
  }
  // Pass 2, k as a column: dz_k += sum_i G_ik z_i over the counted anchors i.
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t k = 0; k < wanted; ++k) {
    double* out = grad_z.data() + k * dim;
    for (int64_t i = 0; i < anchors; ++i) {
      if (i == k || saved.positive_count[i] == 0) continue;
      const double g = weight(i, k);
      for (int64_t d = 0; d < dim; ++d) out[d] += g * z[i * dim + d];
    }
  }
  // Through the normalisation: dh = (dz - z (z . dz)) / ||h||, or dz / eps where clamped.
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t k = 0; k < wanted; ++k) {
    const double* g = grad_z.data() + k * dim;
    const double* zk = z + k * dim;
    T* out = k < rows ? grad_h + k * dim : grad_extra + (k - rows) * dim;
    const double norm = saved.norm[k];
    if (norm > problem.norm_eps) {
      const double projection = dot(zk, g, dim);
      for (int64_t d = 0; d < dim; ++d) out[d] = from_double<T>(coefficient * (g[d] - zk[d] * projection) / norm);
    } else {
      for (int64_t d = 0; d < dim; ++d) out[d] = from_double<T>(coefficient * g[d] / problem.norm_eps);
    }
  }
}

#define VISREP_INSTANTIATE_CONTRASTIVE(T)                                  \
  template void contrastive_forward<T>(const ContrastiveForward<T>&); \
  template void contrastive_backward<T>(const ContrastiveBackward<T>&);

VISREP_INSTANTIATE_CONTRASTIVE(float)
VISREP_INSTANTIATE_CONTRASTIVE(double)
VISREP_INSTANTIATE_CONTRASTIVE(bfloat16)
#undef VISREP_INSTANTIATE_CONTRASTIVE

}  // namespace visrep::kernels::cpu::reference
