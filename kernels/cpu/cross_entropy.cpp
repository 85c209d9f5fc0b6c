// log_softmax and the NLL loss on the CPU, the reference of the CUDA twins
// (kernels/cpu/cross_entropy.h specifies them and lists the family's files).
#include "kernels/cpu/cross_entropy.h"

#include <cmath>
#include <limits>

namespace visrep::kernels::cpu {

template <class T>
void log_softmax_forward(const LogSoftmaxForward<T>& arguments) {
  const T* x = arguments.x;
  const int64_t outer = arguments.outer;
  const int64_t classes = arguments.classes;
  const int64_t inner = arguments.inner;
  T* y = arguments.y;
#pragma omp parallel for collapse(2) schedule(static) if (outer * classes * inner >= 32768)
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      const T* row = x + o * classes * inner + i;
      T* out = y + o * classes * inner + i;
      T maximum = -std::numeric_limits<T>::infinity();
      for (int64_t c = 0; c < classes; ++c) maximum = std::fmax(maximum, row[c * inner]);
      // A row of -inf (or all equal to +inf) has no finite shift; use 0 so NaN/inf propagate naturally.
      const double shift = std::isfinite(maximum) ? static_cast<double>(maximum) : 0.0;
      double total = 0.0;
      for (int64_t c = 0; c < classes; ++c) total += std::exp(static_cast<double>(row[c * inner]) - shift);
      const double log_total = shift + std::log(total);
      for (int64_t c = 0; c < classes; ++c) out[c * inner] = static_cast<T>(static_cast<double>(row[c * inner]) - log_total);
    }
  }
}

template <class T>
void log_softmax_backward(const LogSoftmaxBackward<T>& arguments) {
  const T* grad_y = arguments.grad_y;
  const T* y = arguments.y;
  const int64_t outer = arguments.outer;
  const int64_t classes = arguments.classes;
  const int64_t inner = arguments.inner;
  T* grad_x = arguments.grad_x;
#pragma omp parallel for collapse(2) schedule(static) if (outer * classes * inner >= 32768)
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      const int64_t base = o * classes * inner + i;
      double total = 0.0;
      for (int64_t c = 0; c < classes; ++c) total += static_cast<double>(grad_y[base + c * inner]);
      for (int64_t c = 0; c < classes; ++c) {
        const int64_t at = base + c * inner;
        grad_x[at] = static_cast<T>(static_cast<double>(grad_y[at]) - std::exp(static_cast<double>(y[at])) * total);
      }
    }
  }
}

template <class T>
void nll_loss_forward(const NllLossForward<T>& arguments) {
  const T* log_probs = arguments.log_probs;
  const int64_t* targets = arguments.targets;
  const int64_t batch = arguments.batch;
  const int64_t classes = arguments.classes;
  const int64_t ignore_index = arguments.ignore_index;
  const double label_smoothing = arguments.label_smoothing;
  T* losses = arguments.losses;
  for (int64_t i = 0; i < batch; ++i) {
    if (targets[i] == ignore_index) {
      losses[i] = T(0);
      continue;
    }
    const T* row = log_probs + i * classes;
    double loss = -(1.0 - label_smoothing) * static_cast<double>(row[targets[i]]);
    if (label_smoothing != 0.0) {
      double total = 0.0;
      for (int64_t c = 0; c < classes; ++c) total += static_cast<double>(row[c]);
      loss -= label_smoothing / static_cast<double>(classes) * total;
    }
    losses[i] = static_cast<T>(loss);
  }
}

template <class T>
void nll_loss_backward(const NllLossBackward<T>& arguments) {
  const T* grad_losses = arguments.grad_losses;
  const int64_t* targets = arguments.targets;
  const int64_t batch = arguments.batch;
  const int64_t classes = arguments.classes;
  const int64_t ignore_index = arguments.ignore_index;
  const double label_smoothing = arguments.label_smoothing;
  T* grad_log_probs = arguments.grad_log_probs;
  for (int64_t i = 0; i < batch; ++i) {
    T* row = grad_log_probs + i * classes;
    const bool ignored = targets[i] == ignore_index;
    const double g = ignored ? 0.0 : static_cast<double>(grad_losses[i]);
    const T uniform = static_cast<T>(-g * label_smoothing / static_cast<double>(classes));
    for (int64_t c = 0; c < classes; ++c) row[c] = uniform;
    if (!ignored) row[targets[i]] += static_cast<T>(-g * (1.0 - label_smoothing));
  }
}

#define VISREP_INSTANTIATE_CROSS_ENTROPY(T)                            \
  template void log_softmax_forward<T>(const LogSoftmaxForward<T>&);   \
  template void log_softmax_backward<T>(const LogSoftmaxBackward<T>&); \
  template void nll_loss_forward<T>(const NllLossForward<T>&);         \
  template void nll_loss_backward<T>(const NllLossBackward<T>&);

VISREP_INSTANTIATE_CROSS_ENTROPY(float)
VISREP_INSTANTIATE_CROSS_ENTROPY(double)
#undef VISREP_INSTANTIATE_CROSS_ENTROPY

}  // namespace visrep::kernels::cpu
