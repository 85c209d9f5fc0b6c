// CUDA twins of kernels/cpu/contrastive.h (which defines the losses and their gradient):
// flash-style kernels that stream tiles of the similarity matrix through shared memory and
// keep only O(C) statistics and the normalised rows, never the R x C matrix.
//
// Element types: T = float (z in float; exact FP32 FMAs, or TF32 tensor cores when
// tensor_cores is set), double (exact, FP64 FMAs; tensor_cores is ignored) and bfloat16 (z
// rounded to bfloat16, bf16 tensor cores with FP32 accumulation; always tensor cores).
// Statistics, accumulators and the loss are float, double for T = double (ContrastiveStat).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <type_traits>

#include "kernels/bfloat16.h"
#include "kernels/cpu/contrastive.h"

namespace visrep::kernels::cuda {

template <class T>
using ContrastiveStat = std::conditional_t<std::is_same_v<T, double>, double, float>;

template <class T>
using ContrastiveSavedCuda = ContrastiveSaved<T, ContrastiveStat<T>>;

// h: R x D and extra: M x D (null when M = 0), contiguous device arrays; problem.labels, when
// set, is a device array. Fills `saved` (device arrays the caller allocates: z C x D,
// norm C, log_sum_exp A, positive_count A), writes the loss and K (the counted anchors), and
// marks first_non_finite_row, a cleared slot of a deferred check (deferred_errors.h), with
// the first row of [h; extra] that holds a NaN/Inf or whose squares overflow. Queued on
// `stream`; nothing is waited for.
template <class T>
void contrastive_forward(const T* h, const T* extra, const ContrastiveProblem& problem, bool tensor_cores,
                         const ContrastiveSavedCuda<T>& saved, ContrastiveStat<T>* loss, int32_t* counted_anchors,
                         long long* first_non_finite_row, cudaStream_t stream);

// grad_loss: the loss's gradient (one device value). Writes grad_h (R x D) and, unless null,
// grad_extra (M x D). Uses C x D ContrastiveStat<T> of scratch memory.
template <class T>
void contrastive_backward(const ContrastiveStat<T>* grad_loss, const T* h, const T* extra,
                          const ContrastiveProblem& problem, bool tensor_cores, const ContrastiveSavedCuda<T>& saved,
                          const int32_t* counted_anchors, T* grad_h, T* grad_extra, cudaStream_t stream);

}  // namespace visrep::kernels::cuda
