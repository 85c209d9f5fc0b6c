// bench_group_norm: BiT's activation normalisation on the GPU (kernels/cpu/group_norm.h
// lists the family's files).
//
// GroupNorm(32) forward, and forward + backward, on the activations of BiT-R50x1's four
// stages at 224 px and batch 64, in float32 and bfloat16, as GB/s next to a device-to-
// device copy of the same tensor measured in the same run (the bandwidth ceiling). Bytes
// are what the op must move at the least: forward reads x and writes y (2 |x|); forward +
// backward adds reading x and dy and writing dx (5 |x| in all). Targets on an H100:
// forward >= 80% of the copy's GB/s; forward + backward >= 2x PyTorch eager
// (benchmarks/torch_group_norm.py prints PyTorch's numbers for the same shapes).
//
// Every case runs through the engine's public ops (group_norm, and gradients() for the
// backward pass), so allocation from the caching allocator and the op's checks are
// included, as in a training step. Timing: CUDA events around `iterations` back-to-back
// runs, after warm-up, median of --repeats samples, contenders interleaved. Inputs rotate
// over enough copies to span 4x the L2 cache, so no run reads what the previous one left
// there. Without a usable CUDA device it says so and exits 0.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "benchmarks/common/harness.h"
#include "engine/cuda.h"
#include "engine/ops.h"
#include "kernels/cuda/runtime.h"

namespace {

using namespace visrep;

struct Settings {
  bench::CommonFlags common;
  int iterations = 10;  // runs per timed sample
  int64_t batch = 64;
};

// `count` tensors of `shape`, so that consecutive runs read different memory.
struct Rotation {
  std::vector<Tensor> tensors;
  size_t next = 0;
  const Tensor& take() {
    const Tensor& t = tensors[next];
    next = (next + 1) % tensors.size();
    return t;
  }
};

Rotation random_rotation(const Shape& shape, TensorOptions options, int64_t count, Generator& generator) {
  Rotation rotation;
  for (int64_t i = 0; i < count; ++i) rotation.tensors.push_back(randn(shape, options, generator));
  return rotation;
}

int run(const Settings& settings) {
  const Device gpu = Device::cuda();
  cudaStream_t stream = kernels::cuda::stream(0);
  Generator generator(1);
  const int64_t rotation_bytes = 4 * bench::l2_cache_bytes();
  std::vector<bench::BandwidthRow> rows;

  const std::vector<std::pair<int64_t, int64_t>> stages = {{256, 56}, {512, 28}, {1024, 14}, {2048, 7}};
  for (DType dtype : {kFloat32, kBFloat16}) {
    for (const auto& [channels, size] : stages) {
      const Shape shape{settings.batch, channels, size, size};
      const TensorOptions options(dtype, gpu);
      const double tensor_bytes = static_cast<double>(shape_numel(shape)) * (dtype == kFloat32 ? 4 : 2);
      const int64_t copies = std::max<int64_t>(2, (rotation_bytes + static_cast<int64_t>(tensor_bytes) - 1) /
                                                     static_cast<int64_t>(tensor_bytes));
      auto xs = std::make_shared<Rotation>(random_rotation(shape, options, copies, generator));
      auto dys = std::make_shared<Rotation>(random_rotation(shape, options, copies, generator));
      const Tensor gamma = randn({channels}, options, generator).set_requires_grad();
      const Tensor beta = randn({channels}, options, generator).set_requires_grad();
      const Tensor copy_destination = empty(shape, options);
      const std::string shape_text = shape_string(shape) + " " + std::string(dtype_name(dtype));
      const std::vector<bench::Case> cases = {
          {"device-to-device copy (baseline)", shape_text, 2 * tensor_bytes,
           [=]() {
             VISREP_CUDA_CHECK(cudaMemcpyAsync(copy_destination.raw_data(), xs->take().raw_data(),
                                               static_cast<size_t>(tensor_bytes), cudaMemcpyDeviceToDevice, stream));
           }},
          {"group_norm forward", shape_text, 2 * tensor_bytes,
           [=]() {
             NoGradGuard no_grad;
             group_norm(xs->take(), 32, gamma, beta);
           }},
          {"group_norm forward + relu", shape_text, 2 * tensor_bytes,
           [=]() {
             NoGradGuard no_grad;
             group_norm(xs->take(), 32, gamma, beta, 1e-5, true);
           }},
          // gradients() returns dx, dgamma and dbeta without the leaf accumulation into .grad
          // that a real step folds into the next layer's gradient anyway.
          {"group_norm forward + backward", shape_text, 5 * tensor_bytes,
           [=]() {
             const Tensor x = xs->take().detach().set_requires_grad();
             const Tensor y = group_norm(x, 32, gamma, beta);
             gradients({y}, {x, gamma, beta}, {dys->take()});
           }},
      };
      const std::vector<double> ms = bench::median_ms_on_device(cases, settings.common, settings.iterations);
      bench::add_bandwidth_rows(rows, cases, ms);
      rows.push_back({.rule = true});
    }
  }
  rows.pop_back();
  cuda::synchronize();

  const std::string device = bench::device_name(gpu);
  bench::report_bandwidth(rows, device, settings.common.json_path,
                          "bench_group_norm on " + device + ": median of " + std::to_string(settings.common.repeats) +
                              " samples of " + std::to_string(settings.iterations) + " runs; inputs rotated over " +
                              std::to_string(rotation_bytes / (1 << 20)) + " MiB");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Settings settings;
  settings.common.repeats = 20;
  CLI::App app{"GroupNorm on BiT-R50x1's activations, next to a device-to-device copy"};
  bench::add_common_flags(app, settings.common);
  app.add_option("--iterations", settings.iterations, "back-to-back runs per timed sample")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--batch", settings.batch, "batch size of the activations")
      ->check(CLI::Range(int64_t{1}, int64_t{512}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (bench::skipped_without_cuda("bench_group_norm")) return 0;
  return bench::run_reporting_errors("bench_group_norm", [&] { return run(settings); });
}
