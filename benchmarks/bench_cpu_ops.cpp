// bench_cpu_ops: how close the CPU backend's convolution and matmul come to OpenBLAS.
//
// conv2d: every convolution shape of a CIFAR ResNet-18 (3x3 stem, no max-pool; --network
// resnet18) or of the main job's bit-tiny ResNetV2 on 28x28x1 (--network bit-tiny, with
// --batch 512: its two views of 256 images), forward and forward + backward, timed through
// kernels::cpu::conv2d_*. The baseline is sgemm on the
// GEMMs an ideal im2col convolution would issue for the whole batch at once:
//   forward      Y  (C_out, B*P) = W (C_out, K) @ columns (K, B*P)
//   weight grad  dW (C_out, K)   = dY (C_out, B*P) @ columns^T
//   input grad   dcolumns (K, B*P) = W^T @ dY
// with K = C_in*kH*kW and P = H_out*W_out, timed in the same run, interleaved with the
// convolution, so "% sgemm" is the share of the BLAS rate the convolution keeps after its
// unrolling, scattering and chunking.
//
// matmul: the engine's matmul (shape checks, output allocation, autograd bookkeeping)
// against kernels::cpu::gemm into a preallocated output, on the same operands.
//
// The baseline's sgemm is kernels::cpu::gemm, which shares a product between OpenMP's threads
// with OpenBLAS on one thread per call (kernels/cpu/linear_algebra.h's threading policy), the
// same threads the convolution runs on: no second pool spins next to the one being timed.
#include <cblas.h>
#include <omp.h>

#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "benchmarks/common/harness.h"
#include "engine/ops.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/linear_algebra.h"

namespace {

using namespace visrep;
using bench::fixed;

const std::string kDevice = "cpu";

struct Settings {
  bench::CommonFlags common;
  int64_t batch = 32;
  std::string network = "resnet18";
  std::string section = "all";
  std::string filter;  // only the cases whose name contains this
};

bool selected(const Settings& settings, const std::string& name) {
  return settings.filter.empty() || name.find(settings.filter) != std::string::npos;
}

// ---- conv2d ------------------------------------------------------------------------------------

struct ConvLayer {
  std::string name;
  int64_t in_channels, out_channels;
  int64_t input_size;  // H = W
  int64_t kernel, stride;
  int count;              // how often the shape occurs in ResNet-18
  bool needs_input_grad;  // the stem's input is the images, which want no gradient
};

// CIFAR ResNet-18 as in SimCLR/SupCon (He et al. 2016, Sec. 4.2 layout with BasicBlocks):
// a 3x3 stem, four stages of two blocks, stride-2 3x3 convs and 1x1 stride-2 shortcuts
// where a stage halves the plane and doubles the channels.
std::vector<ConvLayer> resnet18_cifar_layers() {
  return {
      {"stem 3x3 3->64 @32", 3, 64, 32, 3, 1, 1, false},
      {"3x3 64->64 @32", 64, 64, 32, 3, 1, 4, true},
      {"3x3/2 64->128 @32", 64, 128, 32, 3, 2, 1, true},
      {"1x1/2 64->128 @32", 64, 128, 32, 1, 2, 1, true},
      {"3x3 128->128 @16", 128, 128, 16, 3, 1, 3, true},
      {"3x3/2 128->256 @16", 128, 256, 16, 3, 2, 1, true},
      {"1x1/2 128->256 @16", 128, 256, 16, 1, 2, 1, true},
      {"3x3 256->256 @8", 256, 256, 8, 3, 1, 3, true},
      {"3x3/2 256->512 @8", 256, 512, 8, 3, 2, 1, true},
      {"1x1/2 256->512 @8", 256, 512, 8, 1, 2, 1, true},
      {"3x3 512->512 @4", 512, 512, 4, 3, 1, 3, true},
  };
}

// bit-tiny (models::make_encoder("bit-tiny") on 28x28x1): the 7x7/2 stem, then one
// pre-activation bottleneck per stage (1x1 in, 3x3 carrying the stride, 1x1 out, and the 1x1
// projection shortcut) on 7x7, 4x4, 2x2 and 1x1 maps.
std::vector<ConvLayer> bit_tiny_layers() {
  return {
      {"stem 7x7/2 1->16 @28", 1, 16, 28, 7, 2, 1, false},
      {"1x1 16->16 @7", 16, 16, 7, 1, 1, 1, true},
      {"3x3 16->16 @7", 16, 16, 7, 3, 1, 1, true},
      {"1x1 16->64 @7", 16, 64, 7, 1, 1, 2, true},
      {"1x1 64->32 @7", 64, 32, 7, 1, 1, 1, true},
      {"3x3/2 32->32 @7", 32, 32, 7, 3, 2, 1, true},
      {"1x1 32->128 @4", 32, 128, 4, 1, 1, 1, true},
      {"1x1/2 64->128 @7", 64, 128, 7, 1, 2, 1, true},
      {"1x1 128->64 @4", 128, 64, 4, 1, 1, 1, true},
      {"3x3/2 64->64 @4", 64, 64, 4, 3, 2, 1, true},
      {"1x1 64->256 @2", 64, 256, 2, 1, 1, 1, true},
      {"1x1/2 128->256 @4", 128, 256, 4, 1, 2, 1, true},
      {"1x1 256->128 @2", 256, 128, 2, 1, 1, 1, true},
      {"3x3/2 128->128 @2", 128, 128, 2, 3, 2, 1, true},
      {"1x1 128->512 @1", 128, 512, 1, 1, 1, 1, true},
      {"1x1/2 256->512 @2", 256, 512, 2, 1, 2, 1, true},
  };
}

kernels::Conv2dGeometry geometry_of(const ConvLayer& layer, int64_t batch) {
  kernels::Conv2dGeometry g;
  g.batch = batch;
  g.in_channels = layer.in_channels;
  g.in_height = g.in_width = layer.input_size;
  g.out_channels = layer.out_channels;
  g.kernel_height = g.kernel_width = layer.kernel;
  g.stride_height = g.stride_width = layer.stride;
  g.padding_height = g.padding_width = layer.kernel / 2;
  return g;
}

std::string shape_of(const kernels::Conv2dGeometry& g) {
  return "B=" + std::to_string(g.batch) + " Cin=" + std::to_string(g.in_channels) + " H=" +
         std::to_string(g.in_height) + " W=" + std::to_string(g.in_width) + " Cout=" + std::to_string(g.out_channels) +
         " k=" + std::to_string(g.kernel_height) + " s=" + std::to_string(g.stride_height) +
         " p=" + std::to_string(g.padding_height);
}

float* floats(const Tensor& t) { return t.data<float>(); }

struct ConvResult {
  double forward_ms, forward_sgemm_ms;
  double training_ms, training_sgemm_ms;  // forward + backward
  double forward_flops, training_flops;
};

ConvResult bench_conv_layer(const ConvLayer& layer, const Settings& settings) {
  const kernels::Conv2dGeometry g = geometry_of(layer, settings.batch);
  const int64_t out_size = g.out_height();
  const int64_t plane = out_size * out_size;
  const int64_t rows = g.in_channels * g.kernel_height * g.kernel_width;  // K
  const int64_t columns = g.batch * plane;                                // B * P

  Generator generator(1234);
  const Tensor x = randn({g.batch, g.in_channels, g.in_height, g.in_width}, kFloat32, generator);
  const Tensor w = randn({g.out_channels, g.in_channels, g.kernel_height, g.kernel_width}, kFloat32, generator);
  const Tensor dy = randn({g.batch, g.out_channels, out_size, out_size}, kFloat32, generator);
  const Tensor y = empty(dy.shape());
  const Tensor dx = empty(x.shape());
  const Tensor dw = empty(w.shape());

  const auto conv_forward = [&] { kernels::cpu::conv2d_forward<float>({.geometry = g,
                                                                       .input = floats(x),
                                                                       .weight = floats(w),
                                                                       .bias = nullptr,
                                                                       .output = floats(y)}); };
  const auto conv_training = [&] {
    conv_forward();
    kernels::cpu::conv2d_backward<float>({.geometry = g,
                                          .grad_output = floats(dy),
                                          .input = floats(x),
                                          .weight = floats(w),
                                          .grad_input = layer.needs_input_grad ? floats(dx) : nullptr,
                                          .grad_weight = floats(dw),
                                          .grad_bias = nullptr});
  };

  // The baseline's operands: the whole batch's columns and output as single matrices.
  const Tensor unrolled = randn({rows, columns}, kFloat32, generator);
  const Tensor wide_dy = randn({g.out_channels, columns}, kFloat32, generator);
  const Tensor wide_y = empty({g.out_channels, columns});
  const Tensor grad_unrolled = empty({rows, columns});
  using kernels::cpu::gemm;
  using kernels::GemmShape;
  const auto sgemm_forward = [&] {
    gemm<float>(GemmShape{g.out_channels, columns, rows, false, false}, 1.f, floats(w), rows, floats(unrolled), columns,
                0.f, floats(wide_y), columns);
  };
  const auto sgemm_weight_grad = [&] {
    gemm<float>(GemmShape{g.out_channels, rows, columns, false, true}, 1.f, floats(wide_dy), columns,
                floats(unrolled), columns, 0.f, floats(dw), rows);
  };
  const auto sgemm_input_grad = [&] {
    gemm<float>(GemmShape{rows, columns, g.out_channels, true, false}, 1.f, floats(w), rows, floats(wide_dy), columns,
                0.f, floats(grad_unrolled), columns);
  };

  std::vector<std::function<void()>> contenders = {conv_forward, conv_training, sgemm_forward, sgemm_weight_grad};
  if (layer.needs_input_grad) contenders.push_back(sgemm_input_grad);
  const std::vector<bench::Timing> t = bench::measure_interleaved(contenders, settings.common);

  const double pass_flops = 2.0 * double(g.out_channels) * double(rows) * double(columns);
  ConvResult result;
  result.forward_ms = t[0].median_ms;
  result.training_ms = t[1].median_ms;
  result.forward_sgemm_ms = t[2].median_ms;
  result.training_sgemm_ms = t[2].median_ms + t[3].median_ms + (layer.needs_input_grad ? t[4].median_ms : 0.0);
  result.forward_flops = pass_flops;
  result.training_flops = pass_flops * (layer.needs_input_grad ? 3 : 2);
  return result;
}

struct Threads {
  int blas, openmp;
};

nlohmann::json conv_record(const std::string& name, const std::string& shape, double ms, double sgemm_ms,
                           double flops, int count, const Settings& settings, Threads threads) {
  nlohmann::json record = bench::make_record(name, shape, ms, kDevice);
  record["gflops"] = bench::gflops_per_second(flops, ms);
  record["sgemm_ms"] = sgemm_ms;
  record["sgemm_gflops"] = bench::gflops_per_second(flops, sgemm_ms);
  record["ratio_to_sgemm"] = sgemm_ms / ms;
  record["count_in_network"] = count;
  record["batch"] = settings.batch;
  record["blas_threads"] = threads.blas;
  record["openmp_threads"] = threads.openmp;
  return record;
}

void run_conv_section(const Settings& settings, bench::JsonLinesWriter& json, Threads threads) {
  bench::Table table({"conv2d (B=" + std::to_string(settings.batch) + ")", "n", "fwd ms", "GF/s", "sgemm", "%",
                      "fwd+bwd ms", "GF/s", "sgemm", "%"});
  const auto percent = [](double baseline_ms, double ms) { return fixed(100.0 * baseline_ms / ms, 0); };
  ConvResult total{};
  int total_count = 0;
  const bool bit_tiny = settings.network == "bit-tiny";
  for (const ConvLayer& layer : bit_tiny ? bit_tiny_layers() : resnet18_cifar_layers()) {
    if (!selected(settings, layer.name)) continue;
    const ConvResult r = bench_conv_layer(layer, settings);
    table.add_row({layer.name, std::to_string(layer.count), fixed(r.forward_ms, 2),
                   fixed(bench::gflops_per_second(r.forward_flops, r.forward_ms), 1),
                   fixed(bench::gflops_per_second(r.forward_flops, r.forward_sgemm_ms), 1),
                   percent(r.forward_sgemm_ms, r.forward_ms), fixed(r.training_ms, 2),
                   fixed(bench::gflops_per_second(r.training_flops, r.training_ms), 1),
                   fixed(bench::gflops_per_second(r.training_flops, r.training_sgemm_ms), 1),
                   percent(r.training_sgemm_ms, r.training_ms)});
    const std::string shape = shape_of(geometry_of(layer, settings.batch));
    json.add(conv_record("conv2d_forward " + layer.name, shape, r.forward_ms, r.forward_sgemm_ms, r.forward_flops,
                         layer.count, settings, threads));
    json.add(conv_record("conv2d_forward_backward " + layer.name, shape, r.training_ms, r.training_sgemm_ms,
                         r.training_flops, layer.count, settings, threads));
    // The network total weighs each shape by how often the network uses it.
    total_count += layer.count;
    total.forward_ms += layer.count * r.forward_ms;
    total.forward_sgemm_ms += layer.count * r.forward_sgemm_ms;
    total.training_ms += layer.count * r.training_ms;
    total.training_sgemm_ms += layer.count * r.training_sgemm_ms;
    total.forward_flops += layer.count * r.forward_flops;
    total.training_flops += layer.count * r.training_flops;
  }
  table.add_rule();
  if (total_count == 0) return;
  table.add_row({"total (weighted by n)", std::to_string(total_count), fixed(total.forward_ms, 1),
                 fixed(bench::gflops_per_second(total.forward_flops, total.forward_ms), 1),
                 fixed(bench::gflops_per_second(total.forward_flops, total.forward_sgemm_ms), 1),
                 percent(total.forward_sgemm_ms, total.forward_ms), fixed(total.training_ms, 1),
                 fixed(bench::gflops_per_second(total.training_flops, total.training_ms), 1),
                 fixed(bench::gflops_per_second(total.training_flops, total.training_sgemm_ms), 1),
                 percent(total.training_sgemm_ms, total.training_ms)});
  const std::string network = std::string(bit_tiny ? "bit-tiny" : "ResNet-18 CIFAR") + (settings.filter.empty() ? "" : " layers matching \"" + settings.filter + "\"") +
                              ", B=" + std::to_string(settings.batch);
  json.add(conv_record("conv2d_forward total", network, total.forward_ms, total.forward_sgemm_ms,
                       total.forward_flops, total_count, settings, threads));
  json.add(conv_record("conv2d_forward_backward total", network, total.training_ms, total.training_sgemm_ms,
                       total.training_flops, total_count, settings, threads));
  table.print(std::cout);
  std::cout << "GF/s: 2*B*Cout*Cin*kH*kW*Hout*Wout per GEMM pass (forward 1, backward 2; the stem's input needs no\n"
               "gradient, so 1). sgemm: kernels::cpu::gemm on the same GEMMs issued once for the whole batch. %: conv /\n"
               "sgemm. Timed interleaved with the sgemm baseline.\n\n";
}

// ---- matmul ------------------------------------------------------------------------------------

struct MatmulCase {
  std::string name;
  int64_t batch, m, k, n;
  bool b_transposed;  // B is a transposed view of an (n, k) tensor, as in z @ z^T
};

std::vector<MatmulCase> matmul_cases() {
  return {
      {"512 x 512 @ 512 x 512", 1, 512, 512, 512, false},
      {"1024 x 1024 @ 1024 x 1024", 1, 1024, 1024, 1024, false},
      {"similarity 4096 x 128 @ (4096 x 128)^T", 1, 4096, 128, 4096, true},
      {"batched 16 x (256 x 64 @ 64 x 256)", 16, 256, 64, 256, false},
  };
}

void run_matmul_section(const Settings& settings, bench::JsonLinesWriter& json, Threads threads) {
  bench::Table table({"matmul", "engine ms", "GF/s", "gemm ms", "GF/s", "engine/gemm"});
  for (const MatmulCase& c : matmul_cases()) {
    if (!selected(settings, c.name)) continue;
    Generator generator(99);
    const Shape a_shape = c.batch > 1 ? Shape{c.batch, c.m, c.k} : Shape{c.m, c.k};
    const Shape b_stored = c.b_transposed ? Shape{c.n, c.k} : (c.batch > 1 ? Shape{c.batch, c.k, c.n} : Shape{c.k, c.n});
    const Tensor a = randn(a_shape, kFloat32, generator);
    const Tensor b_storage = randn(b_stored, kFloat32, generator);
    const Tensor b = c.b_transposed ? b_storage.t() : b_storage;
    const Tensor out = empty({c.batch * c.m, c.n});

    const auto engine = [&] { Tensor product = matmul(a, b); };
    const int64_t ldb = c.b_transposed ? c.k : c.n;
    const auto direct = [&] {
      kernels::cpu::gemm_batched<float>({.shape = kernels::GemmShape{c.m, c.n, c.k, false, c.b_transposed},
                                         .batch = c.batch,
                                         .alpha = 1.f,
                                         .a = floats(a),
                                         .lda = c.k,
                                         .batch_stride_a = c.m * c.k,
                                         .b = floats(b_storage),
                                         .ldb = ldb,
                                         .batch_stride_b = c.k * c.n,
                                         .beta = 0.f,
                                         .c = floats(out),
                                         .ldc = c.n,
                                         .batch_stride_c = c.m * c.n});
    };
    const std::vector<bench::Timing> t = bench::measure_interleaved({engine, direct}, settings.common);
    const double flops = 2.0 * c.batch * c.m * c.n * c.k;
    table.add_row({c.name, fixed(t[0].median_ms, 3), fixed(bench::gflops_per_second(flops, t[0].median_ms), 1),
                   fixed(t[1].median_ms, 3), fixed(bench::gflops_per_second(flops, t[1].median_ms), 1),
                   fixed(t[0].median_ms / t[1].median_ms, 2)});

    const std::string shape = (c.batch > 1 ? std::to_string(c.batch) + " x " : "") + std::to_string(c.m) + "x" +
                              std::to_string(c.k) + " @ " + std::to_string(c.k) + "x" + std::to_string(c.n) +
                              (c.b_transposed ? " (B transposed view)" : "");
    nlohmann::json record = bench::make_record("matmul " + c.name, shape, t[0].median_ms, kDevice);
    record["gflops"] = bench::gflops_per_second(flops, t[0].median_ms);
    record["gemm_ms"] = t[1].median_ms;
    record["gemm_gflops"] = bench::gflops_per_second(flops, t[1].median_ms);
    record["engine_overhead_ratio"] = t[0].median_ms / t[1].median_ms;
    record["peak_bytes"] = 4 * (a.numel() + b.numel() + out.numel());  // operands and the one output
    record["blas_threads"] = threads.blas;
    record["openmp_threads"] = threads.openmp;
    json.add(record);
  }
  table.print(std::cout);
  std::cout << "engine: visrep::matmul (checks, output allocation, autograd record). gemm: kernels::cpu::gemm into a\n"
               "preallocated output. engine/gemm: the engine's overhead ratio (1.00 = none).\n";
}

}  // namespace

int main(int argc, char** argv) {
  Settings settings;
  CLI::App app{"GFLOP/s of the CPU convolution (ResNet-18 CIFAR shapes) and matmul, next to OpenBLAS sgemm"};
  bench::add_common_flags(app, settings.common);
  app.add_option("--batch", settings.batch, "images per convolution")
      ->check(CLI::Range(int64_t{1}, int64_t{4096}))
      ->capture_default_str();
  app.add_option("--network", settings.network, "the convolution shapes: resnet18 (CIFAR) or bit-tiny (28x28x1)")
      ->check(CLI::IsMember({"resnet18", "bit-tiny"}))
      ->capture_default_str();
  app.add_option("--section", settings.section, "which benchmarks to run")
      ->check(CLI::IsMember({"all", "conv", "matmul"}))
      ->capture_default_str();
  app.add_option("--filter", settings.filter, "only the cases whose name contains this text, e.g. \"512->512\"");
  CLI11_PARSE(app, argc, argv);

  try {
    bench::JsonLinesWriter json(settings.common.json_path);
    const Threads threads{kernels::cpu::openblas_threads(), omp_get_max_threads()};
    std::cout << "device cpu: " << openblas_get_config() << ", OpenBLAS threads " << threads.blas
              << ", OpenMP threads " << threads.openmp << "; median of " << settings.common.repeats << " after "
              << settings.common.warmup << " warm-up\n\n";
    if (settings.section != "matmul") run_conv_section(settings, json, threads);
    if (settings.section != "conv") run_matmul_section(settings, json, threads);
    json.commit();
  } catch (const std::exception& error) {
    std::cerr << "bench_cpu_ops: " << error.what() << '\n';
    return 1;
  }
  return 0;
}
