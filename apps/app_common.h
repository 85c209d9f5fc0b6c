// What the recipe binaries share: flag validators with short messages, the --device flag,
// the encoder choice, reading an encoder back from a run folder, and a SIGINT handler that
// asks the training loop to stop cleanly.
// Header-only: each app is one main() in one file (DESIGN.md, apps/).
#pragma once

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <csignal>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/cuda.h"
#include "engine/device.h"
#include "engine/error.h"
#include "engine/io/safetensors.h"
#include "engine/nn/module.h"
#include "engine/util/atomic_file.h"
#include "models/resnet.h"
#include "models/resnet_v2.h"
#include "models/small_convnet.h"
#include "recipes/contrastive_training.h"
#include "recipes/run_files.h"

namespace visrep::apps {

// CLI11 2.1's PositiveNumber and NonNegativeNumber print their upper bound, DBL_MAX, with
// all of its 309 digits; these say it in a few words: "--epochs: must be > 0, got 0".
inline CLI::Validator number_check(bool zero_allowed) {
  return CLI::Validator(
      [zero_allowed](std::string& text) -> std::string {
        char* end = nullptr;
        const double value = std::strtod(text.c_str(), &end);
        if (text.empty() || end != text.c_str() + text.size() || std::isnan(value)) {
          return "'" + text + "' is not a number";
        }
        if (zero_allowed ? value < 0 : value <= 0) {
          return fmt::format("must be {} 0, got {}", zero_allowed ? ">=" : ">", text);
        }
        return std::string();
      },
      zero_allowed ? "NONNEGATIVE" : "POSITIVE");
}
inline CLI::Validator positive_number() { return number_check(false); }
inline CLI::Validator non_negative_number() { return number_check(true); }

// --device: auto (cuda when a GPU is usable, else cpu), cpu, cuda or cuda:N; refused at
// parse time with the flag's name.
inline CLI::Option* add_device_option(CLI::App& app, std::string& device) {
  return app.add_option("--device", device, "auto (cuda when a GPU is usable, else cpu), cpu, cuda or cuda:N")
      ->capture_default_str()
      ->check([](const std::string& text) {
        try {
          if (text != "auto") Device::parse(text);
          return std::string();
        } catch (const Error& error) {
          return std::string(error.what());
        }
      });
}

inline Device resolve_device(const std::string& device) {
  Device chosen = device == "auto" ? (cuda_available() ? Device::cuda() : Device::cpu()) : Device::parse(device);
  check_device_usable(chosen, "--device");
  return chosen;
}

// The GroupNorm groups of the apps' ResNetV2 networks: BiT's 32 for BiT's widths (stem of 64
// channels or more), half the stem's channels for narrower ones (2 channels per group in the
// narrowest norm, as bit-tiny). The groups leave no trace in the weights, so reading a
// checkpoint relies on this rule unless --gn-groups says otherwise.
inline int64_t default_gn_groups(int64_t stem_channels) {
  return stem_channels >= 64 ? 32 : std::max<int64_t>(stem_channels / 2, 1);
}

// "bit-r50x1" -> depth 50, width 1; "bit-tiny": one unit per stage, a quarter of BiT's
// widths and 8 GroupNorm groups (7x faster on the CPU than base width 32 with 32 groups).
inline models::ResNetV2Config resnet_v2_architecture(const std::string& name, int64_t in_channels, int64_t classes) {
  models::ResNetV2Config config;
  config.in_channels = in_channels;
  config.classes = classes;
  if (name == "bit-tiny") {
    config.depth = 0;
    config.units_per_stage = {1, 1, 1, 1};
    config.base_width = 16;
    config.gn_groups = default_gn_groups(config.base_width);  // 8
    return config;
  }
  int depth = 0, width = 0;
  const char* text = name.c_str();
  const char* end = text + name.size();
  bool parsed = name.rfind("bit-r", 0) == 0;
  if (parsed) {
    auto [after_depth, depth_error] = std::from_chars(text + 5, end, depth);
    parsed = depth_error == std::errc() && after_depth < end && *after_depth == 'x';
    if (parsed) {
      auto [after_width, width_error] = std::from_chars(after_depth + 1, end, width);
      parsed = width_error == std::errc() && after_width == end;
    }
  }
  VISREP_CHECK(parsed, "--arch: unknown architecture '{}'; use bit-tiny, bit-r50x1 ... bit-r152x4, small, resnet18, "
               "resnet34 or resnet50", name);
  config.depth = depth;
  config.width_factor = width;
  models::validate(config);
  return config;
}

// BiT's networks are named "bit-...".
inline bool is_resnet_v2_architecture(const std::string& name) { return name.rfind("bit-", 0) == 0; }

// The encoders the apps build by name: "small" (SmallConvNet without classifier, 4 x width
// features: trains on a laptop CPU in minutes), "resnet18|34|50" (ResNet v1, width 1 or 2,
// the CIFAR stem at 32 px and below) or BiT's ResNetV2 ("bit-tiny", "bit-r50x1" ...: GroupNorm
// and Weight Standardization, no batch statistics). "auto": resnet18 on a GPU, small on the CPU.
struct Encoder {
  std::shared_ptr<nn::Module> module;
  int64_t feature_dim = 0;
  std::string description;
};

// --arch's check at parse time: auto, small, resnet18|34|50 or a ResNetV2 name.
inline CLI::Validator architecture_check() {
  return CLI::Validator(
      [](std::string& name) -> std::string {
        if (name == "auto" || name == "small" || name == "resnet18" || name == "resnet34" || name == "resnet50") {
          return std::string();
        }
        try {
          if (is_resnet_v2_architecture(name)) {
            resnet_v2_architecture(name, 3, 0);
            return std::string();
          }
        } catch (const Error& error) {
          return error.what();
        }
        return "unknown architecture '" + name + "'; use auto, small, resnet18, resnet34, resnet50, bit-tiny or " +
               "bit-r50x1 ... bit-r152x4";
      },
      "ARCH");
}

inline std::string resolve_architecture(const std::string& architecture, const Device& device) {
  if (architecture != "auto") return architecture;
  return device.is_cuda() ? "resnet18" : "small";
}

inline Encoder make_encoder(const std::string& architecture, int64_t width, int64_t in_channels, int64_t image_size) {
  if (architecture == "small") {
    auto net = std::make_shared<models::SmallConvNet>(
        models::SmallConvNetConfig{.in_channels = in_channels, .classes = 0, .width = width});
    return {net, net->feature_dim(), fmt::format("SmallConvNet width {}", width)};
  }
  if (is_resnet_v2_architecture(architecture)) {
    auto net = std::make_shared<models::ResNetV2>(resnet_v2_architecture(architecture, in_channels, 0));
    return {net, net->feature_dim(), net->describe()};
  }
  for (int depth : {18, 34, 50}) {
    if (architecture == fmt::format("resnet{}", depth)) {
      models::ResNetConfig config{.depth = depth, .width_multiplier = static_cast<int>(width),
                                  .stem = models::stem_for_image_size(image_size), .in_channels = in_channels};
      auto net = std::make_shared<models::ResNet>(config);
      return {net, models::resnet_feature_dim(config),
              fmt::format("ResNet-{} {}x, {} stem", depth, width, models::stem_name(config.stem))};
    }
  }
  throw Error(fmt::format("--arch: unknown architecture '{}'; use auto, small, resnet18, resnet34, resnet50, bit-tiny "
                          "or bit-r50x1 ... bit-r152x4",
                          architecture));
}

// A run folder stands for its encoder.safetensors (written at the end of a run) or, for a
// run that was stopped, its checkpoint.safetensors.
inline std::string resolve_checkpoint(const std::string& path) {
  if (!std::filesystem::is_directory(path)) {
    VISREP_CHECK(std::filesystem::is_regular_file(path), "--checkpoint: '{}' does not exist", path);
    return path;
  }
  for (const char* name : {"encoder.safetensors", "checkpoint.safetensors"}) {
    const std::filesystem::path candidate = std::filesystem::path(path) / name;
    if (std::filesystem::is_regular_file(candidate)) return candidate.string();
  }
  VISREP_FAIL("--checkpoint: the folder '{}' holds neither encoder.safetensors nor checkpoint.safetensors", path);
}

// The encoder's state dict in a file: encoder.safetensors holds it as is (PyTorch names);
// a training checkpoint (encoder.*, head.*, optimizer.*) and a baseline's EncoderClassifier
// (encoder.*, classifier.*) hold it under "encoder.". No encoder key starts with "encoder.",
// so the prefix tells the two apart.
inline io::TensorMap encoder_state(const io::TensorMap& tensors) {
  io::TensorMap prefixed;
  for (const auto& [name, tensor] : tensors) {
    if (name.rfind("encoder.", 0) == 0) prefixed[name.substr(8)] = tensor;
  }
  return prefixed.empty() ? tensors : prefixed;
}

// What the file says it holds, for messages: the "model" or "encoder" metadata entry.
inline std::string described_model(const io::SafetensorsContents& contents) {
  for (const char* key : {"model", "encoder"}) {
    const auto found = contents.metadata.find(key);
    if (found != contents.metadata.end()) return found->second;
  }
  return "not recorded";
}

// --resume accepts a run folder for the checkpoint.safetensors it holds.
inline std::string resolve_resume(const std::string& path) {
  if (path.empty() || !std::filesystem::is_directory(path)) return path;
  return (std::filesystem::path(path) / recipes::kCheckpointFileName).string();
}

// The run's results as <run_directory>/summary.json, written atomically.
inline void write_summary(const std::string& run_directory, const nlohmann::json& summary) {
  util::write_file_atomically((std::filesystem::path(run_directory) / "summary.json").string(), summary.dump(2) + "\n");
}

// Ctrl-C: the first asks the training loop to write a checkpoint and stop after the current
// step (request_stop only stores to an atomic); a second one ends the process at once.
inline void install_stop_handler() {
  // A lock-free atomic is async-signal-safe to touch from the handler.
  static std::atomic<int> interrupts{0};
  static_assert(std::atomic<int>::is_always_lock_free);
  std::signal(SIGINT, [](int) {
    if (interrupts.fetch_add(1) > 0) std::_Exit(130);
    recipes::request_stop();
  });
}

}  // namespace visrep::apps
