#include "models/heads.h"

#include <fmt/format.h>

#include "engine/error.h"
#include "engine/nn/init.h"
#include "engine/ops.h"

namespace visrep::models {

BatchNorm1dWithoutBias::BatchNorm1dWithoutBias(int64_t channels) : nn::BatchNorm1d(channels, {.affine = false}) {
  // The base registered the running statistics; the scale is the only learnable part.
  // BatchNorm::forward passes this weight and the (undefined) bias to batch_norm.
  weight = register_parameter("weight", ones({channels}));
}

std::string BatchNorm1dWithoutBias::describe() const {
  return fmt::format("BatchNorm1d({}, eps={}, momentum={}, scale only, no bias)", weight.size(0), config.eps,
                     config.momentum);
}

ProjectionHead::ProjectionHead(int64_t in_features, int64_t hidden_features, int64_t out_features, int layers) {
  if (hidden_features == 0) hidden_features = in_features;
  VISREP_CHECK(in_features > 0 && hidden_features > 0 && out_features > 0,
               "ProjectionHead: features must be positive, got in {}, hidden {}, out {}", in_features, hidden_features,
               out_features);
  VISREP_CHECK(layers >= 1, "ProjectionHead: layers must be at least 1 (simclr uses 2 or 3), got {}", layers);
  // simclr's LinearLayer: kernel_initializer=RandomNormal(stddev=0.01), no dense bias under BN.
  const auto make_linear = [](int64_t in, int64_t out) {
    auto linear = std::make_shared<nn::Linear>(in, out, /*bias=*/false);
    nn::init::normal_(linear->weight, 0.0, 0.01);
    return linear;
  };
  int64_t width = in_features;
  for (int layer = 0; layer + 1 < layers; ++layer) {
    push_back(make_linear(width, hidden_features));
    push_back(std::make_shared<nn::BatchNorm1d>(hidden_features));
    push_back(std::make_shared<nn::ReLU>());
    width = hidden_features;
  }
  push_back(make_linear(width, out_features));
  push_back(std::make_shared<BatchNorm1dWithoutBias>(out_features));
}

SupConHead::SupConHead(int64_t in_features, int64_t hidden_features, int64_t out_features) {
  if (hidden_features == 0) hidden_features = in_features;
  VISREP_CHECK(in_features > 0 && hidden_features > 0 && out_features > 0,
               "SupConHead: features must be positive, got in {}, hidden {}, out {}", in_features, hidden_features,
               out_features);
  push_back(std::make_shared<nn::Linear>(in_features, hidden_features));
  push_back(std::make_shared<nn::ReLU>());
  push_back(std::make_shared<nn::Linear>(hidden_features, out_features));
}

Tensor SupConHead::forward(const Tensor& features) {
  return normalize(nn::Sequential::forward(features), /*dim=*/1);
}

LinearClassifier::LinearClassifier(int64_t in_features, int64_t classes) {
  VISREP_CHECK(in_features > 0 && classes > 0, "LinearClassifier: features and classes must be positive, got {} and {}",
               in_features, classes);
  fc = register_module("fc", std::make_shared<nn::Linear>(in_features, classes));
}

EncoderClassifier::EncoderClassifier(std::shared_ptr<nn::Module> encoder_module, int64_t feature_dim,
                                     int64_t classes) {
  VISREP_CHECK(encoder_module != nullptr, "EncoderClassifier: the encoder is null");
  encoder = register_module("encoder", std::move(encoder_module));
  classifier = register_module("classifier", std::make_shared<LinearClassifier>(feature_dim, classes));
}

std::string EncoderClassifier::describe() const {
  return fmt::format("{} + linear classifier", encoder->describe());
}

}  // namespace visrep::models
