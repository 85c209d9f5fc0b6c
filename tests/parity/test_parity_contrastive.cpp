// Parity of the fused contrastive losses (kernels/cuda/contrastive*.cu{,h}) with the CPU
// reference (kernels/cpu/contrastive.cpp, double accumulation): the loss and the gradient of
// h (and of the extra negatives) for NT-Xent and SupCon, at row counts that are and are not
// multiples of the 64-row tiles (2N = 2, 6, 130, 4098), D = 3, 100, 128 (and 2048, the
// largest projection width the SimCLR and SupCon heads use: 16 value blocks in the backward grid), tau = 0.05 and 1.0.
//
// Tolerances (NMSE, parity.h). They were sized with a CPU emulation of each path's rounding
// (z and the backward weights rounded as the kernels round them, float accumulation) against
// the double reference, on the same kinds of inputs; each bound is ~10x the worst emulated
// error:
// - exact FP32 (SIMT FMAs): float z, float sums: NMSE <= 2e-12 emulated -> 1e-9.
// - float64: double on both sides, different summation order -> 1e-22.
// - TF32 (m16n16k8, 10-bit mantissas): scores carry ~1e-3 relative error, amplified by
//   1 / tau; the gradient sum_j p_ij z_j - mean_P z_p cancels (worst with one class and
//   D = 3): emulated <= 3e-6 for 2N <= 130 -> 3e-5; <= 8e-5 at 2N = 4098 -> 1e-3.
// - bf16 (z and the weights G' in bf16, 8-bit mantissas; the CPU sees the same rounded h):
//   emulated <= 2.4e-4 for 2N <= 130 -> 3e-3; <= 5e-3 at 2N = 4098, D = 3 -> 5e-2.
// Where to look for the rest of the family: kernels/cpu/contrastive.h.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "engine/cuda.h"
#include "tests/parity/parity.h"
#include "tests/support/mirrored_ranks.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

namespace {

using Inputs = ParityInputs;

enum class Path { Float64, ExactFloat32, Tf32, BFloat16 };

enum class Labels {
  None,        // NT-Xent (or SupCon without labels)
  PerImage,    // N labels from 5 classes, shared by both views
  Singletons,  // 2N per-row labels, some rows alone in their class (anchors without positives)
  OneClass,    // every row of one class
};

struct ContrastiveCase {
  bool supcon = false;
  int64_t rows = 6;  // 2N
  int64_t dim = 3;
  double tau = 1.0;
  Labels labels = Labels::None;
  ContrastMode mode = ContrastMode::All;
  int64_t extra_rows = 0;  // NT-Xent only; they get a gradient
  Path path = Path::ExactFloat32;
};

const char* path_name(Path path) {
  switch (path) {
    case Path::Float64: return "float64";
    case Path::ExactFloat32: return "fp32";
    case Path::Tf32: return "tf32";
    case Path::BFloat16: return "bf16";
  }
  return "?";
}

const char* labels_name(Labels labels) {
  switch (labels) {
    case Labels::None: return "no labels";
    case Labels::PerImage: return "per-image labels";
    case Labels::Singletons: return "per-row labels with singletons";
    case Labels::OneClass: return "one class";
  }
  return "?";
}

double tolerance_for(const ContrastiveCase& c) {
  const bool large = c.rows > 1000;
  switch (c.path) {
    case Path::Float64: return 1e-22;
    case Path::ExactFloat32: return 1e-9;
    case Path::Tf32: return large ? 1e-3 : 3e-5;
    case Path::BFloat16: return large ? 5e-2 : 3e-3;
  }
  return 0.0;
}

Tensor make_labels(Labels kind, int64_t rows, Generator& generator) {
  const int64_t images = rows / 2;
  switch (kind) {
    case Labels::None: return Tensor();
    case Labels::PerImage: return randint(0, 5, {images}, kInt64, generator);
    case Labels::OneClass: return zeros({images}, kInt64);
    case Labels::Singletons: {
      // Classes 0..3 shared by many rows, and every fifth row alone in a class of its own.
      std::vector<int64_t> values(static_cast<size_t>(rows));
      const Tensor shared = randint(0, 4, {rows}, kInt64, generator);
      for (int64_t j = 0; j < rows; ++j) values[j] = j % 5 == 2 ? 100 + j : shared.data<int64_t>()[j];
      return from_vector(values);
    }
  }
  return Tensor();
}

void check_contrastive(const ContrastiveCase& c) {
  std::ostringstream name_stream;
  name_stream << (c.supcon ? "supcon" : "nt_xent") << " 2N=" << c.rows << " D=" << c.dim << " tau=" << c.tau << " "
              << path_name(c.path);
  if (c.supcon) name_stream << ", " << labels_name(c.labels);
  if (c.mode == ContrastMode::One) name_stream << ", mode one";
  if (c.extra_rows > 0) name_stream << ", " << c.extra_rows << " extra";
  const std::string name = name_stream.str();
  INFO(name);
  const DType dtype = c.path == Path::Float64 ? kFloat64 : c.path == Path::BFloat16 ? kBFloat16 : kFloat32;
  // TF32 is the global switch the CUDA op reads; the CPU reference ignores it.
  const ScopedTf32 tf32(c.path == Path::Tf32);
  check_parity({.name = name,
                .make_inputs = [&](Generator& g) -> Inputs {
                  return {parity_leaf(random_normal({c.rows, c.dim}, g), dtype), make_labels(c.labels, c.rows, g),
                          c.extra_rows > 0 ? parity_leaf(random_normal({c.extra_rows, c.dim}, g), dtype) : Tensor()};
                },
                .function = [&](const Inputs& in) {
                  return c.supcon ? supcon_loss(in[0], in[1], c.tau, 0.07, c.mode) : nt_xent_loss(in[0], c.tau, in[2]);
                },
                .tolerance = tolerance_for(c)});
}

// Tile remainders in rows (2, 6, 130 = 2 x 64 + 2) and in D (3, 100).
struct Size {
  int64_t rows, dim;
};
const std::vector<Size> kSizes = {{2, 3}, {6, 100}, {130, 3}, {130, 100}, {130, 128}};

}  // namespace

TEST_CASE("nt_xent_loss exact fp32", "[gpu]") {
  for (const Size size : kSizes)
    for (const double tau : {0.05, 1.0})
      check_contrastive({.rows = size.rows, .dim = size.dim, .tau = tau, .path = Path::ExactFloat32});
  check_contrastive({.rows = 4098, .dim = 3, .tau = 0.05, .path = Path::ExactFloat32});
}

TEST_CASE("nt_xent_loss tf32", "[gpu]") {
  for (const Size size : kSizes)
    for (const double tau : {0.05, 1.0}) check_contrastive({.rows = size.rows, .dim = size.dim, .tau = tau, .path = Path::Tf32});
  check_contrastive({.rows = 4098, .dim = 128, .tau = 0.05, .path = Path::Tf32});
}

TEST_CASE("nt_xent_loss bf16", "[gpu]") {
  for (const Size size : kSizes)
    for (const double tau : {0.05, 1.0})
      check_contrastive({.rows = size.rows, .dim = size.dim, .tau = tau, .path = Path::BFloat16});
  check_contrastive({.rows = 4098, .dim = 3, .tau = 1.0, .path = Path::BFloat16});
}

TEST_CASE("nt_xent_loss float64", "[gpu]") {
  check_contrastive({.rows = 6, .dim = 3, .tau = 0.05, .path = Path::Float64});
  check_contrastive({.rows = 130, .dim = 100, .tau = 1.0, .path = Path::Float64});
}

TEST_CASE("nt_xent_loss with extra negatives and their gradient", "[gpu]") {
  // 70 extra rows: the columns run past 130 + 64 into a partial third tile.
  for (const Path path : {Path::ExactFloat32, Path::Tf32, Path::BFloat16, Path::Float64}) {
    check_contrastive({.rows = 6, .dim = 3, .tau = 0.05, .extra_rows = 5, .path = path});
    check_contrastive({.rows = 130, .dim = 100, .tau = 1.0, .extra_rows = 70, .path = path});
  }
}

TEST_CASE("nt_xent_loss with D = 2048", "[gpu]") {
  // The backward grid's second dimension covers D in 16 blocks of 128 values.
  check_contrastive({.rows = 70, .dim = 2048, .tau = 0.1, .path = Path::ExactFloat32});
  check_contrastive({.rows = 70, .dim = 2048, .tau = 0.1, .path = Path::Tf32});
}

TEST_CASE("supcon_loss exact fp32", "[gpu]") {
  for (const Labels labels : {Labels::None, Labels::PerImage, Labels::Singletons, Labels::OneClass})
    for (const Size size : kSizes)
      for (const double tau : {0.05, 1.0})
        check_contrastive(
            {.supcon = true, .rows = size.rows, .dim = size.dim, .tau = tau, .labels = labels, .path = Path::ExactFloat32});
  check_contrastive({.supcon = true, .rows = 4098, .dim = 3, .tau = 0.05, .labels = Labels::PerImage,
                     .path = Path::ExactFloat32});
  check_contrastive({.supcon = true, .rows = 4098, .dim = 3, .tau = 1.0, .labels = Labels::OneClass,
                     .path = Path::ExactFloat32});
}

TEST_CASE("supcon_loss tf32", "[gpu]") {
  for (const Labels labels : {Labels::PerImage, Labels::Singletons, Labels::OneClass})
    for (const Size size : kSizes)
      for (const double tau : {0.05, 1.0})
        check_contrastive(
            {.supcon = true, .rows = size.rows, .dim = size.dim, .tau = tau, .labels = labels, .path = Path::Tf32});
  check_contrastive(
      {.supcon = true, .rows = 4098, .dim = 128, .tau = 0.05, .labels = Labels::Singletons, .path = Path::Tf32});
}

TEST_CASE("supcon_loss bf16", "[gpu]") {
  for (const Labels labels : {Labels::PerImage, Labels::Singletons, Labels::OneClass})
    for (const Size size : kSizes)
      for (const double tau : {0.05, 1.0})
        check_contrastive(
            {.supcon = true, .rows = size.rows, .dim = size.dim, .tau = tau, .labels = labels, .path = Path::BFloat16});
  check_contrastive(
      {.supcon = true, .rows = 4098, .dim = 3, .tau = 1.0, .labels = Labels::OneClass, .path = Path::BFloat16});
}

TEST_CASE("supcon_loss contrast mode one", "[gpu]") {
  // Anchors are rows 0..N-1 only; rows N..2N-1 get their gradient from the column pass alone.
  for (const Path path : {Path::ExactFloat32, Path::Tf32, Path::BFloat16, Path::Float64})
    for (const Labels labels : {Labels::PerImage, Labels::OneClass})
      check_contrastive({.supcon = true,
                         .rows = 130,
                         .dim = 100,
                         .tau = 0.05,
                         .labels = labels,
                         .mode = ContrastMode::One,
                         .path = path});
}

TEST_CASE("supcon_loss with labelled extra rows (positives on other ranks)", "[gpu]") {
  // Per-column labels: the extra rows take part as positives of the anchors of their class.
  // 130 + 70 rows: the column pass's own side crosses from h's rows into the extra rows
  // within a 64-row tile.
  for (const Path path : {Path::ExactFloat32, Path::Tf32, Path::BFloat16, Path::Float64})
    for (const std::tuple<int64_t, int64_t, int64_t> size : {std::tuple<int64_t, int64_t, int64_t>{6, 5, 3}, {130, 70, 100}})
      for (const ContrastMode mode : {ContrastMode::All, ContrastMode::One}) {
        const int64_t rows = std::get<0>(size), extra_rows = std::get<1>(size), dim = std::get<2>(size);
        const DType dtype = path == Path::Float64 ? kFloat64 : path == Path::BFloat16 ? kBFloat16 : kFloat32;
        const ScopedTf32 tf32(path == Path::Tf32);
        const std::string name = std::string("supcon 2N=") + std::to_string(rows) + " + " +
                                 std::to_string(extra_rows) + " labelled extra, D=" + std::to_string(dim) + " " +
                                 path_name(path) + (mode == ContrastMode::One ? ", mode one" : "");
        check_parity({.name = name,
                      .make_inputs = [&](Generator& g) -> Inputs {
                        return {parity_leaf(random_normal({rows, dim}, g), dtype), randint(0, 5, {rows / 2}, kInt64, g),
                                parity_leaf(random_normal({extra_rows, dim}, g), dtype),
                                randint(0, 5, {extra_rows}, kInt64, g)};
                      },
                      .function = [&](const Inputs& in) {
                        return supcon_loss(in[0], in[1], 0.1, 0.07, mode, in[2], in[3]);
                      },
                      .tolerance = tolerance_for({.supcon = true, .rows = rows, .path = path})});
      }
}

TEST_CASE("cross-rank contrastive losses over mirrored ranks", "[gpu]") {
  // Rank 2 of 3 mirrored ranks: the gather, the other ranks' rows as extra columns, the
  // labels' gather and the count's exchange, on both devices.
  for (const Path path : {Path::ExactFloat32, Path::Float64}) {
    const DType dtype = path == Path::Float64 ? kFloat64 : kFloat32;
    check_parity({.name = std::string("nt_xent across 3 mirrored ranks, 2n=66 D=32 ") + path_name(path),
                  .make_inputs = [&](Generator& g) -> Inputs { return {parity_leaf(random_normal({66, 32}, g), dtype)}; },
                  .function = [](const Inputs& in) {
                    MirroredRanks job(2, 3);
                    return nt_xent_loss(in[0], 0.2, job);
                  },
                  .tolerance = tolerance_for({.rows = 198, .path = path})});
    check_parity({.name = std::string("supcon across 3 mirrored ranks, 2n=66 D=32 ") + path_name(path),
                  .make_inputs = [&](Generator& g) -> Inputs {
                    return {parity_leaf(random_normal({66, 32}, g), dtype), randint(0, 4, {33}, kInt64, g)};
                  },
                  .function = [](const Inputs& in) {
                    MirroredRanks job(2, 3);
                    return supcon_loss(in[0], in[1], 0.1, 0.07, ContrastMode::All, job);
                  },
                  .tolerance = tolerance_for({.supcon = true, .rows = 198, .path = path})});
  }
}

TEST_CASE("supcon_loss float64", "[gpu]") {
  check_contrastive({.supcon = true, .rows = 130, .dim = 3, .tau = 0.05, .labels = Labels::Singletons,
                     .path = Path::Float64});
}

TEST_CASE("supcon_loss where no anchor has a positive", "[gpu]") {
  // Loss 0 and gradient 0 on both devices (the harness's NMSE against an all-zero reference
  // is the plain sum of squares, so any stray value fails).
  check_parity({.make_inputs = [](Generator& g) -> Inputs {
                  return {parity_leaf(random_normal({6, 5}, g)), arange(6)};
                },
                .function = [](const Inputs& in) { return supcon_loss(in[0], in[1], 0.1); },
                .tolerance = 1e-30});
}

TEST_CASE("contrastive losses reject non-finite embeddings on the GPU", "[gpu]") {
  Generator g(7);
  Tensor h = random_normal({6, 4}, g, kFloat32);
  h.data<float>()[5] = std::numeric_limits<float>::infinity();
  const Tensor on_gpu = h.to(Device::cuda());
  // The forward pass does not wait for the device: the error comes when the loss is read
  // (or at any other synchronisation), naming the row as the CPU does.
  Tensor loss;
  REQUIRE_NOTHROW(loss = nt_xent_loss(on_gpu, 0.1));
  CHECK_THROWS_WITH(loss.item(), Catch::Contains("nt_xent_loss") && Catch::Contains("h row 1") &&
                                     Catch::Contains("NaN or Inf") && Catch::Contains("next synchronisation"));
  CHECK_THROWS_WITH(supcon_loss(on_gpu, arange(3).to(Device::cuda()), 0.1).item(),
                    Catch::Contains("supcon_loss") && Catch::Contains("NaN or Inf"));
  const Tensor good = random_normal({4, 4}, g, kFloat32).to(Device::cuda());
  CHECK_THROWS_WITH(
      [&] {
        nt_xent_loss(good, 0.1, on_gpu);
        cuda::synchronize();
      }(),
      Catch::Contains("extra_negatives row 1"));
  // Reported once: the device goes on working.
  CHECK(std::isfinite(nt_xent_loss(random_normal({6, 4}, g, kFloat32).to(Device::cuda()), 0.1).item()));
}
