// bench_elementwise: how close the CUDA elementwise and reduction kernels come to the
// memory bandwidth a device-to-device copy reaches, measured in the same run.
//
// Every case runs through the engine's own ops (add, relu, its backward, sum, ...), so the
// numbers include what a training step pays: output allocation from the caching allocator
// and the op's checks, which are microseconds against the ~0.1-0.3 ms each case moves.
// GB/s counts the bytes each kernel must read plus write (for relu's backward, the two
// kernels it is made of: the mask gt(x, 0) and where(mask, g, 0)). The goal: at least 85% of
// the copy's GB/s for the elementwise ops.
//
// Timing: CUDA events around `iterations` back-to-back launches (the host queues ahead, so
// the GPU never waits for it), after warm-up, median of --repeats samples, contenders
// interleaved so that clock or thermal drift affects all alike. Tensors are 256 MiB by
// default, five times the H100's 50 MB L2, so every pass streams from HBM and the cache
// cannot flatter a result.
//
// Without a usable CUDA device it says so and exits 0, so the GPU check script can run
// every benchmark unconditionally.
// Where to look for the rest of each family: kernels/cpu/elementwise.h, kernels/cpu/reduction.h
// and kernels/cpu/copy.h.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "benchmarks/common/harness.h"
#include "engine/cuda.h"
#include "engine/ops.h"
#include "kernels/cuda/runtime.h"

namespace {

using namespace visrep;
using bench::fixed;

struct Settings {
  bench::CommonFlags common;
  int64_t mebibytes = 256;  // size of one float32 operand
  int iterations = 10;      // launches per timed sample
};

int run(const Settings& settings) {
  const int64_t n = settings.mebibytes * 1024 * 1024 / 4;  // float32 elements per operand
  const int64_t columns = 8192;
  const int64_t rows = n / columns;
  const Device gpu = Device::cuda();
  const TensorOptions f32(kFloat32, gpu);
  NoGradGuard no_grad;

  Generator generator(1);
  const Tensor x = randn({rows, columns}, f32, generator);
  const Tensor y = randn({rows, columns}, f32, generator);
  const Tensor g = randn({rows, columns}, f32, generator);
  const Tensor copy_destination = empty({rows, columns}, f32);
  const Tensor zero = scalar_tensor(0.0, f32);
  const Tensor mask = gt(x, 0.0);
  cudaStream_t stream = kernels::cuda::stream(0);

  const double f = 4.0 * static_cast<double>(n);  // bytes of one float32 operand
  const double m = static_cast<double>(n);        // bytes of the uint8 mask
  const std::string shape = std::to_string(rows) + "x" + std::to_string(columns);
  const std::vector<bench::Case> cases = {
      {"device-to-device copy (baseline)", shape, 2 * f,
       [&] {
         VISREP_CUDA_CHECK(cudaMemcpyAsync(copy_destination.raw_data(), x.raw_data(), static_cast<size_t>(f),
                                           cudaMemcpyDeviceToDevice, stream));
       }},
      {"add", shape, 3 * f, [&] { add(x, y); }},
      {"mul by a scalar", shape, 2 * f, [&] { mul(x, 0.5); }},
      {"relu forward", shape, 2 * f, [&] { relu(x); }},
      {"relu backward (gt + where)", shape, (f + m) + (m + f + f), [&] { where(gt(x, 0.0), g, zero); }},
      {"  mask gt(x, 0)", shape, f + m, [&] { gt(x, 0.0); }},
      {"  where(mask, g, 0)", shape, m + 2 * f, [&] { where(mask, g, zero); }},
      {"exp", shape, 2 * f, [&] { exp(x); }},
      {"bias add (rows + row vector)", shape, 2 * f, [&] { add(x, y.select(0, 0)); }},
      {"transpose copy (contiguous of x.t())", shape, 2 * f, [&] { x.t().contiguous(); }},
      {"to bfloat16", shape, f + f / 2, [&] { x.to(kBFloat16); }},
      {"row sum (sum over dim 1)", shape, f, [&] { sum(x, {1}); }},
      {"column sum (sum over dim 0)", shape, f, [&] { sum(x, {0}); }},
      {"sum of everything", shape, f, [&] { sum(x); }},
      {"row max (max over dim 1)", shape, f, [&] { max(x, {1}); }},
  };

  const std::vector<double> ms = bench::median_ms_on_device(cases, settings.common, settings.iterations);
  cuda::synchronize();
  const double copy_gbps = cases[0].bytes / (ms[0] * 1e6);
  const std::string device = bench::device_name(gpu);

  bench::JsonLinesWriter json(settings.common.json_path);
  bench::Table table({"case (float32)", "shape", "ms", "GB/s", "% of copy"});
  for (size_t i = 0; i < cases.size(); ++i) {
    const double gbps = cases[i].bytes / (ms[i] * 1e6);
    table.add_row({cases[i].name, cases[i].shape, fixed(ms[i], 4), fixed(gbps, 0), fixed(100.0 * gbps / copy_gbps, 1)});
    nlohmann::json record = bench::make_record(cases[i].name, cases[i].shape, ms[i], device);
    record["gb_per_s"] = gbps;
    record["bytes"] = cases[i].bytes;
    record["copy_gb_per_s"] = copy_gbps;
    record["fraction_of_copy"] = gbps / copy_gbps;
    json.add(record);
  }
  std::cout << "bench_elementwise on " << device << ": " << settings.mebibytes << " MiB per float32 operand, median of "
            << settings.common.repeats << " samples of " << settings.iterations << " runs\n";
  table.print(std::cout);
  json.commit();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Settings settings;
  settings.common.repeats = 20;
  CLI::App app{"GB/s of the CUDA elementwise ops and reductions, next to a device-to-device copy"};
  bench::add_common_flags(app, settings.common);
  app.add_option("--mib", settings.mebibytes, "MiB of one float32 operand")
      ->check(CLI::Range(int64_t{32}, int64_t{8192}))
      ->capture_default_str();
  app.add_option("--iterations", settings.iterations, "back-to-back runs per timed sample")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (bench::skipped_without_cuda("bench_elementwise")) return 0;
  return bench::run_reporting_errors("bench_elementwise", [&] { return run(settings); });
}
