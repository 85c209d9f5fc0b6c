// ResNet v1 (He et al. 2016, "Deep Residual Learning for Image Recognition"), the encoder
// of the SimCLR and SupCon recipes. Layout, initialisation and state dict names follow
// torchvision's models/resnet.py, so weights map one to one onto a PyTorch resnet18/34/50:
//   conv1, bn1, layer1.0.conv1, layer1.0.bn1, ..., layer2.0.downsample.0 (1x1 conv), .1 (BN)
// with two choices from google-research/simclr resnet.py on top:
//   - a width multiplier that scales every channel count (stem included), for ResNet-50 (2x);
//   - the CIFAR stem (3x3/1 conv, no max-pool) for images of 32 px or less, as simclr's
//     model.py picks it (cifar_stem = image_size <= 32) and SupContrast's resnet_big.py uses.
// The network ends at the global average pool: forward returns features (N, feature_dim),
// and the heads (models/heads.h) or a linear classifier go on top.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/nn/layers.h"

namespace visrep::models {

enum class ResNetStem {
  ImageNet,  // 7x7 conv stride 2, BN, ReLU, 3x3 max-pool stride 2: a 224-px image becomes 56 px
  Cifar,     // 3x3 conv stride 1, BN, ReLU, no pool: small images keep their resolution
};

// The stem simclr's model.py picks for square images of this side: Cifar at 32 px or less.
ResNetStem stem_for_image_size(int64_t image_size);
std::string stem_name(ResNetStem stem);  // "ImageNet" or "CIFAR"

struct ResNetConfig {
  int depth = 18;            // 18 or 34 (basic blocks), 50 (bottleneck blocks)
  int width_multiplier = 1;  // 1 or 2: every channel count times this
  ResNetStem stem = ResNetStem::ImageNet;
  // Start the last BN gamma of every residual branch at 0, so each block begins as the
  // identity (Goyal et al. 2017; torchvision's zero_init_residual; simclr's init_zero).
  bool zero_init_residual = false;
  int64_t in_channels = 3;  // 1 for grey images (Fashion-MNIST), 3 for RGB
};

// Checks the config; throws visrep::Error naming the bad value and the allowed ones.
void validate(const ResNetConfig& config);

// The size of the pooled feature: 512 x width (depths 18, 34) or 2048 x width (depth 50).
int64_t resnet_feature_dim(const ResNetConfig& config);

// A residual block: out = relu(branch(x) + shortcut(x)). The shortcut is the identity, or
// a projection (1x1 conv with the block's stride, then BN) named "downsample" when the
// shape changes (He et al. 2016, option B).
class ResidualBlock : public nn::Module {
 public:
  Tensor forward(const Tensor& x) override;
  // The BN that closes the residual branch (bn2 in basic blocks, bn3 in bottlenecks).
  virtual nn::BatchNorm2d& last_batch_norm() = 0;

  std::shared_ptr<nn::Sequential> downsample;  // null for the identity shortcut

 protected:
  virtual Tensor residual_branch(const Tensor& x) = 0;
  // Registers the projection shortcut "downsample" when in != out channels or stride != 1.
  void make_shortcut(int64_t in_channels, int64_t out_channels, int64_t stride);
};

// Two 3x3 convs (ResNet-18/34): conv1 (stride) -> bn1 -> relu -> conv2 -> bn2.
class BasicBlock : public ResidualBlock {
 public:
  static constexpr int64_t expansion = 1;
  BasicBlock(int64_t in_channels, int64_t planes, int64_t stride);
  nn::BatchNorm2d& last_batch_norm() override { return *bn2; }
  std::string type_name() const override { return "BasicBlock"; }

  std::shared_ptr<nn::Conv2d> conv1, conv2;
  std::shared_ptr<nn::BatchNorm2d> bn1, bn2;

 protected:
  Tensor residual_branch(const Tensor& x) override;
};

// 1x1 reduce -> 3x3 -> 1x1 expand to 4 x planes (ResNet-50). The stride sits on the 3x3
// conv, as in torchvision (the "v1.5" variant) and in simclr's resnet.py, not on the first
// 1x1 as in the paper's Caffe model.
class Bottleneck : public ResidualBlock {
 public:
  static constexpr int64_t expansion = 4;
  Bottleneck(int64_t in_channels, int64_t planes, int64_t stride);
  nn::BatchNorm2d& last_batch_norm() override { return *bn3; }
  std::string type_name() const override { return "Bottleneck"; }

  std::shared_ptr<nn::Conv2d> conv1, conv2, conv3;
  std::shared_ptr<nn::BatchNorm2d> bn1, bn2, bn3;

 protected:
  Tensor residual_branch(const Tensor& x) override;
};

class ResNet : public nn::Module {
 public:
  explicit ResNet(const ResNetConfig& config = {});
  // (N, in_channels, H, W) -> pooled features (N, feature_dim()).
  Tensor forward(const Tensor& images) override;
  std::string type_name() const override { return "ResNet"; }
  std::string describe() const override;  // e.g. "ResNet-50 (2x, CIFAR stem)"

  int64_t feature_dim() const { return feature_dim_; }
  const ResNetConfig& config() const { return config_; }
  // Every residual block, layer1.0 first.
  const std::vector<std::shared_ptr<ResidualBlock>>& blocks() const { return blocks_; }

  std::shared_ptr<nn::Conv2d> conv1;
  std::shared_ptr<nn::BatchNorm2d> bn1;
  std::shared_ptr<nn::Sequential> layer1, layer2, layer3, layer4;

 private:
  // Four stages of `blocks` blocks; the first of each (but layer1) halves the resolution.
  std::shared_ptr<nn::Sequential> make_stage(int64_t& channels, int64_t planes, int blocks,
                                             int64_t stride);

  ResNetConfig config_;
  int64_t feature_dim_ = 0;
  std::vector<std::shared_ptr<ResidualBlock>> blocks_;
};

}  // namespace visrep::models
