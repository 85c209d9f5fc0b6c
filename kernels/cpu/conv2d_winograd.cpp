// Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray 2016, "Fast Algorithms for
// Convolutional Neural Networks", section 4.1): for each 4x4 tile d of the zero-padded input
// (tiles overlap by 2) and each 3x3 filter g, the 2x2 output tile is
//   Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A,
//   G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],   A^T = [1 1 1 0; 0 1 -1 -1],
// 16 multiplications per output tile and channel pair instead of im2col's 36. Summed over the
// input channels, the elementwise products become 16 GEMMs, one per position xi of the 4x4
// transformed tile:
//   M[xi] (C_out, T) = U[xi] (C_out, C_in) @ V[xi] (C_in, T),  U = G g G^T,  V = B^T d B,
// T the tiles of a chunk of images. The transforms are additions only (G's halves aside), so
// the rounding is a few ulps of the tiles' magnitudes; tests/unit/test_conv2d_kernels.cpp holds
// the result to the direct loops.
//
// Why it is shaped this way (as conv2d.cpp's im2col path, whose threading it shares):
// - The batch is split across threads, each transforming and multiplying its own images
//   with single-threaded GEMMs; the filter transform U is made once per call, shared.
//   (So results depend on the thread count only through how the filter gradient's sum is
//   cut, as im2col's does.)
// - A chunk gathers about kTargetTiles tiles (several images where the map is small), so
//   each of the 16 GEMMs is wide enough for BLAS (C_out x C_in x 512 runs near sgemm's peak
//   here from 64 channels on), and V and M (16 x channels x T floats each) stay in the
//   last-level cache between the transform and the GEMM.
// - Each channel plane is first rearranged into a zero-bordered plane rounded up to whole
//   tiles, split by row and column parity (gather_tile_columns), so every tile reads in
//   bounds whatever the map's size and the input transform is one vectorised loop over the
//   image's tiles; output tiles that hang over an odd edge are computed whole and only
//   their in-bounds part kept.
// - The input gradient of a stride-1, padding-1 3x3 convolution is such a convolution of the
//   output gradient (conv2d_winograd.h), so both run through convolve(); the turned filters'
//   transform is the forward's with its positions permuted and its matrices transposed
//   (flipped() below), so both passes share one vectorised filter transform, and the input
//   gradient's GEMMs read U transposed. This replaces im2col's K x P gradient columns and
//   their col2im.
// - The filter gradient is the adjoint of the forward pass, Y being linear in U:
//   dU[xi] (C_out, C_in) = sum over tiles of D[xi] (C_out, T) @ V[xi]^T (T, C_in) with
//   D = A dY A^T, then dW = G^T dU G; each worker accumulates its own dU over its chunks
//   (the GEMMs' beta), the workers' are summed in order, then transformed back once.
#include "kernels/cpu/conv2d_winograd.h"

#include <omp.h>

#include <algorithm>
#include <exception>

#include "kernels/cpu/linear_algebra.h"
#include "kernels/cpu/scratch.h"

namespace visrep::kernels::cpu {
namespace {

constexpr int64_t kWinogradMinChannels = 16;
constexpr int64_t kTargetTiles = 512;
constexpr int64_t kPositions = 16;  // the 4x4 transformed tile

// The convolution convolve() computes: `inputs` channels in, `outputs` channels out, over
// planes of height x width, with U already transformed ([xi][output][input]).
struct Problem {
  int64_t batch, inputs, outputs, height, width;
  int64_t tiles_h, tiles_w, tiles_per_image;
};

Problem make_problem(int64_t batch, int64_t inputs, int64_t outputs, int64_t height, int64_t width) {
  Problem p{batch, inputs, outputs, height, width, (height + 1) / 2, (width + 1) / 2, 0};
  p.tiles_per_image = p.tiles_h * p.tiles_w;
  return p;
}

// U[xi][o][c] = (G g G^T)[xi] for the filter g = w[o][c] of output o and input c. One
// filter row (C_in x 9) at a time is first turned into 9 runs of C_in, so the transform
// vectorises over c with contiguous loads and stores.
void transform_filters(const float* weight, int64_t outputs, int64_t inputs, float* u) {
  const int64_t block = outputs * inputs;
#pragma omp parallel if (block >= 4096)
  {
    float* taps = thread_scratch<float>(ScratchSlot::kConvPlane, 9 * inputs);  // [i * 3 + j][c]
#pragma omp for schedule(static)
    for (int64_t o = 0; o < outputs; ++o) {
      const float* w = weight + o * inputs * 9;
      for (int64_t c = 0; c < inputs; ++c)
        for (int tap = 0; tap < 9; ++tap) taps[tap * inputs + c] = w[c * 9 + tap];
      float* out = u + o * inputs;
#pragma omp simd
      for (int64_t c = 0; c < inputs; ++c) {
        float g[3][3];
        for (int i = 0; i < 3; ++i)
          for (int j = 0; j < 3; ++j) g[i][j] = taps[(i * 3 + j) * inputs + c];
        float gg[4][3];  // G g
        for (int j = 0; j < 3; ++j) {
          gg[0][j] = g[0][j];
          gg[1][j] = 0.5f * (g[0][j] + g[1][j] + g[2][j]);
          gg[2][j] = 0.5f * (g[0][j] - g[1][j] + g[2][j]);
          gg[3][j] = g[2][j];
        }
        for (int i = 0; i < 4; ++i) {  // (G g) G^T, row i
          out[(i * 4 + 0) * block + c] = gg[i][0];
          out[(i * 4 + 1) * block + c] = 0.5f * (gg[i][0] + gg[i][1] + gg[i][2]);
          out[(i * 4 + 2) * block + c] = 0.5f * (gg[i][0] - gg[i][1] + gg[i][2]);
          out[(i * 4 + 3) * block + c] = gg[i][2];
        }
      }
    }
  }
}

// The position of the input gradient's transformed filters in the forward's U. The filter
// turned by 180 degrees is J g J (J reverses the order of 3 elements), and G J = P G with P
// exchanging the first and last of 4 rows, so G (J g J) G^T = P (G g G^T) P^T: position
// (a, b) of the turned filter's transform is position (p(a), p(b)) of the filter's, p
// exchanging 0 and 3. With the channel axes swapped as well, U'[xi] = U[flipped(xi)]^T.
int64_t flipped(int64_t xi) {
  constexpr int64_t p[4] = {3, 1, 2, 0};
  return p[xi / 4] * 4 + p[xi % 4];
}

// One channel plane, zero-bordered and rounded up to whole tiles (padded[r][s] = plane[r - 1][s - 1]
// inside, 0 outside), rearranged so that every value a tile reads sits at the tile's own
// index t = th * tiles_w + tw: columns[4 * q + b][t] = padded[2 * th + q][2 * tw + b] for the
// row parity q and the tile column b < 4, t < (tiles_h + 1) * tiles_w, so tile row a is
// columns[4 * (a % 2) + b][t + (a / 2) * tiles_w]. Each of the 8 arrays is then read as
// one contiguous run over all tiles of the image, and the transform vectorises over tiles
// with no per-row bookkeeping.
void gather_tile_columns(const Problem& p, const float* plane, float* columns) {
  const int64_t length = (p.tiles_h + 1) * p.tiles_w;
  std::fill(columns, columns + 8 * length, 0.0f);
  for (int64_t r = 0; r < p.height; ++r) {
    const float* row = plane + r * p.width;
    const int64_t padded_row = r + 1, q = padded_row % 2, at = (padded_row / 2) * p.tiles_w;
    float* b0 = columns + (4 * q + 0) * length + at;  // padded column 2 tw:     plane column 2 tw - 1
    float* b1 = columns + (4 * q + 1) * length + at;  // padded column 2 tw + 1: plane column 2 tw
    float* b2 = columns + (4 * q + 2) * length + at;  // padded column 2 tw + 2: plane column 2 tw + 1
    float* b3 = columns + (4 * q + 3) * length + at;  // padded column 2 tw + 3: plane column 2 tw + 2
    const int64_t pairs = p.width / 2;  // plane columns 2i and 2i + 1
#pragma omp simd
    for (int64_t i = 0; i < pairs; ++i) {
      b1[i] = row[2 * i];
      b2[i] = row[2 * i + 1];
    }
    if (p.width % 2 != 0) b1[pairs] = row[2 * pairs];
    for (int64_t tw = 1; tw < p.tiles_w; ++tw) b0[tw] = b2[tw - 1];
    for (int64_t tw = 0; tw + 1 < p.tiles_w; ++tw) b3[tw] = b1[tw + 1];
  }
}

// V[xi][k][t] = (B^T d B)[xi] for every tile t of the chunk's images and input channel k;
// rows of T tiles, positions inputs * T apart.
void transform_input(const Problem& p, const float* x, int64_t images, float* v) {
  const int64_t tiles = images * p.tiles_per_image, position_stride = p.inputs * tiles;
  const int64_t length = (p.tiles_h + 1) * p.tiles_w, next = p.tiles_w;
  float* columns = thread_scratch<float>(ScratchSlot::kConvPlane, 8 * length);
  const float* c0 = columns;  // even padded rows, tile columns 0..3, then odd rows
  const float* c1 = c0 + length;
  const float* c2 = c1 + length;
  const float* c3 = c2 + length;
  const float* c4 = c3 + length;
  const float* c5 = c4 + length;
  const float* c6 = c5 + length;
  const float* c7 = c6 + length;
  for (int64_t k = 0; k < p.inputs; ++k) {
    for (int64_t j = 0; j < images; ++j) {
      gather_tile_columns(p, x + (j * p.inputs + k) * p.height * p.width, columns);
      float* out = v + k * tiles + j * p.tiles_per_image;
#pragma omp simd
      for (int64_t t = 0; t < p.tiles_per_image; ++t) {
        // Tile rows 0..3 are padded rows 2 th, 2 th + 1, 2 th + 2, 2 th + 3.
        const float d[4][4] = {{c0[t], c1[t], c2[t], c3[t]},
                               {c4[t], c5[t], c6[t], c7[t]},
                               {c0[t + next], c1[t + next], c2[t + next], c3[t + next]},
                               {c4[t + next], c5[t + next], c6[t + next], c7[t + next]}};
        float r[4][4];  // B^T d: rows d0 - d2, d1 + d2, d2 - d1, d1 - d3
        for (int b = 0; b < 4; ++b) {
          r[0][b] = d[0][b] - d[2][b];
          r[1][b] = d[1][b] + d[2][b];
          r[2][b] = d[2][b] - d[1][b];
          r[3][b] = d[1][b] - d[3][b];
        }
        for (int a = 0; a < 4; ++a) {  // (B^T d) B, row a
          out[(a * 4 + 0) * position_stride + t] = r[a][0] - r[a][2];
          out[(a * 4 + 1) * position_stride + t] = r[a][1] + r[a][2];
          out[(a * 4 + 2) * position_stride + t] = r[a][2] - r[a][1];
          out[(a * 4 + 3) * position_stride + t] = r[a][1] - r[a][3];
        }
      }
    }
  }
}

// y[m] tiles = A^T M A from M[xi][m][t] (+ bias[m]). Each tile row's two output rows are
// written whole (2 * tiles_w values) into `rows`, then their in-bounds part copied to y.
void transform_output(const Problem& p, const float* products, int64_t images, const float* bias, float* y) {
  const int64_t tiles = images * p.tiles_per_image, position_stride = p.outputs * tiles;
  const int64_t plane = p.height * p.width, full_width = 2 * p.tiles_w;
  float* rows = thread_scratch<float>(ScratchSlot::kConvPlane, 2 * full_width);
  for (int64_t m = 0; m < p.outputs; ++m) {
    const float b = bias != nullptr ? bias[m] : 0.0f;
    for (int64_t j = 0; j < images; ++j) {
      const float* in = products + m * tiles + j * p.tiles_per_image;
      float* out = y + (j * p.outputs + m) * plane;
      for (int64_t th = 0; th < p.tiles_h; ++th) {
        const float* t = in + th * p.tiles_w;
        float* top = rows;
        float* bottom = rows + full_width;
#pragma omp simd
        for (int64_t tw = 0; tw < p.tiles_w; ++tw) {
          float s[2][4];  // A^T X: rows X0 + X1 + X2, X1 - X2 - X3
          for (int c = 0; c < 4; ++c) {
            const float x0 = t[(0 * 4 + c) * position_stride + tw], x1 = t[(1 * 4 + c) * position_stride + tw];
            const float x2 = t[(2 * 4 + c) * position_stride + tw], x3 = t[(3 * 4 + c) * position_stride + tw];
            s[0][c] = x0 + x1 + x2;
            s[1][c] = x1 - x2 - x3;
          }
          top[2 * tw] = s[0][0] + s[0][1] + s[0][2] + b;  // (A^T X) A
          top[2 * tw + 1] = s[0][1] - s[0][2] - s[0][3] + b;
          bottom[2 * tw] = s[1][0] + s[1][1] + s[1][2] + b;
          bottom[2 * tw + 1] = s[1][1] - s[1][2] - s[1][3] + b;
        }
        std::copy(top, top + p.width, out + 2 * th * p.width);
        if (2 * th + 1 < p.height) std::copy(bottom, bottom + p.width, out + (2 * th + 1) * p.width);
      }
    }
  }
}

// How many threads split a batch (each gets an image at least), and the images per chunk.
int worker_count(int64_t batch) {
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  return static_cast<int>(std::clamp<int64_t>(batch, 1, threads));
}

int64_t chunk_images(const Problem& p, int workers) {
  const int64_t images_per_worker = (p.batch + workers - 1) / workers;
  return std::clamp<int64_t>((kTargetTiles + p.tiles_per_image - 1) / p.tiles_per_image, 1, images_per_worker);
}

// Calls work(first_image, end_image, worker) on each of `workers` threads, over contiguous
// shares of the batch; returns how many ran (OpenMP may grant fewer).
template <class Work>
int run_workers(int64_t batch, int workers, Work&& work) {
  if (workers == 1) {
    work(int64_t{0}, batch, 0);
    return 1;
  }
  int workers_run = 1;
  std::exception_ptr failure;
#pragma omp parallel num_threads(workers)
  {
    const int count = omp_get_num_threads(), worker = omp_get_thread_num();
    if (worker == 0) workers_run = count;
    try {
      work(batch * worker / count, batch * (worker + 1) / count, worker);
    } catch (...) {
#pragma omp critical(visrep_conv2d_winograd_failure)
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);
  return workers_run;
}

// The filter gradient's side (the adjoint of the forward's transforms):
// D[xi][m][t] = (A dY A^T)[xi] for each 2x2 output-gradient tile dY (outputs beyond the map
// are 0: they do not exist), A = (A^T)^T.
void transform_output_gradient(const Problem& p, const float* dy, int64_t images, float* d) {
  const int64_t tiles = images * p.tiles_per_image, position_stride = p.outputs * tiles;
  const int64_t plane = p.height * p.width, rows_count = 2 * p.tiles_h;
  // The plane's rows split by column parity, rounded up to whole tiles with zeros.
  float* even = thread_scratch<float>(ScratchSlot::kConvPlane, 2 * rows_count * p.tiles_w);
  float* odd = even + rows_count * p.tiles_w;
  for (int64_t m = 0; m < p.outputs; ++m) {
    for (int64_t j = 0; j < images; ++j) {
      const float* source = dy + (j * p.outputs + m) * plane;
      std::fill(even, even + 2 * rows_count * p.tiles_w, 0.0f);
      for (int64_t r = 0; r < p.height; ++r) {
        const float* row = source + r * p.width;
        float* e = even + r * p.tiles_w;
        float* o = odd + r * p.tiles_w;
        const int64_t pairs = p.width / 2;
#pragma omp simd
        for (int64_t i = 0; i < pairs; ++i) {
          e[i] = row[2 * i];
          o[i] = row[2 * i + 1];
        }
        if (p.width % 2 != 0) e[pairs] = row[2 * pairs];
      }
      float* out = d + m * tiles + j * p.tiles_per_image;
      for (int64_t th = 0; th < p.tiles_h; ++th) {
        const float* e0 = even + 2 * th * p.tiles_w;
        const float* e1 = e0 + p.tiles_w;
        const float* o0 = odd + 2 * th * p.tiles_w;
        const float* o1 = o0 + p.tiles_w;
        float* row = out + th * p.tiles_w;
#pragma omp simd
        for (int64_t tw = 0; tw < p.tiles_w; ++tw) {
          const float y[2][2] = {{e0[tw], o0[tw]}, {e1[tw], o1[tw]}};
          float r[4][2];  // A dY: rows dY0, dY0 + dY1, dY0 - dY1, -dY1
          for (int b = 0; b < 2; ++b) {
            r[0][b] = y[0][b];
            r[1][b] = y[0][b] + y[1][b];
            r[2][b] = y[0][b] - y[1][b];
            r[3][b] = -y[1][b];
          }
          for (int a = 0; a < 4; ++a) {  // (A dY) A^T, row a
            row[(a * 4 + 0) * position_stride + tw] = r[a][0];
            row[(a * 4 + 1) * position_stride + tw] = r[a][0] + r[a][1];
            row[(a * 4 + 2) * position_stride + tw] = r[a][0] - r[a][1];
            row[(a * 4 + 3) * position_stride + tw] = -r[a][1];
          }
        }
      }
    }
  }
}

// grad_weight[o][c] = G^T dU[o][c] G (3x3 from 4x4), dU[xi][o][c]: the adjoint of
// transform_filters, vectorised over c the same way.
void transform_filter_gradient(const float* du, int64_t outputs, int64_t inputs, float* grad_weight) {
  const int64_t block = outputs * inputs;
#pragma omp parallel if (block >= 4096)
  {
    float* taps = thread_scratch<float>(ScratchSlot::kConvPlane, 9 * inputs);  // [i * 3 + j][c]
#pragma omp for schedule(static)
    for (int64_t o = 0; o < outputs; ++o) {
      const float* in = du + o * inputs;
#pragma omp simd
      for (int64_t c = 0; c < inputs; ++c) {
        float x[4][4];
        for (int a = 0; a < 4; ++a)
          for (int b = 0; b < 4; ++b) x[a][b] = in[(a * 4 + b) * block + c];
        float t[3][4];  // G^T X: rows X0 + (X1 + X2) / 2, (X1 - X2) / 2, (X1 + X2) / 2 + X3
        for (int b = 0; b < 4; ++b) {
          t[0][b] = x[0][b] + 0.5f * (x[1][b] + x[2][b]);
          t[1][b] = 0.5f * (x[1][b] - x[2][b]);
          t[2][b] = 0.5f * (x[1][b] + x[2][b]) + x[3][b];
        }
        for (int i = 0; i < 3; ++i) {  // (G^T X) G, row i
          taps[(i * 3 + 0) * inputs + c] = t[i][0] + 0.5f * (t[i][1] + t[i][2]);
          taps[(i * 3 + 1) * inputs + c] = 0.5f * (t[i][1] - t[i][2]);
          taps[(i * 3 + 2) * inputs + c] = 0.5f * (t[i][1] + t[i][2]) + t[i][3];
        }
      }
      float* w = grad_weight + o * inputs * 9;
      for (int64_t c = 0; c < inputs; ++c)
        for (int tap = 0; tap < 9; ++tap) w[c * 9 + tap] = taps[tap * inputs + c];
    }
  }
}

// y (batch, outputs, H, W) = the convolution of x (batch, inputs, H, W) with the transformed
// filters u, split over the threads by images: u[xi] is (outputs, inputs), or for the input
// gradient (turned = true) the forward's transform, (inputs, outputs), read as
// U[flipped(xi)]^T.
void convolve(const Problem& p, const float* x, const float* u, bool turned, const float* bias, float* y) {
  const int workers = worker_count(p.batch);
  const int64_t images_per_chunk = chunk_images(p, workers);
  const int64_t in_image = p.inputs * p.height * p.width, out_image = p.outputs * p.height * p.width;

  auto work = [&](int64_t first_image, int64_t end_image) {
    for (int64_t n0 = first_image; n0 < end_image; n0 += images_per_chunk) {
      const int64_t images = std::min(images_per_chunk, end_image - n0);
      const int64_t tiles = images * p.tiles_per_image;
      float* v = thread_scratch<float>(ScratchSlot::kConvColumns, kPositions * p.inputs * tiles);
      float* products = thread_scratch<float>(ScratchSlot::kConvWide, kPositions * p.outputs * tiles);
      transform_input(p, x + n0 * in_image, images, v);
      const GemmShape shape{p.outputs, tiles, p.inputs, turned, false};
      for (int64_t xi = 0; xi < kPositions; ++xi)
        gemm<float>(shape, 1.0f, u + (turned ? flipped(xi) : xi) * p.outputs * p.inputs, turned ? p.outputs : p.inputs,
                    v + xi * p.inputs * tiles, tiles, 0.0f, products + xi * p.outputs * tiles, tiles);
      transform_output(p, products, images, bias, y + n0 * out_image);
    }
  };
  run_workers(p.batch, workers, [&](int64_t first, int64_t end, int) { work(first, end); });
}

}  // namespace

bool winograd_applies(const Conv2dGeometry& g) {
  const bool shape = g.kernel_height == 3 && g.kernel_width == 3 && g.stride_height == 1 && g.stride_width == 1 &&
                     g.padding_height == 1 && g.padding_width == 1 && g.dilation_height == 1 &&
                     g.dilation_width == 1 && g.groups == 1 && g.in_height >= 1 && g.in_width >= 1;
  const bool wide = g.in_channels >= kWinogradMinChannels && g.out_channels >= kWinogradMinChannels;
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  return shape && wide && g.batch >= threads;
}

void winograd_forward(const Conv2dGeometry& g, const float* input, const float* weight, const float* bias,
                      float* output) {
  const Problem p = make_problem(g.batch, g.in_channels, g.out_channels, g.in_height, g.in_width);
  float* u = thread_scratch<float>(ScratchSlot::kConvFilters, kPositions * p.outputs * p.inputs);
  transform_filters(weight, p.outputs, p.inputs, u);
  convolve(p, input, u, false, bias, output);
}

void winograd_backward_input(const Conv2dGeometry& g, const float* grad_output, const float* weight,
                             float* grad_input) {
  const Problem p = make_problem(g.batch, g.out_channels, g.in_channels, g.in_height, g.in_width);
  float* u = thread_scratch<float>(ScratchSlot::kConvFilters, kPositions * p.outputs * p.inputs);
  transform_filters(weight, g.out_channels, g.in_channels, u);  // the forward's U
  convolve(p, grad_output, u, true, nullptr, grad_input);
}

void winograd_backward_weight(const Conv2dGeometry& g, const float* grad_output, const float* input,
                              float* grad_weight) {
  const Problem p = make_problem(g.batch, g.in_channels, g.out_channels, g.in_height, g.in_width);
  const int workers = worker_count(p.batch);
  const int64_t images_per_chunk = chunk_images(p, workers);
  const int64_t in_image = p.inputs * p.height * p.width, out_image = p.outputs * p.height * p.width;
  const int64_t block = p.outputs * p.inputs, transformed = kPositions * block;
  // dU[xi] (C_out, C_in) = sum over tiles of D[xi] (C_out, T) @ V[xi]^T (T, C_in): one
  // accumulator per worker, summed in worker order after.
  float* partials = thread_scratch<float>(ScratchSlot::kConvPartialGrad, workers * transformed);
  const int workers_run = run_workers(p.batch, workers, [&](int64_t first_image, int64_t end_image, int worker) {
    float* du = partials + worker * transformed;
    for (int64_t n0 = first_image; n0 < end_image; n0 += images_per_chunk) {
      const int64_t images = std::min(images_per_chunk, end_image - n0);
      const int64_t tiles = images * p.tiles_per_image;
      float* v = thread_scratch<float>(ScratchSlot::kConvColumns, kPositions * p.inputs * tiles);
      float* d = thread_scratch<float>(ScratchSlot::kConvWide, kPositions * p.outputs * tiles);
      transform_input(p, input + n0 * in_image, images, v);
      transform_output_gradient(p, grad_output + n0 * out_image, images, d);
      const GemmShape shape{p.outputs, p.inputs, tiles, false, true};
      for (int64_t xi = 0; xi < kPositions; ++xi)
        gemm<float>(shape, 1.0f, d + xi * p.outputs * tiles, tiles, v + xi * p.inputs * tiles, tiles,
                    n0 == first_image ? 0.0f : 1.0f, du + xi * block, p.inputs);
    }
  });
  if (workers_run > 1) {
#pragma omp parallel for schedule(static) if (transformed >= 32768)
    for (int64_t i = 0; i < transformed; ++i) {
      float total = partials[i];
      for (int worker = 1; worker < workers_run; ++worker) total += partials[worker * transformed + i];
      partials[i] = total;
    }
  }
  transform_filter_gradient(partials, p.outputs, p.inputs, grad_weight);
}

}  // namespace visrep::kernels::cpu
