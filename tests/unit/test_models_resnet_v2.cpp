// BiT's ResNetV2 and its weights (models/resnet_v2.h, models/bit_weights.h): the tiny
// official-layout checkpoint's logits against an independent float64 NumPy forward pass
// (tests/fixtures/make_bit_fixture.py), architecture inference, timm's parameter count and
// names, the head modes, the safetensors round trip and the errors for files that do not fit.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>

#include "engine/io/npy.h"
#include "engine/io/npz.h"
#include "engine/ops.h"
#include "models/bit_weights.h"
#include "models/resnet_v2.h"
#include "tests/support/files.h"
#include "tests/support/test_data.h"

using namespace visrep;
using Catch::Contains;
using models::ResNetV2;
using models::ResNetV2Config;

namespace {

// The tiny network of make_bit_fixture.py, as inferred from its checkpoint.
ResNetV2Config tiny_config() {
  return {.depth = 0, .classes = 5, .gn_groups = 2, .base_width = 4, .units_per_stage = {1, 1, 1, 1}};
}

// max |a - b| / max |b|: the error relative to the reference's scale.
double relative_error(const Tensor& actual, const Tensor& expected) {
  const double scale = max(abs(expected.to(kFloat64))).item();
  return testing::max_abs_difference(actual.to(kFloat64), expected.to(kFloat64)) / scale;
}

// An official-layout checkpoint of `model`'s weights: the inverse of the loader's mapping
// (OIHW kernels back to HWIO), for round trips through load_bit_weights.
io::TensorMap export_official_layout(const ResNetV2& model) {
  const auto state = model.state_dict();
  io::TensorMap npz;
  for (const models::BitWeightName& name : models::bit_weight_names(model, true)) {
    const Tensor& value = state.at(name.timm_name);
    npz[name.npz_name] = name.is_kernel ? value.permute({2, 3, 1, 0}).contiguous() : value.clone();
  }
  return npz;
}

void require_same_parameters(const ResNetV2& a, const ResNetV2& b) {
  const auto state_a = a.state_dict();
  const auto state_b = b.state_dict();
  REQUIRE(state_a.size() == state_b.size());
  for (const auto& [name, value] : state_a) {
    INFO(name);
    testing::require_identical(state_b.at(name).contiguous(), value.contiguous());
  }
}

}  // namespace

TEST_CASE("resnet_v2 tiny checkpoint: logits match the float64 NumPy forward pass", "[unit][resnet_v2]") {
  const std::string checkpoint = testing::fixture("bit_tiny.npz");
  const Tensor images = io::load_npy(testing::fixture("bit_tiny_input.npy"));
  const Tensor expected = io::load_npy(testing::fixture("bit_tiny_logits.npy"));
  REQUIRE(images.shape() == Shape{2, 3, 29, 23});
  REQUIRE(expected.shape() == Shape{2, 5});
  // The reference is not trivially small or constant, so matching it means something.
  REQUIRE(max(abs(expected)).item() > 0.5);
  REQUIRE(max(expected).item() - min(expected).item() > 0.5);

  manual_seed(11);
  ResNetV2 model(models::infer_resnet_v2_config(io::load_npz(checkpoint), 2));
  REQUIRE(model.describe() == "ResNetV2-14x1 (BiT, 5 classes, base width 4, 2 GN groups)");

  SECTION("float64: agrees to rounding") {
    model.to(kFloat64);
    REQUIRE(models::load_bit_npz(model, checkpoint, /*load_head=*/true));
    const Tensor logits = model(images.to(kFloat64));
    REQUIRE(logits.dtype() == kFloat64);
    REQUIRE(logits.shape() == Shape{2, 5});
    CHECK(relative_error(logits, expected) < 1e-9);
  }
  SECTION("float64: one weight-standardisation call per pass gives what one per layer gives") {
    model.to(kFloat64);
    models::load_bit_npz(model, checkpoint, true);
    Generator generator = testing::generator_for("resnet_v2 per-layer path");
    const Tensor images64 = images.to(kFloat64);
    const Tensor weights_of_logits = testing::random_normal({2, 5}, generator, kFloat64);

    // The model's path: every weight standardised by one call, forward and backward.
    sum(mul(model(images64), weights_of_logits)).backward();
    std::map<std::string, Tensor> fused_gradients;
    for (const auto& [name, parameter] : model.named_parameters()) fused_gradients[name] = parameter.grad().clone();
    model.zero_grad();

    // Module by module, each StdConv2d standardising its own weight.
    Tensor x = model.stem->forward(images64);
    for (const auto& unit : model.units()) x = unit->forward(x);
    const Tensor logits = model.head->forward(global_avg_pool2d(model.norm->forward(x)));
    REQUIRE(testing::max_abs_difference(logits, model(images64)) < 1e-13);
    sum(mul(logits, weights_of_logits)).backward();
    for (const auto& [name, parameter] : model.named_parameters()) {
      INFO(name);
      REQUIRE(parameter.grad().defined());
      REQUIRE(max(abs(fused_gradients.at(name))).item() > 0.0);
      REQUIRE(testing::max_abs_difference(parameter.grad(), fused_gradients.at(name)) <=
              1e-10 * max(abs(fused_gradients.at(name))).item());
    }
  }
  SECTION("float32") {
    REQUIRE(models::load_bit_npz(model, checkpoint, /*load_head=*/true));
    const Tensor logits = model(images);
    REQUIRE(logits.dtype() == kFloat32);
    CHECK(relative_error(logits, expected) < 1e-4);
  }
  SECTION("without the head: the head is zero, and so are the logits") {
    REQUIRE_FALSE(models::load_bit_npz(model, checkpoint, /*load_head=*/false));
    REQUIRE(max(abs(model.head->fc->weight)).item() == 0.0);
    const Tensor logits = model(images);
    REQUIRE(max(abs(logits)).item() == 0.0);
    // The body did load: its features are those of the checkpoint, not of the random init.
    REQUIRE(max(abs(model.forward_features(images))).item() > 0.0);
  }
  SECTION("a head of another class count stays zero; the body still loads") {
    ResNetV2Config ten_classes = tiny_config();
    ten_classes.classes = 10;
    ResNetV2 other(ten_classes);
    REQUIRE_FALSE(models::load_bit_npz(other, checkpoint, /*load_head=*/true));
    REQUIRE(max(abs(other(images))).item() == 0.0);
    model.to(kFloat64);
    models::load_bit_npz(model, checkpoint, true);
    // Same body: identical features.
    REQUIRE(testing::max_abs_difference(other.forward_features(images).to(kFloat64),
                                        model.forward_features(images.to(kFloat64))) < 1e-4);
  }
}

TEST_CASE("resnet_v2 architecture inference from official checkpoints", "[unit][resnet_v2]") {
  SECTION("the tiny fixture") {
    const ResNetV2Config config = models::infer_resnet_v2_config(io::load_npz(testing::fixture("bit_tiny.npz")), 2);
    REQUIRE(config.units_per_stage == std::vector<int>{1, 1, 1, 1});
    REQUIRE(config.depth == 14);
    REQUIRE(config.width_factor == 1);
    REQUIRE(config.base_width == 4);
    REQUIRE(config.in_channels == 3);
    REQUIRE(config.classes == 5);
    REQUIRE(config.gn_groups == 2);
    // The default 32 groups do not divide its 4-channel norms.
    REQUIRE_THROWS_WITH(models::infer_resnet_v2_config(io::load_npz(testing::fixture("bit_tiny.npz"))),
                        Contains("32 GroupNorm groups") && Contains("4 channels"));
  }
  SECTION("R101x2 layout (shapes only: a narrow stand-in with BiT's names)") {
    // Every array BiT-R101x2 holds, built from a model with the real units and width so the
    // names and the root/head shapes are those of the checkpoint.
    manual_seed(3);
    ResNetV2 narrow({.depth = 101, .classes = 7, .gn_groups = 8, .base_width = 8});
    io::TensorMap npz = export_official_layout(narrow);
    npz["resnet/root_block/standardized_conv2d/kernel"] = zeros({7, 7, 3, 128});  // 64 x 2
    const ResNetV2Config config = models::infer_resnet_v2_config(npz);
    REQUIRE(config.depth == 101);
    REQUIRE(config.units_per_stage.empty());
    REQUIRE(models::resnet_v2_units(config) == std::array<int, 4>{3, 4, 23, 3});
    REQUIRE(config.width_factor == 2);
    REQUIRE(config.base_width == 64);
    REQUIRE(config.classes == 7);
  }
  SECTION("unknown layouts name what was found") {
    manual_seed(4);
    ResNetV2 tiny(tiny_config());
    const io::TensorMap npz = export_official_layout(tiny);

    io::TensorMap five_blocks = npz;
    five_blocks["resnet/block5/unit01/a/group_norm/gamma"] = ones({4});
    REQUIRE_THROWS_WITH(models::infer_resnet_v2_config(five_blocks, 2),
                        Contains("unknown architecture: 5 blocks") && Contains("[1, 2, 3, 4, 5]"));

    io::TensorMap gap = npz;
    gap["resnet/block2/unit03/a/group_norm/gamma"] = ones({4});
    REQUIRE_THROWS_WITH(models::infer_resnet_v2_config(gap, 2),
                        Contains("unknown architecture") && Contains("block2 has units [1, 3]"));

    io::TensorMap no_root = npz;
    no_root.erase("resnet/root_block/standardized_conv2d/kernel");
    REQUIRE_THROWS_WITH(models::infer_resnet_v2_config(no_root, 2),
                        Contains("unknown architecture") && Contains("root_block"));

    io::TensorMap wrong_root = npz;
    wrong_root["resnet/root_block/standardized_conv2d/kernel"] = zeros({3, 3, 3, 4});
    REQUIRE_THROWS_WITH(models::infer_resnet_v2_config(wrong_root, 2),
                        Contains("unknown architecture") && Contains("[3, 3, 3, 4]"));
  }
}

TEST_CASE("resnet_v2 architecture inference from a state dict with timm's names", "[unit][resnet_v2]") {
  manual_seed(5);
  ResNetV2 model({.depth = 0, .width_factor = 1, .classes = 3, .in_channels = 1, .gn_groups = 4, .base_width = 8,
                  .units_per_stage = {1, 2, 1, 1}});
  const std::map<std::string, Tensor> dict = model.state_dict();
  const io::TensorMap state(dict.begin(), dict.end());
  const ResNetV2Config config = models::infer_resnet_v2_config_from_state(state, 4);
  REQUIRE(config.units_per_stage == std::vector<int>{1, 2, 1, 1});
  REQUIRE(config.base_width == 8);
  REQUIRE(config.in_channels == 1);
  REQUIRE(config.classes == 3);
  ResNetV2 rebuilt(config);  // loads strictly: the inferred network has every tensor's shape
  REQUIRE_NOTHROW(rebuilt.load_state_dict(dict));

  ResNetV2 features_only({.depth = 50, .width_factor = 2, .classes = 0});
  const std::map<std::string, Tensor> r50x2 = features_only.state_dict();
  const ResNetV2Config inferred = models::infer_resnet_v2_config_from_state(io::TensorMap(r50x2.begin(), r50x2.end()));
  REQUIRE(inferred.depth == 50);
  REQUIRE(inferred.units_per_stage.empty());
  REQUIRE(inferred.width_factor == 2);
  REQUIRE(inferred.classes == 0);

  // A ResNet v1 state dict is not a ResNetV2; a missing stage is named.
  REQUIRE_THROWS_WITH(models::infer_resnet_v2_config_from_state({{"conv1.weight", zeros({64, 3, 7, 7})}}),
                      Contains("unknown architecture") && Contains("stem.conv.weight"));
  io::TensorMap three_stages;
  for (const auto& [name, tensor] : state) {
    if (name.rfind("stages.3.", 0) != 0) three_stages[name] = tensor;
  }
  REQUIRE_THROWS_WITH(models::infer_resnet_v2_config_from_state(three_stages, 4),
                      Contains("unknown architecture: 3 blocks"));
}

TEST_CASE("resnet_v2 R50x1: timm's parameter count, names and output shapes", "[unit][resnet_v2]") {
  manual_seed(5);
  Generator generator = testing::generator_for("resnet_v2 R50x1");
  // timm.create_model("resnetv2_50x1_bit", num_classes=1000): 25,549,352 parameters. The same
  // number by hand: stem 9,408 + stages 23,486,848 + final GN 4,096 + head 2,049,000
  // (the stages sum, per unit, 2(in + 2 mid) GN + in*mid + 9 mid^2 + mid*out [+ in*out]).
  ResNetV2 r50({.depth = 50, .classes = 1000});
  REQUIRE(r50.parameter_count() == 25'549'352);
  REQUIRE(r50.feature_dim() == 2048);
  REQUIRE(r50.describe() == "ResNetV2-50x1 (BiT, 1000 classes)");
  // timm's resnetv2_50x1_bit state dict: 153 tensors (stem 1, 16 units x 9, 4 projections,
  // final GN 2, head 2), no buffers (GroupNorm keeps no statistics).
  REQUIRE(r50.named_parameters().size() == 153);
  REQUIRE(r50.named_buffers().empty());
  const auto state = r50.state_dict();
  REQUIRE(state.at("stem.conv.weight").shape() == Shape{64, 3, 7, 7});
  REQUIRE(state.at("stages.0.blocks.0.downsample.conv.weight").shape() == Shape{256, 64, 1, 1});
  REQUIRE(state.at("stages.1.blocks.0.conv2.weight").shape() == Shape{128, 128, 3, 3});
  REQUIRE(state.at("stages.2.blocks.5.norm3.bias").shape() == Shape{256});
  REQUIRE(state.at("stages.3.blocks.2.conv3.weight").shape() == Shape{2048, 512, 1, 1});
  REQUIRE(state.at("norm.weight").shape() == Shape{2048});
  REQUIRE(state.at("head.fc.weight").shape() == Shape{1000, 2048, 1, 1});
  REQUIRE(state.at("head.fc.bias").shape() == Shape{1000});
  REQUIRE(state.count("stages.0.blocks.1.downsample.conv.weight") == 0);  // identity shortcut
  // The stride is on the 3x3 conv of each stage's first unit; the projection carries it too.
  REQUIRE(r50.units()[3]->conv2->config.stride == Pair{2, 2});
  REQUIRE(r50.units()[3]->conv1->config.stride == Pair{1, 1});
  REQUIRE(r50.units()[3]->downsample->conv->config.stride == Pair{2, 2});
  REQUIRE(r50.units()[4]->conv2->config.stride == Pair{1, 1});
  REQUIRE(r50.units()[0]->conv2->eps == 1e-10);

  // The zero head: logits of zero whatever the image.
  const Tensor logits = r50(testing::random_normal({2, 3, 64, 48}, generator, kFloat32));
  REQUIRE(logits.shape() == Shape{2, 1000});
  REQUIRE(max(abs(logits)).item() == 0.0);
  REQUIRE(models::resnet_v2_feature_dim({.depth = 152, .width_factor = 4}) == 8192);
}

TEST_CASE("resnet_v2 features mode, head init and width", "[unit][resnet_v2]") {
  manual_seed(6);
  Generator generator = testing::generator_for("resnet_v2 features mode");
  ResNetV2 encoder({.depth = 50, .width_factor = 2, .gn_groups = 8, .base_width = 8});
  REQUIRE(encoder.head == nullptr);
  REQUIRE(encoder.feature_dim() == 512);  // 32 x 8 x 2
  const Tensor features = encoder(testing::random_normal({3, 3, 40, 40}, generator, kFloat32));
  REQUIRE(features.shape() == Shape{3, 512});
  REQUIRE(min(features).item() >= 0.0);  // after the final GroupNorm's ReLU
  REQUIRE(max(features).item() > 0.0);
  REQUIRE(encoder.state_dict().count("head.fc.weight") == 0);
  REQUIRE(encoder.state_dict().at("stem.conv.weight").shape() == Shape{16, 3, 7, 7});
  REQUIRE_THROWS_WITH(encoder(ones({1, 1, 16, 16})), Contains("(N, 3, H, W)") && Contains("[1, 1, 16, 16]"));

  // Without zero_head the head starts as timm's: normal with std 0.01, zero bias.
  ResNetV2 classifier({.depth = 50, .classes = 300, .gn_groups = 8, .base_width = 8, .zero_head = false});
  const Tensor head_weight = classifier.head->fc->weight;
  const Tensor centred = sub(head_weight, mean(head_weight).item());
  const double std = std::sqrt(sum(mul(centred, centred)).item() / static_cast<double>(head_weight.numel() - 1));
  REQUIRE(std == Approx(0.01).epsilon(0.05));
  REQUIRE(max(abs(classifier.head->fc->bias)).item() == 0.0);
  REQUIRE(max(abs(classifier(testing::random_normal({2, 3, 32, 32}, generator, kFloat32)))).item() > 0.0);
}

TEST_CASE("resnet_v2 bad configs name the value", "[unit][resnet_v2]") {
  REQUIRE_THROWS_WITH(models::validate(ResNetV2Config{.depth = 34}),
                      Contains("depth 34") && Contains("50, 101 or 152"));
  REQUIRE_THROWS_WITH(models::validate(ResNetV2Config{.width_factor = 5}), Contains("width factor 5"));
  REQUIRE_THROWS_WITH(models::validate(ResNetV2Config{.gn_groups = 3}),
                      Contains("3 GroupNorm groups") && Contains("64 channels"));
  REQUIRE_THROWS_WITH(models::validate(ResNetV2Config{.depth = 50, .units_per_stage = {1, 1, 1, 1}}),
                      Contains("depth 50") && Contains("depth 14"));
  REQUIRE_THROWS_WITH(models::validate(ResNetV2Config{.depth = 0, .units_per_stage = {1, 1, 1}}),
                      Contains("4 counts"));
  REQUIRE_THROWS_WITH(models::validate(ResNetV2Config{.depth = 0, .units_per_stage = {1, 0, 1, 1}}),
                      Contains("[1, 0, 1, 1]"));
  REQUIRE_THROWS_WITH(models::validate(ResNetV2Config{.classes = -1}), Contains("classes"));
  REQUIRE_THROWS_WITH(models::validate(ResNetV2Config{.in_channels = 0}), Contains("in_channels"));
  models::validate(ResNetV2Config{.depth = 152, .width_factor = 4, .classes = 21843});
}

TEST_CASE("resnet_v2 official weights: full mapping round trip and mismatches", "[unit][resnet_v2]") {
  manual_seed(7);
  // R50's real units (so every stage has identity units after its projection) at 1/8 width.
  const ResNetV2Config config{.depth = 50, .classes = 6, .gn_groups = 4, .base_width = 8, .zero_head = false};
  ResNetV2 source(config);
  const io::TensorMap npz = export_official_layout(source);
  REQUIRE(npz.size() == 1 + 16 * 9 + 4 + 2 + 2);  // root, 16 units, 4 projections, final GN, head

  SECTION("every parameter lands where it came from, through HWIO and back") {
    ResNetV2 copy(config);
    REQUIRE(models::load_bit_weights(copy, npz, true, "exported"));
    require_same_parameters(source, copy);
    // And through a file.
    testing::TemporaryDirectory directory;
    const std::string path = directory.file("official.npz");
    io::save_npz(path, npz);
    ResNetV2 from_file(config);
    REQUIRE(models::load_bit_npz(from_file, path, true));
    require_same_parameters(source, from_file);
  }
  SECTION("gammas stored as (1, 1, 1, C) load as (C)") {
    io::TensorMap reshaped = npz;
    for (auto& [name, array] : reshaped) {
      if (array.dim() == 1 && name.find("group_norm") != std::string::npos) {
        array = array.reshape({1, 1, 1, array.numel()});
      }
    }
    ResNetV2 copy(config);
    models::load_bit_weights(copy, reshaped, true, "reshaped");
    require_same_parameters(source, copy);
  }
  SECTION("a missing array names both names and the expected shape") {
    io::TensorMap missing = npz;
    missing.erase("resnet/block3/unit02/b/standardized_conv2d/kernel");
    ResNetV2 target(config);
    REQUIRE_THROWS_WITH(models::load_bit_weights(target, missing, true, "'missing.npz'"),
                        Contains("'missing.npz'") &&
                            Contains("missing 'resnet/block3/unit02/b/standardized_conv2d/kernel'") &&
                            Contains("stages.2.blocks.1.conv2.weight") && Contains("[32, 32, 3, 3]"));
  }
  SECTION("a wrong shape names both names and both shapes, and copies nothing") {
    io::TensorMap wrong = npz;
    wrong["resnet/block2/unit01/a/proj/standardized_conv2d/kernel"] = zeros({1, 1, 32, 96});
    manual_seed(8);
    ResNetV2 target(config);
    const auto before = target.state_dict().at("stem.conv.weight").clone();
    REQUIRE_THROWS_WITH(models::load_bit_weights(target, wrong, true, "'wrong.npz'"),
                        Contains("'resnet/block2/unit01/a/proj/standardized_conv2d/kernel'") &&
                            Contains("stages.1.blocks.0.downsample.conv.weight") && Contains("[1, 1, 32, 96]") &&
                            Contains("[96, 32, 1, 1]") && Contains("expects [64, 32, 1, 1]"));
    testing::require_identical(target.state_dict().at("stem.conv.weight").contiguous(), before);

    io::TensorMap wrong_gamma = npz;
    wrong_gamma["resnet/group_norm/gamma"] = ones({2, 256});
    REQUIRE_THROWS_WITH(models::load_bit_weights(target, wrong_gamma, true, "'gamma.npz'"),
                        Contains("'resnet/group_norm/gamma'") && Contains("timm 'norm.weight'") &&
                            Contains("[2, 256]") && Contains("[256]"));
  }
  SECTION("a checkpoint of a deeper network is refused, not loaded in part") {
    io::TensorMap deeper = npz;
    for (const char* layer : {"a", "b", "c"}) {
      deeper[fmt::format("resnet/block3/unit07/{}/group_norm/gamma", layer)] = ones({32});
    }
    ResNetV2 target(config);
    REQUIRE_THROWS_WITH(models::load_bit_weights(target, deeper, true, "'deeper.npz'"),
                        Contains("no place for") && Contains("resnet/block3/unit07/a/group_norm/gamma"));
  }
  SECTION("a model without a head ignores the file's head") {
    ResNetV2Config encoder_config = config;
    encoder_config.classes = 0;
    ResNetV2 encoder(encoder_config);
    REQUIRE_FALSE(models::load_bit_weights(encoder, npz, true, "exported"));
    testing::require_identical(encoder.state_dict().at("norm.weight").contiguous(),
                               source.state_dict().at("norm.weight").contiguous());
  }
}

TEST_CASE("resnet_v2 safetensors round trip with timm's names", "[unit][resnet_v2]") {
  testing::TemporaryDirectory directory;
  manual_seed(9);
  const ResNetV2Config config{.depth = 0, .classes = 3, .gn_groups = 2, .base_width = 4,
                              .units_per_stage = {2, 1, 1, 1}, .zero_head = false};
  ResNetV2 original(config);
  const std::string path = directory.file("bit.safetensors");
  models::save_resnet_v2_safetensors(original, path);
  const io::SafetensorsContents contents = io::load_safetensors(path);
  REQUIRE(contents.metadata.at("format") == "pt");
  REQUIRE(contents.tensors.count("stages.0.blocks.1.conv3.weight") == 1);
  REQUIRE(contents.tensors.count("head.fc.bias") == 1);

  manual_seed(10);
  ResNetV2 copy(config);
  models::load_resnet_v2_safetensors(copy, path);
  require_same_parameters(original, copy);

  SECTION("a file for another architecture names the key and both shapes") {
    ResNetV2Config wider = config;
    wider.base_width = 8;
    ResNetV2 other(wider);
    REQUIRE_THROWS_WITH(models::load_resnet_v2_safetensors(other, path),
                        Contains(path) && Contains("'stem.conv.weight'") && Contains("[4, 3, 7, 7]") &&
                            Contains("[8, 3, 7, 7]"));
  }
  SECTION("a missing key is named") {
    io::TensorMap partial = contents.tensors;
    partial.erase("stages.1.blocks.0.norm2.weight");
    const std::string partial_path = directory.file("partial.safetensors");
    io::save_safetensors(partial_path, partial);
    REQUIRE_THROWS_WITH(models::load_resnet_v2_safetensors(copy, partial_path),
                        Contains(partial_path) && Contains("missing") && Contains("stages.1.blocks.0.norm2.weight"));
  }
}
