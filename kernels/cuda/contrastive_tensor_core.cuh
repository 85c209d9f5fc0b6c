// The tensor-core tile policy of the contrastive kernels (contrastive_tiles.cuh holds the
// kernels that use it): the score tile z_own z_other^T and the backward products G' z_other
// on warp matrix-multiply-accumulate (nvcuda::wmma) with FP32 accumulation.
// - TF32 (Z = float): m16n16k8 fragments; operands rounded to TF32 (__float_to_tf32), a
//   10-bit mantissa, so scores carry ~1e-3 relative error (what PyTorch's TF32 matmul does).
// - bf16 (Z = bfloat16): m16n16k16 fragments on bf16 z (the fragments' __nv_bfloat16 reads
//   the same bits, device_utils.cuh's wmma_pointer); the weights G' are rounded to bf16 for
//   the backward product, as flash attention does with its dS.
// 128 threads = 4 warps. For the 64 x 64 score tile warp w owns rows 32 (w / 2) + {0, 16}
// and columns 32 (w % 2) + {0, 16} (2 x 2 fragments); for the 64 x 128 backward accumulator
// rows 32 (w / 2) + {0, 16} and columns 64 (w % 2) + {0, 16, 32, 48} (2 x 4 fragments, 64
// registers). Fragments go through shared memory (store_matrix_sync) before the elementwise
// softmax work, because their register layout is unspecified.
//
// WMMA's rules, which the strides below keep: every fragment pointer 32-byte aligned, ldm a
// multiple of 16 bytes. Rows of a chunk are padded by 16 bytes (4 floats or 8 bf16) so that
// the 16 rows a fragment load touches fall in different banks.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <type_traits>

#include "kernels/cuda/contrastive_tiles.cuh"

namespace visrep::kernels::cuda::contrastive_detail {

template <class ZType>
struct TensorCoreTiles {
  using Z = ZType;
  using Stat = float;
  static constexpr bool kTf32 = std::is_same_v<Z, float>;
  static_assert(kTf32 || std::is_same_v<Z, bfloat16>, "TF32 (float) or bf16 operands");
  static constexpr int kThreads = 128;
  static constexpr int kRows = 64, kColumns = 64;
  static constexpr int kChunk = 32;
  static constexpr int kValues = 128;
  static constexpr int kStep = kTf32 ? 8 : 16;  // the k of one mma
  static constexpr int kPad = 16 / static_cast<int>(sizeof(Z));
  static constexpr int kChunkStride = kChunk + kPad;       // chunks: [row][k]
  static constexpr int kScoreStride = kColumns + 4;        // float scores (and TF32 weights)
  static constexpr int kWeightStride = kColumns + kPad;    // bf16 weights
  static constexpr int kValueStride = kValues + kPad;      // values: [o][c]
  static constexpr int kOutputStride = kValues + 4;        // float epilogue staging
  static constexpr int kChunkElements = kRows * kChunkStride;
  static constexpr int kScoreElements = kRows * kScoreStride;
  static constexpr int kWeightElements = kTf32 ? 0 : kRows * kWeightStride;
  static constexpr int kValueElements = kColumns * kValueStride;
  static constexpr size_t kOutputBytes = sizeof(float) * kRows * kOutputStride;
  static_assert(kRows == kColumns && kRows == 64 && kThreads == 128 && kValues == 128, "the warp layout above");

  using Element = std::conditional_t<kTf32, nvcuda::wmma::precision::tf32, __nv_bfloat16>;
  using FragmentA = nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, kStep, Element, nvcuda::wmma::row_major>;
  // z_other^T: element (k, n) at other_chunk[n * ldm + k], a column-major B.
  using FragmentBColumns =
      nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, kStep, Element, nvcuda::wmma::col_major>;
  using FragmentBRows = nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, kStep, Element, nvcuda::wmma::row_major>;
  using FragmentC = nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, kStep, float>;

  struct Accumulator {
    FragmentC c[2][4];
  };

  template <class Fragment>
  __device__ static void round_operands(Fragment& f) {
    if constexpr (kTf32) {
      for (int e = 0; e < f.num_elements; ++e) f.x[e] = nvcuda::wmma::__float_to_tf32(f.x[e]);
    }
  }

  __device__ static void clear(Accumulator& a) {
    for (int x = 0; x < 2; ++x)
      for (int y = 0; y < 4; ++y) nvcuda::wmma::fill_fragment(a.c[x][y], 0.0f);
  }

  // chunk[row][k] = z[start + row][d0 + k] (0 outside), coalesced along k.
  __device__ static void load_chunk(Z* chunk, const TileProblem<Z, float>& p, int64_t start, int64_t d0) {
    for (int index = threadIdx.x; index < kRows * kChunk; index += kThreads) {
      const int row = index / kChunk, k = index % kChunk;
      const int64_t source = start + row, d = d0 + k;
      chunk[row * kChunkStride + k] = source < p.columns && d < p.dim ? p.z[source * p.dim + d] : Z(0.0f);
    }
  }

  __device__ static void compute_scores(const Shared<TensorCoreTiles>& shared, const TileProblem<Z, float>& p,
                                        int64_t own0, int64_t other0) {
    const int warp = threadIdx.x / 32, warp_row = warp / 2, warp_column = warp % 2;
    FragmentC c[2][2];
    for (int x = 0; x < 2; ++x)
      for (int y = 0; y < 2; ++y) nvcuda::wmma::fill_fragment(c[x][y], 0.0f);
    for (int64_t d0 = 0; d0 < p.dim; d0 += kChunk) {
      load_chunk(shared.own_chunk, p, own0, d0);
      load_chunk(shared.other_chunk, p, other0, d0);
      __syncthreads();
      for (int k = 0; k < kChunk; k += kStep) {
        FragmentA a[2];
        FragmentBColumns b[2];
        for (int x = 0; x < 2; ++x) {
          nvcuda::wmma::load_matrix_sync(
              a[x], wmma_pointer(shared.own_chunk + (warp_row * 32 + x * 16) * kChunkStride + k), kChunkStride);
          round_operands(a[x]);
        }
        for (int y = 0; y < 2; ++y) {
          nvcuda::wmma::load_matrix_sync(
              b[y], wmma_pointer(shared.other_chunk + (warp_column * 32 + y * 16) * kChunkStride + k), kChunkStride);
          round_operands(b[y]);
        }
        for (int x = 0; x < 2; ++x)
          for (int y = 0; y < 2; ++y) nvcuda::wmma::mma_sync(c[x][y], a[x], b[y], c[x][y]);
      }
      __syncthreads();  // the next chunk overwrites the operands
    }
    for (int x = 0; x < 2; ++x)
      for (int y = 0; y < 2; ++y)
        nvcuda::wmma::store_matrix_sync(
            shared.scores + (warp_row * 32 + x * 16) * kScoreStride + warp_column * 32 + y * 16, c[x][y],
            kScoreStride, nvcuda::wmma::mem_row_major);
    __syncthreads();
  }

  __device__ static void set_weight(const Shared<TensorCoreTiles>& shared, int r, int o, float weight) {
    if constexpr (kTf32) {
      shared.scores[r * kScoreStride + o] = weight;
    } else {
      shared.weights[r * kWeightStride + o] = narrow<Z>(weight);
    }
  }

  __device__ static void load_values(const Shared<TensorCoreTiles>& shared, const TileProblem<Z, float>& p,
                                     int64_t other0, int64_t value0) {
    for (int index = threadIdx.x; index < kColumns * kValues; index += kThreads) {
      const int o = index / kValues, c = index % kValues;
      const int64_t row = other0 + o, d = value0 + c;
      shared.values[o * kValueStride + c] = row < p.columns && d < p.dim ? p.z[row * p.dim + d] : Z(0.0f);
    }
  }

  __device__ static void accumulate(Accumulator& a, const Shared<TensorCoreTiles>& shared) {
    const int warp = threadIdx.x / 32, warp_row = warp / 2, warp_column = warp % 2;
    for (int k = 0; k < kColumns; k += kStep) {
      FragmentA g[2];
      FragmentBRows v[4];
      for (int x = 0; x < 2; ++x) {
        if constexpr (kTf32) {
          nvcuda::wmma::load_matrix_sync(g[x], shared.scores + (warp_row * 32 + x * 16) * kScoreStride + k,
                                         kScoreStride);
        } else {
          nvcuda::wmma::load_matrix_sync(
              g[x], wmma_pointer(shared.weights + (warp_row * 32 + x * 16) * kWeightStride + k), kWeightStride);
        }
        round_operands(g[x]);
      }
      for (int y = 0; y < 4; ++y) {
        nvcuda::wmma::load_matrix_sync(
            v[y], wmma_pointer(shared.values + k * kValueStride + warp_column * 64 + y * 16), kValueStride);
        round_operands(v[y]);
      }
      for (int x = 0; x < 2; ++x)
        for (int y = 0; y < 4; ++y) nvcuda::wmma::mma_sync(a.c[x][y], g[x], v[y], a.c[x][y]);
    }
  }

  // Stages the accumulator in shared memory (from offset 0: the main loop is over and every
  // thread has passed its last barrier), then writes grad_z rows coalesced.
  template <bool kColumnPass>
  __device__ static void store_gradient(Accumulator& a, const Shared<TensorCoreTiles>& shared,
                                        const TileProblem<Z, float>& p, int64_t own0, int64_t value0,
                                        int64_t own_limit, float coefficient) {
    const int warp = threadIdx.x / 32, warp_row = warp / 2, warp_column = warp % 2;
    float* staging = reinterpret_cast<float*>(shared.base);
    for (int x = 0; x < 2; ++x)
      for (int y = 0; y < 4; ++y)
        nvcuda::wmma::store_matrix_sync(
            staging + (warp_row * 32 + x * 16) * kOutputStride + warp_column * 64 + y * 16, a.c[x][y],
            kOutputStride, nvcuda::wmma::mem_row_major);
    __syncthreads();
    for (int index = threadIdx.x; index < kRows * kValues; index += kThreads) {
      const int r = index / kValues, c = index % kValues;
      const int64_t k = own0 + r, d = value0 + c;
      if (k >= own_limit || d >= p.dim) continue;
      float value = coefficient * staging[r * kOutputStride + c];
      if (kColumnPass && k < p.anchors) value += p.grad_z[k * p.dim + d];  // pass A's term
      p.grad_z[k * p.dim + d] = value;
    }
  }
};

}  // namespace visrep::kernels::cuda::contrastive_detail

namespace visrep::kernels::cuda::contrastive_detail {

// Host launchers of the tensor-core tile kernels (contrastive_tensor_core.cu), so that the
// exact path's translation unit does not compile them too.
void launch_statistics_tensor_core(const TileProblem<float, float>& p, cudaStream_t stream);
void launch_statistics_tensor_core(const TileProblem<bfloat16, float>& p, cudaStream_t stream);
void launch_gradient_tensor_core(const TileProblem<float, float>& p, cudaStream_t stream);
void launch_gradient_tensor_core(const TileProblem<bfloat16, float>& p, cudaStream_t stream);

}  // namespace visrep::kernels::cuda::contrastive_detail
