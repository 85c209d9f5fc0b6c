// SmallConvNet: the smallest model that shows every part of the engine at work (conv,
// batch norm, relu, pooling, linear, cross-entropy), sized to train on Fashion-MNIST on
// a laptop CPU in minutes:
//   [conv3x3 -> BN -> ReLU -> maxpool2] x 3 (widths w, 2w, 4w) -> global average pool -> linear
#pragma once

#include <memory>

#include "engine/nn/layers.h"

namespace visrep::models {

struct SmallConvNetConfig {
  int64_t in_channels = 1;
  int64_t classes = 10;
  int64_t width = 32;  // channels of the first block; each later block doubles it
};

class SmallConvNet : public nn::Module {
 public:
  explicit SmallConvNet(const SmallConvNetConfig& config = {});
  Tensor forward(const Tensor& images) override;  // (N, C, H, W) -> logits (N, classes)
  std::string type_name() const override { return "SmallConvNet"; }

  std::shared_ptr<nn::Sequential> features;
  std::shared_ptr<nn::Linear> classifier;
};

}  // namespace visrep::models
