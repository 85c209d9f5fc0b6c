// visrep-eval: evaluates a trained encoder, or raw pixels, on a labelled dataset with the two
// protocols of recipes/evaluation.h, both on frozen features computed once:
//   --knn     the weighted kNN classifier (InstDisc; k = 200, temperature 0.1, cosine), the
//             training set as memory bank and the test set as queries;
//   --linear  a linear classifier trained on the training set's features and tested on the
//             test set's (SupContrast main_linear.py / simclr's linear eval, minus the
//             training augmentation).
// Neither flag: both. The encoder comes from a run folder (its encoder.safetensors, else its
// checkpoint.safetensors), either of those files, or a cross-entropy baseline's
// model.safetensors. Files visrep writes record their architecture (models/model_description.h),
// which --arch auto takes; for older files --arch and --width must name it.
// --raw-pixels evaluates the flattened pixels instead: the baseline an encoder must beat.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdlib>
#include <exception>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "apps/app_common.h"
#include "engine/data/augment.h"
#include "engine/data/mnist.h"
#include "engine/io/safetensors.h"
#include "engine/ops.h"
#include "engine/util/atomic_file.h"
#include "models/model_description.h"
#include "recipes/datasets.h"
#include "recipes/evaluation.h"

using namespace visrep;

int main(int argc, char** argv) {
  CLI::App app{"Evaluate an encoder checkpoint (or raw pixels) with kNN and linear classifiers on frozen features"};
  app.set_config("--config", "", "A TOML/INI file of these flags (command-line flags win)");

  std::string checkpoint, data_root = data::kFashionMnistRoot, architecture = "auto", device = "auto", json_path;
  recipes::DatasetOptions dataset_options;
  int64_t width = 0, image_size = 0, eval_image_size = 0, encode_batch_size = 256;
  bool raw_pixels = false, knn = false, linear = false;
  recipes::KnnOptions knn_options;
  recipes::LinearEvalOptions linear_options;
  linear_options.epochs = 20;  // as visrep-simclr's and visrep-supcon's final linear evaluation
  uint64_t seed = 0;

  auto* checkpoint_option =
      app.add_option("--checkpoint,checkpoint", checkpoint,
                     "A run folder, its encoder.safetensors or checkpoint.safetensors, or a baseline's model.safetensors");
  auto* raw_option = app.add_flag("--raw-pixels", raw_pixels, "Evaluate the flattened raw pixels instead of an encoder");
  checkpoint_option->excludes(raw_option);
  app.add_option("--data", data_root, "Dataset folder: MNIST-format files, CIFAR-10/100 binary, or an image folder")
      ->capture_default_str();
  app.add_flag("--digits", dataset_options.digits, "MNIST digits' class names for MNIST-format files");
  app.add_option("--train-limit", dataset_options.train_limit, "Use only the first N training images (0: all)")
      ->check(apps::non_negative_number());
  app.add_option("--test-limit", dataset_options.test_limit, "Evaluate on the first N test images (0: all)")
      ->check(apps::non_negative_number());
  app.add_option("--arch", architecture, "The checkpoint's architecture: auto (what the file records; for older files "
                 "resnet18 on a GPU, small on the CPU), "
                 "small, resnet18, resnet34, resnet50, bit-tiny, bit-r50x1 ...")
      ->capture_default_str()
      ->check(apps::architecture_check());
  app.add_option("--width", width, "small: channels of the first block (0: 32); resnet: width multiplier 1 or 2 (0: 1); bit-tiny: base width (0: 16)")
      ->check(apps::non_negative_number());
  app.add_option("--image-size", image_size, "Input size the encoder was trained at (0: the dataset's)")
      ->check(apps::non_negative_number());
  app.add_option("--eval-image-size", eval_image_size,
                 "Size the images (whole up to 32 px of --image-size, else their central 87.5%) are resized to before "
                 "the encoder (0: --image-size; visrep-simclr's main job evaluates its 28 px encoder at 42)")
      ->check(apps::non_negative_number());
  app.add_flag("--knn", knn, "Run the kNN evaluation (neither --knn nor --linear: both)");
  app.add_flag("--linear", linear, "Run the linear evaluation (neither --knn nor --linear: both)");
  app.add_option("--knn-k", knn_options.k, "Neighbours per query")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  app.add_option("--knn-temperature", knn_options.temperature, "Temperature of the neighbours' vote weights")
      ->capture_default_str()
      ->check(apps::positive_number());
  app.add_option("--linear-epochs", linear_options.epochs, "Epochs of the linear classifier")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--linear-lr", linear_options.learning_rate, "Peak learning rate of the linear classifier (cosine decay)")
      ->capture_default_str()
      ->check(apps::positive_number());
  app.add_option("--batch-size", encode_batch_size, "Images per forward pass when computing features")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 16));
  app.add_option("--seed", seed, "Seed of the linear classifier's shuffles")->capture_default_str();
  apps::add_device_option(app, device);
  app.add_option("--json", json_path, "Also write the results to this JSON file (atomically)");
  CLI11_PARSE(app, argc, argv);

  try {
    if (checkpoint.empty() && !raw_pixels) {
      throw Error("give a checkpoint (--checkpoint PATH: a run folder or a .safetensors file) or --raw-pixels");
    }
    if (!knn && !linear) knn = linear = true;
    const Device chosen_device = apps::resolve_device(device);
    // The file first: a missing or corrupt checkpoint is reported before the data is read.
    std::string checkpoint_path;
    io::SafetensorsContents contents;
    if (!raw_pixels) {
      checkpoint_path = apps::resolve_checkpoint(checkpoint);
      contents = io::load_safetensors(checkpoint_path);
    }
    dataset_options.seed = seed;
    const recipes::DatasetPair dataset = recipes::load_dataset(data_root, dataset_options);
    const int64_t classes = dataset.train.class_count();
    fmt::print(stderr, "data: {}\n", recipes::describe(dataset, data_root));

    Tensor train_features, test_features;
    nlohmann::json summary = {{"dataset", dataset.name}, {"device", chosen_device.str()}};
    std::string subject;
    if (raw_pixels) {
      subject = "raw pixels";
      train_features = recipes::raw_pixel_features(dataset.train.images).to(chosen_device);
      test_features = recipes::raw_pixel_features(dataset.test.images).to(chosen_device);
    } else {
      if (image_size == 0) image_size = dataset.train.height();
      // A file that describes itself (models/model_description.h) is built as it says:
      // --arch auto takes its architecture, and an --arch or --width that says otherwise is
      // refused. Files written before the descriptions are built from --arch and --width.
      const std::optional<nlohmann::json> described = models::described_encoder(contents.metadata, checkpoint_path);
      apps::Architecture network;
      models::Encoder encoder;
      if (described) {
        const auto [name, described_width] = models::described_architecture_name(*described);
        VISREP_CHECK(architecture == "auto" || architecture == name,
                     "--arch {}, but the checkpoint '{}' records the architecture {} (its '{}' metadata entry); pass "
                     "--arch auto or --arch {}",
                     architecture, checkpoint_path, name, models::kModelDescriptionKey, name);
        VISREP_CHECK(width == 0 || width == described_width,
                     "--width {}, but the checkpoint '{}' records {} of width {} (its '{}' metadata entry); pass "
                     "--width 0 or --width {}",
                     width, checkpoint_path, name, described_width, models::kModelDescriptionKey, described_width);
        const int64_t in_channels = described->value("in_channels", int64_t{0});
        VISREP_CHECK(in_channels == dataset.train.channels(),
                     "the checkpoint '{}' records an encoder of {} input channels, but the data has {}",
                     checkpoint_path, in_channels, dataset.train.channels());
        network = {name, described_width};
        encoder = models::make_described_encoder(*described, checkpoint_path);
      } else {
        network = apps::resolve_architecture(apps::Binary::Eval, architecture, width, chosen_device);
        encoder = models::make_encoder(network.name, network.width, dataset.train.channels(), image_size);
      }
      try {
        encoder.module->load_state_dict(apps::encoder_state(contents.tensors));
      } catch (const Error& error) {
        VISREP_FAIL("the checkpoint '{}' does not fit --arch {} --width {} ({}); the file holds: {}.\n  {}\n  Pass the "
                    "--arch and --width it was trained with.",
                    checkpoint_path, network.name, network.width, encoder.description, apps::described_model(contents),
                    error.what());
      }
      encoder.module->to(chosen_device);
      subject = encoder.description;
      summary["checkpoint"] = checkpoint_path;
      fmt::print(stderr, "encoder: {} from {}, {} features\n", encoder.description, checkpoint_path,
                 encoder.feature_dim);
      // The views the contrastive recipes train on have no mean/std normalisation (the
      // "simclr" and "supcon" presets), so the matching evaluation transform is the "eval"
      // preset's central crop at the training size, scaled to [0, 1] and resized to
      // --eval-image-size (as the recipes' own evaluation does).
      const data::AugmentConfig transform =
          recipes::evaluation_transform(data::augment_preset("eval", image_size), eval_image_size);
      summary["eval_image_size"] = transform.height;
      train_features =
          recipes::encode_dataset(*encoder.module, dataset.train, transform, chosen_device, encode_batch_size);
      test_features = recipes::encode_dataset(*encoder.module, dataset.test, transform, chosen_device, encode_batch_size);
    }
    summary["features"] = subject;
    summary["feature_dim"] = train_features.size(1);

    fmt::print("{} on {} ({} train / {} test images, {} features):\n", subject, dataset.name, dataset.train.size(),
               dataset.test.size(), train_features.size(1));
    if (knn) {
      const double accuracy = recipes::knn_accuracy(train_features, dataset.train.labels, test_features,
                                                    dataset.test.labels, classes, knn_options);
      summary["knn_accuracy"] = accuracy;
      summary["knn_k"] = knn_options.k;
      summary["knn_temperature"] = knn_options.temperature;
      fmt::print("  kNN top-1 (k = {}, T = {:g}, cosine): {:.2f}%\n", knn_options.k, knn_options.temperature,
                 100 * accuracy);
    }
    if (linear) {
      linear_options.seed = seed;
      const recipes::LinearEvalResult result =
          recipes::linear_eval(train_features, dataset.train.labels.to(chosen_device), test_features,
                               dataset.test.labels.to(chosen_device), classes, linear_options);
      summary["linear_accuracy"] = result.test_accuracy;
      summary["linear_train_accuracy"] = result.train_accuracy;
      summary["linear_epochs"] = linear_options.epochs;
      fmt::print("  linear top-1 ({} epochs on frozen features): {:.2f}% (train {:.2f}%)\n", linear_options.epochs,
                 100 * result.test_accuracy, 100 * result.train_accuracy);
    }
    if (!json_path.empty()) util::write_file_atomically(json_path, summary.dump(2) + "\n");
    return EXIT_SUCCESS;
  } catch (const std::exception& error) {
    fmt::print(stderr, "error: {}\n", error.what());
    return EXIT_FAILURE;
  }
}
