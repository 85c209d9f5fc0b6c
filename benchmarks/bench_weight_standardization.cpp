// bench_weight_standardization: BiT's weight normalisation on the GPU
// (kernels/cpu/weight_standardization.h lists the family's files).
//
// Weight standardisation of all 53 convolution weights of BiT-R50x1 (23.5 M values): the
// list op (one kernel call for every weight) forward and forward + backward, in
// microseconds and GB/s, next to the unfused way (one call per weight, as PyTorch's eager
// StdConv2d does) and a device-to-device copy of the same bytes measured in the same run.
// Bytes: forward reads w and writes w_hat (2 |w|); forward + backward adds reading w and g
// and writing dw (5 |w|). Target on an H100: forward <= 30 us. benchmarks/
// torch_weight_standardization.py prints PyTorch's numbers for the same weights.
//
// Every case runs through the engine's public ops (weight_standardization, and
// gradients() for the backward pass), so allocation and the op's checks are included, as
// in a training step. Timing: CUDA events around `iterations` back-to-back runs, after
// warm-up, median of --repeats samples, contenders interleaved. Without a usable CUDA
// device it says so and exits 0.
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
  int iterations = 10;  // runs per timed sample
};

// The convolution weights of BiT-R50x1 (big_transfer's bit_pytorch/models.py, ResNetV2-50):
// the 7x7 root, then per unit conv1 1x1, conv2 3x3, conv3 1x1, and a 1x1 projection in each
// block's first unit. 53 weights.
std::vector<Shape> bit_r50x1_weight_shapes() {
  std::vector<Shape> shapes = {{64, 3, 7, 7}};
  int64_t in = 64;
  const int64_t units[4] = {3, 4, 6, 3};
  for (int block = 0; block < 4; ++block) {
    const int64_t mid = 64 << block, out = 4 * mid;
    for (int64_t unit = 0; unit < units[block]; ++unit) {
      if (unit == 0) shapes.push_back({out, in, 1, 1});
      shapes.push_back({mid, in, 1, 1});
      shapes.push_back({mid, mid, 3, 3});
      shapes.push_back({out, mid, 1, 1});
      in = out;
    }
  }
  return shapes;
}

int run(const Settings& settings) {
  const Device gpu = Device::cuda();
  cudaStream_t stream = kernels::cuda::stream(0);
  Generator generator(1);

  const std::vector<Shape> shapes = bit_r50x1_weight_shapes();
  std::vector<Tensor> weights, grads;
  int64_t values = 0;
  for (const Shape& shape : shapes) {
    weights.push_back(randn(shape, TensorOptions(kFloat32, gpu), generator).set_requires_grad());
    grads.push_back(randn(shape, TensorOptions(kFloat32, gpu), generator));
    values += shape_numel(shape);
  }
  const double weight_bytes = 4.0 * static_cast<double>(values);
  const Tensor flat_source = randn({values}, TensorOptions(kFloat32, gpu), generator);
  const Tensor flat_destination = empty({values}, TensorOptions(kFloat32, gpu));
  const std::string shape = std::to_string(shapes.size()) + " weights, " + fixed(values / 1e6, 1) + " M values";
  const std::vector<bench::Case> cases = {
      {"device-to-device copy of all weights (baseline)", shape, 2 * weight_bytes,
       [&] {
         VISREP_CUDA_CHECK(cudaMemcpyAsync(flat_destination.raw_data(), flat_source.raw_data(),
                                           static_cast<size_t>(weight_bytes), cudaMemcpyDeviceToDevice, stream));
       }},
      {"weight_standardization forward (one call)", shape, 2 * weight_bytes,
       [&] {
         NoGradGuard no_grad;
         weight_standardization(weights, 1e-10);
       }},
      {"weight_standardization forward (one call per weight)", shape, 2 * weight_bytes,
       [&] {
         NoGradGuard no_grad;
         for (const Tensor& w : weights) weight_standardization(w, 1e-10);
       }},
      // Forward with the graph, then one backward pass over all 53 outputs: the list's one
      // node, one kernel for every weight.
      {"weight_standardization forward + backward (one call each)", shape, 5 * weight_bytes,
       [&] { gradients(weight_standardization(weights, 1e-10), weights, grads); }},
      {"weight_standardization forward + backward (per weight)", shape, 5 * weight_bytes,
       [&] {
         for (size_t i = 0; i < weights.size(); ++i) {
           gradients({weight_standardization(weights[i], 1e-10)}, {weights[i]}, {grads[i]});
         }
       }},
  };
  const std::vector<double> ms = bench::median_ms_on_device(cases, settings.common, settings.iterations);
  std::vector<bench::BandwidthRow> rows;
  bench::add_bandwidth_rows(rows, cases, ms);
  cuda::synchronize();

  const std::string device = bench::device_name(gpu);
  bench::report_bandwidth(rows, device, settings.common.json_path,
                          "bench_weight_standardization on " + device + ": median of " +
                              std::to_string(settings.common.repeats) + " samples of " +
                              std::to_string(settings.iterations) + " runs");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Settings settings;
  settings.common.repeats = 20;
  CLI::App app{"Weight standardisation of all of BiT-R50x1's convolutions, next to a device-to-device copy"};
  bench::add_common_flags(app, settings.common);
  app.add_option("--iterations", settings.iterations, "back-to-back runs per timed sample")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (bench::skipped_without_cuda("bench_weight_standardization")) return 0;
  return bench::run_reporting_errors("bench_weight_standardization", [&] { return run(settings); });
}
