// End-to-end: the SimCLR and SupCon recipes (recipes/simclr.h, recipes/supcon.h) on tiny
// synthetic data on the CPU: the loss falls, the kNN monitor encodes at the size asked, a
// stopped and resumed run continues with bit-identical losses, a stop leaves a checkpoint
// and no partial files, and bad settings are refused with a message that names them.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "engine/data/synthetic.h"
#include "engine/io/safetensors.h"
#include "engine/ops.h"
#include "models/heads.h"
#include "models/model_description.h"
#include "models/small_convnet.h"
#include "recipes/evaluation.h"
#include "recipes/simclr.h"
#include "recipes/supcon.h"
#include "tests/support/files.h"
#include "tests/support/test_data.h"

using namespace visrep;
using visrep::testing::mean_of;
using Catch::Contains;

namespace {

constexpr int64_t kFeatures = 32;  // the tiny encoder's output width

// 16 x 16 grey images of 4 classes; 128 for training (4 steps of 32 per epoch), 64 for tests.
const data::ImageDataset& tiny_train_set() {
  static const data::ImageDataset set = data::subset(data::make_synthetic_dataset({.count = 192, .classes = 4, .seed = 5}),
                                                     arange(0.0, 128.0, 1.0, kInt64));
  return set;
}
const data::ImageDataset& tiny_test_set() {
  static const data::ImageDataset set = data::subset(data::make_synthetic_dataset({.count = 192, .classes = 4, .seed = 5}),
                                                     arange(128.0, 192.0, 1.0, kInt64));
  return set;
}

// The tiny encoder: SmallConvNet's three conv blocks, its "classifier" a 32-wide feature layer.
struct TinyModel {
  explicit TinyModel(uint64_t seed) {
    manual_seed(seed);
    encoder = std::make_shared<models::SmallConvNet>(models::SmallConvNetConfig{.in_channels = 1, .classes = kFeatures,
                                                                                .width = 8});
    head = std::make_shared<models::ProjectionHead>(kFeatures, kFeatures, 16, 2);
  }
  std::shared_ptr<models::SmallConvNet> encoder;
  std::shared_ptr<models::ProjectionHead> head;
};

// Views that share most of the image: crops of 90..100% of the area, flips, no colour changes.
// (SimCLR's own crops of 8% of a 16-px noise image leave the two views too little in common to
// learn from in a few steps.)
data::AugmentConfig mild_augment() {
  data::AugmentConfig augment = data::augment_preset("simclr", 16);
  augment.min_area = 0.9;
  augment.jitter_probability = 0.0;
  augment.grayscale_probability = 0.0;
  return augment;
}

recipes::SimclrConfig tiny_simclr_config() {
  recipes::SimclrConfig config;
  config.epochs = 3;
  config.batch_size = 32;
  // LARS moves a layer by about lr x eeta of its norm per step: a tiny network in a few steps
  // needs more than SimCLR's 0.001 x (0.3 x B / 256).
  config.base_learning_rate = 4.0;
  config.trust_coefficient = 0.01;
  config.learning_rate_scaling = optim::LearningRateScaling::None;
  config.warmup_epochs = 0;
  config.augment = mild_augment();
  config.seed = 11;
  config.loader_workers = 1;
  config.knn_monitor = false;
  config.show_progress = false;
  return config;
}

// The loss fell: the mean of the last epoch's 4 steps is below the first epoch's by `margin`.
// (Single steps are noisy: batches differ in how hard they are.)
bool loss_fell(const std::vector<double>& losses, double margin) {
  REQUIRE(losses.size() >= 8);
  const double first = mean_of(losses, 0, 4), last = mean_of(losses, losses.size() - 4, 4);
  UNSCOPED_INFO("mean loss of the first 4 steps " << first << ", of the last 4 " << last);
  return last < first - margin;
}

}  // namespace

TEST_CASE("simclr: the NT-Xent loss falls on synthetic data", "[e2e][simclr]") {
  recipes::clear_stop_request();
  TinyModel model(7);
  recipes::SimclrConfig config = tiny_simclr_config();
  config.epochs = 6;
  config.knn_monitor = true;
  const recipes::SimclrResult result =
      recipes::train_simclr(*model.encoder, *model.head, tiny_train_set(), tiny_test_set(), config);
  REQUIRE(result.step_losses.size() == 24);
  REQUIRE(result.first_step == 0);
  REQUIRE_FALSE(result.stopped);
  REQUIRE(loss_fell(result.step_losses, 0.3));
  // The kNN monitor ran after every epoch and gives an accuracy.
  REQUIRE(result.epochs.size() == 6);
  for (const auto& epoch : result.epochs) {
    REQUIRE(epoch.knn_accuracy.has_value());
    REQUIRE(*epoch.knn_accuracy >= 0.0);
    REQUIRE(*epoch.knn_accuracy <= 1.0);
  }

  // The check above can fail: with a learning rate of (almost) zero the same run does not learn.
  TinyModel frozen(7);
  config.base_learning_rate = 1e-9;
  config.knn_monitor = false;
  const recipes::SimclrResult still =
      recipes::train_simclr(*frozen.encoder, *frozen.head, tiny_train_set(), tiny_test_set(), config);
  REQUIRE_FALSE(loss_fell(still.step_losses, 0.3));
}

TEST_CASE("simclr: the kNN monitor, its features for the final evaluation and the checkpoint's input follow "
          "eval_image_size",
          "[e2e][simclr]") {
  recipes::clear_stop_request();
  testing::TemporaryDirectory directory;
  const auto run = [&](int64_t eval_image_size, const std::string& name) {
    TinyModel model(7);
    recipes::SimclrConfig config = tiny_simclr_config();
    config.epochs = 1;
    config.knn_monitor = true;
    config.eval_image_size = eval_image_size;
    config.run_directory = directory.file(name);
    const recipes::SimclrResult result =
        recipes::train_simclr(*model.encoder, *model.head, tiny_train_set(), tiny_test_set(), config);
    REQUIRE(result.epochs.back().knn_accuracy.has_value());
    // The monitor's last features serve the final evaluation: the same numbers as encoding again.
    REQUIRE(result.final_features.train.defined());
    REQUIRE(result.final_features.train.size(0) == tiny_train_set().size());
    REQUIRE(result.final_features.test.size(0) == tiny_test_set().size());
    const data::AugmentConfig transform = recipes::resolve_evaluation_transform(config, tiny_train_set());
    const recipes::LinearEvalOptions linear{.epochs = 2, .batch_size = 32};
    const recipes::FrozenEncoderEvaluation reused = recipes::evaluate_frozen_encoder(
        *model.encoder, tiny_train_set(), tiny_test_set(), transform, config.device, linear, nullptr,
        result.final_features);
    const recipes::FrozenEncoderEvaluation encoded = recipes::evaluate_frozen_encoder(
        *model.encoder, tiny_train_set(), tiny_test_set(), transform, config.device, linear);
    CHECK(reused.knn_accuracy == *result.epochs.back().knn_accuracy);
    CHECK(encoded.knn_accuracy == reused.knn_accuracy);
    CHECK(encoded.linear_accuracy == reused.linear_accuracy);
    REQUIRE_THROWS_WITH(recipes::evaluate_frozen_encoder(*model.encoder, tiny_train_set(), tiny_test_set(), transform,
                                                         config.device, linear, nullptr,
                                                         {.train = result.final_features.test,
                                                          .test = result.final_features.test}),
                        Contains("features computed for other datasets"));
    const io::SafetensorsContents contents = io::load_safetensors(directory.file(name + "/checkpoint.safetensors"));
    const nlohmann::json input = nlohmann::json::parse(contents.metadata.at(models::kModelDescriptionKey))["input"];
    return input["height"].get<int64_t>();
  };
  // 16 px images, encoded whole at 24 px: the file says so (what its features were measured at).
  CHECK(run(0, "views_size") == 16);
  CHECK(run(24, "upsampled") == 24);
}

TEST_CASE("simclr: a stopped run resumes with bit-identical losses", "[e2e][simclr]") {
  recipes::clear_stop_request();
  testing::TemporaryDirectory directory;
  recipes::SimclrConfig config = tiny_simclr_config();

  // The whole run, uninterrupted: 12 steps.
  TinyModel reference_model(7);
  config.run_directory = directory.file("reference");
  const recipes::SimclrResult reference =
      recipes::train_simclr(*reference_model.encoder, *reference_model.head, tiny_train_set(), {}, config);
  REQUIRE(reference.step_losses.size() == 12);
  REQUIRE(std::filesystem::exists(directory.file("reference/encoder.safetensors")));

  // The same run, stopped after step 5 (in the middle of epoch 2) as by Ctrl-C.
  TinyModel stopped_model(7);
  config.run_directory = directory.file("stopped");
  config.on_step = [](int64_t step, double) {
    if (step == 5) recipes::request_stop();
  };
  const recipes::SimclrResult stopped =
      recipes::train_simclr(*stopped_model.encoder, *stopped_model.head, tiny_train_set(), {}, config);
  recipes::clear_stop_request();
  REQUIRE(stopped.stopped);
  REQUIRE(stopped.step_losses == std::vector<double>(reference.step_losses.begin(), reference.step_losses.begin() + 6));
  // A checkpoint, the metrics and the loss plot; no temporary files, no final encoder.
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(config.run_directory)) {
    files.push_back(entry.path().filename().string());
  }
  std::sort(files.begin(), files.end());
  REQUIRE(files == std::vector<std::string>{"checkpoint.safetensors", "loss.png", "metrics.jsonl"});
  REQUIRE(stopped.checkpoint_path == config.run_directory + "/checkpoint.safetensors");
  const auto checkpoint = io::load_safetensors(stopped.checkpoint_path);
  REQUIRE(checkpoint.metadata.at("step") == "6");
  REQUIRE(checkpoint.metadata.at("epochs_done") == "1");
  REQUIRE(checkpoint.metadata.at("batch") == "2");

  // Resumed into a freshly initialised model (another seed): the checkpoint overrides it and
  // the next six losses are the uninterrupted run's, bit for bit.
  TinyModel resumed_model(99);
  config.on_step = nullptr;
  config.resume = stopped.checkpoint_path;
  const recipes::SimclrResult resumed =
      recipes::train_simclr(*resumed_model.encoder, *resumed_model.head, tiny_train_set(), {}, config);
  REQUIRE_FALSE(resumed.stopped);
  REQUIRE(resumed.first_step == 6);
  REQUIRE(resumed.step_losses == std::vector<double>(reference.step_losses.begin() + 6, reference.step_losses.end()));
  // Epoch 2's mean includes the steps before the stop.
  REQUIRE(resumed.epochs.size() == 2);
  REQUIRE(resumed.epochs[0].epoch == 2);
  REQUIRE(resumed.epochs[0].loss == Approx(mean_of(reference.step_losses, 4, 4)));
  // A stop after an epoch's last step finishes that epoch and resumes at the next one.
  TinyModel boundary_model(7);
  config.resume.clear();
  config.run_directory = directory.file("boundary");
  config.on_step = [](int64_t step, double) {
    if (step == 3) recipes::request_stop();
  };
  const recipes::SimclrResult at_boundary =
      recipes::train_simclr(*boundary_model.encoder, *boundary_model.head, tiny_train_set(), {}, config);
  recipes::clear_stop_request();
  REQUIRE(at_boundary.stopped);
  REQUIRE(at_boundary.epochs.size() == 1);
  const auto boundary_checkpoint = io::load_safetensors(at_boundary.checkpoint_path);
  REQUIRE(boundary_checkpoint.metadata.at("epochs_done") == "1");
  REQUIRE(boundary_checkpoint.metadata.at("batch") == "0");
  config.on_step = nullptr;
  config.resume = at_boundary.checkpoint_path;
  const recipes::SimclrResult after_boundary =
      recipes::train_simclr(*boundary_model.encoder, *boundary_model.head, tiny_train_set(), {}, config);
  REQUIRE(after_boundary.step_losses ==
          std::vector<double>(reference.step_losses.begin() + 4, reference.step_losses.end()));

  // And the final encoders agree exactly.
  const auto reference_encoder = io::load_safetensors(directory.file("reference/encoder.safetensors"));
  const auto resumed_encoder = io::load_safetensors(directory.file("stopped/encoder.safetensors"));
  for (const auto& [name, tensor] : reference_encoder.tensors) {
    INFO(name);
    REQUIRE(testing::tensor_bytes(tensor) == testing::tensor_bytes(resumed_encoder.tensors.at(name)));
  }
}

TEST_CASE("supcon: stage 1 learns, stage 2 classifies, and the cross-entropy baseline runs", "[e2e][supcon]") {
  recipes::clear_stop_request();
  manual_seed(3);
  auto encoder = std::make_shared<models::SmallConvNet>(
      models::SmallConvNetConfig{.in_channels = 1, .classes = kFeatures, .width = 8});
  models::SupConHead head(kFeatures, kFeatures, 16);
  recipes::SupconConfig config;
  config.epochs = 6;
  config.batch_size = 32;
  config.augment = mild_augment();
  config.base_learning_rate = 0.1;
  config.learning_rate_scaling = optim::LearningRateScaling::None;
  config.warmup_epochs = 0;
  config.loader_workers = 1;
  config.knn_monitor = false;
  config.show_progress = false;
  const recipes::SupconResult stage1 = recipes::train_supcon(*encoder, head, tiny_train_set(), tiny_test_set(), config);
  REQUIRE(stage1.step_losses.size() == 24);
  REQUIRE(loss_fell(stage1.step_losses, 0.3));

  // Stage 2: a linear classifier on the frozen features separates the 4 classes.
  const data::AugmentConfig transform = recipes::evaluation_transform(recipes::resolve_augment(config, tiny_train_set()));
  const recipes::LinearEvalResult linear = recipes::linear_eval_of_encoder(
      *encoder, tiny_train_set(), tiny_test_set(), transform, config.device, {.epochs = 10, .batch_size = 32});
  INFO("linear accuracy " << linear.test_accuracy);
  REQUIRE(linear.test_accuracy > 0.5);  // chance is 0.25

  // The cross-entropy baseline on the same architecture and budget.
  manual_seed(3);
  models::EncoderClassifier baseline(
      std::make_shared<models::SmallConvNet>(models::SmallConvNetConfig{.in_channels = 1, .classes = kFeatures, .width = 8}),
      kFeatures, 4);
  recipes::ClassifierConfig baseline_config = recipes::cross_entropy_baseline_config(config, tiny_train_set());
  REQUIRE(baseline_config.epochs == config.epochs);
  REQUIRE(baseline_config.batch_size == config.batch_size);
  REQUIRE(baseline_config.augment.has_value());  // main_ce.py: SupCon's crops and flips, no jitter
  REQUIRE(baseline_config.augment->min_area == recipes::resolve_augment(config, tiny_train_set()).min_area);
  REQUIRE(baseline_config.augment->jitter_probability == 0.0);
  REQUIRE(baseline_config.augment->flip_probability == 0.5);
  const recipes::ClassifierResult ce =
      recipes::train_cross_entropy_baseline(baseline, tiny_train_set(), tiny_test_set(), baseline_config);
  REQUIRE(ce.step_losses.size() == 24);
  // The baseline trains on flipped crops of noise prototypes: a flipped prototype is a new
  // pattern, so in 24 steps its loss falls less than the plain run's did (> 0.3).
  REQUIRE(loss_fell(ce.step_losses, 0.1));
}

TEST_CASE("contrastive recipes: bad settings and checkpoints are refused by name", "[e2e][simclr][supcon]") {
  recipes::clear_stop_request();
  TinyModel model(7);
  auto refused = [&](const recipes::SimclrConfig& config, const std::string& message) {
    INFO("expected: " << message);
    REQUIRE_THROWS_AS(recipes::train_simclr(*model.encoder, *model.head, tiny_train_set(), {}, config), Error);
    REQUIRE_THROWS_WITH(recipes::train_simclr(*model.encoder, *model.head, tiny_train_set(), {}, config),
                        Contains(message));
  };
  recipes::SimclrConfig config = tiny_simclr_config();
  config.batch_size = 1;
  refused(config, "batch_size must be >= 2");
  config = tiny_simclr_config();
  config.batch_size = 512;
  refused(config, "fewer than one batch of 512");
  config = tiny_simclr_config();
  config.epochs = 0;
  refused(config, "epochs must be >= 1");
  config = tiny_simclr_config();
  config.temperature = 0.0;
  refused(config, "temperature must be positive");
  config = tiny_simclr_config();
  config.eval_image_size = -1;
  refused(config, "eval_image_size must be >= 0");
  config = tiny_simclr_config();
  config.augment.reset();
  config.augment_preset = "sepia";
  refused(config, "unknown augmentation preset 'sepia'");
  config = tiny_simclr_config();
  config.resume = "/nonexistent/checkpoint.safetensors";
  refused(config, "'/nonexistent/checkpoint.safetensors' does not exist");

  // A checkpoint of one epoch, then resumes that do not fit it.
  testing::TemporaryDirectory directory;
  config = tiny_simclr_config();
  config.epochs = 1;
  config.run_directory = directory.file("run");
  recipes::train_simclr(*model.encoder, *model.head, tiny_train_set(), {}, config);
  const std::string checkpoint = directory.file("run/checkpoint.safetensors");
  REQUIRE(std::filesystem::exists(checkpoint));

  config.resume = checkpoint;
  config.epochs = 3;
  config.run_directory = directory.file("resumed");
  config.batch_size = 16;
  refused(config, "trained with batch_size 32");
  config.batch_size = 32;
  config.seed = 12;
  refused(config, "trained with seed 11");
  config.seed = 11;
  // Another architecture: a wider encoder.
  manual_seed(1);
  models::SmallConvNet wider({.in_channels = 1, .classes = kFeatures, .width = 16});
  REQUIRE_THROWS_WITH(recipes::train_simclr(wider, *model.head, tiny_train_set(), {}, config),
                      Contains("does not fit this model") && Contains(checkpoint));
  // A SimCLR checkpoint is not a SupCon one.
  recipes::SupconConfig supcon;
  supcon.epochs = 3;
  supcon.warmup_epochs = 0;
  supcon.batch_size = 32;
  supcon.seed = 11;
  supcon.resume = checkpoint;
  supcon.show_progress = false;
  models::SupConHead supcon_head(kFeatures, kFeatures, 16);
  REQUIRE_THROWS_WITH(recipes::train_supcon(*model.encoder, supcon_head, tiny_train_set(), {}, supcon),
                      Contains("is not a supcon checkpoint"));
  // None of the refused runs left a file behind.
  REQUIRE_FALSE(std::filesystem::exists(directory.file("resumed")));
}
