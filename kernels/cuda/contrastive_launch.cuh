// Launching the contrastive tile kernels of one policy (contrastive_tiles.cuh): shared by
// contrastive.cu (exact path) and contrastive_tensor_core.cu (tensor cores).
#pragma once

#include <cuda_runtime.h>

#include "kernels/cuda/contrastive_tiles.cuh"
#include "kernels/cuda/runtime.h"

namespace visrep::kernels::cuda::contrastive_detail {

template <class Policy>
void launch_statistics(const TileProblem<typename Policy::Z, typename Policy::Stat>& p, cudaStream_t stream) {
  constexpr size_t bytes = statistics_shared_bytes<Policy>();
  allow_dynamic_shared_memory(statistics_kernel<Policy>, bytes);
  statistics_kernel<Policy><<<blocks_for(p.anchors, Policy::kRows), Policy::kThreads, bytes, stream>>>(p);
  VISREP_CUDA_CHECK_LAUNCH("contrastive statistics_kernel");
}

// Pass A (anchors' own term) writes grad_z rows < A; pass B (column term) adds to them and
// writes the rest. Same stream, so B starts after A has finished.
template <class Policy>
void launch_gradient(const TileProblem<typename Policy::Z, typename Policy::Stat>& p, cudaStream_t stream) {
  constexpr size_t bytes = gradient_shared_bytes<Policy>();
  const unsigned int value_blocks = blocks_for(p.dim, Policy::kValues);
  allow_dynamic_shared_memory(gradient_kernel<Policy, false>, bytes);
  allow_dynamic_shared_memory(gradient_kernel<Policy, true>, bytes);
  gradient_kernel<Policy, false>
      <<<dim3(blocks_for(p.anchors, Policy::kRows), value_blocks), Policy::kThreads, bytes, stream>>>(p);
  VISREP_CUDA_CHECK_LAUNCH("contrastive gradient_kernel (rows)");
  gradient_kernel<Policy, true>
      <<<dim3(blocks_for(p.wanted, Policy::kRows), value_blocks), Policy::kThreads, bytes, stream>>>(p);
  VISREP_CUDA_CHECK_LAUNCH("contrastive gradient_kernel (columns)");
}

}  // namespace visrep::kernels::cuda::contrastive_detail
