// CUDA twins of kernels/cpu/contrastive.h (which defines the losses and their gradient and
// lists the family's files): flash-style kernels that stream tiles of the similarity matrix
// through shared memory and keep only O(C) statistics and the normalised rows, never the
// R x C matrix. Pointers are device pointers; they use the saved_cuda state.
//
// Element types: T = float (z in float; exact FP32 FMAs, or TF32 tensor cores when
// tensor_cores is set), double (exact, FP64 FMAs; tensor_cores is ignored) and bfloat16 (z
// rounded to bfloat16, bf16 tensor cores with FP32 accumulation; always tensor cores).
// Statistics, accumulators and the loss are AccumulateType<T>: float, double for double.
// The forward pass marks first_non_finite_row with atomicMin (the first such row, as on the
// CPU) and queues everything on `stream`: nothing is waited for. The backward pass uses
// C x D AccumulateType<T> of scratch memory.
#pragma once

#include "kernels/cpu/contrastive.h"
#include "kernels/cuda/stream.h"

namespace visrep::kernels::cuda {

template <class T>
void contrastive_forward(const ContrastiveForward<T>& arguments, cudaStream_t stream);

template <class T>
void contrastive_backward(const ContrastiveBackward<T>& arguments, cudaStream_t stream);

}  // namespace visrep::kernels::cuda
