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
Tensor supcon_loss(const Tensor& h, const Tensor& labels, double temperature = 0.07, double base_temperature = 0.07,
                   ContrastMode mode = ContrastMode::All);

}  // namespace visrep
