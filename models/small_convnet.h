// SmallConvNet: the smallest model that shows every part of the engine at work (conv,
// batch norm, relu, pooling, linear, cross-entropy), sized to train on Fashion-MNIST on
// a laptop CPU in minutes:
//   [conv3x3 -> BN -> ReLU -> maxpool2] x 3 (widths w, 2w, 4w) -> global average pool -> linear
// With classes = 0 it is an encoder: no linear layer, the output is the pooled 4w features
// (the contrastive recipes' CPU-sized encoder).
#pragma once

#include <memory>

#include "engine/nn/layers.h"

namespace visrep::models {

struct SmallConvNetConfig {
  int64_t in_channels = 1;
  int64_t classes = 10;  // 0: no classifier, the pooled features are the output
  int64_t width = 32;  // channels of the first block; each later block doubles it
};

class SmallConvNet : public nn::Module {
 public:
  explicit SmallConvNet(const SmallConvNetConfig& config = {});
  // (N, C, H, W) -> logits (N, classes), or the features (N, feature_dim()) without a classifier.
  Tensor forward(const Tensor& images) override;
  std::string type_name() const override { return "SmallConvNet"; }
  int64_t feature_dim() const { return feature_dim_; }
  const SmallConvNetConfig& config() const { return config_; }

  std::shared_ptr<nn::Sequential> features;
  std::shared_ptr<nn::Linear> classifier;  // null when classes = 0

 private:
  SmallConvNetConfig config_;
  int64_t feature_dim_ = 0;
};

}  // namespace visrep::models
