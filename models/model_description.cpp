#include "models/model_description.h"

#include <array>
#include <charconv>
#include <cstdlib>
#include <string_view>

#include <fmt/format.h>

#include "engine/error.h"
#include "engine/util/version.h"
#include "models/factory.h"
#include "models/heads.h"
#include "models/resnet.h"
#include "models/resnet_v2.h"
#include "models/small_convnet.h"

namespace visrep::models {

nlohmann::json describe_architecture(const nn::Module& module) {
  if (const auto* net = dynamic_cast<const ResNetV2*>(&module)) {
    const ResNetV2Config& config = net->config();
    const std::array<int, 4> units = resnet_v2_units(config);
    nlohmann::json stage_widths = nlohmann::json::array();  // every unit's output: 4 x its bottleneck
    for (int stage = 0; stage < 4; ++stage) stage_widths.push_back(4 * config.base_width * config.width_factor << stage);
    return {{"family", "resnet_v2"},
            {"units_per_stage", units},
            {"depth", resnet_v2_depth(config)},
            {"base_width", config.base_width},
            {"width_factor", config.width_factor},
            {"stage_widths", stage_widths},
            {"gn_groups", config.gn_groups},
            {"std_conv_eps", config.std_conv_eps},
            {"in_channels", config.in_channels},
            {"feature_dim", net->feature_dim()},
            {"classes", config.classes}};
  }
  if (const auto* net = dynamic_cast<const ResNet*>(&module)) {
    const ResNetConfig& config = net->config();
    return {{"family", "resnet"},
            {"depth", config.depth},
            {"width_multiplier", config.width_multiplier},
            {"stem", stem_name(config.stem)},
            {"in_channels", config.in_channels},
            {"feature_dim", resnet_feature_dim(config)}};
  }
  if (const auto* net = dynamic_cast<const SmallConvNet*>(&module)) {
    const SmallConvNetConfig& config = net->config();
    return {{"family", "small_convnet"},
            {"width", config.width},
            {"in_channels", config.in_channels},
            {"classes", config.classes},
            {"feature_dim", net->feature_dim()}};
  }
  if (const auto* net = dynamic_cast<const EncoderClassifier*>(&module)) {
    return {{"family", net->type_name()},
            {"encoder", describe_architecture(*net->encoder)},
            {"classifier", describe_architecture(*net->classifier)}};
  }
  // A head (or another module): its Linear layers in order, "<layer>.weight" of shape (out, in).
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& [name, tensor] : module.named_parameters()) {
    constexpr std::string_view kWeight = ".weight";
    const bool is_weight = name.size() > kWeight.size() && name.ends_with(kWeight);
    if (!is_weight || tensor.dim() != 2) continue;
    layers.push_back({{"name", name.substr(0, name.size() - kWeight.size())},
                      {"in", tensor.shape()[1]},
                      {"out", tensor.shape()[0]}});
  }
  return {{"family", module.type_name()}, {"linear_layers", layers}};
}

nlohmann::json describe_input(const data::AugmentConfig& augment, int64_t channels) {
  // The float's shortest decimal (0.485f is written 0.485, not 0.48500001430511475).
  const auto decimal = [](float value) {
    std::array<char, 32> text{};
    const auto end = std::to_chars(text.data(), text.data() + text.size(), value).ptr;
    return std::strtod(std::string(text.data(), end).c_str(), nullptr);
  };
  const auto per_channel = [&](const std::vector<float>& values, float otherwise) {
    std::vector<double> out(static_cast<size_t>(channels), otherwise);
    for (size_t c = 0; c < out.size() && !values.empty(); ++c) out[c] = decimal(values[values.size() == 1 ? 0 : c]);
    return out;
  };
  return {{"channels", channels},
          {"height", augment.height},
          {"width", augment.width},
          {"value_range", {0.0, 1.0}},
          {"mean", per_channel(augment.mean, 0.0f)},
          {"std", per_channel(augment.std, 1.0f)}};
}

std::string model_description(const std::vector<std::pair<std::string, const nn::Module*>>& modules,
                              const nlohmann::json& input) {
  nlohmann::json described = nlohmann::json::object();
  for (const auto& [name, module] : modules) described[name] = describe_architecture(*module);
  return nlohmann::json{{"visrep_version", version()}, {"modules", described}, {"input", input}}.dump();
}

}  // namespace visrep::models

namespace visrep::models {

namespace {

// The integer `key` of `object`, within [low, high]; the errors name the file and the field.
int64_t bounded_integer(const nlohmann::json& object, const std::string& key, int64_t low, int64_t high,
                        const std::string& path) {
  const auto found = object.find(key);
  VISREP_CHECK(found != object.end() && found->is_number_integer(),
               "the '{}' entry of '{}' has no integer '{}' in its architecture: {}", kModelDescriptionKey, path, key,
               object.dump());
  const int64_t value = found->get<int64_t>();
  VISREP_CHECK(value >= low && value <= high, "the '{}' entry of '{}' has '{}' {}, outside {}..{}",
               kModelDescriptionKey, path, key, value, low, high);
  return value;
}

// Bounds no network visrep builds comes near; they keep a crafted file from asking for one
// of terabytes.
constexpr int64_t kMaxChannels = 4096;
constexpr int64_t kMaxInputChannels = 64;

}  // namespace

std::optional<nlohmann::json> described_encoder(const std::map<std::string, std::string>& metadata,
                                                const std::string& path) {
  const auto entry = metadata.find(kModelDescriptionKey);
  if (entry == metadata.end()) return std::nullopt;
  const nlohmann::json description = nlohmann::json::parse(entry->second, nullptr, /*allow_exceptions=*/false);
  const bool has_modules = description.is_object() && description.contains("modules") &&
                           description["modules"].is_object();
  VISREP_CHECK(has_modules, "the '{}' metadata entry of '{}' is not a model description (JSON with \"modules\"): '{}'",
               kModelDescriptionKey, path, entry->second.substr(0, 200));
  const nlohmann::json& modules = description["modules"];
  for (const char* name : {"encoder", "model"}) {
    if (!modules.contains(name) || !modules[name].is_object()) continue;
    const nlohmann::json& module = modules[name];
    // A baseline's EncoderClassifier holds its encoder as "encoder.*", described within.
    if (module.contains("encoder") && module["encoder"].is_object()) return module["encoder"];
    return module;
  }
  VISREP_FAIL("the '{}' metadata entry of '{}' describes no \"encoder\" or \"model\" module: '{}'",
              kModelDescriptionKey, path, modules.dump().substr(0, 200));
}

std::pair<std::string, int64_t> described_architecture_name(const nlohmann::json& architecture) {
  const std::string family = architecture.value("family", std::string("?"));
  if (family == "small_convnet") return {"small", architecture.value("width", int64_t{0})};
  if (family == "resnet") {
    return {fmt::format("resnet{}", architecture.value("depth", 0)), architecture.value("width_multiplier", int64_t{0})};
  }
  if (family == "resnet_v2") {
    const std::vector<int> units = architecture.value("units_per_stage", std::vector<int>{});
    const int64_t base_width = architecture.value("base_width", int64_t{0});
    if (units == std::vector<int>{1, 1, 1, 1} && architecture.value("width_factor", 0) == 1 && base_width > 0 &&
        architecture.value("gn_groups", int64_t{0}) == default_gn_groups(base_width)) {
      return {"bit-tiny", base_width};
    }
    if (base_width == 64 && architecture.value("gn_groups", 0) == 32) {
      return {fmt::format("bit-r{}x{}", architecture.value("depth", 0), architecture.value("width_factor", 0)), 0};
    }
  }
  return {fmt::format("{} ({})", family, architecture.dump()), 0};
}

ResNetV2Config described_resnet_v2_config(const nlohmann::json& architecture, const std::string& path) {
  VISREP_CHECK(architecture.value("family", std::string()) == "resnet_v2",
               "the '{}' entry of '{}' describes no ResNetV2: {}", kModelDescriptionKey, path, architecture.dump());
  ResNetV2Config config;
  const auto units = architecture.find("units_per_stage");
  VISREP_CHECK(units != architecture.end() && units->is_array() && units->size() == 4,
               "the '{}' entry of '{}' has no 4 'units_per_stage': {}", kModelDescriptionKey, path,
               architecture.dump());
  config.units_per_stage.clear();
  for (const nlohmann::json& count : *units) {
    VISREP_CHECK(count.is_number_integer() && count.get<int64_t>() >= 1 && count.get<int64_t>() <= 64,
                 "the '{}' entry of '{}' has 'units_per_stage' {} (counts 1..64)", kModelDescriptionKey, path,
                 units->dump());
    config.units_per_stage.push_back(count.get<int>());
  }
  config.depth = 0;
  config.width_factor = static_cast<int>(bounded_integer(architecture, "width_factor", 1, 4, path));
  config.base_width = bounded_integer(architecture, "base_width", 1, kMaxChannels / 32, path);
  config.gn_groups = bounded_integer(architecture, "gn_groups", 1, kMaxChannels, path);
  config.in_channels = bounded_integer(architecture, "in_channels", 1, kMaxInputChannels, path);
  config.classes = bounded_integer(architecture, "classes", 0, 1'000'000, path);
  const auto eps = architecture.find("std_conv_eps");
  VISREP_CHECK(eps != architecture.end() && eps->is_number() && eps->get<double>() > 0 && eps->get<double>() < 1,
               "the '{}' entry of '{}' has no 'std_conv_eps' in (0, 1): {}", kModelDescriptionKey, path,
               architecture.dump());
  config.std_conv_eps = eps->get<double>();
  try {
    validate(config);
  } catch (const Error& error) {
    VISREP_FAIL("the '{}' entry of '{}' describes no valid ResNetV2: {}", kModelDescriptionKey, path, error.what());
  }
  return config;
}

Encoder make_described_encoder(const nlohmann::json& architecture, const std::string& path) {
  const std::string family = architecture.value("family", std::string());
  if (family == "resnet_v2") {
    ResNetV2Config config = described_resnet_v2_config(architecture, path);
    config.classes = 0;
    auto net = std::make_shared<ResNetV2>(config);
    return {net, net->feature_dim(), net->describe()};
  }
  if (family == "resnet") {
    ResNetConfig config;
    config.depth = static_cast<int>(bounded_integer(architecture, "depth", 1, 1000, path));
    config.width_multiplier = static_cast<int>(bounded_integer(architecture, "width_multiplier", 1, 2, path));
    config.in_channels = bounded_integer(architecture, "in_channels", 1, kMaxInputChannels, path);
    const std::string stem = architecture.value("stem", std::string());
    VISREP_CHECK(stem == stem_name(ResNetStem::ImageNet) || stem == stem_name(ResNetStem::Cifar),
                 "the '{}' entry of '{}' has 'stem' '{}' (ImageNet or CIFAR)", kModelDescriptionKey, path, stem);
    config.stem = stem == stem_name(ResNetStem::Cifar) ? ResNetStem::Cifar : ResNetStem::ImageNet;
    try {
      validate(config);
    } catch (const Error& error) {
      VISREP_FAIL("the '{}' entry of '{}' describes no valid ResNet: {}", kModelDescriptionKey, path, error.what());
    }
    auto net = std::make_shared<ResNet>(config);
    return {net, resnet_feature_dim(config), net->describe()};
  }
  if (family == "small_convnet") {
    const SmallConvNetConfig config{.in_channels = bounded_integer(architecture, "in_channels", 1, kMaxInputChannels, path),
                                    .classes = 0,
                                    .width = bounded_integer(architecture, "width", 1, kMaxChannels / 4, path)};
    auto net = std::make_shared<SmallConvNet>(config);
    return {net, net->feature_dim(), fmt::format("SmallConvNet width {}", config.width)};
  }
  VISREP_FAIL("the '{}' entry of '{}' describes an encoder of family '{}', which visrep cannot build: {}",
              kModelDescriptionKey, path, family, architecture.dump().substr(0, 200));
}

}  // namespace visrep::models
