#include "models/resnet.h"

#include <array>

#include <fmt/format.h>

#include "engine/error.h"
#include "engine/nn/init.h"
#include "engine/ops.h"

namespace visrep::models {

namespace {

// Blocks per stage (He et al. 2016, table 1).
std::array<int, 4> blocks_per_stage(int depth) {
  switch (depth) {
    case 18: return {2, 2, 2, 2};
    case 34: return {3, 4, 6, 3};
    case 50: return {3, 4, 6, 3};
    default: VISREP_FAIL("ResNet: depth {} is not supported; use 18, 34 or 50", depth);
  }
}

bool uses_bottleneck(int depth) { return depth >= 50; }

// A bias-free convolution (the BN after it has its own shift) with torchvision's init:
// kaiming_normal_(mode="fan_out", nonlinearity="relu"), i.e. std = sqrt(2 / (out * k * k)).
std::shared_ptr<nn::Conv2d> make_conv(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride) {
  const int64_t padding = kernel / 2;
  auto conv = std::make_shared<nn::Conv2d>(
      in_channels, out_channels, kernel,
      nn::Conv2dConfig{.stride = {stride, stride}, .padding = {padding, padding}, .bias = false});
  nn::init::kaiming_normal_(conv->weight, nn::init::FanMode::FanOut, nn::init::Nonlinearity::ReLU);
  return conv;
}

}  // namespace

ResNetStem stem_for_image_size(int64_t image_size) {
  VISREP_CHECK(image_size > 0, "ResNet: image size must be positive, got {}", image_size);
  return image_size <= 32 ? ResNetStem::Cifar : ResNetStem::ImageNet;
}

std::string stem_name(ResNetStem stem) { return stem == ResNetStem::Cifar ? "CIFAR" : "ImageNet"; }

void validate(const ResNetConfig& config) {
  blocks_per_stage(config.depth);  // throws on a depth it does not know
  VISREP_CHECK(config.width_multiplier == 1 || config.width_multiplier == 2,
               "ResNet: width multiplier {} is not supported; use 1 or 2", config.width_multiplier);
  VISREP_CHECK(config.in_channels > 0, "ResNet: in_channels must be positive (1 for grey, 3 for RGB), got {}",
               config.in_channels);
}

int64_t resnet_feature_dim(const ResNetConfig& config) {
  validate(config);
  const int64_t expansion = uses_bottleneck(config.depth) ? Bottleneck::expansion : BasicBlock::expansion;
  return 512 * config.width_multiplier * expansion;
}

// ---- blocks ------------------------------------------------------------------------------

Tensor ResidualBlock::forward(const Tensor& x) {
  const Tensor shortcut = downsample ? downsample->forward(x) : x;
  return relu(add(residual_branch(x), shortcut));
}

void ResidualBlock::make_shortcut(int64_t in_channels, int64_t out_channels, int64_t stride) {
  if (in_channels == out_channels && stride == 1) return;
  downsample = register_module("downsample", std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
                                                 make_conv(in_channels, out_channels, 1, stride),
                                                 std::make_shared<nn::BatchNorm2d>(out_channels)}));
}

BasicBlock::BasicBlock(int64_t in_channels, int64_t planes, int64_t stride) {
  conv1 = register_module("conv1", make_conv(in_channels, planes, 3, stride));
  bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(planes));
  conv2 = register_module("conv2", make_conv(planes, planes, 3, 1));
  bn2 = register_module("bn2", std::make_shared<nn::BatchNorm2d>(planes));
  make_shortcut(in_channels, planes * expansion, stride);
}

Tensor BasicBlock::residual_branch(const Tensor& x) {
  return bn2->forward(conv2->forward(relu(bn1->forward(conv1->forward(x)))));
}

Bottleneck::Bottleneck(int64_t in_channels, int64_t planes, int64_t stride) {
  conv1 = register_module("conv1", make_conv(in_channels, planes, 1, 1));
  bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(planes));
  conv2 = register_module("conv2", make_conv(planes, planes, 3, stride));
  bn2 = register_module("bn2", std::make_shared<nn::BatchNorm2d>(planes));
  conv3 = register_module("conv3", make_conv(planes, planes * expansion, 1, 1));
  bn3 = register_module("bn3", std::make_shared<nn::BatchNorm2d>(planes * expansion));
  make_shortcut(in_channels, planes * expansion, stride);
}

Tensor Bottleneck::residual_branch(const Tensor& x) {
  Tensor y = relu(bn1->forward(conv1->forward(x)));
  y = relu(bn2->forward(conv2->forward(y)));
  return bn3->forward(conv3->forward(y));
}

// ---- the network -------------------------------------------------------------------------

ResNet::ResNet(const ResNetConfig& config) : config_(config) {
  validate(config);
  feature_dim_ = resnet_feature_dim(config);
  const int64_t width = config.width_multiplier;
  const std::array<int, 4> stages = blocks_per_stage(config.depth);

  int64_t channels = 64 * width;
  if (config.stem == ResNetStem::ImageNet) {
    conv1 = register_module("conv1", make_conv(config.in_channels, channels, 7, 2));
  } else {
    conv1 = register_module("conv1", make_conv(config.in_channels, channels, 3, 1));
  }
  bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(channels));

  layer1 = register_module("layer1", make_stage(channels, 64 * width, stages[0], 1));
  layer2 = register_module("layer2", make_stage(channels, 128 * width, stages[1], 2));
  layer3 = register_module("layer3", make_stage(channels, 256 * width, stages[2], 2));
  layer4 = register_module("layer4", make_stage(channels, 512 * width, stages[3], 2));
  VISREP_CHECK(channels == feature_dim_, "ResNet: internal error, {} channels after layer4, expected {}", channels,
               feature_dim_);

  if (config.zero_init_residual) {
    for (const auto& block : blocks_) nn::init::zeros_(block->last_batch_norm().weight);
  }
}

std::shared_ptr<nn::Sequential> ResNet::make_stage(int64_t& channels, int64_t planes,
                                                   int blocks, int64_t stride) {
  auto stage = std::make_shared<nn::Sequential>();
  for (int index = 0; index < blocks; ++index) {
    const int64_t block_stride = index == 0 ? stride : 1;
    std::shared_ptr<ResidualBlock> block;
    if (uses_bottleneck(config_.depth)) {
      block = std::make_shared<Bottleneck>(channels, planes, block_stride);
      channels = planes * Bottleneck::expansion;
    } else {
      block = std::make_shared<BasicBlock>(channels, planes, block_stride);
      channels = planes * BasicBlock::expansion;
    }
    stage->push_back(block);
    blocks_.push_back(block);
  }
  return stage;
}

Tensor ResNet::forward(const Tensor& images) {
  VISREP_CHECK(images.dim() == 4 && images.size(1) == config_.in_channels,
               "{}: expected images of shape (N, {}, H, W), got {}", describe(), config_.in_channels,
               shape_string(images.shape()));
  Tensor x = relu(bn1->forward(conv1->forward(images)));
  if (config_.stem == ResNetStem::ImageNet) {
    x = max_pool2d(x, Pool2dOptions{.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}});
  }
  x = layer4->forward(layer3->forward(layer2->forward(layer1->forward(x))));
  return global_avg_pool2d(x);
}

std::string ResNet::describe() const {
  return fmt::format("ResNet-{} ({}x, {} stem, {} input channels{})", config_.depth, config_.width_multiplier,
                     stem_name(config_.stem), config_.in_channels,
                     config_.zero_init_residual ? ", zero-init residual" : "");
}

}  // namespace visrep::models
