// The tensor-core instantiations of the contrastive tile kernels: TF32 for float32
// embeddings, bf16 for bfloat16 ones (contrastive_tensor_core.cuh explains the tiling). A
// translation unit of their own so they compile in parallel with the exact path.
#include "kernels/cuda/contrastive_tensor_core.cuh"

#include "kernels/cuda/contrastive_launch.cuh"

namespace visrep::kernels::cuda::contrastive_detail {

void launch_statistics_tensor_core(const TileProblem<float, float>& p, cudaStream_t stream) {
  launch_statistics<TensorCoreTiles<float>>(p, stream);
}
void launch_statistics_tensor_core(const TileProblem<bfloat16, float>& p, cudaStream_t stream) {
  launch_statistics<TensorCoreTiles<bfloat16>>(p, stream);
}
void launch_gradient_tensor_core(const TileProblem<float, float>& p, cudaStream_t stream) {
  launch_gradient<TensorCoreTiles<float>>(p, stream);
}
void launch_gradient_tensor_core(const TileProblem<bfloat16, float>& p, cudaStream_t stream) {
  launch_gradient<TensorCoreTiles<bfloat16>>(p, stream);
}

}  // namespace visrep::kernels::cuda::contrastive_detail
