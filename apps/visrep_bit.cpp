// visrep-bit: BigTransfer fine-tuning (recipes/bit.h, the BiT-HyperRule) of a pretrained
// network on a labelled dataset, then its top-1 accuracy on the test split.
//
// Where the network comes from (--checkpoint):
//   an official BiT .npz (BiT-S / BiT-M R50x1 ... R152x4, downloaded by the user): the
//       ResNetV2 it holds is read from the file (models/bit_weights.h), the head is replaced
//       by a zero-initialised one for the new classes (BiT's zero_head);
//   a .safetensors with timm's resnetv2 names (timm's files, or a visrep-bit run's
//       model.safetensors): the same, architecture as the file's "visrep.model" entry records
//       it (models/model_description.h), else read from the tensors' shapes;
//   a SimCLR or SupCon run folder (or its encoder.safetensors / checkpoint.safetensors): the
//       ResNet v1 or SmallConvNet encoder the file records (for older files: named by --arch
//       and --width as in visrep-eval), with a zero-initialised linear classifier on its
//       pooled features;
//   nothing: the --arch network from scratch (the app says so).
// Grey datasets are expanded to RGB when the network takes 3 channels. The run folder gets
// metrics.jsonl, checkpoint.safetensors (Ctrl-C writes one; --resume continues),
// model.safetensors (timm names for ResNetV2), loss.png and summary.json.
//
// On the CPU the defaults are sized to finish in minutes: a 10-shot subset, batch 64, the
// "bit-tiny" ResNetV2 when training from scratch, and 32 -> 28 px instead of the HyperRule's
// 160 -> 128 for small images; every one of them can be set by a flag.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <charconv>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/app_common.h"
#include "engine/data/mnist.h"
#include "engine/io/npz.h"
#include "engine/nn/init.h"
#include "models/bit_weights.h"
#include "models/factory.h"
#include "models/heads.h"
#include "models/model_description.h"
#include "models/resnet_v2.h"
#include "recipes/bit.h"
#include "recipes/datasets.h"

namespace {

using namespace visrep;

// The network being fine-tuned and where its weights came from.
struct FineTuneModel {
  std::shared_ptr<nn::Module> module;
  std::string description;
  std::string origin;       // "from scratch" or the checkpoint's path
  int64_t in_channels = 3;  // what the network takes
};

// A zero-initialised classifier on an encoder's pooled features (BiT's zero_head).
FineTuneModel encoder_with_zero_head(models::Encoder encoder, int64_t classes) {
  auto model = std::make_shared<models::EncoderClassifier>(encoder.module, encoder.feature_dim, classes);
  for (Tensor parameter : model->classifier->parameters()) nn::init::zeros_(parameter);
  return {model, encoder.description + " + zero-initialised linear head", "", 0};
}

// The file a --checkpoint folder stands for: a visrep-bit run's model.safetensors, else what
// visrep-eval accepts (encoder.safetensors, checkpoint.safetensors).
std::string checkpoint_file(const std::string& path) {
  const std::filesystem::path model = std::filesystem::path(path) / "model.safetensors";
  if (std::filesystem::is_directory(path) && std::filesystem::is_regular_file(model)) return model.string();
  return apps::resolve_checkpoint(path);
}

// The ResNetV2 a checkpoint holds, by `infer` (called with a group count); its errors name
// the file. gn_groups 0: models::default_gn_groups of the network's stem width.
template <class Infer>
models::ResNetV2Config architecture_of(const std::string& path, int64_t gn_groups, Infer infer) {
  try {
    if (gn_groups > 0) return infer(gn_groups);
    models::ResNetV2Config config = infer(1);  // one group divides every width
    config.gn_groups = models::default_gn_groups(config.base_width * config.width_factor);
    models::validate(config);
    return config;
  } catch (const Error& error) {
    const std::string message = error.what();
    VISREP_FAIL("--checkpoint '{}': {}{}", path, message,
                message.find("GroupNorm groups") != std::string::npos ? " (pass the network's --gn-groups)" : "");
  }
}

// `checkpoint` is a file (checkpoint_file above).
// `architecture_given`, `width_given`: --arch and --width were passed (not auto and 0), so a
// file that records another architecture is refused.
FineTuneModel load_pretrained(const std::string& checkpoint, const std::string& architecture, int64_t width,
                              bool architecture_given, bool width_given, int64_t gn_groups, int64_t data_channels,
                              int64_t image_size, int64_t classes) {
  const std::string& path = checkpoint;
  if (std::filesystem::path(path).extension() == ".npz") {
    const io::TensorMap npz = io::load_npz(path);
    models::ResNetV2Config config = architecture_of(path, gn_groups, [&](int64_t groups) { return models::infer_resnet_v2_config(npz, groups); });
    config.classes = classes;
    // Built only once the file is known to hold every array (models/bit_weights.h).
    auto model = models::make_resnet_v2_from_bit_weights(npz, config, /*load_head=*/false, fmt::format("'{}'", path));
    return {model, model->describe() + ", zero head", path, config.in_channels};
  }

  const io::SafetensorsContents contents = io::load_safetensors(path);
  const io::TensorMap state = apps::encoder_state(contents.tensors);
  // Files visrep writes record their architecture (models/model_description.h); for older
  // ones it is inferred from the weights, and the GroupNorm groups, which leave no trace in
  // them, come from --gn-groups or models::default_gn_groups.
  const std::optional<nlohmann::json> described = models::described_encoder(contents.metadata, path);
  if (state.count("stem.conv.weight") > 0) {
    // A ResNetV2 with timm's names: every tensor but the head, which starts at zero.
    models::ResNetV2Config config;
    if (described) {
      config = models::described_resnet_v2_config(*described, path);
      VISREP_CHECK(gn_groups == 0 || gn_groups == config.gn_groups,
                   "--gn-groups {}, but the checkpoint '{}' records {} GroupNorm groups (its '{}' metadata entry); "
                   "pass --gn-groups 0 or {}",
                   gn_groups, path, config.gn_groups, models::kModelDescriptionKey, config.gn_groups);
    } else {
      config = architecture_of(path, gn_groups, [&](int64_t groups) { return models::infer_resnet_v2_config_from_state(state, groups); });
    }
    config.classes = classes;
    auto model = models::make_resnet_v2_from_timm_state(state, config, fmt::format("the checkpoint '{}'", path));
    return {model, model->describe() + ", zero head", path, config.in_channels};
  }

  // A SimCLR / SupCon encoder: ResNet v1 or SmallConvNet, as the file records or, for older
  // files, as --arch and --width say.
  if (described) {
    const auto [name, described_width] = models::described_architecture_name(*described);
    VISREP_CHECK(!architecture_given || architecture == name,
                 "--arch {}, but the checkpoint '{}' records the architecture {} (its '{}' metadata entry); pass "
                 "--arch auto or --arch {}",
                 architecture, path, name, models::kModelDescriptionKey, name);
    VISREP_CHECK(!width_given || width == described_width,
                 "--width {}, but the checkpoint '{}' records {} of width {} (its '{}' metadata entry); pass --width 0 "
                 "or --width {}",
                 width, path, name, described_width, models::kModelDescriptionKey, described_width);
    models::Encoder encoder = models::make_described_encoder(*described, path);
    try {
      encoder.module->load_state_dict(state);
    } catch (const Error& error) {
      VISREP_FAIL("the checkpoint '{}' does not fit the {} its '{}' metadata entry records: {}", path,
                  encoder.description, models::kModelDescriptionKey, error.what());
    }
    FineTuneModel model = encoder_with_zero_head(std::move(encoder), classes);
    model.origin = path;
    model.in_channels = described->value("in_channels", data_channels);
    return model;
  }
  VISREP_CHECK(!models::is_resnet_v2_architecture(architecture),
               "--checkpoint '{}' holds no ResNetV2 (no stem.conv.weight); for a SimCLR or SupCon encoder pass its "
               "--arch (small, resnet18, resnet34, resnet50) and --width",
               path);
  models::Encoder encoder = models::make_encoder(architecture, width, data_channels, image_size);
  try {
    encoder.module->load_state_dict(state);
  } catch (const Error& error) {
    VISREP_FAIL("the checkpoint '{}' does not fit --arch {} --width {} ({}); the file holds: {}.\n  {}\n  Pass the "
                "--arch and --width it was trained with.",
                path, architecture, width, encoder.description, apps::described_model(contents), error.what());
  }
  FineTuneModel model = encoder_with_zero_head(std::move(encoder), classes);
  model.origin = path;
  model.in_channels = data_channels;
  return model;
}

FineTuneModel from_scratch(const std::string& architecture, int64_t width, int64_t data_channels, int64_t image_size,
                           int64_t classes) {
  if (models::is_resnet_v2_architecture(architecture)) {
    auto model = std::make_shared<models::ResNetV2>(models::resnet_v2_architecture(architecture, data_channels, classes, width));
    return {model, model->describe(), "from scratch", data_channels};
  }
  FineTuneModel model =
      encoder_with_zero_head(models::make_encoder(architecture, width, data_channels, image_size), classes);
  model.origin = "from scratch";
  model.in_channels = data_channels;
  return model;
}

// "160,128" -> resize 160, crop 128.
recipes::BitResolution parse_resolution(const std::string& text) {
  const size_t comma = text.find(',');
  recipes::BitResolution resolution;
  bool parsed = comma != std::string::npos;
  if (parsed) {
    const auto [end_resize, error_resize] = std::from_chars(text.data(), text.data() + comma, resolution.resize);
    const auto [end_crop, error_crop] =
        std::from_chars(text.data() + comma + 1, text.data() + text.size(), resolution.crop);
    parsed = error_resize == std::errc() && end_resize == text.data() + comma && error_crop == std::errc() &&
             end_crop == text.data() + text.size();
  }
  VISREP_CHECK(parsed && resolution.crop >= 1 && resolution.resize >= resolution.crop,
               "--resolution: expected RESIZE,CROP with 1 <= CROP <= RESIZE (e.g. 160,128), got '{}'", text);
  return resolution;
}

// "100,200,300" -> {100, 200, 300}.
std::vector<int64_t> parse_schedule(const std::string& text) {
  std::vector<int64_t> boundaries;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    int64_t value = 0;
    const auto [end, error] = std::from_chars(text.data() + start, text.data() + comma, value);
    VISREP_CHECK(error == std::errc() && end == text.data() + comma && value > 0,
                 "--schedule: expected increasing positive step counts separated by commas (e.g. 100,200,300), got '{}'",
                 text);
    boundaries.push_back(value);
    start = comma + 1;
  }
  return boundaries;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"BigTransfer: fine-tune a pretrained network with the BiT-HyperRule, then test top-1"};
  app.set_config("--config", "", "A TOML/INI file of these flags (command-line flags win)");

  std::string checkpoint, data_root = data::kFashionMnistRoot, architecture = "auto", device = "auto";
  std::string resolution_text, schedule_text;
  recipes::DatasetOptions dataset_options;
  recipes::BitConfig config;
  config.run_directory = "runs/bit";
  int64_t width = 0, gn_groups = 0, image_size = 0;
  int64_t batch_size = 0, examples_per_class = -1;
  double mixup_alpha = -1;
  bool no_lr_scaling = false;

  app.add_option("--checkpoint", checkpoint,
                 "Pretrained weights: a BiT .npz, a timm-named .safetensors, or a SimCLR/SupCon/BiT run folder "
                 "(none: train from scratch)");
  app.add_option("--data", data_root, "Dataset folder: MNIST-format files, CIFAR-10/100 binary, or an image folder")
      ->capture_default_str();
  app.add_flag("--digits", dataset_options.digits, "MNIST digits' class names for MNIST-format files");
  app.add_option("--image-folder-size", dataset_options.image_size,
                 "Image folders: resize the central square to this size (0: keep; sizes must agree)")
      ->check(apps::non_negative_number());
  app.add_option("--train-limit", dataset_options.train_limit, "Use only the first N training images (0: all)")
      ->check(apps::non_negative_number());
  app.add_option("--test-limit", dataset_options.test_limit, "Evaluate on the first N test images (0: all)")
      ->check(apps::non_negative_number());
  app.add_option("--arch", architecture,
                 "Network without a checkpoint (or the encoder's in a SimCLR/SupCon run): auto (bit-r50x1 on a GPU, "
                 "bit-tiny on the CPU), bit-tiny, bit-r50x1 ... bit-r152x4, small, resnet18, resnet34, resnet50")
      ->capture_default_str()
      ->check(apps::architecture_check());
  app.add_option("--width", width, "small: channels of the first block (0: 32); resnet: width multiplier 1 or 2 (0: 1); bit-tiny: base width (0: 16)")
      ->check(apps::non_negative_number());
  app.add_option("--gn-groups", gn_groups, "GroupNorm groups of a ResNetV2 read from a checkpoint (0: what the file "
                 "records, else BiT's 32, or "
                 "half the stem's channels below 64 as bit-tiny)")
      ->capture_default_str()
      ->check(CLI::Range(0, 4096));
  app.add_option("--examples-per-class", examples_per_class,
                 "Few-shot: train on N images per class (0: all; default 10 on the CPU, all on a GPU)")
      ->check(apps::non_negative_number());
  app.add_option("--few-shot-seed", config.examples_per_class_seed, "Seed of the few-shot choice")->capture_default_str();
  app.add_option("--batch-size", batch_size, "Images per step (default: BiT's 512 on a GPU, 64 on the CPU)" + apps::batch_size_note())
      ->check(CLI::Range(1, 1 << 16));
  app.add_option("--batch-split", config.batch_split, "Micro-batches per step, to fit memory (same update)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 16));
  app.add_option("--lr", config.base_learning_rate, "Learning rate at batch 512 (scaled x batch / 512)")
      ->capture_default_str()
      ->check(apps::positive_number());
  app.add_flag("--no-lr-scaling", no_lr_scaling, "Use --lr as it is, whatever the batch size (train.py's behaviour)");
  app.add_option("--resolution", resolution_text,
                 "RESIZE,CROP in pixels (default: the HyperRule's 160,128 or 512,480; on the CPU 32,28 for images "
                 "below 96x96)");
  app.add_option("--schedule", schedule_text,
                 "Learning-rate boundaries in steps, e.g. 100,200,300,400,500 (default: the HyperRule's for the "
                 "dataset size)");
  app.add_option("--mixup-alpha", mixup_alpha, "MixUp's Beta(alpha, alpha) (default: the HyperRule's; 0: off)")
      ->check(apps::non_negative_number());
  app.add_option("--eval-every", config.eval_every, "Steps between test evaluations (0: at the end only)")
      ->check(apps::non_negative_number());
  app.add_option("--seed", config.seed, "Seed of the initialisation, data order, augmentation and MixUp")
      ->capture_default_str();
  apps::add_device_option(app, device);
  app.add_option("--run-dir", config.run_directory, "Run folder (metrics, checkpoints, plots, summary)")
      ->capture_default_str();
  app.add_option("--checkpoint-every", config.checkpoint_every, "Steps between checkpoints (0: at the end and on Ctrl-C)")
      ->check(apps::non_negative_number());
  app.add_option("--resume", config.resume, "Continue from a checkpoint.safetensors (or the run folder holding one)");
  std::string batch_norm = "sync";
  app.add_option("--bn", batch_norm, "Batch norm on several ranks, for a network that has any (ResNetV2 has GroupNorm, which needs nothing): sync (over the global batch) or local")
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
    const bool on_cpu = !config.device.is_cuda();
    config.scale_learning_rate = !no_lr_scaling;
    config.batch_size = batch_size > 0 ? batch_size : (on_cpu ? 64 : 512);
    config.examples_per_class = examples_per_class >= 0 ? examples_per_class : (on_cpu ? 10 : 0);
    if (!schedule_text.empty()) config.schedule = parse_schedule(schedule_text);
    if (mixup_alpha >= 0) config.mixup_alpha = mixup_alpha;
    config.resume = apps::resolve_resume(config.resume);
    const apps::Architecture network = apps::resolve_architecture(apps::Binary::Bit, architecture, width, config.device);
    dataset_options.seed = config.seed;
    manual_seed(config.seed);

    // A missing checkpoint is reported before the data is read.
    if (!checkpoint.empty()) checkpoint = checkpoint_file(checkpoint);
    recipes::DatasetPair dataset = recipes::load_dataset(data_root, dataset_options);
    const int64_t classes = dataset.train.class_count();
    if (image_size == 0) image_size = dataset.train.height();
    FineTuneModel model =
        checkpoint.empty()
            ? from_scratch(network.name, network.width, dataset.train.channels(), image_size, classes)
            : load_pretrained(checkpoint, network.name, network.width, architecture != "auto", width > 0, gn_groups,
                              dataset.train.channels(), image_size, classes);
    if (model.in_channels == 3 && dataset.train.channels() == 1) {
      dataset.train = data::to_rgb(dataset.train);  // grey -> RGB for networks pretrained on colour images
      dataset.test = data::to_rgb(dataset.test);
    }
    VISREP_CHECK(model.in_channels == dataset.train.channels(),
                 "the network takes {}-channel images but the dataset's have {} channels", model.in_channels,
                 dataset.train.channels());

    if (!resolution_text.empty()) {
      config.resolution = parse_resolution(resolution_text);
    } else if (on_cpu && dataset.train.height() * dataset.train.width() < 96 * 96) {
      // The HyperRule's 160 -> 128 costs (128 / 28)^2 = 21x the pixels of Fashion-MNIST.
      config.resolution = recipes::BitResolution{.resize = 32, .crop = 28};
      if (job->is_root()) fmt::print(stderr, "resolution: 32 -> 28 px on the CPU instead of the HyperRule's 160 -> 128 "
                         "(--resolution 160,128 for the rule)\n");
    }
    model.module->to(config.device);

    if (job->is_root()) fmt::print(stderr, "data: {}\nnetwork: {}, {} parameters, {}\n", recipes::describe(dataset, data_root),
               model.description, model.module->parameter_count(),
               checkpoint.empty() ? "trained from scratch (no --checkpoint)" : "weights from " + model.origin);
    if (job->is_root()) fmt::print(stderr, "device: {}; batch {} in {} micro-batch(es){}\n", config.device.str(), config.batch_size,
               config.batch_split,
               config.examples_per_class > 0 ? fmt::format(", {}-shot", config.examples_per_class) : std::string());

    apps::install_stop_handler();
    const auto start = std::chrono::steady_clock::now();
    const recipes::BitResult result = recipes::train_bit(*model.module, dataset.train, dataset.test, config);
    if (result.stopped) {
      fmt::print("stopped; checkpoint: {} (continue with --resume {})\n", result.checkpoint_path, config.run_directory);
      return job->finish(130);
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const recipes::BitEvaluation& final_evaluation = result.evaluations.back();
    nlohmann::json summary = {
        {"dataset", dataset.name},
        {"network", model.description},
        {"weights", model.origin},
        {"training_examples", result.plan.training_examples},
        {"examples_per_class", config.examples_per_class},
        {"steps", result.plan.steps()},
        {"batch_size", config.batch_size},
        {"resolution", {result.plan.resolution.resize, result.plan.resolution.crop}},
        {"learning_rate", result.plan.learning_rate},
        {"mixup_alpha", result.plan.mixup_alpha},
        {"device", config.device.str()},
        {"seconds", seconds},
        {"test_top1", final_evaluation.top1},
        {"test_loss", final_evaluation.loss},
    };
    fmt::print("BiT fine-tuning on {}: {} ({}), {} steps of batch {} on {} training images, {:.0f} s on {}\n",
               dataset.name, model.description, checkpoint.empty() ? "from scratch" : "from " + model.origin,
               result.plan.steps(), config.batch_size, result.plan.training_examples, seconds, config.device.str());
    fmt::print("  test top-1: {:.2f}% ({} images), test loss {:.4f}\n", 100 * final_evaluation.top1,
               dataset.test.size(), final_evaluation.loss);
    if (!config.run_directory.empty() && job->is_root()) {
      apps::write_summary(config.run_directory, summary);
      fmt::print("  run folder: {} (metrics.jsonl, model.safetensors, loss.png, summary.json)\n",
                 config.run_directory);
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
