// Contrastive losses over L2-normalised embeddings: NT-Xent (SimCLR) and SupCon, as one
// problem. This header is the specification; kernels/cuda/contrastive.h declares the twins.
//
// h has R = 2N rows: rows i and i + N are the two views of image i. Optionally M extra rows
// (the all-gathered rows of other GPUs) join as columns only. With C = R + M columns:
//   z_j   = h_j / max(||h_j||, eps)                   (torch.nn.functional.normalize)
//   s_ij  = z_i . z_j / tau
//   lse_i = log sum_{j < C, j != i} exp(s_ij)          (the self term is excluded)
//   P(i)  = { j < Q : j != i, class(j) == class(i) }
//   class(j) = j mod N without labels (so P(i) = {the other view of i}: NT-Xent),
//              labels[j mod label_count] with them (per image: label_count = N; per row: 2N;
//              per column: C)
//   Q     = C when the labels are per column (the extra rows then take part as positives:
//           the cross-rank SupCon loss, where they are other ranks' views of the same
//           classes), else R (the extra rows are negatives only)
//   loss_i = -(tau / base_tau) * ( (1/|P(i)|) sum_{p in P(i)} s_ip - lse_i )
//   loss   = mean of loss_i over the anchors i < A with |P(i)| > 0; 0 when there are none.
// A = 2N anchors in SupCon's contrast mode 'all' and in NT-Xent, A = N (the first view) in
// mode 'one'. Sources:
// - NT-Xent: google-research/simclr, objective.py, add_contrastive_loss: logits_ab/aa/ba/bb
//   are s_ij, the self similarity is masked with -LARGE_NUM, softmax_cross_entropy against
//   the other view. simclr returns loss_a + loss_b, each a mean over N rows, which is twice
//   the mean over 2N rows used here (and by SupContrast's NT-Xent special case).
// - SupCon: HobbitLong/SupContrast, losses.py, SupConLoss.forward: anchor_dot_contrast / tau,
//   logits_mask drops the self term, mean_log_prob_pos over the positives, scaled by
//   -(temperature / base_temperature). Without labels its mask is the identity over images:
//   the positive is the other view, and the loss equals NT-Xent when base_tau = tau.
//   One deliberate difference: SupContrast gives an anchor without positives a loss of 0
//   and still counts it in the mean; here it is left out of the mean (a loss over the
//   anchors that have something to pull toward). With two views and per-image labels every
//   anchor has a positive, so the two agree; they differ only for per-row labels with
//   singleton rows.
//
// Gradient (with G_ij = dL/ds_ij = (scale / K) (p_ij - [j in P(i)] / |P(i)|) for counted
// anchors i, p_ij = exp(s_ij - lse_i), K the number of counted anchors, scale = tau/base_tau):
//   dL/dz_k = (1/tau) ( sum_j G_kj z_j + sum_i G_ik z_i )    (k as anchor, k as column)
//   dL/dh_k = (dz_k - z_k (z_k . dz_k)) / ||h_k||           (||h_k|| > eps; dz_k / eps below)
// so nothing of size R x C is ever needed: the row terms and the column terms are two
// passes over the same (recomputed) similarities.
//
// Where to look, the contrastive losses:
//   op               engine/ops/contrastive.{h,cpp}   nt_xent_loss, supcon_loss
//   CPU kernel       kernels/cpu/contrastive.cpp      float32 by GEMMs over blocks of anchors; other dtypes
//                    go to the reference
//   CPU reference    kernels/cpu/reference/contrastive.cpp  this header's double loops
//   CUDA twin        kernels/cuda/contrastive.{h,cu}  (tiles: contrastive_tiles.cuh, contrastive_tensor_core.{cuh,cu};
//                    row normalisation: contrastive_rows.cuh; launches: contrastive_launch.cuh)
//   unit tests       tests/unit/test_contrastive.cpp (the fast kernel against the reference too)
//   gradient check   tests/gradcheck/test_contrastive_gradcheck.cpp
//   parity cases     tests/parity/test_parity_contrastive.cpp
//   benchmark        benchmarks/bench_contrastive.cpp (PyTorch eager: benchmarks/torch_contrastive.py)
#pragma once

#include <cstdint>

#include "kernels/accumulate_type.h"

namespace visrep::kernels {

struct ContrastiveProblem {
  int64_t rows = 0;        // R = 2N rows of h (two views)
  int64_t extra_rows = 0;  // M rows that are columns only (negatives from other GPUs)
  int64_t dim = 0;         // D
  int64_t anchors = 0;     // A: rows [0, A) are anchors (2N, or N for contrast mode 'one')
  // Class of each row, on the device of the data; null: row j is of class j mod N.
  const int64_t* labels = nullptr;
  int64_t label_count = 0;   // N, 2N or C when labels are given
  double temperature = 1.0;  // tau > 0
  double loss_scale = 1.0;   // tau / base_tau (SupCon); 1 for NT-Xent
  double norm_eps = 1e-12;   // ||h|| is clamped from below here, as F.normalize does

  int64_t columns() const { return rows + extra_rows; }
  int64_t images() const { return rows / 2; }  // N
  // Q: the columns that may be positives, the first R, or all C with per-column labels.
  int64_t positive_columns() const { return labels != nullptr && label_count == columns() ? columns() : rows; }
};

// What the forward pass keeps for the backward pass: O(C x D) + O(C), never O(R x C).
// Z is the element type of the normalised rows, Stat that of the per-row statistics.
template <class Z, class Stat>
struct ContrastiveSaved {
  Z* z = nullptr;                    // C x D: rows of h, then the extra rows, normalised
  Stat* norm = nullptr;              // C: ||h_j|| before the eps clamp
  Stat* log_sum_exp = nullptr;       // A: lse_i
  int32_t* positive_count = nullptr; // A: |P(i)|
};

// The forward pass of both losses. h: R x D, extra: M x D (null when M = 0), row-major,
// contiguous. Fills the saved state (arrays the caller allocates: z C x D, norm C,
// log_sum_exp A, positive_count A), writes the loss and K (the anchors with at least one
// positive) and, for the first row of [h; extra] holding a NaN or Inf (or whose squares
// overflow the arithmetic), marks first_non_finite_row, a slot (engine/dispatch.h's
// InputCheck: [row, 0]); nothing else is valid then.
//
// The state is kept in the precision the device computes in, and the op allocates the one
// its device uses: saved_cpu (double, whatever T: the reference computes everything in double,
// and the fast float32 kernel keeps its z and statistics there too, so either backward pass
// reads either forward's state) or saved_cuda (z in T, the statistics in AccumulateType<T>). tensor_cores: for the CUDA
// twin, TF32 for float (bfloat16 always takes its tensor cores); the CPU ignores it.
template <class T>
struct ContrastiveForward {
  const T* h = nullptr;
  const T* extra = nullptr;
  ContrastiveProblem problem;
  bool tensor_cores = false;
  ContrastiveSaved<double, double> saved_cpu;
  ContrastiveSaved<T, AccumulateType<T>> saved_cuda;
  AccumulateType<T>* loss = nullptr;
  int32_t* counted_anchors = nullptr;
  long long* first_non_finite_row = nullptr;
};

// The backward pass for the loss's gradient *grad_loss, given what the forward pass saved
// (the same state, and its K): writes grad_h (R x D) and, unless null, grad_extra (M x D).
template <class T>
struct ContrastiveBackward {
  const AccumulateType<T>* grad_loss = nullptr;
  const T* h = nullptr;
  const T* extra = nullptr;
  ContrastiveProblem problem;
  bool tensor_cores = false;
  ContrastiveSaved<double, double> saved_cpu;
  ContrastiveSaved<T, AccumulateType<T>> saved_cuda;
  const int32_t* counted_anchors = nullptr;
  T* grad_h = nullptr;
  T* grad_extra = nullptr;
};

}  // namespace visrep::kernels

// float32, bfloat16 and float64 embeddings. The fast kernels compute float32 (the
// similarities by single-precision GEMMs, the softmax sums in float, the statistics and the
// loss in double) and run the reference for the other dtypes and while reference kernels are
// enabled (kernels/cpu/reference/reference_kernels.h).
namespace visrep::kernels::cpu {

template <class T>
void contrastive_forward(const ContrastiveForward<T>& arguments);

template <class T>
void contrastive_backward(const ContrastiveBackward<T>& arguments);

}  // namespace visrep::kernels::cpu

// The references: direct loops in double for every dtype.
namespace visrep::kernels::cpu::reference {

template <class T>
void contrastive_forward(const ContrastiveForward<T>& arguments);

template <class T>
void contrastive_backward(const ContrastiveBackward<T>& arguments);

}  // namespace visrep::kernels::cpu::reference
