// ResNet v1 and its heads (models/resnet.h, models/heads.h): shapes, torchvision's parameter
// counts and state dict names, zero-init residuals, simclr's and SupContrast's heads, bad
// configs, and one training step. Inputs are tiny so the file runs in seconds on 2 cores.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <memory>
#include <utility>

#include "engine/nn/init.h"
#include "engine/ops.h"
#include "engine/optim/sgd.h"
#include "models/heads.h"
#include "models/resnet.h"
#include "tests/support/test_data.h"

using namespace visrep;
using Catch::Matchers::Contains;
using models::ResNet;
using models::ResNetConfig;
using models::ResNetStem;

namespace {

Tensor random_images(const Shape& shape, Generator& generator) {
  return testing::random_normal(shape, generator, kFloat32);
}

bool has_key(const std::map<std::string, Tensor>& state, const std::string& key) { return state.count(key) == 1; }

// Sample standard deviation of every element.
double standard_deviation(const Tensor& t) {
  const Tensor centred = sub(t, mean(t).item());
  return std::sqrt(sum(mul(centred, centred)).item() / static_cast<double>(t.numel() - 1));
}

// Building a ResNet costs about a second per 20M weights on the CPU (each weight is drawn
// twice: the layer's default init, then torchvision's), so the tests that only read a
// model's structure or run it forward share one model per (depth, stem).
ResNet& shared_resnet(int depth, ResNetStem stem) {
  static std::map<std::pair<int, ResNetStem>, std::unique_ptr<ResNet>> cache;
  std::unique_ptr<ResNet>& slot = cache[{depth, stem}];
  if (!slot) slot = std::make_unique<ResNet>(ResNetConfig{.depth = depth, .stem = stem});
  return *slot;
}

}  // namespace

TEST_CASE("resnet-18/34/50: feature shapes, torchvision's parameter counts and state dict names", "[unit]") {
  Generator generator = testing::generator_for("resnet-18/34/50");
  manual_seed(1);
  ResNet& r18 = shared_resnet(18, ResNetStem::ImageNet);
  ResNet& r18_cifar = shared_resnet(18, ResNetStem::Cifar);
  ResNet& r50_cifar = shared_resnet(50, ResNetStem::Cifar);

  SECTION("feature shapes") {
    REQUIRE(r18_cifar.feature_dim() == 512);
    REQUIRE(r18_cifar(random_images({2, 3, 32, 32}, generator)).shape() == Shape{2, 512});
    REQUIRE(r50_cifar.feature_dim() == 2048);
    REQUIRE(r50_cifar(random_images({2, 3, 32, 32}, generator)).shape() == Shape{2, 2048});
    // The ImageNet stem divides the side by 4 before layer1; odd sizes round as PyTorch's.
    REQUIRE(r18(random_images({2, 3, 64, 64}, generator)).shape() == Shape{2, 512});
    REQUIRE(r18(random_images({2, 3, 45, 37}, generator)).shape() == Shape{2, 512});
    r18.eval();
    REQUIRE(r18(random_images({1, 3, 64, 64}, generator)).shape() == Shape{1, 512});
    r18.train();
    REQUIRE(models::resnet_feature_dim({.depth = 34}) == 512);
    REQUIRE(models::resnet_feature_dim({.depth = 50, .width_multiplier = 2}) == 4096);
  }

  SECTION("parameter counts") {
    // torchvision.models.resnet{18,34,50}(): the encoder plus fc (512 or 2048 -> 1000).
    REQUIRE(r18.parameter_count() + models::LinearClassifier(512, 1000).parameter_count() == 11'689'512);
    ResNet r34({.depth = 34});
    REQUIRE(r34.parameter_count() + models::LinearClassifier(512, 1000).parameter_count() == 21'797'672);
    // The CIFAR stem's 3x3 conv1 has 64 * 3 * (49 - 9) fewer weights than the 7x7.
    const int64_t stem_difference = 64 * 3 * 40;
    REQUIRE(r18_cifar.parameter_count() == 11'689'512 - 513'000 - stem_difference);
    REQUIRE(r50_cifar.parameter_count() == 25'557'032 - 2'049'000 - stem_difference);
  }

  SECTION("state dict names and shapes") {
    const auto state = r18.state_dict();
    // torchvision's resnet18 has 62 parameters (60 without fc) and 20 BNs x 3 buffers.
    REQUIRE(r18.named_parameters().size() == 60);
    REQUIRE(r18.named_buffers().size() == 60);
    REQUIRE(state.at("conv1.weight").shape() == Shape{64, 3, 7, 7});
    for (const char* key : {"bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                            "bn1.num_batches_tracked", "layer1.0.conv1.weight", "layer1.1.bn2.weight",
                            "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_var",
                            "layer4.1.conv2.weight"}) {
      INFO(key);
      REQUIRE(has_key(state, key));
    }
    // layer1 keeps 64 channels at stride 1: an identity shortcut, no downsample.
    REQUIRE_FALSE(has_key(state, "layer1.0.downsample.0.weight"));
    REQUIRE(state.at("layer2.0.downsample.0.weight").shape() == Shape{128, 64, 1, 1});
    REQUIRE(state.at("layer4.1.conv2.weight").shape() == Shape{512, 512, 3, 3});
    // Kaiming normal, fan_out, relu: std = sqrt(2 / (512 * 3 * 3)); BN gamma 1, beta 0.
    REQUIRE(standard_deviation(state.at("layer4.1.conv2.weight")) == Approx(std::sqrt(2.0 / 4608)).epsilon(0.02));
    REQUIRE(sum(state.at("layer3.0.bn1.weight")).item() == 256.0);
    REQUIRE(sum(state.at("layer3.0.bn1.bias")).item() == 0.0);

    REQUIRE(r50_cifar.named_parameters().size() == 159);  // torchvision's 161 less fc's two
    const auto state50 = r50_cifar.state_dict();
    REQUIRE(state50.at("conv1.weight").shape() == Shape{64, 3, 3, 3});
    // A bottleneck's first block projects even at stride 1 (64 -> 256 channels).
    REQUIRE(state50.at("layer1.0.downsample.0.weight").shape() == Shape{256, 64, 1, 1});
    REQUIRE(state50.at("layer3.5.conv3.weight").shape() == Shape{1024, 256, 1, 1});
    // v1.5: the stride sits on the 3x3 conv.
    const auto& first = dynamic_cast<models::Bottleneck&>(*(*r50_cifar.layer2)[0]);
    REQUIRE(first.conv1->config.stride == Pair{1, 1});
    REQUIRE(first.conv2->config.stride == Pair{2, 2});
    REQUIRE(first.conv2->weight.shape() == Shape{128, 128, 3, 3});

    // A state dict does not load into another architecture (load_state_dict checks every
    // key and shape before it copies anything, so the shared models stay intact).
    REQUIRE_THROWS_WITH(r18_cifar.load_state_dict(state), Contains("conv1.weight") && Contains("[64, 3, 7, 7]"));
    REQUIRE_THROWS_WITH(r50_cifar.load_state_dict(state), Contains("load_state_dict"));
    REQUIRE_THAT(r50_cifar.describe(), Contains("ResNet-50") && Contains("CIFAR stem"));
    REQUIRE_THAT(r50_cifar.to_string(), Contains("(layer4): Sequential") && Contains("Bottleneck"));
  }
}

TEST_CASE("resnet width multiplier 2 scales every channel count", "[unit]") {
  Generator generator = testing::generator_for("resnet width multiplier 2");
  manual_seed(2);
  // The stem's channels too, as in simclr's resnet.py (64 * width_multiplier).
  ResNet net({.depth = 18, .width_multiplier = 2, .stem = ResNetStem::Cifar, .in_channels = 1});
  const auto state = net.state_dict();
  REQUIRE(state.at("conv1.weight").shape() == Shape{128, 1, 3, 3});
  REQUIRE(state.at("layer2.0.downsample.0.weight").shape() == Shape{256, 128, 1, 1});
  REQUIRE(state.at("layer4.1.conv2.weight").shape() == Shape{1024, 1024, 3, 3});
  REQUIRE(net.feature_dim() == 1024);
  REQUIRE(net(random_images({2, 1, 16, 16}, generator)).shape() == Shape{2, 1024});
  net.eval();
  REQUIRE(net(random_images({1, 1, 16, 16}, generator)).shape() == Shape{1, 1024});
  REQUIRE_THROWS_WITH(net(ones({2, 3, 16, 16})),
                      Contains("ResNet-18 (2x") && Contains("(N, 1, H, W)") && Contains("[2, 3, 16, 16]"));
  REQUIRE_THROWS_WITH(net(ones({1, 16, 16})), Contains("[1, 16, 16]"));
}

TEST_CASE("resnet stem choice follows simclr's cifar_stem = image_size <= 32", "[unit]") {
  REQUIRE(models::stem_for_image_size(28) == ResNetStem::Cifar);
  REQUIRE(models::stem_for_image_size(32) == ResNetStem::Cifar);
  REQUIRE(models::stem_for_image_size(33) == ResNetStem::ImageNet);
  REQUIRE(models::stem_for_image_size(224) == ResNetStem::ImageNet);
  REQUIRE_THROWS_WITH(models::stem_for_image_size(0), Contains("image size") && Contains("0"));
}

TEST_CASE("resnet zero-init residual makes every block start as the identity", "[unit]") {
  Generator generator = testing::generator_for("resnet zero-init residual");
  manual_seed(3);
  ResNet zeroed({.depth = 18, .stem = ResNetStem::Cifar, .zero_init_residual = true});
  REQUIRE(zeroed.blocks().size() == 8);
  for (const auto& block : zeroed.blocks()) {
    REQUIRE(sum(abs(block->last_batch_norm().weight)).item() == 0.0);
    REQUIRE(sum(block->last_batch_norm().bias).item() == 0.0);  // beta stays 0
  }
  // Only the last BN of each branch: the others keep gamma 1.
  REQUIRE(sum(dynamic_cast<models::BasicBlock&>(*zeroed.blocks()[0]).bn1->weight).item() == 64.0);

  // layer1.1 has an identity shortcut: with a zero branch it passes a non-negative input
  // (what the ReLU before it produces) through unchanged, in training and in evaluation.
  const Tensor x = relu(random_images({2, 64, 6, 6}, generator));
  auto& block = *zeroed.blocks()[1];
  REQUIRE(block.downsample == nullptr);
  REQUIRE(testing::max_abs_difference(block(x), x) == 0.0);
  // The whole of layer1 then returns the stem's output.
  const Tensor images = random_images({2, 3, 8, 8}, generator);
  const Tensor stem = relu(zeroed.bn1->forward(zeroed.conv1->forward(images)));
  REQUIRE(testing::max_abs_difference(zeroed.layer1->forward(stem), stem) == 0.0);
  zeroed.eval();
  REQUIRE(testing::max_abs_difference(block(x), x) == 0.0);
  // Without zero-init the branch is not silent.
  models::BasicBlock plain(64, 64, 1);
  REQUIRE(sum(plain.last_batch_norm().weight).item() == 64.0);
  REQUIRE(testing::max_abs_difference(plain(x), x) > 0.1);

  // Bottlenecks close their branch with bn3, the one ResNet-50's zero-init clears (the
  // loop over blocks is the same for every depth).
  models::Bottleneck bottleneck(256, 64, 1);
  REQUIRE(&bottleneck.last_batch_norm() == bottleneck.bn3.get());
  REQUIRE(bottleneck.downsample == nullptr);
  nn::init::zeros_(bottleneck.last_batch_norm().weight);
  const Tensor wide = relu(random_images({2, 256, 4, 4}, generator));
  REQUIRE(testing::max_abs_difference(bottleneck(wide), wide) == 0.0);
  // A block that changes shape projects its shortcut: 1x1 conv with the stride, then BN.
  models::Bottleneck first(64, 64, 2);
  REQUIRE(first.downsample != nullptr);
  REQUIRE(first(relu(random_images({2, 64, 8, 8}, generator))).shape() == Shape{2, 256, 4, 4});
}

TEST_CASE("simclr projection head layers, names and output", "[unit]") {
  Generator generator = testing::generator_for("simclr projection head");
  manual_seed(4);
  const Tensor features = random_images({16, 64}, generator);
  SECTION("two layers") {
    models::ProjectionHead head(64, 0, 32, 2);
    const auto state = head.state_dict();
    REQUIRE(state.at("0.weight").shape() == Shape{64, 64});  // hidden width = input width
    REQUIRE_FALSE(has_key(state, "0.bias"));                  // no Linear bias under a BN
    REQUIRE(has_key(state, "1.bias"));                        // hidden BN keeps its shift
    REQUIRE(state.at("3.weight").shape() == Shape{32, 64});
    REQUIRE(has_key(state, "4.weight"));
    REQUIRE(has_key(state, "4.running_var"));
    REQUIRE_FALSE(has_key(state, "4.bias"));  // the last BN has no shift (center=False)
    REQUIRE(head.parameter_count() == 64 * 64 + 2 * 64 + 32 * 64 + 32);
    // simclr's RandomNormal(stddev=0.01) for the dense kernels.
    REQUIRE(standard_deviation(state.at("0.weight")) == Approx(0.01).epsilon(0.1));

    const Tensor z = head(features);
    REQUIRE(z.shape() == Shape{16, 32});
    // Training-mode BN without shift: every output column has mean 0 and variance ~1.
    const Tensor column_means = mean(z, {0});
    REQUIRE(max(abs(column_means)).item() < 1e-5);
    // (var / (var + eps) with BN's eps = 1e-5 and the small pre-BN variance of 0.01-std weights)
    REQUIRE(mean(mul(z, z)).item() == Approx(1.0).epsilon(0.02));
    // Gradients reach the scale-only BN's gamma and the first Linear.
    sum(mul(z, random_images({16, 32}, generator))).backward();
    for (const auto& [name, parameter] : head.named_parameters()) {
      INFO(name);
      REQUIRE(parameter.grad().defined());
      REQUIRE(sum(abs(parameter.grad())).item() > 0.0);
    }
    head.eval();
    REQUIRE(head(features).shape() == Shape{16, 32});
  }
  SECTION("three layers, explicit hidden width") {
    models::ProjectionHead head(64, 48, 128, 3);
    REQUIRE(head.size() == 8);  // (Linear, BN, ReLU) x 2 + (Linear, BN)
    REQUIRE(head.state_dict().at("3.weight").shape() == Shape{48, 48});
    REQUIRE(head.parameter_count() == 64 * 48 + 2 * 48 + 48 * 48 + 2 * 48 + 128 * 48 + 128);
    REQUIRE(head(features).shape() == Shape{16, 128});
    REQUIRE_THAT(head.to_string(), Contains("scale only, no bias"));
  }
  SECTION("bad settings") {
    REQUIRE_THROWS_WITH(models::ProjectionHead(64, 0, 128, 0), Contains("layers") && Contains("0"));
    REQUIRE_THROWS_WITH(models::ProjectionHead(-1, 0, 128, 2), Contains("ProjectionHead") && Contains("-1"));
  }
}

TEST_CASE("supcon head gives unit vectors and the linear classifier gives logits", "[unit]") {
  Generator generator = testing::generator_for("supcon head");
  manual_seed(5);
  const Tensor features = random_images({6, 64}, generator);
  models::SupConHead head(64);
  const auto state = head.state_dict();
  REQUIRE(state.at("0.weight").shape() == Shape{64, 64});
  REQUIRE(state.at("0.bias").shape() == Shape{64});
  REQUIRE(state.at("2.weight").shape() == Shape{128, 64});
  REQUIRE(state.at("2.bias").shape() == Shape{128});
  const Tensor z = head(features);
  REQUIRE(z.shape() == Shape{6, 128});
  const Tensor norms = sqrt(sum(mul(z, z), {1}));
  REQUIRE(testing::max_abs_difference(norms, ones({6})) < 1e-5);

  models::LinearClassifier classifier(64, 10);
  REQUIRE(classifier.state_dict().at("fc.weight").shape() == Shape{10, 64});
  REQUIRE(classifier.state_dict().at("fc.bias").shape() == Shape{10});
  REQUIRE(classifier(features).shape() == Shape{6, 10});
  REQUIRE_THROWS_WITH(models::LinearClassifier(64, 0), Contains("classes") && Contains("0"));
  REQUIRE_THROWS_WITH(models::SupConHead(0), Contains("SupConHead"));
}

TEST_CASE("resnet rejects bad configs with messages naming the value and the allowed ones", "[unit]") {
  REQUIRE_THROWS_WITH(ResNet({.depth = 20}), Contains("depth 20") && Contains("18, 34 or 50"));
  REQUIRE_THROWS_WITH(ResNet({.depth = 101}), Contains("depth 101"));
  REQUIRE_THROWS_WITH(ResNet({.depth = 18, .width_multiplier = 3}),
                      Contains("width multiplier 3") && Contains("1 or 2"));
  REQUIRE_THROWS_WITH(ResNet({.depth = 18, .in_channels = 0}), Contains("in_channels") && Contains("0"));
  REQUIRE_THROWS_WITH(models::resnet_feature_dim({.depth = 152}), Contains("depth 152"));
  // (Wrong input shapes: see the width-multiplier test.)
}

TEST_CASE("resnet-18 training step lowers the loss and reaches every parameter", "[unit]") {
  Generator generator = testing::generator_for("resnet-18 training step");
  manual_seed(6);
  ResNet encoder({.depth = 18, .stem = ResNetStem::Cifar});
  models::LinearClassifier classifier(encoder.feature_dim(), 2);
  std::vector<Tensor> parameters = encoder.parameters();
  for (const Tensor& p : classifier.parameters()) parameters.push_back(p);
  optim::Sgd optimizer(parameters, {.learning_rate = 0.02, .momentum = 0.0});

  const Tensor images = random_images({4, 3, 16, 16}, generator);
  const Tensor labels = from_vector<int64_t>({0, 1, 1, 0}, {4});
  const auto loss_now = [&] { return cross_entropy(classifier(encoder(images)), labels); };

  Tensor loss = loss_now();
  optimizer.zero_grad();
  loss.backward();
  for (const auto& [name, parameter] : encoder.named_parameters()) {
    INFO(name);
    REQUIRE(parameter.grad().defined());
    REQUIRE(std::isfinite(sum(parameter.grad()).item()));
  }
  optimizer.step();
  const double before = loss.item();
  const double after = loss_now().item();
  INFO("loss before " << before << ", after " << after);
  REQUIRE(std::isfinite(after));
  REQUIRE(after < before);
  // The BN running statistics moved (two training-mode passes).
  REQUIRE(encoder.state_dict().at("bn1.num_batches_tracked").item() == 2.0);
}
