// ResNetV2, the network of BigTransfer (Kolesnikov et al. 2020, "Big Transfer (BiT): General
// Visual Representation Learning", sec. 2.1 and 4.3): a pre-activation ResNet (He et al.
// 2016, "Identity Mappings in Deep Residual Networks") with GroupNorm in place of BatchNorm
// and Weight Standardization on every convolution. The layers follow big_transfer's
// bit_pytorch/models.py (the stride on the 3x3 conv, zero padding before the stem's
// max-pool, the projection shortcut fed the pre-activated input, a zero-initialised head);
// the state dict names follow timm's timm/models/resnetv2.py (resnetv2_50x1_bit and
// siblings), so a safetensors file written here loads into timm and back:
//   stem.conv.weight
//   stages.{i}.blocks.{j}.{norm1,conv1,norm2,conv2,norm3,conv3}.*, .downsample.conv.weight
//   norm.{weight,bias}    head.fc.{weight,bias} (a 1x1 conv, weight (classes, C, 1, 1))
// The official .npz weights load through models/bit_weights.h.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/nn/layers.h"

namespace visrep::models {

struct ResNetV2Config {
  int depth = 50;        // 50, 101 or 152: units per stage 3-4-6-3, 3-4-23-3, 3-8-36-3
  int width_factor = 1;  // 1 to 4: every channel count times this (BiT's R50x1 ... R152x4)
  // Outputs of the classification head; 0 means no head: forward returns the pooled
  // features (N, feature_dim()), for use as an encoder.
  int64_t classes = 0;
  int64_t in_channels = 3;
  int64_t gn_groups = 32;  // every GroupNorm's groups (BiT: 32)
  // The stem's output channels before the width factor (64 in BiT); stage i's bottleneck
  // is base_width * width_factor * 2^i wide and outputs 4 times that. Tests shrink it.
  int64_t base_width = 64;
  // Units per stage, overriding the depth's (e.g. {1, 1, 1, 1} for a tiny test network);
  // the depth is then 3 * (total units) + 2, and `depth` must be that or 0.
  std::vector<int> units_per_stage;
  bool zero_head = true;  // start the head at zero (BiT's zero_head, used for fine-tuning)
  // Weight Standardization's eps: 1e-10 in big_transfer, 1e-8 in timm's BiT models.
  double std_conv_eps = 1e-10;
};

// Checks the config; throws visrep::Error naming the bad value and the allowed ones.
void validate(const ResNetV2Config& config);
// The units in each of the four stages.
std::array<int, 4> resnet_v2_units(const ResNetV2Config& config);
// 3 convolutions per unit, plus the stem and the head: 50, 101, 152 for BiT's networks.
int resnet_v2_depth(const ResNetV2Config& config);
// Channels of the pooled features: 32 * base_width * width_factor (2048 x width in BiT).
int64_t resnet_v2_feature_dim(const ResNetV2Config& config);
// What ResNetV2::describe() says of a network of this config, without building it.
std::string resnet_v2_description(const ResNetV2Config& config);

// The standardised weight of each StdConv2d of a network, computed by one
// weight-standardisation call for all of them (nn::standardized_weights) per forward pass.
class StandardizedWeights {
 public:
  explicit StandardizedWeights(const std::vector<const nn::StdConv2d*>& layers);
  const Tensor& of(const nn::StdConv2d& layer) const;

 private:
  std::unordered_map<const nn::StdConv2d*, Tensor> weights_;
};

// 7x7 StdConv2d with stride 2 and no norm or activation (each unit pre-activates its
// input), then zero padding of 1 and a 3x3 max-pool with stride 2: BiT's "fixed" padding
// (big_transfer notes that the max-pool's own padding of 1 is subtly not the same: it pads
// with -infinity, and the stem's output can be negative).
class ResNetV2Stem : public nn::Module {
 public:
  ResNetV2Stem(int64_t in_channels, int64_t out_channels, double std_conv_eps);
  Tensor forward(const Tensor& images) override;
  Tensor forward(const Tensor& images, const StandardizedWeights& weights);
  std::string type_name() const override { return "ResNetV2Stem"; }

  std::shared_ptr<nn::StdConv2d> conv;
};

// The projection shortcut: a strided 1x1 StdConv2d (timm's DownsampleConv with preact=True,
// hence no norm of its own).
class DownsampleConv : public nn::Module {
 public:
  DownsampleConv(int64_t in_channels, int64_t out_channels, int64_t stride, double std_conv_eps);
  Tensor forward(const Tensor& x) override { return conv->forward(x); }
  std::string type_name() const override { return "DownsampleConv"; }

  std::shared_ptr<nn::StdConv2d> conv;
};

// The pre-activation bottleneck unit:
//   a   = relu(norm1(x))
//   out = conv3(relu(norm3(conv2(relu(norm2(conv1(a))))))) + shortcut
// with conv1 1x1, conv2 3x3 carrying the stride, conv3 1x1 expanding to out_channels, and
// shortcut = downsample(a) when the shape changes, x itself otherwise.
class PreActBottleneck : public nn::Module {
 public:
  PreActBottleneck(int64_t in_channels, int64_t mid_channels, int64_t out_channels, int64_t stride,
                   const ResNetV2Config& config);
  Tensor forward(const Tensor& x) override;
  Tensor forward(const Tensor& x, const StandardizedWeights& weights);
  std::string type_name() const override { return "PreActBottleneck"; }
  // The unit's StdConv2d layers: conv1, conv2, conv3, then downsample.conv if present.
  std::vector<const nn::StdConv2d*> std_convs() const;

  std::shared_ptr<nn::GroupNorm> norm1, norm2, norm3;  // each with the ReLU that follows fused
  std::shared_ptr<nn::StdConv2d> conv1, conv2, conv3;
  std::shared_ptr<DownsampleConv> downsample;  // null for the identity shortcut
};

// One stage: its units under "blocks" (timm's ResNetStage).
class ResNetV2Stage : public nn::Module {
 public:
  ResNetV2Stage() { blocks = register_module("blocks", std::make_shared<nn::Sequential>()); }
  Tensor forward(const Tensor& x) override { return blocks->forward(x); }
  std::string type_name() const override { return "ResNetV2Stage"; }

  std::shared_ptr<nn::Sequential> blocks;
};

// The classifier on the pooled features: a 1x1 conv with bias, as timm's ClassifierHead
// with use_conv=True and big_transfer's head.conv, applied as the matrix product it is.
class ResNetV2Head : public nn::Module {
 public:
  ResNetV2Head(int64_t features, int64_t classes);
  // (N, features) -> (N, classes).
  Tensor forward(const Tensor& features) override;
  std::string type_name() const override { return "ResNetV2Head"; }

  std::shared_ptr<nn::Conv2d> fc;
};

class ResNetV2 : public nn::Module {
 public:
  explicit ResNetV2(const ResNetV2Config& config = {});
  // (N, in_channels, H, W) -> logits (N, classes), or pooled features (N, feature_dim())
  // without a head.
  Tensor forward(const Tensor& images) override;
  // The pooled features (N, feature_dim()), after the final GroupNorm + ReLU.
  Tensor forward_features(const Tensor& images);
  std::string type_name() const override { return "ResNetV2"; }
  std::string describe() const override;  // e.g. "ResNetV2-50x1 (BiT, 1000 classes)"

  int64_t feature_dim() const { return feature_dim_; }
  int64_t classes() const { return config_.classes; }
  const ResNetV2Config& config() const { return config_; }
  // Every unit, stages.0.blocks.0 first.
  const std::vector<std::shared_ptr<PreActBottleneck>>& units() const { return units_; }

  std::shared_ptr<ResNetV2Stem> stem;
  std::shared_ptr<nn::Sequential> stages;  // of ResNetV2Stage
  std::shared_ptr<nn::GroupNorm> norm;     // with the ReLU fused
  std::shared_ptr<ResNetV2Head> head;      // null when classes == 0

 private:
  ResNetV2Config config_;
  int64_t feature_dim_ = 0;
  std::vector<std::shared_ptr<PreActBottleneck>> units_;
  std::vector<const nn::StdConv2d*> std_convs_;  // every StdConv2d, in forward order
};

}  // namespace visrep::models
