// The flash-style tile kernels of the contrastive losses (definitions and gradient in
// kernels/cpu/contrastive.h), shared by the exact SIMT path (this file) and the tensor-core
// path (contrastive_tensor_core.cuh). Device code only, plus plain host helpers that size
// the launches; the launches themselves live in the .cu files.
//
// What they compute. The similarities s = z_own . z_other / tau are produced one tile of
// kRows x kColumns at a time into shared memory by the policy's compute_scores (D is
// streamed in chunks of kChunk), and never leave the chip:
// - statistics_kernel: a block owns kRows anchors and walks every column tile, keeping per
//   anchor a running maximum and sum of exp (the online log-sum-exp of flash attention),
//   the sum of the positives' logits and their count. Writes O(A) numbers.
// - gradient_kernel<kColumnPass = false> (pass A, the anchors' own term): a block owns kRows
//   anchors and kValues of the D output dimensions; for every column tile it recomputes s,
//   turns it into the weight G'_ij = p_ij - [j in P(i)] / |P(i)| (p_ij = exp(s_ij - lse_i)
//   from the saved lse) and accumulates G' @ z_columns into a kRows x kValues accumulator.
// - gradient_kernel<kColumnPass = true> (pass B, the term of k as somebody's column): a
//   block owns kRows columns and walks the anchor tiles, with the weights G'_ik computed
//   from the anchors' lse, and adds its accumulator to pass A's result.
// Two passes instead of scattering G^T @ z with atomics: every output element is written by
// one thread, so results are deterministic, and no O(N^2) buffer exists.
//
// Memory traffic per block: the z rows of its tile and of every other tile (from L2: the
// whole z is C x D x 4 bytes, 16 MB at 2N = 32768, D = 128), O(kRows) statistics out; the
// arithmetic is 2 C D flops per anchor for the scores (x2 for the weighted sums backward).
// When D > kValues the backward grid gets a second dimension over D chunks and each
// recomputes the scores (D up to 2048: correct, proportionally slower).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/contrastive.h"
#include "kernels/cuda/contrastive_rows.cuh"

namespace visrep::kernels::cuda::contrastive_detail {

// ---- the problem as the tile kernels see it -----------------------------------------------

template <class Z, class Stat>
struct TileProblem {
  const Z* z = nullptr;  // columns x dim, row-major: the normalised rows of h, then the extra rows
  int64_t rows = 0;      // R
  int64_t columns = 0;   // C = R + M
  int64_t anchors = 0;   // A
  int64_t dim = 0;       // D
  const int64_t* labels = nullptr;  // null: class(j) = j mod images
  int64_t label_count = 1;
  int64_t positive_columns = 0;  // Q: columns j < Q may be positives (R, or C with per-column labels)
  int64_t images = 1;  // N = R / 2
  Stat inverse_temperature = 1;
  // statistics_kernel writes these; gradient_kernel reads log_sum_exp and positive_count.
  Stat* log_sum_exp = nullptr;
  Stat* positive_sum = nullptr;
  int32_t* positive_count = nullptr;
  // gradient_kernel: dL/dz = coefficient * accumulator, coefficient = grad_loss * loss_scale
  // / K / tau read from device memory (no host round trip).
  const Stat* grad_loss = nullptr;
  const int32_t* counted_anchors = nullptr;
  Stat loss_scale = 1;
  Stat* grad_z = nullptr;  // wanted x dim
  int64_t wanted = 0;      // rows of grad_z: R, or C when the extra rows want a gradient
};

template <class Z, class Stat>
__device__ __forceinline__ int64_t class_of(const TileProblem<Z, Stat>& p, int64_t row) {
  return p.labels != nullptr ? p.labels[row % p.label_count] : row % p.images;
}

__device__ __forceinline__ float exponential(float v) { return expf(v); }
__device__ __forceinline__ double exponential(double v) { return exp(v); }
__device__ __forceinline__ float logarithm(float v) { return logf(v); }
__device__ __forceinline__ double logarithm(double v) { return log(v); }
__device__ __forceinline__ float maximum(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ double maximum(double a, double b) { return fmax(a, b); }

// What a block knows about the rows of one side of its tile: the class (for the positive
// test) and, on the anchors' side of a backward pass, lse_i and 1 / |P(i)| (0 for anchors
// without positives and for indices past A, which zeroes their weights).
template <class Stat, int kCount>
struct TileSide {
  int64_t label[kCount];
  Stat log_sum_exp[kCount];
  Stat inverse_count[kCount];
};

template <int kThreads, class Z, class Stat, int kCount>
__device__ void load_side(TileSide<Stat, kCount>& side, const TileProblem<Z, Stat>& p, int64_t start,
                          bool with_statistics) {
  for (int k = threadIdx.x; k < kCount; k += kThreads) {
    const int64_t index = start + k;
    side.label[k] = index < p.positive_columns ? class_of(p, index) : -1;  // index >= Q: never positive
    if (with_statistics) {
      const int32_t count = index < p.anchors ? p.positive_count[index] : 0;
      side.log_sum_exp[k] = count > 0 ? p.log_sum_exp[index] : Stat(0);
      side.inverse_count[k] = count > 0 ? Stat(1) / static_cast<Stat>(count) : Stat(0);
    }
  }
}

// ---- shared memory -------------------------------------------------------------------------
// One dynamic allocation per block (device_utils.cuh's dynamic_shared_memory), carved into
// aligned regions.
// The policies' epilogues may reuse it from offset 0 once the main loop is over (kOutputBytes).

constexpr size_t align_to_128(size_t bytes) { return (bytes + 127) / 128 * 128; }

template <class Policy>
struct SharedLayout {
  using Z = typename Policy::Z;
  using Stat = typename Policy::Stat;
  size_t own_chunk = 0, other_chunk = 0, scores = 0, weights = 0, values = 0, own_side = 0, other_side = 0;
  size_t total = 0;

  // backward: the value tile (and bf16 weights) exist only in the gradient kernels.
  static constexpr SharedLayout make(bool backward) {
    SharedLayout l;
    size_t at = 0;
    l.own_chunk = at, at += align_to_128(sizeof(Z) * Policy::kChunkElements);
    l.other_chunk = at, at += align_to_128(sizeof(Z) * Policy::kChunkElements);
    l.scores = at, at += align_to_128(sizeof(Stat) * Policy::kScoreElements);
    l.own_side = at, at += align_to_128(sizeof(TileSide<Stat, Policy::kRows>));
    l.other_side = at, at += align_to_128(sizeof(TileSide<Stat, Policy::kColumns>));
    if (backward) {
      l.weights = at, at += align_to_128(sizeof(Z) * Policy::kWeightElements);
      l.values = at, at += align_to_128(sizeof(Z) * Policy::kValueElements);
    }
    l.total = at > Policy::kOutputBytes ? at : Policy::kOutputBytes;
    return l;
  }
};

template <class Policy>
struct Shared {
  using Z = typename Policy::Z;
  using Stat = typename Policy::Stat;
  unsigned char* base;
  Z* own_chunk;
  Z* other_chunk;
  Stat* scores;
  Z* weights;  // only where the policy keeps its weights apart from the scores
  Z* values;
  TileSide<Stat, Policy::kRows>* own;
  TileSide<Stat, Policy::kColumns>* other;

  __device__ explicit Shared(bool backward) {
    const SharedLayout<Policy> l = SharedLayout<Policy>::make(backward);
    base = dynamic_shared_memory<unsigned char>();
    own_chunk = reinterpret_cast<Z*>(base + l.own_chunk);
    other_chunk = reinterpret_cast<Z*>(base + l.other_chunk);
    scores = reinterpret_cast<Stat*>(base + l.scores);
    weights = reinterpret_cast<Z*>(base + l.weights);
    values = reinterpret_cast<Z*>(base + l.values);
    own = reinterpret_cast<TileSide<Stat, Policy::kRows>*>(base + l.own_side);
    other = reinterpret_cast<TileSide<Stat, Policy::kColumns>*>(base + l.other_side);
  }
};

// ---- the kernels ---------------------------------------------------------------------------

// Per anchor i < A: log_sum_exp[i], positive_sum[i] (sum of s_ip over P(i)), positive_count[i].
template <class Policy>
__global__ void __launch_bounds__(Policy::kThreads)
    statistics_kernel(const TileProblem<typename Policy::Z, typename Policy::Stat> p) {
  using Stat = typename Policy::Stat;
  constexpr int kRows = Policy::kRows, kColumns = Policy::kColumns;
  // Each row of the score tile is read by kThreadsPerRow adjacent lanes of one warp, each
  // taking every kThreadsPerRow-th column; they merge their partial statistics at the end.
  constexpr int kThreadsPerRow = Policy::kThreads / kRows;
  static_assert(Policy::kThreads % kRows == 0 && 32 % kThreadsPerRow == 0 && kColumns % kThreadsPerRow == 0);
  const Shared<Policy> shared(false);
  const int r = threadIdx.x / kThreadsPerRow, q = threadIdx.x % kThreadsPerRow;
  const int64_t own0 = int64_t{blockIdx.x} * kRows;
  const int64_t i = own0 + r;
  const bool is_anchor = i < p.anchors;
  load_side<Policy::kThreads>(*shared.own, p, own0, false);  // read after compute_scores' barriers

  Stat running_max = -INFINITY, running_sum = 0;  // sum of exp(s - running_max) over this thread's columns
  double positive_sum = 0.0;  // in double: one class of 2N rows adds up to 2N logits of size 1 / tau
  int32_t positive_count = 0;
  for (int64_t other0 = 0; other0 < p.columns; other0 += kColumns) {
    load_side<Policy::kThreads>(*shared.other, p, other0, false);
    Policy::compute_scores(shared, p, own0, other0);  // ends with a barrier: the tile is ready
    const int64_t own_label = shared.own->label[r];
    Stat tile_max = -INFINITY;
    for (int k = 0; k < kColumns / kThreadsPerRow; ++k) {
      const int o = q + k * kThreadsPerRow;
      const int64_t j = other0 + o;
      if (is_anchor && j < p.columns && j != i) {
        const Stat s = shared.scores[r * Policy::kScoreStride + o] * p.inverse_temperature;
        tile_max = maximum(tile_max, s);
        if (j < p.positive_columns && shared.other->label[o] == own_label) {
          positive_sum += static_cast<double>(s);
          ++positive_count;
        }
      }
    }
    if (tile_max > -INFINITY) {  // some valid column: rescale once to the new maximum, then add
      const Stat new_max = maximum(running_max, tile_max);
      Stat sum = running_sum * exponential(running_max - new_max);  // exp(-inf) = 0 on the first tile
      for (int k = 0; k < kColumns / kThreadsPerRow; ++k) {
        const int o = q + k * kThreadsPerRow;
        const int64_t j = other0 + o;
        if (j < p.columns && j != i)
          sum += exponential(shared.scores[r * Policy::kScoreStride + o] * p.inverse_temperature - new_max);
      }
      running_max = new_max;
      running_sum = sum;
    }
    __syncthreads();  // the next tile overwrites the scores and the other side
  }

  // Merge the kThreadsPerRow partial log-sum-exps of each row (adjacent lanes; every thread
  // of the block takes part, so the full-mask shuffles are legal).
  for (int offset = kThreadsPerRow / 2; offset > 0; offset /= 2) {
    const Stat other_max = __shfl_xor_sync(0xffffffffu, running_max, offset);
    const Stat other_sum = __shfl_xor_sync(0xffffffffu, running_sum, offset);
    const Stat new_max = maximum(running_max, other_max);
    const Stat mine = running_max == -INFINITY ? Stat(0) : running_sum * exponential(running_max - new_max);
    const Stat theirs = other_max == -INFINITY ? Stat(0) : other_sum * exponential(other_max - new_max);
    running_max = new_max;
    running_sum = mine + theirs;
    positive_sum += __shfl_xor_sync(0xffffffffu, positive_sum, offset);
    positive_count += __shfl_xor_sync(0xffffffffu, positive_count, offset);
  }
  if (q == 0 && is_anchor) {
    // R >= 2: every anchor has another column, so running_sum >= 1 (its maximum adds exp(0)).
    p.log_sum_exp[i] = running_max + logarithm(running_sum);
    p.positive_sum[i] = static_cast<Stat>(positive_sum);
    p.positive_count[i] = positive_count;
  }
}

// Pass A (kColumnPass = false): grad_z[k] = coefficient * sum_j G'_kj z_j for anchors k < A.
// Pass B (kColumnPass = true): grad_z[k] += coefficient * sum_i G'_ik z_i for k < wanted
// (rows k >= A, which pass A does not write, start from 0).
template <class Policy, bool kColumnPass>
__global__ void __launch_bounds__(Policy::kThreads)
    gradient_kernel(const TileProblem<typename Policy::Z, typename Policy::Stat> p) {
  using Stat = typename Policy::Stat;
  constexpr int kRows = Policy::kRows, kColumns = Policy::kColumns;
  constexpr int kThreadsPerRow = Policy::kThreads / kRows;
  static_assert(Policy::kThreads % kRows == 0 && kColumns % kThreadsPerRow == 0);
  const Shared<Policy> shared(true);
  const int r = threadIdx.x / kThreadsPerRow, q = threadIdx.x % kThreadsPerRow;
  const int64_t own0 = int64_t{blockIdx.x} * kRows;
  const int64_t value0 = int64_t{blockIdx.y} * Policy::kValues;
  const int64_t own_limit = kColumnPass ? p.wanted : p.anchors;
  const int64_t other_limit = kColumnPass ? p.anchors : p.columns;
  // The anchors' side carries lse and 1 / |P|: the own rows in pass A, the other in pass B.
  load_side<Policy::kThreads>(*shared.own, p, own0, !kColumnPass);

  typename Policy::Accumulator accumulator;
  Policy::clear(accumulator);
  for (int64_t other0 = 0; other0 < other_limit; other0 += kColumns) {
    load_side<Policy::kThreads>(*shared.other, p, other0, kColumnPass);
    Policy::compute_scores(shared, p, own0, other0);  // ends with a barrier
    const int64_t own_index = own0 + r;
    for (int k = 0; k < kColumns / kThreadsPerRow; ++k) {
      const int o = q + k * kThreadsPerRow;
      const int64_t other_index = other0 + o;
      const int64_t anchor = kColumnPass ? other_index : own_index;
      const int64_t column = kColumnPass ? own_index : other_index;
      const Stat lse = kColumnPass ? shared.other->log_sum_exp[o] : shared.own->log_sum_exp[r];
      const Stat inverse_count = kColumnPass ? shared.other->inverse_count[o] : shared.own->inverse_count[r];
      Stat weight = 0;
      // inverse_count > 0 only for counted anchors i < A; column < C keeps padding out.
      if (inverse_count > 0 && own_index < own_limit && other_index < other_limit && anchor != column) {
        const Stat s = shared.scores[r * Policy::kScoreStride + o] * p.inverse_temperature;
        weight = exponential(s - lse);
        if (column < p.positive_columns && shared.own->label[r] == shared.other->label[o]) weight -= inverse_count;
      }
      Policy::set_weight(shared, r, o, weight);  // each thread rewrites only the scores it read
    }
    Policy::load_values(shared, p, other0, value0);
    __syncthreads();  // weights and values complete
    Policy::accumulate(accumulator, shared);
    __syncthreads();  // the next tile overwrites them
  }

  const int32_t counted = *p.counted_anchors;
  const Stat coefficient =
      counted > 0 ? *p.grad_loss * p.loss_scale / static_cast<Stat>(counted) * p.inverse_temperature : Stat(0);
  Policy::template store_gradient<kColumnPass>(accumulator, shared, p, own0, value0, own_limit, coefficient);
}

// ---- the exact path: FP32 (or FP64) FMAs on CUDA cores ---------------------------------------
// 256 threads as a 16 x 16 grid; thread (ty, tx) owns scores (ty + 16a, tx + 16b), a, b < 4,
// so the 16 lanes that share ty read one broadcast value of the own operand and 16
// consecutive values of the other: no bank conflicts. The D chunks are stored transposed
// ([k][row], stride kRows + 1), which makes those reads contiguous.
template <class S>
struct SimtTiles {
  using Z = S;
  using Stat = S;
  static constexpr int kThreads = 256;
  static constexpr int kRows = 64, kColumns = 64;  // a score tile
  static constexpr int kChunk = 16;                // D per step of the score product
  static constexpr int kValues = 128;              // D outputs per backward block
  static constexpr int kChunkStride = kRows + 1;
  static constexpr int kScoreStride = kColumns + 1;
  static constexpr int kChunkElements = kChunk * kChunkStride;
  static constexpr int kScoreElements = kRows * kScoreStride;
  static constexpr int kWeightElements = 0;  // weights overwrite the scores
  static constexpr int kValueElements = kColumns * kValues;
  static constexpr size_t kOutputBytes = 0;  // the epilogue writes from registers
  static constexpr int kValuesPerThread = kValues / 16;
  static_assert(kRows == 64 && kColumns == 64 && kThreads == 256, "the 16 x 16 thread grid covers 64 x 64");

  struct Accumulator {
    S value[4][kValuesPerThread];
  };

  __device__ static void clear(Accumulator& a) {
    for (int x = 0; x < 4; ++x)
      for (int y = 0; y < kValuesPerThread; ++y) a.value[x][y] = 0;
  }

  // scores[r][o] = z[own0 + r] . z[other0 + o] (0 past the last row); ends with a barrier.
  __device__ static void compute_scores(const Shared<SimtTiles>& shared, const TileProblem<S, S>& p, int64_t own0,
                                        int64_t other0) {
    const int t = threadIdx.x, ty = t / 16, tx = t % 16;
    S c[4][4];
    for (int x = 0; x < 4; ++x)
      for (int y = 0; y < 4; ++y) c[x][y] = 0;
    for (int64_t d0 = 0; d0 < p.dim; d0 += kChunk) {
      // Thread t loads dimension d0 + t % 16 of rows t / 16 + 16 * pass: 16 consecutive
      // values of a row per half-warp, coalesced.
      const int k = t % kChunk;
      const int64_t d = d0 + k;
      for (int pass = 0; pass < kRows / (kThreads / kChunk); ++pass) {
        const int row = t / kChunk + pass * (kThreads / kChunk);
        const int64_t own_row = own0 + row, other_row = other0 + row;
        shared.own_chunk[k * kChunkStride + row] = own_row < p.columns && d < p.dim ? p.z[own_row * p.dim + d] : S(0);
        shared.other_chunk[k * kChunkStride + row] =
            other_row < p.columns && d < p.dim ? p.z[other_row * p.dim + d] : S(0);
      }
      __syncthreads();
      for (int kk = 0; kk < kChunk; ++kk) {
        S a[4], b[4];
        for (int x = 0; x < 4; ++x) a[x] = shared.own_chunk[kk * kChunkStride + ty + 16 * x];
        for (int y = 0; y < 4; ++y) b[y] = shared.other_chunk[kk * kChunkStride + tx + 16 * y];
        for (int x = 0; x < 4; ++x)
          for (int y = 0; y < 4; ++y) c[x][y] += a[x] * b[y];
      }
      __syncthreads();  // the next chunk overwrites own_chunk and other_chunk
    }
    for (int x = 0; x < 4; ++x)
      for (int y = 0; y < 4; ++y) shared.scores[(ty + 16 * x) * kScoreStride + tx + 16 * y] = c[x][y];
    __syncthreads();
  }

  __device__ static void set_weight(const Shared<SimtTiles>& shared, int r, int o, S weight) {
    shared.scores[r * kScoreStride + o] = weight;
  }

  // values[o][c] = z[other0 + o][value0 + c] (0 outside).
  __device__ static void load_values(const Shared<SimtTiles>& shared, const TileProblem<S, S>& p, int64_t other0,
                                     int64_t value0) {
    for (int index = threadIdx.x; index < kColumns * kValues; index += kThreads) {
      const int o = index / kValues, c = index % kValues;
      const int64_t row = other0 + o, d = value0 + c;
      shared.values[index] = row < p.columns && d < p.dim ? p.z[row * p.dim + d] : S(0);
    }
  }

  // accumulator[ty + 16a][tx + 16b] += sum_o weights[ty + 16a][o] values[o][tx + 16b].
  __device__ static void accumulate(Accumulator& a, const Shared<SimtTiles>& shared) {
    const int t = threadIdx.x, ty = t / 16, tx = t % 16;
    for (int o = 0; o < kColumns; ++o) {
      S g[4], v[kValuesPerThread];
      for (int x = 0; x < 4; ++x) g[x] = shared.scores[(ty + 16 * x) * kScoreStride + o];
      for (int y = 0; y < kValuesPerThread; ++y) v[y] = shared.values[o * kValues + tx + 16 * y];
      for (int x = 0; x < 4; ++x)
        for (int y = 0; y < kValuesPerThread; ++y) a.value[x][y] += g[x] * v[y];
    }
  }

  template <bool kColumnPass>
  __device__ static void store_gradient(const Accumulator& a, const Shared<SimtTiles>&, const TileProblem<S, S>& p,
                                        int64_t own0, int64_t value0, int64_t own_limit, S coefficient) {
    const int t = threadIdx.x, ty = t / 16, tx = t % 16;
    for (int x = 0; x < 4; ++x) {
      const int64_t k = own0 + ty + 16 * x;
      if (k >= own_limit) continue;
      for (int y = 0; y < kValuesPerThread; ++y) {
        const int64_t d = value0 + tx + 16 * y;
        if (d >= p.dim) continue;
        S value = coefficient * a.value[x][y];
        if (kColumnPass && k < p.anchors) value += p.grad_z[k * p.dim + d];  // pass A's term
        p.grad_z[k * p.dim + d] = value;
      }
    }
  }
};

// ---- launch sizes (host) ---------------------------------------------------------------------

template <class Policy>
constexpr size_t statistics_shared_bytes() {
  return SharedLayout<Policy>::make(false).total;
}
template <class Policy>
constexpr size_t gradient_shared_bytes() {
  return SharedLayout<Policy>::make(true).total;
}
inline unsigned int blocks_for(int64_t count, int per_block) {
  return static_cast<unsigned int>((count + per_block - 1) / per_block);
}

// The tile kernels' view of a problem whose rows are already normalised into z.
template <class Z, class Stat>
TileProblem<Z, Stat> make_tile_problem(const ContrastiveProblem& problem, const Z* z, Stat* log_sum_exp,
                                       int32_t* positive_count) {
  TileProblem<Z, Stat> p;
  p.z = z;
  p.rows = problem.rows;
  p.columns = problem.columns();
  p.anchors = problem.anchors;
  p.dim = problem.dim;
  p.labels = problem.labels;
  p.label_count = problem.labels != nullptr ? problem.label_count : 1;
  p.positive_columns = problem.positive_columns();
  p.images = problem.images();
  p.inverse_temperature = static_cast<Stat>(1.0 / problem.temperature);
  p.log_sum_exp = log_sum_exp;
  p.positive_count = positive_count;
  p.loss_scale = static_cast<Stat>(problem.loss_scale);
  return p;
}

}  // namespace visrep::kernels::cuda::contrastive_detail
