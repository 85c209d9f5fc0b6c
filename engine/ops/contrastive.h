// The contrastive losses of SimCLR (NT-Xent) and Supervised Contrastive Learning (SupCon),
// fused: forward and backward never form the 2N x 2N similarity matrix. Definitions, with
// their sources, in kernels/cpu/contrastive.h.
//
// h holds 2N embeddings (float32, float64 or bfloat16), rows i and i + N being the two
// views of image i. Rows are L2-normalised inside the op and the gradient flows through the
// normalisation to h. The loss is a scalar: float32 for float32 and bfloat16 inputs, float64
// for float64.
//
// On CUDA, float32 embeddings use TF32 tensor cores when visrep::cuda::tf32_enabled() (the
// global switch, off by default) and exact FP32 arithmetic otherwise; bfloat16 embeddings
// use bf16 tensor cores with FP32 accumulation; float64 is exact.
#pragma once

#include "engine/distributed/collectives.h"
#include "engine/tensor.h"

namespace visrep {

// NT-Xent (google-research/simclr objective.py): the mean over the 2N rows of
//   -log( exp(s_i,p(i)) / sum_{j != i} exp(s_ij) ),  s_ij = z_i . z_j / tau,
// p(i) the other view of i. extra_negatives (M x D, optional): rows of other GPUs, gathered,
// that join every row's denominator as negatives only (no anchors, no positives); when it
// requires a gradient, it gets one (what SimCLR's cross-replica concat passes back to the
// replica that owns the rows), otherwise that part of the backward pass is skipped.
Tensor nt_xent_loss(const Tensor& h, double temperature, const Tensor& extra_negatives = Tensor());

enum class ContrastMode {
  All,  // every row is an anchor (SupContrast's 'all', the default)
  One,  // only the first view's rows 0..N-1 are anchors; all 2N rows are contrasted ('one')
};

// SupCon (Khosla et al. 2020, HobbitLong/SupContrast losses.py): for each anchor i,
//   loss_i = -(tau / base_tau) * mean_{p in P(i)} ( s_ip - log sum_{j != i} exp(s_ij) ),
// P(i) the other rows with the same label. labels: int64, one per image (N, shared by both
// views) or one per row (2N); undefined: each image is its own class (then, with base_tau =
// tau, the loss equals nt_xent_loss). An anchor without a positive adds nothing and is not
// counted in the mean; if no anchor has one the loss is 0.
// extra (M x D) with extra_labels (M, int64), optional, given together and only with
// labels: rows of other GPUs that join as columns only (never anchors); an extra row of an
// anchor's class is one of its positives, every extra row one of its negatives. They get a
// gradient when they require one.
Tensor supcon_loss(const Tensor& h, const Tensor& labels, double temperature = 0.07, double base_temperature = 0.07,
                   ContrastMode mode = ContrastMode::All, const Tensor& extra = Tensor(),
                   const Tensor& extra_labels = Tensor());

// ---- across the ranks of a data-parallel job ----------------------------------------------------
//
// The same losses over the global batch of a job of P ranks, each holding a slice of it: on
// rank r, h holds its 2n rows (rows i and i + n the two views of its image i, as above) and
// labels its n (or 2n) labels. Every rank calls it, in the same order, and runs the backward
// pass through it.
//
// The global rows are every rank's h, gathered rank-major (all_gather_rows): rank k's row i
// is global row k * 2n + i, and its image i is global image k * n + i. An anchor's positive
// (NT-Xent) is its image's other view, in the same rank's block: global row k * 2n + (i + n)
// mod 2n; under SupCon its positives are the rows of its class in every block, the labels
// gathered the same way. This is the one-device batch of the P * n images, view-major there
// and rank-major here; the loss, a mean over the anchors of sums over every column, is the
// same in either order.
//
// Each rank computes only its own anchors, its 2n rows (n in mode 'one'), against all the
// 2nP columns: h against [h; the other ranks' rows] (the extra columns above), so the
// memory is O(nP x D) per rank and no rank forms the 2nP x 2nP matrix.
//
// The result is this rank's share of the loss: P * (the sum of loss_i over its counted
// anchors) / K, with K the counted anchors of every rank. Its mean over the ranks is the
// global loss (all-reduce it with Average to report it), and the mean of every rank's
// gradients, which data-parallel training's gradient all-reduce computes, is the global
// loss's gradient: the gradient of the rows other ranks used comes back to their owner
// through all_gather_rows' reduce-scatter. With P = 1 it is the loss above.
Tensor nt_xent_loss(const Tensor& h, double temperature, distributed::Collectives& ranks);
Tensor supcon_loss(const Tensor& h, const Tensor& labels, double temperature, double base_temperature,
                   ContrastMode mode, distributed::Collectives& ranks);

}  // namespace visrep
