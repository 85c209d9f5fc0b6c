// The fused NT-Xent / SupCon losses on CUDA: the CUDA twins of kernels/cpu/contrastive.h
// (which defines them and lists the family's files).
//
// Forward: normalize_rows_kernel (z, ||h||; O(C D)), statistics_kernel (lse, the positives'
// logit sum and count per anchor; O(A C D) flops, O(A) bytes out), finalize_loss_kernel (the
// mean). Backward: gradient_kernel twice (the anchors' term, then the columns' term; each
// O(A C D) flops, writing C x D floats), normalize_backward_kernel (dh). The only buffers
// are O(C D) (z, dz) and O(C) (statistics): nothing of size A x C exists, which is what lets
// 2N = 262144 run in a few hundred MB where the unfused loss needs 2N^2 x 4 bytes per matrix.
//
// The tile kernels come in two policies: SimtTiles (exact FP32/FP64 FMAs, this unit) and
// TensorCoreTiles (TF32 / bf16 WMMA, contrastive_tensor_core.cu); see contrastive_tiles.cuh.
#include "kernels/cuda/contrastive.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/cuda/contrastive_launch.cuh"
#include "kernels/cuda/contrastive_rows.cuh"
#include "kernels/cuda/contrastive_tensor_core.cuh"
#include "kernels/cuda/contrastive_tiles.cuh"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/runtime.h"

namespace visrep::kernels::cuda {
namespace {

using namespace contrastive_detail;

// One warp per row, grid-stride beyond 65536 blocks.
unsigned int blocks_for_rows(int64_t rows) { return std::min<unsigned int>(blocks_for(rows, kRowsPerBlock), 65536u); }

void check_problem(const ContrastiveProblem& problem) {
  // Indices are int64 throughout; these bounds keep the launch dimensions and int32 counts legal.
  if (problem.rows < 2 || problem.rows % 2 != 0 || problem.dim < 1 || problem.anchors < 1 ||
      problem.anchors > problem.rows || problem.extra_rows < 0 || problem.columns() > (int64_t{1} << 31) - 1 ||
      problem.dim > int64_t{65535} * 128 || (problem.labels != nullptr && problem.label_count < 1))
    throw std::runtime_error("contrastive kernels: unsupported problem (rows " + std::to_string(problem.rows) +
                             ", extra rows " + std::to_string(problem.extra_rows) + ", dim " +
                             std::to_string(problem.dim) + ", anchors " + std::to_string(problem.anchors) + ")");
}

template <class T>
void launch_statistics_for(const TileProblem<T, AccumulateType<T>>& tiles, bool tensor_cores,
                           cudaStream_t stream) {
  if constexpr (std::is_same_v<T, double>) {
    launch_statistics<SimtTiles<double>>(tiles, stream);
  } else if constexpr (std::is_same_v<T, float>) {
    if (tensor_cores) launch_statistics_tensor_core(tiles, stream);
    else launch_statistics<SimtTiles<float>>(tiles, stream);
  } else {
    launch_statistics_tensor_core(tiles, stream);  // bf16: tensor cores only
  }
}

template <class T>
void launch_gradient_for(const TileProblem<T, AccumulateType<T>>& tiles, bool tensor_cores,
                         cudaStream_t stream) {
  if constexpr (std::is_same_v<T, double>) {
    launch_gradient<SimtTiles<double>>(tiles, stream);
  } else if constexpr (std::is_same_v<T, float>) {
    if (tensor_cores) launch_gradient_tensor_core(tiles, stream);
    else launch_gradient<SimtTiles<float>>(tiles, stream);
  } else {
    launch_gradient_tensor_core(tiles, stream);
  }
}

}  // namespace

template <class T>
void contrastive_forward(const ContrastiveForward<T>& a, cudaStream_t stream) {
  using Stat = AccumulateType<T>;
  const ContrastiveProblem& problem = a.problem;
  const ContrastiveSaved<T, Stat>& saved = a.saved_cuda;
  check_problem(problem);
  const int64_t columns = problem.columns();
  normalize_rows_kernel<T, Stat><<<blocks_for_rows(columns), kRowThreads, 0, stream>>>(
      a.h, a.extra, problem.rows, columns, problem.dim, static_cast<Stat>(problem.norm_eps), saved.z, saved.norm,
      a.first_non_finite_row);
  VISREP_CUDA_CHECK_LAUNCH("contrastive normalize_rows_kernel");

  DeviceBuffer positive_sum(static_cast<size_t>(problem.anchors) * sizeof(Stat), current_device(), stream);
  auto tiles = make_tile_problem<T, Stat>(problem, saved.z, saved.log_sum_exp, saved.positive_count);
  tiles.positive_sum = positive_sum.get<Stat>();
  launch_statistics_for<T>(tiles, a.tensor_cores, stream);

  finalize_loss_kernel<Stat><<<1, kRowThreads, kFinalizeSharedBytes, stream>>>(saved.log_sum_exp, tiles.positive_sum,
                                                            saved.positive_count, problem.anchors,
                                                            problem.loss_scale, a.loss, a.counted_anchors);
  VISREP_CUDA_CHECK_LAUNCH("contrastive finalize_loss_kernel");
}

template <class T>
void contrastive_backward(const ContrastiveBackward<T>& a, cudaStream_t stream) {
  using Stat = AccumulateType<T>;
  const ContrastiveProblem& problem = a.problem;
  const ContrastiveSaved<T, Stat>& saved = a.saved_cuda;
  check_problem(problem);
  const int64_t wanted = a.grad_extra != nullptr ? problem.columns() : problem.rows;
  DeviceBuffer grad_z(static_cast<size_t>(wanted * problem.dim) * sizeof(Stat), current_device(), stream);
  auto tiles = make_tile_problem<T, Stat>(problem, saved.z, saved.log_sum_exp, saved.positive_count);
  tiles.grad_loss = a.grad_loss;
  tiles.counted_anchors = a.counted_anchors;
  tiles.grad_z = grad_z.get<Stat>();
  tiles.wanted = wanted;
  launch_gradient_for<T>(tiles, a.tensor_cores, stream);

  normalize_backward_kernel<T, Stat><<<blocks_for_rows(wanted), kRowThreads, 0, stream>>>(
      a.h, a.extra, saved.norm, tiles.grad_z, problem.rows, wanted, problem.dim, static_cast<Stat>(problem.norm_eps),
      a.grad_h, a.grad_extra);
  VISREP_CUDA_CHECK_LAUNCH("contrastive normalize_backward_kernel");
}

#define VISREP_INSTANTIATE_CONTRASTIVE(T)                                               \
  template void contrastive_forward<T>(const ContrastiveForward<T>&, cudaStream_t); \
  template void contrastive_backward<T>(const ContrastiveBackward<T>&, cudaStream_t);

VISREP_INSTANTIATE_CONTRASTIVE(float)
VISREP_INSTANTIATE_CONTRASTIVE(double)
VISREP_INSTANTIATE_CONTRASTIVE(bfloat16)
#undef VISREP_INSTANTIATE_CONTRASTIVE

}  // namespace visrep::kernels::cuda
