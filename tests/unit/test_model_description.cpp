// models/model_description.h: what a file says of its model, and building the model back
// from it: every family round-trips exactly (the same state dict names and shapes), and a
// description that is not one (malformed JSON, a missing field, a giant or invalid width) is
// refused naming the file and the field, before anything is allocated.
#include <catch2/catch.hpp>

#include "engine/ops.h"
#include "engine/util/version.h"
#include "models/factory.h"
#include "models/heads.h"
#include "models/model_description.h"
#include "models/resnet.h"
#include "models/small_convnet.h"

using namespace visrep;
using Catch::Matchers::Contains;

namespace {

// The module's state dict names and shapes.
std::map<std::string, Shape> layout(const nn::Module& module) {
  std::map<std::string, Shape> shapes;
  for (const auto& [name, tensor] : module.state_dict()) shapes[name] = tensor.shape();
  return shapes;
}

// `module` described as "encoder", read back and built.
models::Encoder round_trip(const nn::Module& module) {
  const nlohmann::json input = models::describe_input({.height = 16, .width = 16, .mean = {0.5f}, .std = {0.25f}}, 3);
  const std::string text = models::model_description({{"encoder", &module}}, input);
  const nlohmann::json parsed = nlohmann::json::parse(text);
  REQUIRE(parsed.at("visrep_version") == version());
  REQUIRE(parsed.at("input").at("mean") == std::vector<double>{0.5, 0.5, 0.5});
  REQUIRE(parsed.at("input").at("std") == std::vector<double>{0.25, 0.25, 0.25});
  const auto described = models::described_encoder({{models::kModelDescriptionKey, text}}, "f.safetensors");
  REQUIRE(described.has_value());
  return models::make_described_encoder(*described, "f.safetensors");
}

}  // namespace

TEST_CASE("model description: every encoder family is built back exactly", "[unit]") {
  SECTION("ResNetV2, 3 GroupNorm groups and timm's eps: what no guessing rule gives") {
    models::ResNetV2Config config{.depth = 0, .in_channels = 3, .gn_groups = 3, .base_width = 6,
                                  .units_per_stage = {1, 2, 1, 1}, .std_conv_eps = 1e-8};
    const models::ResNetV2 net(config);
    const nlohmann::json arch = models::describe_architecture(net);
    REQUIRE(arch.at("family") == "resnet_v2");
    REQUIRE(arch.at("gn_groups") == 3);
    REQUIRE(arch.at("stage_widths") == std::vector<int64_t>{24, 48, 96, 192});
    REQUIRE(arch.at("feature_dim") == 192);
    const models::Encoder built = round_trip(net);
    REQUIRE(layout(*built.module) == layout(net));
    const auto& rebuilt = dynamic_cast<const models::ResNetV2&>(*built.module).config();
    REQUIRE(rebuilt.gn_groups == 3);
    REQUIRE(rebuilt.std_conv_eps == 1e-8);
    REQUIRE(models::described_architecture_name(arch).first.find("resnet_v2") == 0);
  }
  SECTION("bit-tiny of base width 32 (the main job's encoder) is named back with its width") {
    const models::Encoder encoder = models::make_encoder("bit-tiny", 32, 1, 28);
    REQUIRE(encoder.feature_dim == 1024);
    const auto& config = dynamic_cast<const models::ResNetV2&>(*encoder.module).config();
    REQUIRE(config.base_width == 32);
    REQUIRE(config.gn_groups == 16);
    const models::Encoder built = round_trip(*encoder.module);
    REQUIRE(layout(*built.module) == layout(*encoder.module));
    REQUIRE(models::described_architecture_name(models::describe_architecture(*encoder.module)) ==
            std::pair<std::string, int64_t>{"bit-tiny", 32});
    REQUIRE(models::described_architecture_name(models::describe_architecture(*models::make_encoder("bit-tiny", 0, 1, 28).module)) ==
            std::pair<std::string, int64_t>{"bit-tiny", 16});
    REQUIRE_THROWS_WITH(models::make_encoder("bit-r50x1", 2, 3, 32), Contains("bit-r50x1 takes no width (2)"));
    REQUIRE_THROWS_WITH(models::resnet_v2_architecture("bit-tiny", 1, 0, 100000), Contains("base width must be in [1, 1024]"));
  }
  SECTION("ResNet v1 with the CIFAR stem") {
    const models::ResNet net({.depth = 18, .width_multiplier = 1, .stem = models::ResNetStem::Cifar, .in_channels = 3});
    const models::Encoder built = round_trip(net);
    REQUIRE(layout(*built.module) == layout(net));
    REQUIRE(built.feature_dim == 512);
    REQUIRE(models::described_architecture_name(models::describe_architecture(net)) ==
            std::pair<std::string, int64_t>{"resnet18", 1});
  }
  SECTION("SmallConvNet, and a baseline's EncoderClassifier describes its encoder within") {
    auto net = std::make_shared<models::SmallConvNet>(models::SmallConvNetConfig{.in_channels = 3, .classes = 0, .width = 4});
    REQUIRE(layout(*round_trip(*net).module) == layout(*net));
    const models::EncoderClassifier baseline(net, net->feature_dim(), 10);
    const std::string text = models::model_description({{"model", &baseline}}, nullptr);
    const auto described = models::described_encoder({{models::kModelDescriptionKey, text}}, "model.safetensors");
    REQUIRE(described->at("family") == "small_convnet");
    REQUIRE(models::described_architecture_name(*described) == std::pair<std::string, int64_t>{"small", 4});
  }
  SECTION("a head: its Linear layers") {
    const models::ProjectionHead head(16, 12, 8, 2);
    const nlohmann::json arch = models::describe_architecture(head);
    REQUIRE(arch.at("family") == "ProjectionHead");
    REQUIRE(arch.at("linear_layers").size() == 2);
    REQUIRE(arch.at("linear_layers")[0].at("in") == 16);
    REQUIRE(arch.at("linear_layers")[1].at("out") == 8);
  }
  SECTION("a file without the entry: none") {
    REQUIRE_FALSE(models::described_encoder({{"format", "pt"}}, "old.safetensors").has_value());
  }
}

TEST_CASE("model description: hostile descriptions are refused naming the file and the field", "[unit][hostile]") {
  const models::ResNetV2 net({.depth = 0, .gn_groups = 2, .base_width = 4, .units_per_stage = {1, 1, 1, 1}});
  const nlohmann::json good = models::describe_architecture(net);
  const auto refused = [&](const nlohmann::json& arch) {
    const std::string text = nlohmann::json{{"modules", {{"encoder", arch}}}}.dump();
    const auto described = models::described_encoder({{models::kModelDescriptionKey, text}}, "bad.safetensors");
    models::make_described_encoder(*described, "bad.safetensors");
  };
  const auto with = [&](const std::string& key, const nlohmann::json& value) {
    nlohmann::json arch = good;
    arch[key] = value;
    return arch;
  };
  REQUIRE_NOTHROW(refused(good));
  REQUIRE_THROWS_WITH(refused(with("base_width", int64_t{1} << 40)),
                      Contains("bad.safetensors") && Contains("'base_width' 1099511627776"));
  REQUIRE_THROWS_WITH(refused(with("gn_groups", 3)), Contains("bad.safetensors") && Contains("GroupNorm groups"));
  REQUIRE_THROWS_WITH(refused(with("gn_groups", "eight")), Contains("no integer 'gn_groups'"));
  REQUIRE_THROWS_WITH(refused(with("units_per_stage", {1, 1, 100000, 1})), Contains("'units_per_stage'"));
  REQUIRE_THROWS_WITH(refused(with("std_conv_eps", -1.0)), Contains("'std_conv_eps'"));
  REQUIRE_THROWS_WITH(refused(with("family", "transformer")), Contains("family 'transformer'"));
  nlohmann::json small = {{"family", "small_convnet"}, {"in_channels", 1}, {"width", int64_t{1} << 30}};
  REQUIRE_THROWS_WITH(refused(small), Contains("'width' 1073741824"));
  REQUIRE_THROWS_WITH(models::described_encoder({{models::kModelDescriptionKey, "{not json"}}, "bad.safetensors"),
                      Contains("bad.safetensors") && Contains("not a model description"));
  REQUIRE_THROWS_WITH(models::described_encoder({{models::kModelDescriptionKey, R"({"modules": {"head": {}}})"}},
                                                "bad.safetensors"),
                      Contains("no \"encoder\" or \"model\" module"));
}
