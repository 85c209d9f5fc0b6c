// bench_augment: images per second of the two-view SimCLR augmentation pipeline
// (engine/data/augment.h), each source image made into two views, at 32 px (CIFAR: s = 0.5,
// no blur, from 32x32 sources) and 224 px (ImageNet: s = 1 with blur, from 256x256
// sources), on the CPU and on the GPU:
//   cpu loader   DataLoader with its worker threads (one per core): gather, draw the
//                parameters, augment; the rate a training loop sees.
//   cpu kernel   kernels::cpu::augment_batch alone over the batch (OpenMP, every core).
//   gpu loader   DataLoader on cuda: workers gather uint8 into pinned memory, next() uploads
//                the batch once and runs the augmentation kernels; synchronised at the end.
//   gpu kernel   the kernels alone on a batch already on the device; its baseline is a
//                device-to-device copy of the output's bytes in the same run (the
//                bandwidth the output write alone would need), so "% copy" says how close
//                the pipeline comes to writing its output at memory speed.
// The embedded default's CPU row (Fashion-MNIST 28 px, 1 channel, simclr) is set against a
// SmallConvNet training step on the same batch size (forward, backward, SGD), measured in
// the same run: the CPU loader must keep ahead of the CPU training step.
// Without a GPU the gpu rows print "skipped".
#include <omp.h>

#include <cstdint>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "benchmarks/common/harness.h"
#include "engine/cuda.h"
#include "engine/data/augment.h"
#include "engine/data/loader.h"
#include "engine/ops.h"
#include "engine/optim/sgd.h"
#include "kernels/cpu/augment.h"
#include "models/small_convnet.h"

namespace {

using namespace visrep;
using bench::fixed;

struct Settings {
  bench::CommonFlags common;
  int batches = 4;  // per loader epoch timed
  bool gpu_only = false;
  bool cpu_only = false;
};

struct Case {
  std::string name;
  int64_t source_side, channels, output_side, batch;
  data::AugmentConfig config;
};

std::vector<Case> cases() {
  return {
      {"fashion-mnist 28 (1 ch)", 28, 1, 28, 256, data::augment_preset("simclr", 28)},
      {"simclr 32", 32, 3, 32, 256, data::augment_preset("simclr", 32)},
      {"simclr 224", 256, 3, 224, 64, data::augment_preset("simclr", 224)},
  };
}

data::ImageDataset random_dataset(const Case& c, int64_t count) {
  Generator generator(1);
  return {randint(0, 256, {count, c.source_side, c.source_side, c.channels}, kUInt8, generator),
          randint(0, 10, {count}, kInt64, generator),
          {}};
}

std::string shape_of(const Case& c) {
  return fmt::format("{}x{}x{} -> 2x{}x{}x{}, batch {}", c.source_side, c.source_side, c.channels, c.channels,
                     c.output_side, c.output_side, c.batch);
}

// Milliseconds per batch of a loader epoch over `batches` batches (the first epoch is
// warm-up: it starts the workers and fills the prefetch queue).
bench::Timing time_loader(const Case& c, const Settings& settings, Device device, int workers) {
  const data::ImageDataset dataset = random_dataset(c, c.batch * settings.batches);
  data::DataLoader loader(dataset, {.batch_size = c.batch, .seed = 3, .workers = workers, .device = device,
                                    .augment = c.config, .views = 2});
  int64_t epoch = 0;
  bench::Timing timing = bench::measure(
      [&] {
        loader.start_epoch(epoch++);
        while (std::optional<data::Batch> batch = loader.next()) {
        }
        if (device.is_cuda()) cuda::synchronize(device);
      },
      settings.common);
  timing.median_ms /= settings.batches;
  timing.min_ms /= settings.batches;
  return timing;
}

struct Row {
  std::string name, device, shape;
  double ms_per_batch = 0, images_per_second = 0;
  std::string note;
  int views = 2;  // outputs per image (the training step row: 0, it makes none)
};

void print_and_record(const std::vector<Row>& rows, bench::JsonLinesWriter& json) {
  bench::Table table({"case", "device", "ms/batch", "images/s", "views/s", "note"});
  for (const Row& row : rows) {
    if (row.name.empty()) {
      table.add_rule();
      continue;
    }
    if (row.ms_per_batch <= 0) {
      table.add_row({row.name, row.device, "-", "-", "-", row.note});
      continue;
    }
    table.add_row({row.name, row.device, fixed(row.ms_per_batch, 3), fixed(row.images_per_second, 0),
                   row.views > 0 ? fixed(row.views * row.images_per_second, 0) : "-", row.note});
    nlohmann::json record = bench::make_record(row.name, row.shape, row.ms_per_batch, row.device);
    record["images_per_second"] = row.images_per_second;
    record["views_per_second"] = row.views * row.images_per_second;
    record["note"] = row.note;
    json.add(record);
  }
  table.print(std::cout);
}

// A SmallConvNet step (forward, cross-entropy, backward, SGD) on a Fashion-MNIST-shaped batch:
// the CPU training rate the CPU augmentation has to keep ahead of.
Row training_step_row(const Settings& settings, int64_t batch) {
  Generator generator(5);
  models::SmallConvNet model({.in_channels = 1, .classes = 10, .width = 32});
  model.train();
  optim::Sgd optimizer(model.parameters(), {.learning_rate = 0.01, .momentum = 0.9});
  const Tensor images = uniform({batch, 1, 28, 28}, 0.0, 1.0, kFloat32, generator);
  const Tensor labels = randint(0, 10, {batch}, kInt64, generator);
  const bench::Timing timing = bench::measure(
      [&] {
        Tensor loss = cross_entropy(model.forward(images), labels);
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
      },
      settings.common);
  Row row{"SmallConvNet train step 28 (1 ch)", "cpu", fmt::format("1x28x28, batch {}", batch), timing.median_ms,
          0.0, "the classifier's step", 0};
  row.images_per_second = static_cast<double>(batch) / (timing.median_ms / 1000.0);
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Two-view SimCLR augmentation throughput, CPU (loader threads) and GPU"};
  Settings settings;
  bench::add_common_flags(app, settings.common);
  app.add_option("--batches", settings.batches, "batches per timed loader epoch")->check(CLI::Range(1, 1000))->capture_default_str();
  app.add_flag("--cpu-only", settings.cpu_only, "only the cpu rows");
  app.add_flag("--gpu-only", settings.gpu_only, "only the gpu rows");
  CLI11_PARSE(app, argc, argv);

  try {
    bench::JsonLinesWriter json(settings.common.json_path);
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    std::vector<Row> rows;
    std::optional<Row> fashion_loader;
    if (!settings.gpu_only) {
      for (const Case& c : cases()) {
        const bench::Timing loader = time_loader(c, settings, Device::cpu(), cores);
        rows.push_back({c.name, "cpu loader", shape_of(c), loader.median_ms,
                        static_cast<double>(c.batch) / (loader.median_ms / 1000.0), fmt::format("{} workers", cores)});
        if (c.channels == 1) fashion_loader = rows.back();

        const data::ImageDataset dataset = random_dataset(c, c.batch);
        const std::vector<int64_t> samples = arange(c.batch).to_vector<int64_t>();
        const std::vector<data::AugmentParams> params =
            data::draw_batch_params(c.config, c.source_side, c.source_side, 3, 0, samples, 2);
        const kernels::AugmentGeometry geometry = data::augment_geometry(c.config, dataset.images, 2 * c.batch);
        Tensor output = empty({2 * c.batch, c.channels, c.output_side, c.output_side}, kFloat32);
        const bench::Timing kernel = bench::measure(
            [&] {
              kernels::cpu::augment_batch({.geometry = geometry,
                                           .host_params = params.data(),
                                           .params = params.data(),
                                           .images = dataset.images.data<uint8_t>(),
                                           .output = output.data<float>()});
            },
            settings.common);
        rows.push_back({c.name, "cpu kernel", shape_of(c), kernel.median_ms,
                        static_cast<double>(c.batch) / (kernel.median_ms / 1000.0),
                        fmt::format("{} OpenMP threads", omp_get_max_threads())});
      }
      const Row step = training_step_row(settings, 256);
      rows.push_back(step);
      if (fashion_loader) {
        rows.back().note = fmt::format("cpu loader {:.1f}x the step", fashion_loader->images_per_second / step.images_per_second);
      }
    }

    if (!settings.cpu_only) {
      rows.push_back({});
      if (!cuda_available()) {
        rows.push_back({"all gpu cases", "cuda", "", 0, 0, "skipped: no usable CUDA device"});
      } else {
        const Device gpu = Device::cuda();
        for (const Case& c : cases()) {
          const bench::Timing loader = time_loader(c, settings, gpu, cores);
          rows.push_back({c.name, "cuda loader", shape_of(c), loader.median_ms,
                          static_cast<double>(c.batch) / (loader.median_ms / 1000.0), "upload uint8 + kernels"});

          // The kernels alone, on a batch 8x the loader's (enough blocks to fill the GPU).
          const int64_t batch = 8 * c.batch;
          const data::ImageDataset dataset = random_dataset(c, batch);
          const std::vector<int64_t> samples = arange(batch).to_vector<int64_t>();
          const std::vector<data::AugmentParams> params =
              data::draw_batch_params(c.config, c.source_side, c.source_side, 3, 0, samples, 2);
          const Tensor images = dataset.images.to(gpu);
          std::vector<uint8_t> bytes(params.size() * sizeof(data::AugmentParams));
          std::memcpy(bytes.data(), params.data(), bytes.size());
          const Tensor device_params = from_vector(bytes).to(gpu);
          Tensor output;
          const Tensor copy_source = empty({2 * batch, c.channels, c.output_side, c.output_side}, TensorOptions(kFloat32, gpu));
          Tensor copy_target = empty_like(copy_source);
          const std::vector<bench::Timing> timings = bench::measure_interleaved(
              {[&] {
                 output = data::augment_images(images, device_params, params, c.config);
                 cuda::synchronize(gpu);
               },
               [&] {
                 copy_target.copy_(copy_source);
                 cuda::synchronize(gpu);
               }},
              settings.common);
          const double per_batch = timings[0].median_ms / 8.0;
          rows.push_back({c.name, "cuda kernel", shape_of(c) + " x8", per_batch,
                          static_cast<double>(c.batch) / (per_batch / 1000.0),
                          fmt::format("{:.0f}% of a d2d copy of the output", 100.0 * timings[1].median_ms / timings[0].median_ms)});
        }
      }
    }
    print_and_record(rows, json);
    json.commit();
    return 0;
  } catch (const std::exception& error) {
    std::cerr << "error: " << error.what() << "\n";
    return 1;
  }
}
