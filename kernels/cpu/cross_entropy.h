// log_softmax along one axis and the negative log-likelihood loss on its output:
// cross-entropy is their composition (the engine's cross_entropy).
#pragma once

#include <cstdint>

namespace visrep::kernels::cpu {

// x viewed as (outer, classes, inner): y = x - max - log(sum exp(x - max)) along classes.
// The max shift keeps exp from overflowing (the usual log-sum-exp trick).
template <class T>
void log_softmax_forward(const T* x, int64_t outer, int64_t classes, int64_t inner, T* y);

// grad_x = grad_y - softmax * sum(grad_y) along classes, with softmax = exp(y).
template <class T>
void log_softmax_backward(const T* grad_y, const T* y, int64_t outer, int64_t classes, int64_t inner, T* grad_x);

// Per-sample NLL on log-probabilities (N, C) with class-index targets and label smoothing s
// (PyTorch's CrossEntropyLoss): loss_i = -(1 - s) * lp[i, t_i] - (s / C) * sum_c lp[i, c].
// A row whose target equals ignore_index gets loss 0. Targets must be in [0, C) otherwise.
template <class T>
void nll_loss_forward(const T* log_probs, const int64_t* targets, int64_t batch, int64_t classes,
                      int64_t ignore_index, double label_smoothing, T* losses);

// grad_log_probs[i, c] = -grad_losses[i] * ((1 - s) * [c == t_i] + s / C); 0 on ignored rows.
template <class T>
void nll_loss_backward(const T* grad_losses, const int64_t* targets, int64_t batch, int64_t classes,
                       int64_t ignore_index, double label_smoothing, T* grad_log_probs);

}  // namespace visrep::kernels::cpu
