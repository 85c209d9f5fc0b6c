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
#include <stdexcept>

#include "engine/data/synthetic.h"
#include "engine/io/safetensors.h"
#include "engine/ops.h"
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

}  // namespace

TEST_CASE("training run: a resume after a crash past the checkpoint keeps each step once (epochs)", "[e2e][simclr]") {
  recipes::clear_stop_request();
  testing::TemporaryDirectory directory;
  recipes::SimclrConfig config;
  config.epochs = 3;
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
