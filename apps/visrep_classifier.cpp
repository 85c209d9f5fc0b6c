// visrep-classifier: trains SmallConvNet on Fashion-MNIST (the embedded default) or any
// MNIST-format dataset with cross-entropy and SGD, then reports test accuracy. The run
// folder gets metrics.jsonl, model.safetensors and loss.png.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdlib>
#include <exception>
#include <memory>
#include <string>

#include "apps/app_common.h"
#include "engine/data/mnist.h"
#include "engine/ops.h"
#include "models/small_convnet.h"
#include "recipes/classifier.h"

int main(int argc, char** argv) {
  using namespace visrep;
  CLI::App app{"Train a small convolutional classifier on Fashion-MNIST (or any MNIST-format dataset)"};
  std::string data_root = data::kFashionMnistRoot;
  bool digits = false;
  recipes::ClassifierConfig config;
  config.run_directory = "runs/classifier";
  int64_t width = 32;
  int64_t train_limit = 0, test_limit = 0;
  std::string device = "auto";
  app.add_option("--data", data_root, "Folder with the four MNIST-format files (.gz or raw)")->capture_default_str();
  app.add_flag("--digits", digits, "Class names of MNIST digits instead of Fashion-MNIST");
  app.add_option("--epochs", config.epochs, "Passes over the training set")
      ->capture_default_str()
      ->check(apps::positive_number());
  app.add_option("--batch-size", config.batch_size, std::string("Images per step") + apps::batch_size_note())->capture_default_str()->check(CLI::Range(2, 1 << 16));
  app.add_option("--lr", config.learning_rate, "Peak learning rate (warmup, then cosine decay)")
      ->capture_default_str()
      ->check(apps::positive_number());
  app.add_option("--momentum", config.momentum, "SGD momentum")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  app.add_option("--weight-decay", config.weight_decay, "L2 weight decay on conv/linear weights")
      ->capture_default_str()
      ->check(apps::non_negative_number());
  app.add_option("--width", width, "Channels of the first conv block (doubling after)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--train-limit", train_limit, "Use only the first N training images (0: all)")
      ->capture_default_str()
      ->check(apps::non_negative_number());
  app.add_option("--test-limit", test_limit, "Evaluate on the first N test images (0: all)")
      ->capture_default_str()
      ->check(apps::non_negative_number());
  app.add_option("--seed", config.seed, "Seed of the initialisation and the shuffling")->capture_default_str();
  apps::add_device_option(app, device);
  app.add_option("--run-dir", config.run_directory, "Where metrics.jsonl, model.safetensors and loss.png go")
      ->capture_default_str();
  std::string batch_norm = "local";
  app.add_option("--bn", batch_norm, "Batch norm on several ranks: local (over each rank's slice, as PyTorch's DistributedDataParallel) or sync (over the global batch)")
      ->capture_default_str()
      ->check(CLI::IsMember({"sync", "local"}));
  CLI11_PARSE(app, argc, argv);

  std::unique_ptr<apps::Job> job;
  try {
    job = std::make_unique<apps::Job>(device);
    job->require_same_flags(app);
    config.device = job->device();
    config.ranks = job->ranks();
    config.sync_batch_norm = batch_norm == "sync";
    manual_seed(config.seed);

    data::ImageDataset train_set = data::load_mnist(data_root, true, !digits);
    data::ImageDataset test_set = data::load_mnist(data_root, false, !digits);
    if (train_limit > 0 && train_limit < train_set.size()) train_set = data::subset(train_set, arange(train_limit));
    if (test_limit > 0 && test_limit < test_set.size()) test_set = data::subset(test_set, arange(test_limit));
    // Fashion-MNIST's pixel statistics over the training set.
    config.mean = {digits ? 0.1307f : 0.2860f};
    config.std = {digits ? 0.3081f : 0.3530f};

    models::SmallConvNet model({.in_channels = 1, .classes = train_set.class_count(), .width = width});
    if (job->is_root()) fmt::print(stderr, "data: {} ({} train / {} test images of {}x{})\nmodel: SmallConvNet, {} parameters\ndevice: {}\n",
               data_root, train_set.size(), test_set.size(), train_set.height(), train_set.width(),
               model.parameter_count(), config.device.str());

    recipes::ClassifierResult result = recipes::train_classifier(model, train_set, test_set, config);
    const recipes::EpochSummary& last = result.epochs.back();
    fmt::print("test accuracy {:.2f}% after {} epoch(s) (train loss {:.4f}, {:.0f} img/s); run folder: {}\n",
               100 * last.test_accuracy, last.epoch, last.train_loss, last.images_per_second, config.run_directory);
    return job->finish(EXIT_SUCCESS);
  } catch (const std::exception& error) {
    if (job) {
      job->report(error);
    } else {
      fmt::print(stderr, "error: {}\n", error.what());
    }
    return EXIT_FAILURE;
  }
}
