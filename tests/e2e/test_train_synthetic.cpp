// End-to-end: the whole CPU path (data -> SmallConvNet -> cross-entropy -> SGD) must learn
// a separable synthetic dataset within a fixed budget of steps.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>

#include "engine/data/synthetic.h"
#include "engine/io/safetensors.h"
#include "engine/ops.h"
#include "models/small_convnet.h"
#include "recipes/classifier.h"

using namespace visrep;

namespace {

std::string fresh_directory(const std::string& name) {
  const auto path = std::filesystem::temp_directory_path() / ("visrep-e2e-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(path);
  return path.string();
}

}  // namespace

TEST_CASE("small convnet learns synthetic classes", "[e2e]") {
  // One draw (one set of class prototypes), split into 512 training and 128 test images.
  const data::ImageDataset all = data::make_synthetic_dataset({.count = 640, .classes = 4, .seed = 1});
  const data::ImageDataset train = data::subset(all, arange(0.0, 512.0, 1.0, kInt64));
  const data::ImageDataset test = data::subset(all, arange(512.0, 640.0, 1.0, kInt64));

  manual_seed(7);
  models::SmallConvNet model({.in_channels = 1, .classes = 4, .width = 8});
  recipes::ClassifierConfig config;
  config.epochs = 3;  // 3 x 16 = 48 SGD steps
  config.batch_size = 32;
  config.learning_rate = 0.05;
  config.show_progress = false;
  config.run_directory = fresh_directory("synthetic");

  const recipes::ClassifierResult result = recipes::train_classifier(model, train, test, config);
  REQUIRE(result.step_losses.size() == 48);
  // Chance level is ln(4) = 1.386; a model that learns gets far below it.
  const double first = result.step_losses.front();
  const double last_epoch_loss = result.epochs.back().train_loss;
  INFO("first step loss " << first << ", last epoch loss " << last_epoch_loss);
  REQUIRE(first > 1.0);
  REQUIRE(last_epoch_loss < 0.15);
  REQUIRE(result.epochs.back().test_accuracy > 0.95);

  // The run folder holds what the recipe promises, and the checkpoint loads back.
  REQUIRE(std::filesystem::exists(config.run_directory + "/metrics.jsonl"));
  REQUIRE(std::filesystem::exists(config.run_directory + "/loss.png"));
  const auto checkpoint = io::load_safetensors(config.run_directory + "/model.safetensors");
  models::SmallConvNet restored({.in_channels = 1, .classes = 4, .width = 8});
  restored.load_state_dict(checkpoint.tensors);
  REQUIRE(recipes::evaluate_accuracy(restored, test, config) == Approx(result.epochs.back().test_accuracy));
  std::filesystem::remove_all(config.run_directory);
}

TEST_CASE("classifier training with augmentation learns, is reproducible and sees new views", "[e2e]") {
  const data::ImageDataset all = data::make_synthetic_dataset({.count = 320, .classes = 4, .seed = 2});
  const data::ImageDataset train = data::subset(all, arange(0.0, 256.0, 1.0, kInt64));
  const data::ImageDataset test = data::subset(all, arange(256.0, 320.0, 1.0, kInt64));
  recipes::ClassifierConfig config;
  config.epochs = 4;  // 4 x 8 = 32 steps
  config.batch_size = 32;
  config.show_progress = false;
  recipes::ClassifierResult last_run;
  auto train_once = [&](const recipes::ClassifierConfig& run_config) {
    manual_seed(11);
    models::SmallConvNet model({.in_channels = 1, .classes = 4, .width = 8});
    last_run = recipes::train_classifier(model, train, test, run_config);
    return last_run.step_losses;
  };
  const std::vector<double> plain = train_once(config);
  const double plain_last_epoch = last_run.epochs.back().train_loss;

  // Mild crops only: the prototypes are noise images, and a flipped one is a new pattern
  // that 24 steps cannot learn as well.
  config.augment = data::augment_preset("supcon", train.height());
  config.augment->jitter_probability = 0.0;
  config.augment->grayscale_probability = 0.0;
  config.augment->flip_probability = 0.0;
  config.augment->min_area = 0.8;
  const std::vector<double> augmented = train_once(config);
  REQUIRE(train_once(config) == augmented);  // the views are keyed by seed, epoch and sample
  REQUIRE(augmented.size() == plain.size());
  REQUIRE(augmented[0] != plain[0]);  // the first batch already sees different pixels
  // Learning, measured on the last epoch's mean (single steps are noisy).
  const double augmented_last_epoch = last_run.epochs.back().train_loss;
  INFO("first loss " << augmented.front() << ", last epoch " << augmented_last_epoch << " (without augmentation "
                     << plain_last_epoch << ")");
  REQUIRE(augmented_last_epoch < 1.0);  // chance: ln 4 = 1.39

  config.augment->min_area = 2.0;  // a bad augmentation is refused by name before training
  REQUIRE_THROWS_AS(train_once(config), Error);
}
