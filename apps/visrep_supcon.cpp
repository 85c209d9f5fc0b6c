// visrep-supcon: Supervised Contrastive Learning (recipes/supcon.h) and the comparison the
// paper makes, in SupContrast's three programs:
//   stage 1   main_supcon.py: encoder + SupCon head on two views of every image, SupCon loss
//             on the labels (every other view of the same class is a positive);
//   stage 2   main_linear.py: a linear classifier on the frozen encoder (here on precomputed,
//             augmentation-free features), plus the kNN accuracy of the same features;
//   baseline  main_ce.py: the same encoder + a linear layer trained end to end with
//             cross-entropy, for the same epochs and batch size (--no-baseline skips it).
// Then a table "method | linear/test top-1". The run folder gets metrics.jsonl,
// checkpoint.safetensors, encoder.safetensors and loss.png of stage 1, cross_entropy/
// (metrics.jsonl, model.safetensors, loss.png) of the baseline, and summary.json.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "apps/app_common.h"
#include "engine/data/mnist.h"
#include "engine/ops.h"
#include "models/heads.h"
#include "recipes/datasets.h"
#include "recipes/evaluation.h"
#include "recipes/supcon.h"

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace visrep;
  CLI::App app{"SupCon: supervised contrastive pretraining, a linear classifier on the frozen encoder, and the "
               "cross-entropy baseline on the same network"};
  app.set_config("--config", "", "A TOML/INI file of these flags (command-line flags win)");

  std::string data_root = data::kFashionMnistRoot;
  recipes::DatasetOptions dataset_options;
  // SupContrast's recipe (recipes/supcon.h: SGD with momentum 0.9, weight decay 1e-4, rate
  // 0.125 x B / 256, temperature 0.1, the "supcon" views) at CPU size: the small encoder,
  // batch 256 and a few epochs, so that stage 1, stage 2 and the baseline on Fashion-MNIST
  // finish in about ten minutes on two cores.
  recipes::SupconConfig config;
  config.epochs = 2;
  config.batch_size = 256;
  config.knn_monitor = false;  // the kNN accuracy is measured once, after training (see --knn-every)
  config.run_directory = "runs/supcon";
  std::string architecture = "auto", scaling = "linear", device = "auto";
  int64_t width = 0;
  int64_t head_dim = 128;
  double warmup_epochs = -1;  // -1: SupContrast's rule, below
  int64_t knn_every = 0;
  recipes::LinearEvalOptions linear;
  linear.epochs = 20;
  bool with_baseline = true;

  app.add_option("--data", data_root, "Dataset folder: MNIST-format files, CIFAR-10/100 binary, or an image folder")
      ->capture_default_str();
  app.add_flag("--digits", dataset_options.digits, "MNIST digits' class names for MNIST-format files");
  app.add_option("--train-limit", dataset_options.train_limit, "Use only the first N training images (0: all)")
      ->check(apps::non_negative_number());
  app.add_option("--test-limit", dataset_options.test_limit, "Evaluate on the first N test images (0: all)")
      ->check(apps::non_negative_number());
  app.add_option("--epochs", config.epochs, "Passes over the training set (stage 1 and the baseline)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--batch-size", config.batch_size, "Images per step (each gives two views)" + apps::batch_size_note())
      ->capture_default_str()
      ->check(CLI::Range(2, 1 << 16));
  app.add_option("--lr", config.base_learning_rate, "Base learning rate of stage 1, scaled by --lr-scaling")
      ->capture_default_str()
      ->check(apps::positive_number());
  app.add_option("--lr-scaling", scaling, "linear (lr x B / 256), sqrt (lr x sqrt(B)) or none")
      ->capture_default_str()
      ->check(CLI::IsMember({"linear", "sqrt", "none"}));
  app.add_option("--warmup-epochs", warmup_epochs,
                 "Linear warmup, then cosine decay to 0 (default: none up to batch 256, else 10 epochs capped at a "
                 "tenth of the run, as main_supcon.py)")
      ->check(apps::non_negative_number());
  app.add_option("--weight-decay", config.weight_decay, "Weight decay (SGD: on every parameter, as SupContrast)")
      ->capture_default_str()
      ->check(apps::non_negative_number());
  app.add_option("--temperature", config.temperature, "SupCon temperature tau")
      ->capture_default_str()
      ->check(apps::positive_number());
  app.add_option("--arch", architecture, "auto (resnet18 on a GPU, small on the CPU), small, resnet18, resnet34, resnet50, bit-tiny, bit-r50x1 ...")
      ->capture_default_str()
      ->check(apps::architecture_check());
  app.add_option("--width", width, "small: channels of the first block (0: 32); resnet: width multiplier 1 or 2 (0: 1); bit-tiny: base width (0: 16)")
      ->check(apps::non_negative_number());
  app.add_option("--head-dim", head_dim, "Output width of the SupCon head")->capture_default_str()->check(CLI::Range(1, 8192));
  app.add_option("--augment", config.augment_preset, "Augmentation preset: supcon, simclr, bit or eval")->capture_default_str();
  app.add_option("--image-size", config.image_size, "Views' size in pixels (0: the dataset's)")->check(apps::non_negative_number());
  app.add_option("--workers", config.loader_workers, "Augmentation threads on the CPU (0: one per core)")->check(apps::non_negative_number());
  app.add_option("--knn-every", knn_every, "Run the online kNN monitor every N epochs (0: off; kNN is measured at the end)")
      ->check(apps::non_negative_number());
  app.add_option("--linear-epochs", linear.epochs, "Epochs of stage 2, the linear classifier on frozen features (0: skip)")
      ->capture_default_str()
      ->check(apps::non_negative_number());
  app.add_flag("--with-baseline,!--no-baseline", with_baseline,
               "Also train the cross-entropy baseline on the same network and epochs (default: on)");
  app.add_option("--seed", config.seed, "Seed of the initialisation, data order and augmentation")->capture_default_str();
  apps::add_device_option(app, device);
  app.add_option("--run-dir", config.run_directory, "Run folder (metrics, checkpoints, plots, summary)")->capture_default_str();
  app.add_option("--checkpoint-every", config.checkpoint_every, "Epochs between checkpoints (0: at the end and on Ctrl-C)")
      ->check(apps::non_negative_number());
  app.add_option("--resume", config.resume, "Continue stage 1 from a checkpoint.safetensors (or the run folder holding one)");
  std::string batch_norm = "sync";
  app.add_option("--bn", batch_norm, "Batch norm on several ranks: sync (over the global batch) or local (over each rank's slice); the baseline too")
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
    config.learning_rate_scaling = optim::parse_learning_rate_scaling(scaling);
    // main_supcon.py: `if opt.batch_size > 256: opt.warm = True`, warm_epochs = 10. A short
    // run would spend all of itself warming up, so the 10 are capped at a tenth of it.
    config.warmup_epochs = warmup_epochs >= 0 ? std::min(warmup_epochs, static_cast<double>(config.epochs))
                           : config.batch_size > 256 ? std::min(10.0, 0.1 * static_cast<double>(config.epochs))
                                                     : 0.0;
    config.knn_monitor = knn_every > 0;
    config.knn_every = knn_every > 0 ? knn_every : config.epochs;
    config.resume = apps::resolve_resume(config.resume);
    dataset_options.seed = config.seed;

    const recipes::DatasetPair dataset = recipes::load_dataset(data_root, dataset_options);
    const int64_t image_size = config.image_size > 0 ? config.image_size : dataset.train.height();
    const int64_t classes = dataset.train.class_count();
    const apps::Architecture network =
        apps::resolve_architecture(apps::Binary::Supcon, architecture, width, config.device);
    // The baseline's encoder is built after the same manual_seed, so both methods start from
    // the same initial weights: the comparison differs in the training objective only.
    manual_seed(config.seed);
    models::Encoder encoder = models::make_encoder(network.name, network.width, dataset.train.channels(), image_size);
    // SupContrast resnet_big.py SupConResNet, head='mlp': Linear(dim, dim) -> ReLU -> Linear(dim, 128), normalised.
    models::SupConHead head(encoder.feature_dim, encoder.feature_dim, head_dim);
    encoder.module->to(config.device);
    head.to(config.device);

    if (job->is_root()) fmt::print(stderr, "data: {}\nencoder: {}, {} features, {} parameters; SupCon head to {}\ndevice: {}\n",
               recipes::describe(dataset, data_root), encoder.description, encoder.feature_dim,
               encoder.module->parameter_count(), head_dim, config.device.str());
    apps::install_stop_handler();

    // ---- stage 1: SupCon (main_supcon.py) --------------------------------------------------
    auto start = std::chrono::steady_clock::now();
    const recipes::SupconResult supcon = recipes::train_supcon(*encoder.module, head, dataset.train, dataset.test, config);
    if (supcon.stopped) {
      fmt::print("stopped; checkpoint: {} (continue with --resume {})\n", supcon.checkpoint_path, config.run_directory);
      return job->finish(130);
    }
    const double supcon_seconds = seconds_since(start);

    // ---- stage 2: linear classifier on the frozen encoder (main_linear.py), and kNN ----------
    const data::AugmentConfig transform = recipes::resolve_evaluation_transform(config, dataset.train);
    nlohmann::json summary = {{"dataset", dataset.name},       {"encoder", encoder.description},
                              {"epochs", config.epochs},       {"batch_size", config.batch_size},
                              {"device", config.device.str()}, {"seed", config.seed}};
    nlohmann::json supcon_summary = {{"train_seconds", supcon_seconds}, {"temperature", config.temperature}};
    if (!supcon.epochs.empty()) supcon_summary["final_epoch_loss"] = supcon.epochs.back().loss;
    if (job->is_root()) fmt::print(stderr, "stage 2: kNN (k = 200, T = 0.1) and a linear classifier ({} epochs) on frozen features\n",
               linear.epochs);
    linear.seed = config.seed;
    const recipes::FrozenEncoderEvaluation frozen =
        recipes::evaluate_frozen_encoder(*encoder.module, dataset.train, dataset.test, transform, config.device, linear,
                                         config.ranks, supcon.final_features);
    supcon_summary["knn_accuracy"] = frozen.knn_accuracy;
    if (frozen.linear_accuracy) supcon_summary["linear_accuracy"] = *frozen.linear_accuracy;
    summary["supcon"] = supcon_summary;

    // ---- the cross-entropy baseline (main_ce.py) ---------------------------------------------
    // The same architecture and initial weights, epochs, batch size and seed; trained end to
    // end, so its test accuracy is that of its own linear layer. It does not resume: a
    // --resume run trains it again (deterministically, from the same seed).
    if (with_baseline && !recipes::stop_requested()) {
      manual_seed(config.seed);
      models::Encoder baseline_encoder =
          models::make_encoder(network.name, network.width, dataset.train.channels(), image_size);
      models::EncoderClassifier baseline(baseline_encoder.module, baseline_encoder.feature_dim, classes);
      recipes::ClassifierConfig baseline_config = recipes::cross_entropy_baseline_config(config, dataset.train);
      if (!config.run_directory.empty()) {
        baseline_config.run_directory = (std::filesystem::path(config.run_directory) / "cross_entropy").string();
      }
      if (job->is_root()) fmt::print(stderr, "baseline: {} with cross-entropy, {} epoch(s), lr {:g}\n", baseline.describe(),
                 baseline_config.epochs, baseline_config.learning_rate);
      start = std::chrono::steady_clock::now();
      const recipes::ClassifierResult result =
          recipes::train_cross_entropy_baseline(baseline, dataset.train, dataset.test, baseline_config);
      summary["cross_entropy"] = {{"train_seconds", seconds_since(start)},
                                  {"learning_rate", baseline_config.learning_rate},
                                  {"test_accuracy", result.epochs.back().test_accuracy}};
    }
    if (recipes::stop_requested()) {
      fmt::print("stopped before the end; stage 1's checkpoint: {}\n", supcon.checkpoint_path);
      return job->finish(130);
    }

    // ---- the report ------------------------------------------------------------------------
    auto percent = [](const nlohmann::json& value) { return fmt::format("{:.2f}%", 100 * value.get<double>()); };
    fmt::print("SupCon on {}: {} epoch(s), {}, on {}\n", dataset.name, config.epochs, encoder.description,
               config.device.str());
    fmt::print("  {:<15} | {}\n", "method", "linear/test top-1");
    fmt::print("  {:-<15}-+-{:-<17}\n", "", "");
    if (supcon_summary.contains("linear_accuracy")) {
      fmt::print("  {:<15} | {}  (linear on the frozen encoder)\n", "SupCon", percent(supcon_summary["linear_accuracy"]));
    }
    if (summary.contains("cross_entropy")) {
      fmt::print("  {:<15} | {}  (trained end to end)\n", "cross-entropy",
                 percent(summary["cross_entropy"]["test_accuracy"]));
    }
    fmt::print("  SupCon kNN top-1 (k = 200, T = 0.1): {}\n", percent(supcon_summary["knn_accuracy"]));
    if (!config.run_directory.empty() && job->is_root()) {
      apps::write_summary(config.run_directory, summary);
      fmt::print("  run folder: {} (metrics.jsonl, encoder.safetensors, loss.png, {}summary.json)\n",
                 config.run_directory, summary.contains("cross_entropy") ? "cross_entropy/, " : "");
    }
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
