// End-to-end: BiT fine-tuning (recipes/bit.h) on tiny synthetic data on the CPU: the loss
// falls and the test accuracy beats chance, micro-batching (batch_split) gives the same
// update as the whole batch, a few-shot set smaller than a batch trains, and a run stopped
// as by Ctrl-C leaves a checkpoint and resumes with bit-identical losses.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <memory>

#include "engine/data/synthetic.h"
#include "engine/io/safetensors.h"
#include "engine/nn/layers.h"
#include "engine/ops.h"
#include "models/small_convnet.h"
#include "recipes/bit.h"
#include "tests/support/files.h"
#include "tests/support/test_data.h"

using namespace visrep;
using visrep::testing::mean_of;
using Catch::Contains;

namespace {

// 16 x 16 grey images of 4 classes: 128 to train on, 64 to test.
const data::ImageDataset& tiny_train_set() {
  static const data::ImageDataset set = data::subset(
      data::make_synthetic_dataset({.count = 192, .classes = 4, .seed = 9}), arange(0.0, 128.0, 1.0, kInt64));
  return set;
}
const data::ImageDataset& tiny_test_set() {
  static const data::ImageDataset set = data::subset(
      data::make_synthetic_dataset({.count = 192, .classes = 4, .seed = 9}), arange(128.0, 192.0, 1.0, kInt64));
  return set;
}

std::shared_ptr<models::SmallConvNet> tiny_convnet(uint64_t seed) {
  manual_seed(seed);
  return std::make_shared<models::SmallConvNet>(models::SmallConvNetConfig{.in_channels = 1, .classes = 4, .width = 8});
}

// No batch norm, so micro-batches see exactly what the whole batch sees.
std::shared_ptr<nn::Sequential> tiny_model_without_batch_norm(uint64_t seed) {
  manual_seed(seed);
  return std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Conv2d>(1, 6, 3, nn::Conv2dConfig{.padding = {1, 1}}), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::GlobalAvgPool2d>(), std::make_shared<nn::Linear>(6, 4)});
}

// The HyperRule's recipe scaled down to seconds on a CPU: resize 20, crop 16, a 40-step
// schedule (warmup 4, decays after 30 and 35), batch 32 and a rate a tiny network learns with.
recipes::BitConfig tiny_config() {
  recipes::BitConfig config;
  config.batch_size = 32;
  config.base_learning_rate = 0.05;
  config.scale_learning_rate = false;
  config.resolution = recipes::BitResolution{.resize = 20, .crop = 16};
  config.schedule = {4, 30, 35, 40};
  config.seed = 3;
  config.show_progress = false;
  return config;
}

int64_t lines_in(const std::string& path) {
  std::ifstream in(path);
  int64_t lines = 0;
  for (std::string line; std::getline(in, line);) ++lines;
  return lines;
}

}  // namespace

TEST_CASE("bit: fine-tuning on synthetic data lowers the loss and beats chance", "[e2e][bit]") {
  recipes::clear_stop_request();
  auto model = tiny_convnet(5);
  recipes::BitConfig config = tiny_config();
  config.mixup_alpha = 0.1;  // the large-dataset setting, to run MixUp too
  // No zoom: crops of a 1.25x resize would train on another scale than the evaluation's
  // plain resize sees, and these images' classes differ in single pixels.
  config.resolution = recipes::BitResolution{.resize = 16, .crop = 16};
  config.eval_every = 20;
  const recipes::BitResult result = recipes::train_bit(*model, tiny_train_set(), tiny_test_set(), config);
  REQUIRE(result.step_losses.size() == 40);
  REQUIRE_FALSE(result.stopped);
  const double first = mean_of(result.step_losses, 0, 5), last = mean_of(result.step_losses, 35, 5);
  INFO("mean loss of the first 5 steps " << first << ", of the last 5 " << last);
  REQUIRE(last < first - 0.3);
  // The schedule: warmup from 0, the peak, a tenth after step 30, a hundredth after 35.
  REQUIRE(result.step_learning_rates[0] == 0.0);
  REQUIRE(result.step_learning_rates[2] == Approx(0.025));
  REQUIRE(result.step_learning_rates[30] == Approx(0.05));
  REQUIRE(result.step_learning_rates[31] == Approx(0.005));
  REQUIRE(result.step_learning_rates[39] == Approx(0.0005));
  // Evaluated after step 20 and at the end; 4 classes, so chance is 25%.
  REQUIRE(result.evaluations.size() == 2);
  REQUIRE(result.evaluations[0].step == 20);
  REQUIRE(result.evaluations[1].step == 40);
  INFO("test top-1 " << result.evaluations[1].top1);
  REQUIRE(result.evaluations[1].top1 > 0.6);
}

TEST_CASE("bit: micro-batches give the same update as the whole batch", "[e2e][bit]") {
  recipes::clear_stop_request();
  recipes::BitConfig config = tiny_config();
  config.batch_size = 16;
  config.schedule = {1, 4};  // step 0 at lr 0 (it only fills the momentum), then 3 steps at the peak
  config.base_learning_rate = 0.5;
  for (double alpha : {0.0, 0.1}) {
    config.mixup_alpha = alpha;
    auto whole = tiny_model_without_batch_norm(8);
    config.batch_split = 1;
    const recipes::BitResult whole_result = recipes::train_bit(*whole, tiny_train_set(), {}, config);
    auto split = tiny_model_without_batch_norm(8);
    config.batch_split = 4;
    const recipes::BitResult split_result = recipes::train_bit(*split, tiny_train_set(), {}, config);

    INFO("MixUp alpha " << alpha);
    REQUIRE(whole_result.step_losses.size() == 4);
    for (size_t i = 0; i < 4; ++i) {
      REQUIRE(split_result.step_losses[i] == Approx(whole_result.step_losses[i]).epsilon(1e-5));
    }
    // The parameters moved, and by the same amounts up to float rounding.
    const auto reference = tiny_model_without_batch_norm(8)->state_dict();
    for (const auto& [name, value] : whole->state_dict()) {
      const Tensor other = split->state_dict().at(name);
      const double moved = max(abs(sub(value, reference.at(name)))).item();
      const double difference = max(abs(sub(value, other))).item();
      INFO(name << ": moved by up to " << moved << ", the two runs differ by up to " << difference);
      REQUIRE(moved > 1e-4);
      REQUIRE(difference <= 1e-5 * moved + 1e-7);
    }
  }
}

TEST_CASE("bit: a few-shot set smaller than a batch trains in reshuffled passes", "[e2e][bit]") {
  recipes::clear_stop_request();
  auto model = tiny_convnet(6);
  recipes::BitConfig config = tiny_config();
  config.examples_per_class = 2;  // 8 images, batches of 32: each batch spans four passes
  config.schedule = {2, 6};
  const recipes::BitResult result = recipes::train_bit(*model, tiny_train_set(), tiny_test_set(), config);
  REQUIRE(result.plan.training_examples == 8);
  REQUIRE(result.step_losses.size() == 6);
  for (double loss : result.step_losses) REQUIRE(std::isfinite(loss));
  REQUIRE(result.evaluations.size() == 1);
}

TEST_CASE("bit: a stopped run leaves a checkpoint and resumes with bit-identical losses", "[e2e][bit]") {
  recipes::clear_stop_request();
  testing::TemporaryDirectory directory;
  recipes::BitConfig config = tiny_config();
  config.schedule = {3, 8, 12};
  config.mixup_alpha = 0.1;
  config.batch_split = 2;

  // The whole run, uninterrupted: 12 steps.
  auto reference_model = tiny_convnet(7);
  config.run_directory = directory.file("reference");
  const recipes::BitResult reference = recipes::train_bit(*reference_model, tiny_train_set(), tiny_test_set(), config);
  REQUIRE(reference.step_losses.size() == 12);
  REQUIRE(std::filesystem::exists(directory.file("reference/model.safetensors")));
  REQUIRE(std::filesystem::exists(directory.file("reference/loss.png")));
  REQUIRE(lines_in(directory.file("reference/metrics.jsonl")) == 12 + 1);  // 12 steps and the final evaluation

  // The same run, stopped after step 4 as by Ctrl-C.
  auto stopped_model = tiny_convnet(7);
  config.run_directory = directory.file("run");
  config.on_step = [](int64_t step, double) {
    if (step == 4) recipes::request_stop();
  };
  const recipes::BitResult stopped = recipes::train_bit(*stopped_model, tiny_train_set(), tiny_test_set(), config);
  recipes::clear_stop_request();
  REQUIRE(stopped.stopped);
  REQUIRE(stopped.step_losses == std::vector<double>(reference.step_losses.begin(), reference.step_losses.begin() + 5));
  REQUIRE(stopped.evaluations.empty());
  REQUIRE(stopped.checkpoint_path == directory.file("run/checkpoint.safetensors"));
  REQUIRE_FALSE(std::filesystem::exists(directory.file("run/model.safetensors")));
  for (const auto& entry : std::filesystem::directory_iterator(directory.file("run"))) {
    INFO(entry.path());
    REQUIRE(entry.path().extension() != ".tmp");
  }
  const io::SafetensorsContents checkpoint = io::load_safetensors(stopped.checkpoint_path);
  REQUIRE(checkpoint.metadata.at("step") == "5");
  REQUIRE(checkpoint.metadata.at("seed") == "3");

  // (The resumed run overwrites the checkpoint when it finishes: keep a copy.)
  const std::string saved = directory.file("stopped.safetensors");
  std::filesystem::copy_file(stopped.checkpoint_path, saved);

  // Resumed into a fresh model, as after a restart: the remaining 7 steps are bit-identical
  // to the uninterrupted run's, and so is the final evaluation.
  auto resumed_model = tiny_convnet(99);
  config.on_step = nullptr;
  config.resume = saved;
  const recipes::BitResult resumed = recipes::train_bit(*resumed_model, tiny_train_set(), tiny_test_set(), config);
  REQUIRE_FALSE(resumed.stopped);
  REQUIRE(resumed.first_step == 5);
  REQUIRE(resumed.step_losses == std::vector<double>(reference.step_losses.begin() + 5, reference.step_losses.end()));
  REQUIRE(resumed.evaluations.back().top1 == reference.evaluations.back().top1);
  REQUIRE(resumed.evaluations.back().loss == reference.evaluations.back().loss);
  REQUIRE(std::filesystem::exists(directory.file("run/model.safetensors")));
  REQUIRE(lines_in(directory.file("run/metrics.jsonl")) == 5 + 1 + 7 + 1);  // steps, "stopped", steps, eval

  // A checkpoint of another seed or batch size is refused, naming the setting.
  auto again_model = tiny_convnet(99);
  config.seed = 4;
  REQUIRE_THROWS_WITH(recipes::train_bit(*again_model, tiny_train_set(), {}, config),
                      Contains("was trained with seed 3, the config asks for 4"));
  config.seed = 3;
  config.batch_size = 16;
  REQUIRE_THROWS_WITH(recipes::train_bit(*again_model, tiny_train_set(), {}, config),
                      Contains("batch_size 32, the config asks for 16"));
}
