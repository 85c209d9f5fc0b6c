// bench_train: training throughput of a whole SimCLR step, next to the supervised step of
// the same network measured in the same run (issue 7's H100 target).
//
//   simclr      2B views (random 32x32x3 tensors already on the device: augmentation is
//               bench_augment's business) -> ResNet-18 with the CIFAR stem -> SimCLR's
//               2-layer projection head (512 -> 512 -> 128) -> fused NT-Xent (tau 0.5, the
//               32-px default) -> backward -> LARS (simclr's rule: biases and norms
//               excluded; lr 0.3 x B / 256, weight decay 1e-6, momentum 0.9).
//   supervised  the baseline: B images -> the same ResNet-18 -> a linear classifier (10
//               classes) -> cross-entropy on random labels -> backward -> SGD (momentum 0.9,
//               weight decay 5e-4), as a plain CIFAR training loop does it.
//
// Reported per step: ms, images/s (views/s for SimCLR: each view is a full forward and
// backward pass through the encoder), the ratio SimCLR views/s / supervised img/s, and the
// peak of the caching allocator's counters (engine/cuda.h memory_stats) over the
// contender's life: weights, gradients, optimizer state, inputs and activations. On the
// GPU both steps run with TF32 on and again with it off (visrep::cuda::set_tf32_enabled).
// The target: simclr views/s >= PyTorch eager's supervised img/s at the same precision,
// which benchmarks/torch_train.py measures when run in the same command.
//
// Timing: --warmup untimed steps, then --steps timed steps split into up to 5 samples; each
// sample is timed on the host clock between two device synchronisations (a sample lasts
// tens of milliseconds or more, so the synchronisation costs nothing measurable); the median
// sample's ms per step is reported. The contenders run one after the other, each built and
// destroyed on its own, so each one's peak memory is its own; the GPU machine has no other
// load to interleave against. --device cpu runs the same steps on the CPU (small --batch) as
// a smoke test. Without a usable CUDA device the default run says "skipped" and exits 0.
//
// With PyTorch's side in the same command (the target rows compare the two):
//   build/benchmarks/bench_train --json train.jsonl &&
//   python3 benchmarks/torch_train.py --visrep-json train.jsonl --json torch_train.jsonl
#if VISREP_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "benchmarks/common/harness.h"
#include "engine/cuda.h"
#include "engine/ops.h"
#include "engine/optim/lars.h"
#include "engine/optim/sgd.h"
#include "models/heads.h"
#include "models/resnet.h"

namespace {

using namespace visrep;
using bench::fixed;

constexpr int64_t kImageSide = 32;
constexpr int64_t kClasses = 10;
constexpr double kTemperature = 0.5;  // simclr's CIFAR-10 setting (README: --temperature=0.5)

struct Settings {
  int64_t batch = 0;  // 0: 512 on cuda, 32 on cpu
  int warmup = 5;
  int steps = 20;
  std::string device_text = "cuda";
  std::string precision = "both";  // tf32, fp32 or both (cuda only)
  std::string json_path;
};

// One contender: a step function over a model and optimizer it owns.
struct TrainingStep {
  std::string name;
  std::string shape;
  int64_t images_per_step = 0;  // forward + backward passes through the encoder per step
  std::function<void()> run;
  std::function<double()> last_loss;
};

models::ResNetConfig resnet18_cifar() {
  return {.depth = 18, .width_multiplier = 1, .stem = models::ResNetStem::Cifar, .in_channels = 3};
}

nn::NamedTensors prefixed(const nn::NamedTensors& named, const std::string& prefix) {
  nn::NamedTensors out;
  for (const auto& [name, tensor] : named) out.emplace_back(prefix + name, tensor);
  return out;
}

// The SimCLR step, as recipes/simclr trains it (without the data loader).
TrainingStep simclr_step(int64_t batch, Device device, Generator& generator) {
  struct State {
    models::ResNet encoder{resnet18_cifar()};
    std::unique_ptr<models::ProjectionHead> head;
    std::unique_ptr<optim::Lars> optimizer;
    Tensor views, loss;
  };
  auto state = std::make_shared<State>();
  state->head = std::make_unique<models::ProjectionHead>(state->encoder.feature_dim(), 0, 128, 2);
  state->encoder.to(device);
  state->head->to(device);
  state->encoder.train();
  state->head->train();
  nn::NamedTensors named = prefixed(state->encoder.named_parameters(), "encoder.");
  for (auto& entry : prefixed(state->head->named_parameters(), "head.")) named.push_back(entry);
  const optim::LarsOptions options{.learning_rate = 0.3 * static_cast<double>(batch) / 256.0, .momentum = 0.9,
                                   .weight_decay = 1e-6, .trust_coefficient = 0.001};
  state->optimizer = std::make_unique<optim::Lars>(optim::lars_parameter_groups(named, options));
  // Rows i and i + B are the two views of image i (nt_xent_loss's layout).
  state->views = randn({2 * batch, 3, kImageSide, kImageSide}, TensorOptions(kFloat32, device), generator);
  return {"simclr step (NT-Xent, LARS)",
          fmt::format("2x{}x3x{}x{}", batch, kImageSide, kImageSide),
          2 * batch,
          [state] {
            state->optimizer->zero_grad();
            const Tensor embeddings = state->head->forward(state->encoder.forward(state->views));
            state->loss = nt_xent_loss(embeddings, kTemperature);
            state->loss.backward();
            state->optimizer->step();
          },
          [state] { return state->loss.item(); }};
}

// The baseline: supervised training of the same encoder with a linear classifier.
TrainingStep supervised_step(int64_t batch, Device device, Generator& generator) {
  struct State {
    models::ResNet encoder{resnet18_cifar()};
    std::unique_ptr<models::LinearClassifier> classifier;
    std::unique_ptr<optim::Sgd> optimizer;
    Tensor images, labels, loss;
  };
  auto state = std::make_shared<State>();
  state->classifier = std::make_unique<models::LinearClassifier>(state->encoder.feature_dim(), kClasses);
  state->encoder.to(device);
  state->classifier->to(device);
  state->encoder.train();
  state->classifier->train();
  std::vector<Tensor> parameters = state->encoder.parameters();
  for (const Tensor& parameter : state->classifier->parameters()) parameters.push_back(parameter);
  state->optimizer = std::make_unique<optim::Sgd>(
      parameters, optim::SgdOptions{.learning_rate = 0.1, .momentum = 0.9, .weight_decay = 5e-4});
  state->images = randn({batch, 3, kImageSide, kImageSide}, TensorOptions(kFloat32, device), generator);
  state->labels = randint(0, kClasses, {batch}, TensorOptions(kInt64, device), generator);
  return {"supervised step (cross-entropy, SGD) [baseline]",
          fmt::format("{}x3x{}x{}", batch, kImageSide, kImageSide),
          batch,
          [state] {
            state->optimizer->zero_grad();
            state->loss = cross_entropy(state->classifier->forward(state->encoder.forward(state->images)),
                                        state->labels);
            state->loss.backward();
            state->optimizer->step();
          },
          [state] { return state->loss.item(); }};
}

struct Measurement {
  double ms_per_step = 0;
  std::optional<size_t> peak_bytes;  // unknown on the CPU
  double last_loss = 0;
};

void synchronize(Device device) {
  if (device.is_cuda()) cuda::synchronize(device);
}

// Builds the contender (so its weights count towards its peak), warms it up, times it.
Measurement measure(const std::function<TrainingStep()>& build, const Settings& settings, Device device,
                    TrainingStep& described) {
  using Clock = std::chrono::steady_clock;
  synchronize(device);
  if (device.is_cuda()) cuda::reset_peak_memory(device);
  TrainingStep step = build();
  for (int i = 0; i < settings.warmup; ++i) step.run();
  synchronize(device);
  const int samples = std::min(settings.steps, 5);
  std::vector<double> per_step_ms;
  for (int s = 0; s < samples; ++s) {
    // Spread the steps over the samples: the first `steps % samples` take one more.
    const int steps = settings.steps / samples + (s < settings.steps % samples ? 1 : 0);
    const auto start = Clock::now();
    for (int i = 0; i < steps; ++i) step.run();
    synchronize(device);
    per_step_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count() / steps);
  }
  Measurement measurement;
  measurement.ms_per_step = bench::median_of(per_step_ms);
  if (device.is_cuda()) measurement.peak_bytes = cuda::memory_stats(device).peak_bytes;
  measurement.last_loss = step.last_loss();
  described = {step.name, step.shape, step.images_per_step, {}, {}};
  return measurement;
}

std::string device_name(Device device) {
#if VISREP_WITH_CUDA
  if (device.is_cuda()) {
    cudaDeviceProp properties{};
    if (cudaGetDeviceProperties(&properties, device.index) == cudaSuccess) return properties.name;
  }
#endif
  return device.str();
}

int run(const Settings& settings, Device device) {
  const int64_t batch = settings.batch > 0 ? settings.batch : (device.is_cuda() ? 512 : 32);
  std::vector<std::string> precisions;
  if (device.is_cpu()) precisions = {"fp32"};
  else if (settings.precision == "both") precisions = {"tf32", "fp32"};
  else precisions = {settings.precision};

  const std::string name_of_device = device_name(device);
  std::cout << fmt::format(
      "bench_train on {}: ResNet-18 (CIFAR stem), {}x{}x3 random inputs on the device, batch {}; {} warm-up steps, "
      "median of {} samples over {} timed steps\n",
      name_of_device, kImageSide, kImageSide, batch, settings.warmup, std::min(settings.steps, 5), settings.steps);

  bench::JsonLinesWriter json(settings.json_path);
  bench::Table table({"case", "precision", "shape", "ms/step", "img or views/s", "x supervised", "peak MiB", "loss"});
  const bool previous_tf32 = cuda::tf32_enabled();
  Generator generator(7);
  for (const std::string& precision : precisions) {
    if (device.is_cuda()) cuda::set_tf32_enabled(precision == "tf32");
    TrainingStep simclr_description, supervised_description;
    const Measurement simclr =
        measure([&] { return simclr_step(batch, device, generator); }, settings, device, simclr_description);
    const Measurement supervised =
        measure([&] { return supervised_step(batch, device, generator); }, settings, device, supervised_description);
    const double supervised_rate = static_cast<double>(batch) / (supervised.ms_per_step / 1000.0);
    // Baseline first, then the contender with its ratio.
    for (const auto& [description, measured] :
         {std::pair{&supervised_description, &supervised}, std::pair{&simclr_description, &simclr}}) {
      const double rate = static_cast<double>(description->images_per_step) / (measured->ms_per_step / 1000.0);
      const double ratio = rate / supervised_rate;
      const bool finite = std::isfinite(measured->last_loss);
      table.add_row({description->name, precision, description->shape, fixed(measured->ms_per_step, 2),
                     fixed(rate, 0), fixed(ratio, 2),
                     measured->peak_bytes ? fixed(static_cast<double>(*measured->peak_bytes) / (1 << 20), 0) : "-",
                     finite ? fixed(measured->last_loss, 4) : "NOT FINITE"});
      nlohmann::json record = bench::make_record(description->name, description->shape, measured->ms_per_step,
                                                 name_of_device);
      record["precision"] = precision;
      record["batch"] = batch;
      record["images_per_step"] = description->images_per_step;
      record["images_per_second"] = rate;  // views/s for the SimCLR step
      record["supervised_images_per_second"] = supervised_rate;
      record["ratio_to_supervised"] = ratio;
      if (measured->peak_bytes) record["peak_bytes"] = *measured->peak_bytes;
      record["last_loss"] = finite ? nlohmann::json(measured->last_loss) : nlohmann::json(nullptr);
      record["warmup_steps"] = settings.warmup;
      record["timed_steps"] = settings.steps;
      json.add(record);
    }
    table.add_rule();
  }
  if (device.is_cuda()) cuda::set_tf32_enabled(previous_tf32);
  table.print(std::cout);
  std::cout << "img/s counts views for the SimCLR step (2 per image); \"x supervised\" is that rate over the "
               "supervised step's img/s in the same run.\n";
  json.commit();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Settings settings;
  CLI::App app{"SimCLR training step (ResNet-18 CIFAR stem, NT-Xent, LARS) vs the supervised step, same run"};
  app.add_option("--batch", settings.batch, "images per step (SimCLR: 2x as many views); default 512 on cuda, 32 on cpu")
      ->check(CLI::Range(int64_t{2}, int64_t{8192}));
  app.add_option("--warmup", settings.warmup, "untimed steps before timing each contender")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  app.add_option("--steps", settings.steps, "timed steps per contender")->check(CLI::Range(1, 100000))->capture_default_str();
  app.add_option("--device", settings.device_text, "cuda, cuda:N or cpu (a smoke test with a small batch)")
      ->capture_default_str();
  app.add_option("--precision", settings.precision, "float32 matmul/convolution on cuda: tf32, fp32 or both")
      ->check(CLI::IsMember({"tf32", "fp32", "both"}))
      ->capture_default_str();
  app.add_option("--json", settings.json_path, "write one JSON record per result to this file (JSON lines)");
  CLI11_PARSE(app, argc, argv);

  try {
    const Device device = Device::parse(settings.device_text);
    if (device.is_cuda() && !cuda_available()) {
      std::cout << "bench_train: no usable CUDA device: skipped"
                << (cuda_built() ? "" : " (built without the CUDA backend)") << '\n';
      return 0;
    }
    return run(settings, device);
  } catch (const std::exception& error) {
    std::cerr << "bench_train: " << error.what() << '\n';
    return 1;
  }
}
