// End-to-end: what recipes/training_run.h adds to every recipe's loop, on tiny synthetic
// data on the CPU. A run that crashed after its last checkpoint (it went on, wrote metrics of
// later steps, and died before the next checkpoint) resumes from that checkpoint with a
// metrics.jsonl that holds every step once: the same records as an uninterrupted run's, with
// the torn end of the crashed run's last write gone. The SimCLR loop (epochs) and the BiT loop
// (steps) both.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <memory>
#include <cmath>
#include <stdexcept>

#include "engine/data/synthetic.h"
#include "engine/io/safetensors.h"
#include "engine/ops.h"
#include "engine/util/version.h"
#include "models/heads.h"
#include "models/small_convnet.h"
#include "recipes/bit.h"
#include "recipes/simclr.h"
#include "tests/support/apps.h"
#include "tests/support/files.h"

using namespace visrep;

namespace {

// 16 x 16 grey images of 4 classes, 128 of them: 4 steps of 32 per epoch.
const data::ImageDataset& tiny_train_set() {
  static const data::ImageDataset set = data::subset(data::make_synthetic_dataset({.count = 128, .classes = 4, .seed = 5}),
                                                     arange(0.0, 128.0, 1.0, kInt64));
  return set;
}

struct CrashAt : std::runtime_error {
  CrashAt() : std::runtime_error("crash") {}
};

// The records without the ones that measure time.
std::vector<nlohmann::json> without_timing(std::vector<nlohmann::json> records) {
  for (nlohmann::json& record : records) record.erase("images_per_second");
  return records;
}

// `train(init_seed)` uninterrupted into <directory>/reference; then into <directory>/crashed
// with a crash in on_step of `crash_step`, after which the run folder must hold the
// checkpoint of `checkpoint_step` and `records_written` records (the cut-off line of a killed
// write is added to them); then resumed from that checkpoint into a model of another
// initialisation. The resumed run continues the reference's losses and leaves its records.
template <class Config, class Train>
void require_clean_resume_after_crash(Config& config, const Train& train, const testing::TemporaryDirectory& directory,
                                      int64_t crash_step, int64_t checkpoint_step, size_t records_written) {
  config.run_directory = directory.file("reference");
  const auto reference = train(7);
  const std::vector<nlohmann::json> expected = without_timing(testing::read_json_lines(config.run_directory + "/metrics.jsonl"));

  config.run_directory = directory.file("crashed");
  config.on_step = [crash_step](int64_t step, double) {
    if (step == crash_step) throw CrashAt();
  };
  REQUIRE_THROWS_AS(train(7), CrashAt);
  const std::string metrics = config.run_directory + "/metrics.jsonl";
  REQUIRE(testing::read_json_lines(metrics).size() == records_written);
  const std::string checkpoint = config.run_directory + "/checkpoint.safetensors";
  REQUIRE(io::load_safetensors(checkpoint).metadata.at("step") == std::to_string(checkpoint_step));
  std::ofstream(metrics, std::ios::app) << R"({"kind": "step", "ep)";

  config.on_step = nullptr;
  config.resume = checkpoint;
  const auto resumed = train(99);
  REQUIRE(resumed.first_step == checkpoint_step);
  REQUIRE(resumed.step_losses ==
          std::vector<double>(reference.step_losses.begin() + checkpoint_step, reference.step_losses.end()));
  CHECK(without_timing(testing::read_json_lines(metrics)) == expected);
}

// SimCLR on tiny_train_set: `epochs` of 4 steps of 32, a checkpoint after every epoch.
recipes::SimclrConfig tiny_simclr_config(int64_t epochs) {
  recipes::SimclrConfig config;
  config.epochs = epochs;
  config.batch_size = 32;
  config.base_learning_rate = 1.0;
  config.learning_rate_scaling = optim::LearningRateScaling::None;
  config.warmup_epochs = 0;
  config.augment = data::augment_preset("simclr", 16);
  config.seed = 2;
  config.loader_workers = 1;
  config.knn_monitor = false;
  config.show_progress = false;
  config.checkpoint_every = 1;
  return config;
}

}  // namespace

TEST_CASE("training run: a resume after a crash past the checkpoint keeps each step once (epochs)", "[e2e][simclr]") {
  recipes::clear_stop_request();
  testing::TemporaryDirectory directory;
  recipes::SimclrConfig config = tiny_simclr_config(3);
  auto train = [&](uint64_t init_seed) {
    manual_seed(init_seed);
    models::SmallConvNet encoder({.in_channels = 1, .classes = 16, .width = 4});
    models::ProjectionHead head(16, 16, 8, 2);
    return recipes::train_simclr(encoder, head, tiny_train_set(), {}, config);
  };
  // 3 epochs of 4 steps; step 5 (epoch 2's second) crashes after epoch 1's checkpoint, with
  // steps 0 to 5 and epoch 1's record written.
  require_clean_resume_after_crash(config, train, directory, 5, 4, 6 + 1);
}

TEST_CASE("training run: a resume after a crash past the checkpoint keeps each step once (steps)", "[e2e][bit]") {
  recipes::clear_stop_request();
  testing::TemporaryDirectory directory;
  recipes::BitConfig config;
  config.batch_size = 32;
  config.base_learning_rate = 0.05;
  config.scale_learning_rate = false;
  config.resolution = recipes::BitResolution{.resize = 20, .crop = 16};
  config.schedule = {3, 8, 12};
  config.mixup_alpha = 0.1;
  config.seed = 3;
  config.eval_every = 3;
  config.checkpoint_every = 4;
  config.show_progress = false;
  const data::ImageDataset test_set = data::subset(tiny_train_set(), arange(0.0, 32.0, 1.0, kInt64));
  auto train = [&](uint64_t init_seed) {
    manual_seed(init_seed);
    models::SmallConvNet model({.in_channels = 1, .classes = 4, .width = 4});
    return recipes::train_bit(model, tiny_train_set(), test_set, config);
  };
  // 12 steps, evaluated after 3, 6, 9 and 12 (every record is compared: loss, lr, MixUp's
  // weight, the evaluations); step 6 crashes after the evaluation at 6, with step 4's
  // checkpoint the last one, steps 0 to 6 and the evaluations at 3 and 6 written.
  require_clean_resume_after_crash(config, train, directory, 6, 4, 7 + 2);
}

TEST_CASE("training run: a resume refuses checkpoint entries out of range, naming the file, entry and value",
          "[e2e][simclr][hostile]") {
  recipes::clear_stop_request();
  testing::TemporaryDirectory directory;
  recipes::SimclrConfig config = tiny_simclr_config(1);
  config.run_directory = directory.file("run");
  auto train = [&] {
    manual_seed(7);
    models::SmallConvNet encoder({.in_channels = 1, .classes = 16, .width = 4});
    models::ProjectionHead head(16, 16, 8, 2);
    return recipes::train_simclr(encoder, head, tiny_train_set(), {}, config);
  };
  train();  // 1 epoch of 4 steps: the checkpoint stands at epoch 1, batch 0, step 4
  const io::SafetensorsContents written = io::load_safetensors(config.run_directory + "/checkpoint.safetensors");
  REQUIRE(written.metadata.at("epochs_done") == "1");
  REQUIRE(nlohmann::json::parse(written.metadata.at("visrep.model")).at("visrep_version") == version());
  // The optimizer's state is keyed by the parameters' names in the checkpoint.
  REQUIRE(written.tensors.count("optimizer.encoder.classifier.weight.momentum") == 1);

  config.epochs = 2;
  config.run_directory = directory.file("resumed");
  const std::string crafted = directory.file("crafted.safetensors");
  // The message of the error a resume from `written` changed by `entries` (and `tensors`,
  // when given) stops with.
  const auto refused = [&](const std::map<std::string, std::string>& entries, io::TensorMap tensors = {}) {
    std::map<std::string, std::string> metadata = written.metadata;
    for (const auto& [key, value] : entries) metadata[key] = value;
    if (tensors.empty()) tensors = written.tensors;
    io::save_safetensors(crafted, tensors, metadata);
    config.resume = crafted;
    try {
      train();
    } catch (const std::exception& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  using Catch::Matchers::Contains;
  // 2^62 epochs: epochs_done * steps_per_epoch overflowed into a position that passed.
  REQUIRE_THAT(refused({{"epochs_done", "4611686018427387904"}}),
               Contains(crafted) && Contains("'epochs_done' 4611686018427387904") && Contains("0..2 epochs"));
  REQUIRE_THAT(refused({{"epochs_done", "-1"}}), Contains(crafted) && Contains("'epochs_done' -1"));
  REQUIRE_THAT(refused({{"step", "-4"}}), Contains(crafted) && Contains("step -4 (its 'step' entry)"));
  REQUIRE_THAT(refused({{"step", "9223372036854775807"}}),
               Contains(crafted) && Contains("step 9223372036854775807 (its 'step' entry)") && Contains("0..8"));
  REQUIRE_THAT(refused({{"step", "99999999999999999999"}}),
               Contains(crafted) && Contains("malformed 'step' entry: '99999999999999999999'"));
  REQUIRE_THAT(refused({{"batch", "4"}}), Contains(crafted) && Contains("'batch' 4") && Contains("0..3"));
  REQUIRE_THAT(refused({{"batch", "-1"}}), Contains(crafted) && Contains("'batch' -1"));
  REQUIRE_THAT(refused({{"step", "5"}}), Contains(crafted) && Contains("does not fit 4 steps per epoch"));
  REQUIRE_THAT(refused({{"epoch_loss_sum", "nan"}}), Contains(crafted) && Contains("'epoch_loss_sum' nan"));
  REQUIRE_THAT(refused({{"epoch_loss_sum", "2.5"}}), Contains(crafted) && Contains("'epoch_loss_sum' 2.5 at batch 0"));
  REQUIRE_THAT(refused({{"seed", "3"}}), Contains(crafted) && Contains("seed 3"));

  io::TensorMap tensors = written.tensors;
  tensors["history.step_losses"] = from_vector<double>({1.0, 2.0, 3.0});
  REQUIRE_THAT(refused({}, tensors), Contains(crafted) && Contains("3 entries in 'history.step_losses' for 4 steps"));
  tensors["history.step_losses"] = from_vector<double>({1.0, 2.0, std::nan(""), 3.0});
  REQUIRE_THAT(refused({}, tensors), Contains(crafted) && Contains("loss of nan at step 2 of 'history.step_losses'"));
  tensors = written.tensors;
  const std::string momentum = "optimizer.encoder.classifier.weight.momentum";
  tensors[momentum] = tensors.at(momentum).to(kFloat64);
  REQUIRE_THAT(refused({}, tensors), Contains(crafted) && Contains("'encoder.classifier.weight.momentum' is float64") &&
                                         Contains("its parameter is float32"));

  // The written checkpoint itself resumes, into its run folder.
  config.run_directory = directory.file("run");
  config.resume = config.run_directory + "/checkpoint.safetensors";
  REQUIRE(train().first_step == 4);
}
