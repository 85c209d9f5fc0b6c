// bench_norm: BiT's two normalisations on the GPU.
//
// GroupNorm(32) forward, and forward + backward, on the activations of BiT-R50x1's four
// stages at 224 px and batch 64, in float32 and bfloat16, as GB/s next to a device-to-
// device copy of the same tensor measured in the same run (the bandwidth ceiling). Bytes
// are what the op must move at the least: forward reads x and writes y (2 |x|); forward +
// backward adds reading x and dy and writing dx (5 |x| in all). Targets on an H100:
// forward >= 80% of the copy's GB/s; forward + backward >= 2x PyTorch eager
// (benchmarks/torch_norm.py prints PyTorch's numbers for the same shapes).
//
// Weight standardisation of all 53 convolution weights of BiT-R50x1 (23.5 M values): the
// multi-tensor op forward and backward, in microseconds, next to the unfused way (one call
// per weight, as PyTorch's eager StdConv2d does) and a copy of the same bytes. Target:
// forward <= 30 us.
//
// Every case runs through the engine's ops (group_norm, its backward node, weight_
// standardization), so allocation from the caching allocator and the op's checks are
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
using bench::fixed;

struct Settings {
  bench::CommonFlags common;
  int iterations = 10;  // runs per timed sample
  int64_t batch = 64;
};

int64_t l2_bytes() {
  int bytes = 0;
  if (cudaDeviceGetAttribute(&bytes, cudaDevAttrL2CacheSize, 0) != cudaSuccess) return 50 << 20;
  return bytes;
}

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

// One line of the table (the case's closure, and the tensors it holds, are gone by then).
struct Row {
  std::string name, shape;
  double bytes = 0, ms = 0;
  double baseline_gbps = 0;  // the copy of the same bytes
  bool rule = false;         // a separator line
};

void add_rows(std::vector<Row>& rows, const std::vector<bench::Case>& cases, const std::vector<double>& ms) {
  const double baseline_gbps = cases[0].bytes / (ms[0] * 1e6);  // cases[0] is the copy
  for (size_t i = 0; i < cases.size(); ++i) {
    rows.push_back({cases[i].name, cases[i].shape, cases[i].bytes, ms[i], baseline_gbps});
  }
}

int run(const Settings& settings) {
  const Device gpu = Device::cuda();
  cudaStream_t stream = kernels::cuda::stream(0);
  Generator generator(1);
  const int64_t rotation_bytes = 4 * l2_bytes();
  std::vector<Row> rows;

  // ---- GroupNorm ------------------------------------------------------------------------
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
          // The backward node is applied directly: dx, dgamma, dbeta without the leaf
          // accumulation a real step would fold into the next layer's gradient anyway.
          {"group_norm forward + backward", shape_text, 5 * tensor_bytes,
           [=]() {
             const Tensor x = xs->take().detach().set_requires_grad();
             const Tensor y = group_norm(x, 32, gamma, beta);
             y.grad_fn()->apply(dys->take());
           }},
      };
      const std::vector<double> ms = bench::median_ms_on_device(cases, settings.common, settings.iterations);
      add_rows(rows, cases, ms);
      rows.push_back({.rule = true});
    }
  }

  // ---- weight standardisation of BiT-R50x1 -------------------------------------------------
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
  const std::string ws_shape = std::to_string(shapes.size()) + " weights, " + fixed(values / 1e6, 1) + " M values";
  const std::vector<bench::Case> ws_cases = {
      {"device-to-device copy of all weights (baseline)", ws_shape, 2 * weight_bytes,
       [&] {
         VISREP_CUDA_CHECK(cudaMemcpyAsync(flat_destination.raw_data(), flat_source.raw_data(),
                                           static_cast<size_t>(weight_bytes), cudaMemcpyDeviceToDevice, stream));
       }},
      {"weight_standardization forward (one call)", ws_shape, 2 * weight_bytes,
       [&] {
         NoGradGuard no_grad;
         weight_standardization(weights, 1e-10);
       }},
      {"weight_standardization forward (one call per weight)", ws_shape, 2 * weight_bytes,
       [&] {
         NoGradGuard no_grad;
         for (const Tensor& w : weights) weight_standardization(w, 1e-10);
       }},
      // Forward with the graph, then each output's backward node (which only gathers its
      // gradient) and the shared node (one kernel for all 53).
      {"weight_standardization forward + backward (one call each)", ws_shape, 5 * weight_bytes,
       [&] {
         const std::vector<Tensor> outputs = weight_standardization(weights, 1e-10);
         for (size_t i = 0; i < outputs.size(); ++i) outputs[i].grad_fn()->apply(grads[i]);
         outputs.front().grad_fn()->next.front()->apply(Tensor());
       }},
      {"weight_standardization forward + backward (per weight)", ws_shape, 5 * weight_bytes,
       [&] {
         for (size_t i = 0; i < weights.size(); ++i) {
           weight_standardization(weights[i], 1e-10).grad_fn()->apply(grads[i]);
         }
       }},
  };
  const std::vector<double> ws_ms = bench::median_ms_on_device(ws_cases, settings.common, settings.iterations);
  add_rows(rows, ws_cases, ws_ms);
  cuda::synchronize();

  const std::string device = bench::device_name(gpu);
  bench::JsonLinesWriter json(settings.common.json_path);
  bench::Table table({"case", "shape", "us", "GB/s", "copy GB/s", "% of copy"});
  for (const Row& row : rows) {
    if (row.rule) {
      table.add_rule();
      continue;
    }
    const double gbps = row.bytes / (row.ms * 1e6);
    table.add_row({row.name, row.shape, fixed(row.ms * 1e3, 1), fixed(gbps, 0), fixed(row.baseline_gbps, 0),
                   fixed(100.0 * gbps / row.baseline_gbps, 1)});
    nlohmann::json record = bench::make_record(row.name, row.shape, row.ms, device);
    record["gb_per_s"] = gbps;
    record["bytes"] = row.bytes;
    record["copy_gb_per_s"] = row.baseline_gbps;
    record["fraction_of_copy"] = gbps / row.baseline_gbps;
    json.add(record);
  }
  std::cout << "bench_norm on " << device << ": median of " << settings.common.repeats << " samples of "
            << settings.iterations << " runs; inputs rotated over " << rotation_bytes / (1 << 20) << " MiB\n";
  table.print(std::cout);
  json.commit();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Settings settings;
  settings.common.repeats = 20;
  CLI::App app{"GroupNorm and weight standardisation on BiT-R50x1's shapes, next to a device-to-device copy"};
  bench::add_common_flags(app, settings.common);
  app.add_option("--iterations", settings.iterations, "back-to-back runs per timed sample")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--batch", settings.batch, "batch size of the GroupNorm activations")
      ->check(CLI::Range(int64_t{1}, int64_t{512}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (bench::skipped_without_cuda("bench_norm")) return 0;
  return bench::run_reporting_errors("bench_norm", [&] { return run(settings); });
}
