#include "models/small_convnet.h"

#include "engine/nn/init.h"

namespace visrep::models {

SmallConvNet::SmallConvNet(const SmallConvNetConfig& config) : config_(config) {
  features = register_module("features", std::make_shared<nn::Sequential>());
  int64_t channels = config.in_channels;
  for (int block = 0; block < 3; ++block) {
    const int64_t width = config.width << block;
    // No conv bias: the batch norm right after it has its own shift.
    auto conv = std::make_shared<nn::Conv2d>(channels, width, 3, nn::Conv2dConfig{.padding = {1, 1}, .bias = false});
    nn::init::kaiming_normal_(conv->weight, nn::init::FanMode::FanOut, nn::init::Nonlinearity::ReLU);
    features->push_back(conv);
    features->push_back(std::make_shared<nn::BatchNorm2d>(width));
    features->push_back(std::make_shared<nn::ReLU>());
    features->push_back(std::make_shared<nn::MaxPool2d>(Pool2dOptions{.kernel = {2, 2}}));
    channels = width;
  }
  features->push_back(std::make_shared<nn::GlobalAvgPool2d>());
  feature_dim_ = channels;
  VISREP_CHECK(config.classes >= 0, "SmallConvNet: classes must be >= 0 (0: an encoder without classifier), got {}",
               config.classes);
  if (config.classes > 0) classifier = register_module("classifier", std::make_shared<nn::Linear>(channels, config.classes));
}

Tensor SmallConvNet::forward(const Tensor& images) {
  Tensor pooled = features->forward(images);
  return classifier ? classifier->forward(pooled) : pooled;
}

}  // namespace visrep::models
