// CUDA twin of kernels/cpu/linear_algebra.h (which specifies it and lists the family's
// files) on cuBLAS: row-major C = alpha op(A) op(B) + beta C. float32 uses TF32 tensor
// cores only when runtime.h's tf32_enabled() is set. Pointers are device pointers.
#pragma once

#include "kernels/cpu/linear_algebra.h"
#include "kernels/cuda/stream.h"

namespace visrep::kernels::cuda {

template <class T>
void gemm_batched(const GemmBatched<T>& arguments, cudaStream_t stream);

}  // namespace visrep::kernels::cuda
