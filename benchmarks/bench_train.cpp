// bench_train: training throughput of whole training steps, each on random inputs already on
// the device (augmentation is bench_augment's business). --case picks them:
//
//   simclr      2B views (32x32x3) -> ResNet-18 with the CIFAR stem -> SimCLR's
//               2-layer projection head (512 -> 512 -> 128) -> fused NT-Xent (tau 0.5, the
//               32-px default) -> backward -> LARS (simclr's rule: biases and norms
//               excluded; lr 0.3 x B / 256, weight decay 1e-6, momentum 0.9).
//   supervised  its baseline: B images -> the same ResNet-18 -> a linear classifier (10
//               classes) -> cross-entropy on random labels -> backward -> SGD (momentum 0.9,
//               weight decay 5e-4), as a plain CIFAR training loop does it.
//   bit-tiny    the README main job's step (apps/visrep_simclr.cpp's defaults on the CPU):
//               2B views (28x28x1, Fashion-MNIST's size) -> models::make_encoder("bit-tiny"), the
//               smallest ResNetV2 (one pre-activation unit per stage, base width 16, GroupNorm
//               with 8 groups, Weight Standardization eps 1e-10, 512 features) -> the 2-layer
//               projection head (512 -> 512 -> 128) -> fused NT-Xent (tau 0.1) -> backward ->
//               LARS (simclr's rule; lr 0.3 x B / 256, weight decay 1e-6, momentum 0.9);
//               B = 256 by default. These stay this case's settings whatever the main job's
//               defaults become (the main job's first encoder).
//   main        today's main-job step: the same, with bit-tiny of base width 32 (GroupNorm with
//               16 groups, 1,024 features; head 1024 -> 1024 -> 128), tau 0.2 and B = 512, as
//               visrep-simclr trains it on the CPU by default (apps/app_common.h).
//   bit         a BiT-R50x1 fine-tuning step, head included: B images (224x224x3)
//               -> models::ResNetV2 depth 50, width 1, 1000 classes, configured as timm's
//               resnetv2_50x1_bit (WS eps 1e-8, the head initialised as timm does, not zeroed)
//               -> cross-entropy on random labels -> backward -> SGD as the BiT-HyperRule
//               has it (momentum 0.9, no weight decay, lr 0.003).
// The default runs simclr and supervised (the SimCLR target's pair); "all" runs the five.
//
// Reported per step: ms, images/s (views/s for SimCLR: each view is a full forward and
// backward pass through the encoder), the ratio SimCLR views/s / supervised img/s when both
// ran, and the peak of the caching allocator's counters (engine/cuda.h memory_stats) over
// the contender's life: weights, gradients, optimizer state, inputs and activations. On the
// GPU every step runs with TF32 on and again with it off (visrep::cuda::set_tf32_enabled).
// visrep has no bfloat16 training path (no autocast; a bfloat16 convolution computes in
// float32), so there are TF32 and FP32 rows only. The targets, against PyTorch eager, which
// benchmarks/torch_train.py measures when run in the same command:
//   simclr  views/s >= PyTorch's supervised img/s at the same precision;
//   bit     img/s >= 1.5x PyTorch's timm resnetv2_50x1_bit (H100: 1850 img/s TF32, 1869
//           img/s bf16 autocast); torch_train.py compares the TF32 row with both.
//
// Timing: --warmup untimed steps, then --steps timed steps split into up to 5 samples; each
// sample is timed on the host clock between two device synchronisations (a sample lasts
// tens of milliseconds or more, so the synchronisation costs nothing measurable); the median
// sample's ms per step is reported. The contenders run one after the other, each built and
// destroyed on its own, so each one's peak memory is its own; the GPU machine has no other
// load to interleave against. A line per contender goes to stderr as it finishes and the
// JSON file is rewritten after each precision, so a run cut short keeps what it measured.
// --device cpu runs the same steps on the CPU with small defaults as a smoke test. Without
// a usable CUDA device the default run says "skipped" and exits 0.
//
// On the CPU, benchmarks/torch_train.py --device cpu --visrep build/benchmarks/bench_train runs
// this binary and PyTorch eager in alternating rounds on the same threads and prints the
// side-by-side table (README, "Benchmarks").
//
// With PyTorch's side in the same command (the target rows compare the two):
//   build/benchmarks/bench_train --json train.jsonl &&
//   python3 benchmarks/torch_train.py --visrep-json train.jsonl --json torch_train.jsonl
//   build/benchmarks/bench_train --case bit --json bit.jsonl &&
//   python3 benchmarks/torch_train.py --case bit --visrep-json bit.jsonl --json torch_bit.jsonl
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <omp.h>

#include "benchmarks/common/harness.h"
#include "engine/cuda.h"
#include "engine/ops.h"
#include "engine/optim/lars.h"
#include "engine/optim/sgd.h"
#include "models/factory.h"
#include "models/heads.h"
#include "models/resnet.h"
#include "models/resnet_v2.h"

namespace {

using namespace visrep;
using bench::fixed;

constexpr int64_t kCifarClasses = 10;
constexpr double kTemperature = 0.5;  // simclr's CIFAR-10 setting (README: --temperature=0.5)
constexpr double kBitTinyTemperature = 0.1;  // apps/visrep_simclr.cpp's with bit-tiny when the case was written
constexpr int64_t kBitTinyWidth = 16;        // bit-tiny's base width then (models/factory.h's default)
constexpr double kMainJobTemperature = 0.2;  // apps/visrep_simclr.cpp's today
constexpr int64_t kMainJobBatch = 512;        // images per step in today's main job (apps/visrep_simclr.cpp)
constexpr int64_t kMainJobWidth = 32;        // bit-tiny's base width in today's main job (apps/app_common.h)
constexpr int64_t kMainJobImageSize = 28;    // Fashion-MNIST, one channel
constexpr int64_t kBitClasses = 1000;
constexpr double kBitLearningRate = 0.003;  // BiT-HyperRule (bit_hyperrule.py), at any batch here

// The cases in the order they are measured, and in the order the table lists them (the
// baseline before the step compared with it).
const std::vector<std::string> kCaseNames = {"simclr", "supervised", "bit-tiny", "main", "bit"};
const std::vector<std::string> kTableOrder = {"supervised", "simclr", "bit-tiny", "main", "bit"};

// The steps on 28x28x1 views: the main job's, then and now.
bool main_job_case(const std::string& name) { return name == "bit-tiny" || name == "main"; }

struct Settings {
  std::vector<std::string> cases = {"simclr", "supervised"};
  int64_t batch = 0;       // 0: the case's default (case_batch)
  int64_t image_size = 0;  // 0: the case's default (case_image_size)
  int warmup = 5;
  int steps = 20;
  std::string device_text = "cuda";
  std::string precision = "both";  // tf32, fp32 or both (cuda only)
  std::string json_path;
};

int64_t case_batch(const std::string& name, const Settings& settings, Device device) {
  if (settings.batch > 0) return settings.batch;
  if (name == "bit") return device.is_cuda() ? 128 : 2;
  if (name == "bit-tiny") return 256;
  if (name == "main") return kMainJobBatch;
  return device.is_cuda() ? 512 : 32;
}

int64_t case_image_size(const std::string& name, const Settings& settings, Device device) {
  if (settings.image_size > 0) return settings.image_size;
  if (name == "bit") return device.is_cuda() ? 224 : 64;
  if (main_job_case(name)) return kMainJobImageSize;
  return 32;
}

// One contender: a step function over a model and optimizer it owns.
struct TrainingStep {
  std::string name;
  std::string shape;
  int64_t images_per_step = 0;  // forward + backward passes through the encoder per step
  int64_t parameters = 0;       // trained parameters (encoder and head), for comparison with torch_train.py
  std::function<void()> run;
  std::function<double()> last_loss;
};

models::ResNetConfig resnet18_cifar() {
  return {.depth = 18, .width_multiplier = 1, .stem = models::ResNetStem::Cifar, .in_channels = 3};
}

// timm's resnetv2_50x1_bit with num_classes=1000: weight standardisation with eps 1e-8 and
// the head's timm initialisation (normal, std 0.01), not BiT's zero head.
models::ResNetV2Config bit_r50x1() {
  return {.depth = 50, .width_factor = 1, .classes = kBitClasses, .in_channels = 3, .zero_head = false,
          .std_conv_eps = 1e-8};
}

nn::NamedTensors prefixed(const nn::NamedTensors& named, const std::string& prefix) {
  nn::NamedTensors out;
  for (const auto& [name, tensor] : named) out.emplace_back(prefix + name, tensor);
  return out;
}

std::string image_shape(int64_t batch, int64_t side, int64_t channels = 3) {
  return fmt::format("{}x{}x{}x{}", batch, channels, side, side);
}

// simclr's LARS (lars_parameter_groups: biases and norms excluded) over the encoder's and
// the head's parameters, at lr 0.3 x B / 256.
std::unique_ptr<optim::Lars> simclr_lars(const nn::Module& encoder, const nn::Module& head, int64_t batch) {
  nn::NamedTensors named = prefixed(encoder.named_parameters(), "encoder.");
  for (auto& entry : prefixed(head.named_parameters(), "head.")) named.push_back(entry);
  const optim::LarsOptions options{.learning_rate = 0.3 * static_cast<double>(batch) / 256.0, .momentum = 0.9,
                                   .weight_decay = 1e-6, .trust_coefficient = 0.001};
  return std::make_unique<optim::Lars>(optim::lars_parameter_groups(named, options));
}

// The SimCLR step, as recipes/simclr trains it (without the data loader).
TrainingStep simclr_step(int64_t batch, int64_t side, Device device, Generator& generator) {
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
  state->optimizer = simclr_lars(state->encoder, *state->head, batch);
  // Rows i and i + B are the two views of image i (nt_xent_loss's layout).
  state->views = randn({2 * batch, 3, side, side}, TensorOptions(kFloat32, device), generator);
  return {"simclr step (NT-Xent, LARS)",
          "2x" + image_shape(batch, side),
          2 * batch,
          state->encoder.parameter_count() + state->head->parameter_count(),
          [state] {
            state->optimizer->zero_grad();
            const Tensor embeddings = state->head->forward(state->encoder.forward(state->views));
            state->loss = nt_xent_loss(embeddings, kTemperature);
            state->loss.backward();
            state->optimizer->step();
          },
          [state] { return state->loss.item(); }};
}

// A main-job step: bit-tiny of `base_width` on 28x28x1 views, NT-Xent at `temperature`, LARS.
TrainingStep bit_tiny_step(int64_t batch, int64_t side, Device device, Generator& generator, int64_t base_width,
                           double temperature, std::string title) {
  struct State {
    explicit State(int64_t base_width) : encoder(models::make_encoder("bit-tiny", base_width, 1, kMainJobImageSize)) {}
    models::Encoder encoder;
    std::unique_ptr<models::ProjectionHead> head;
    std::unique_ptr<optim::Lars> optimizer;
    Tensor views, loss;
  };
  auto state = std::make_shared<State>(base_width);
  nn::Module& encoder = *state->encoder.module;
  state->head = std::make_unique<models::ProjectionHead>(state->encoder.feature_dim, 0, 128, 2);
  encoder.to(device);
  state->head->to(device);
  encoder.train();
  state->head->train();
  state->optimizer = simclr_lars(encoder, *state->head, batch);
  state->views = randn({2 * batch, 1, side, side}, TensorOptions(kFloat32, device), generator);
  return {std::move(title),
          "2x" + image_shape(batch, side, 1),
          2 * batch,
          encoder.parameter_count() + state->head->parameter_count(),
          [state, temperature] {
            state->optimizer->zero_grad();
            const Tensor embeddings = state->head->forward(state->encoder.module->forward(state->views));
            state->loss = nt_xent_loss(embeddings, temperature);
            state->loss.backward();
            state->optimizer->step();
          },
          [state] { return state->loss.item(); }};
}

// The baseline: supervised training of the same encoder with a linear classifier.
TrainingStep supervised_step(int64_t batch, int64_t side, Device device, Generator& generator) {
  struct State {
    models::ResNet encoder{resnet18_cifar()};
    std::unique_ptr<models::LinearClassifier> classifier;
    std::unique_ptr<optim::Sgd> optimizer;
    Tensor images, labels, loss;
  };
  auto state = std::make_shared<State>();
  state->classifier = std::make_unique<models::LinearClassifier>(state->encoder.feature_dim(), kCifarClasses);
  state->encoder.to(device);
  state->classifier->to(device);
  state->encoder.train();
  state->classifier->train();
  std::vector<Tensor> parameters = state->encoder.parameters();
  for (const Tensor& parameter : state->classifier->parameters()) parameters.push_back(parameter);
  state->optimizer = std::make_unique<optim::Sgd>(
      parameters, optim::SgdOptions{.learning_rate = 0.1, .momentum = 0.9, .weight_decay = 5e-4});
  state->images = randn({batch, 3, side, side}, TensorOptions(kFloat32, device), generator);
  state->labels = randint(0, kCifarClasses, {batch}, TensorOptions(kInt64, device), generator);
  return {"supervised step (cross-entropy, SGD) [baseline]",
          image_shape(batch, side),
          batch,
          state->encoder.parameter_count() + state->classifier->parameter_count(),
          [state] {
            state->optimizer->zero_grad();
            state->loss = cross_entropy(state->classifier->forward(state->encoder.forward(state->images)),
                                        state->labels);
            state->loss.backward();
            state->optimizer->step();
          },
          [state] { return state->loss.item(); }};
}

// BiT fine-tuning of the whole network, head included, as recipes/bit's loop does one
// micro-batch of it (without MixUp, whose cost is one blend of the batch).
TrainingStep bit_step(int64_t batch, int64_t side, Device device, Generator& generator) {
  struct State {
    models::ResNetV2 model{bit_r50x1()};
    std::unique_ptr<optim::Sgd> optimizer;
    Tensor images, labels, loss;
  };
  auto state = std::make_shared<State>();
  state->model.to(device);
  state->model.train();
  state->optimizer = std::make_unique<optim::Sgd>(
      state->model.parameters(),
      optim::SgdOptions{.learning_rate = kBitLearningRate, .momentum = 0.9, .weight_decay = 0.0});
  state->images = randn({batch, 3, side, side}, TensorOptions(kFloat32, device), generator);
  state->labels = randint(0, kBitClasses, {batch}, TensorOptions(kInt64, device), generator);
  return {"bit step (R50x1, cross-entropy, SGD)",
          image_shape(batch, side),
          batch,
          state->model.parameter_count(),
          [state] {
            state->optimizer->zero_grad();
            state->loss = cross_entropy(state->model.forward(state->images), state->labels);
            state->loss.backward();
            state->optimizer->step();
          },
          [state] { return state->loss.item(); }};
}

TrainingStep build_step(const std::string& name, const Settings& settings, Device device, Generator& generator) {
  const int64_t batch = case_batch(name, settings, device);
  const int64_t side = case_image_size(name, settings, device);
  if (name == "simclr") return simclr_step(batch, side, device, generator);
  if (name == "supervised") return supervised_step(batch, side, device, generator);
  if (name == "bit-tiny")
    return bit_tiny_step(batch, side, device, generator, kBitTinyWidth, kBitTinyTemperature,
                         "bit-tiny simclr step (first main job: NT-Xent 0.1, LARS)");
  if (name == "main")
    return bit_tiny_step(batch, side, device, generator, kMainJobWidth, kMainJobTemperature,
                         "main-job simclr step (bit-tiny width 32, NT-Xent 0.2, LARS)");
  return bit_step(batch, side, device, generator);
}

struct Measurement {
  std::string case_name;  // simclr, supervised or bit
  std::string name;
  std::string shape;
  int64_t images_per_step = 0;
  int64_t parameters = 0;
  double ms_per_step = 0;
  std::optional<size_t> peak_bytes;  // unknown on the CPU
  double last_loss = 0;

  double images_per_second() const { return static_cast<double>(images_per_step) / (ms_per_step / 1000.0); }
};

void synchronize(Device device) {
  if (device.is_cuda()) cuda::synchronize(device);
}

// Builds the contender (so its weights count towards its peak), warms it up, times it; the
// contender is freed on return.
Measurement measure(const std::string& case_name, const Settings& settings, Device device, Generator& generator) {
  using Clock = std::chrono::steady_clock;
  synchronize(device);
  if (device.is_cuda()) cuda::reset_peak_memory(device);
  TrainingStep step = build_step(case_name, settings, device, generator);
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
  Measurement measurement{case_name, step.name, step.shape, step.images_per_step, step.parameters};
  measurement.ms_per_step = bench::median_of(per_step_ms);
  if (device.is_cuda()) measurement.peak_bytes = cuda::memory_stats(device).peak_bytes;
  measurement.last_loss = step.last_loss();
  return measurement;
}

std::string mebibytes(const std::optional<size_t>& bytes) {
  return bytes ? fixed(static_cast<double>(*bytes) / (1 << 20), 0) : "-";
}

bool selected(const Settings& settings, const std::string& name) {
  return std::find(settings.cases.begin(), settings.cases.end(), name) != settings.cases.end();
}

int run(const Settings& settings, Device device) {
  std::vector<std::string> precisions;
  if (device.is_cpu()) precisions = {"fp32"};
  else if (settings.precision == "both") precisions = {"tf32", "fp32"};
  else precisions = {settings.precision};
  std::vector<std::string> cases;
  for (const std::string& name : kCaseNames)
    if (selected(settings, name)) cases.push_back(name);

  const std::string name_of_device = bench::device_name(device);
  std::cout << fmt::format(
      "bench_train on {}: random inputs on the device; {} warm-up steps, median of {} samples over {} timed steps\n",
      name_of_device, settings.warmup, std::min(settings.steps, 5), settings.steps);
  for (const std::string& name : cases) {
    const std::string network = name == "bit"        ? "BiT-R50x1 (ResNetV2-50x1, GroupNorm + WS), 1000 classes"
                                : name == "bit-tiny" ? "bit-tiny (ResNetV2, 1 unit per stage, width 16) + 2-layer head"
                                : name == "main"     ? "bit-tiny (ResNetV2, 1 unit per stage, width 32) + 2-layer head"
                                                     : "ResNet-18 (CIFAR stem)";
    const int channels = main_job_case(name) ? 1 : 3;
    std::cout << fmt::format("  {}: {}, batch {}, {}x{}x{}\n", name, network, case_batch(name, settings, device),
                             case_image_size(name, settings, device), case_image_size(name, settings, device), channels);
  }
  if (device.is_cuda() && selected(settings, "bit"))
    std::cout << "  visrep has no bfloat16 training path: TF32 and FP32 rows only\n";

  bench::JsonLinesWriter json(settings.json_path);
  bench::Table table({"case", "precision", "shape", "ms/step", "img or views/s", "x supervised", "peak MiB", "loss"});
  const bool previous_tf32 = cuda::tf32_enabled();
  Generator generator(7);
  for (const std::string& precision : precisions) {
    if (device.is_cuda()) cuda::set_tf32_enabled(precision == "tf32");
    std::map<std::string, Measurement> measured;
    for (const std::string& name : cases) {
      const Measurement m = measure(name, settings, device, generator);
      std::cerr << fmt::format("measured: {} {}: {} ms/step, {} img/s, peak {} MiB\n", name, precision,
                               fixed(m.ms_per_step, 2), fixed(m.images_per_second(), 0), mebibytes(m.peak_bytes));
      measured.emplace(name, m);
    }
    // Images per second of the supervised step, 0 when it did not run.
    const auto supervised = measured.find("supervised");
    const double supervised_rate = supervised != measured.end() ? supervised->second.images_per_second() : 0.0;
    for (const std::string& name : kTableOrder) {
      const auto found = measured.find(name);
      if (found == measured.end()) continue;
      const Measurement& m = found->second;
      const double rate = m.images_per_second();
      const bool cifar_case = name == "simclr" || name == "supervised";
      const bool has_ratio = cifar_case && supervised_rate > 0;
      const double ratio = has_ratio ? rate / supervised_rate : 0.0;
      const bool finite = std::isfinite(m.last_loss);
      table.add_row({m.name, precision, m.shape, fixed(m.ms_per_step, 2), fixed(rate, 0),
                     has_ratio ? fixed(ratio, 2) : "-", mebibytes(m.peak_bytes),
                     finite ? fixed(m.last_loss, 4) : "NOT FINITE"});
      nlohmann::json record = bench::make_record(m.name, m.shape, m.ms_per_step, name_of_device);
      record["case"] = m.case_name;
      record["precision"] = precision;
      record["batch"] = case_batch(name, settings, device);
      record["image_size"] = case_image_size(name, settings, device);
      record["images_per_step"] = m.images_per_step;
      record["images_per_second"] = rate;  // views/s for the SimCLR steps
      record["parameters"] = m.parameters;
      record["threads"] = omp_get_max_threads();  // OpenMP's, which every CPU kernel runs on
      if (cifar_case) {
        record["supervised_images_per_second"] = has_ratio ? nlohmann::json(supervised_rate) : nullptr;
        record["ratio_to_supervised"] = has_ratio ? nlohmann::json(ratio) : nullptr;
      } else if (name == "bit") {
        record["model"] = "resnetv2_50x1_bit";
        record["classes"] = kBitClasses;
      }
      if (m.peak_bytes) record["peak_bytes"] = *m.peak_bytes;
      record["last_loss"] = finite ? nlohmann::json(m.last_loss) : nlohmann::json(nullptr);
      record["warmup_steps"] = settings.warmup;
      record["timed_steps"] = settings.steps;
      json.add(record);
    }
    table.add_rule();
    json.commit();  // after every precision: a run cut short keeps what it measured
  }
  if (device.is_cuda()) cuda::set_tf32_enabled(previous_tf32);
  table.print(std::cout);
  if (selected(settings, "simclr") || selected(settings, "bit-tiny") || selected(settings, "main"))
    std::cout << "img/s counts views for the SimCLR steps (2 per image); \"x supervised\" is that rate over the "
                 "supervised step's img/s in the same run.\n";
  if (selected(settings, "bit"))
    std::cout << "bit: the target is >= 1.5x PyTorch eager timm resnetv2_50x1_bit's img/s "
                 "(benchmarks/torch_train.py --case bit prints the ratio).\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Settings settings;
  CLI::App app{"Training steps: SimCLR vs supervised (ResNet-18, CIFAR stem) and BiT-R50x1 fine-tuning"};
  app.add_option("--case", settings.cases,
                 "steps to measure: simclr, supervised, bit-tiny (the first main job's step), main (today's), bit, "
                 "or all (several may be given); the default is the SimCLR target's pair, simclr and supervised")
      ->check(CLI::IsMember({"simclr", "supervised", "bit-tiny", "main", "bit", "all"}))
      ->capture_default_str();
  app.add_option("--batch", settings.batch,
                 "images per step for every case (SimCLR: 2x as many views); default 512 on cuda, 32 on cpu; bit-tiny: "
                 "256; main: 512; bit: 128 on cuda, 2 on cpu")
      ->check(CLI::Range(int64_t{2}, int64_t{8192}));
  app.add_option("--image-size", settings.image_size,
                 "image height and width for every case; default 32; bit-tiny and main: 28; bit: 224 on cuda, 64 on cpu")
      ->check(CLI::Range(int64_t{16}, int64_t{1024}));
  app.add_option("--warmup", settings.warmup, "untimed steps before timing each contender")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  app.add_option("--steps", settings.steps, "timed steps per contender")->check(CLI::Range(1, 100000))->capture_default_str();
  app.add_option("--device", settings.device_text, "cuda, cuda:N or cpu (a smoke test with small defaults)")
      ->capture_default_str();
  app.add_option("--precision", settings.precision, "float32 matmul/convolution on cuda: tf32, fp32 or both")
      ->check(CLI::IsMember({"tf32", "fp32", "both"}))
      ->capture_default_str();
  app.add_option("--json", settings.json_path, "write one JSON record per result to this file (JSON lines)");
  CLI11_PARSE(app, argc, argv);
  if (selected(settings, "all")) settings.cases = kCaseNames;

  return bench::run_reporting_errors("bench_train", [&] {
    const Device device = Device::parse(settings.device_text);
    if (device.is_cuda() && bench::skipped_without_cuda("bench_train")) return 0;
    return run(settings, device);
  });
}
