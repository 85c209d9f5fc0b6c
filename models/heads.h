// The heads that go on an encoder's pooled features (models/resnet.h):
//   ProjectionHead    SimCLR's MLP g(.) (Chen et al. 2020; google-research/simclr tf2/model.py)
//   SupConHead        SupCon's MLP + L2 normalisation (Khosla et al. 2020; SupContrast
//                     networks/resnet_big.py, SupConResNet with head='mlp')
//   LinearClassifier  one Linear layer, for supervised training and linear evaluation
// and EncoderClassifier, an encoder with a LinearClassifier on its pooled features.
// The heads are Sequentials with children "0", "1", ..., so a model that registers one as
// "head" gets SupContrast's state dict names (head.0.weight, head.2.weight, ...).
#pragma once

#include <memory>

#include "engine/nn/layers.h"

namespace visrep::models {

// Batch norm with a learnable scale (gamma) and no shift (beta): the last layer of
// simclr's projection head (BatchNormRelu with center=False). State dict names as
// PyTorch's BatchNorm1d: weight, running_mean, running_var, num_batches_tracked (no bias).
class BatchNorm1dWithoutBias : public nn::BatchNorm1d {
 public:
  explicit BatchNorm1dWithoutBias(int64_t channels);
  std::string describe() const override;
};

// SimCLR's projection head with `layers` layers (simclr's num_proj_layers, 2 or 3 in the
// papers; 1 is its "linear" mode):
//   the first layers - 1:  Linear(no bias) -> BatchNorm1d -> ReLU     (width hidden_features)
//   the last:              Linear(no bias) -> BatchNorm1d without bias (out_features)
// As in simclr's LinearLayer: the Linear has no bias because a BN follows it; BN's shift
// is kept in the hidden layers (use_bias=True means center=True there) and dropped in the
// last (use_bias=False). Linear weights start normal with std 0.01 (simclr's
// RandomNormal(stddev=0.01)); BN gammas at 1, betas at 0. simclr's hidden width is the
// input width (2048 for ResNet-50); hidden_features = 0 means that.
class ProjectionHead : public nn::Sequential {
 public:
  ProjectionHead(int64_t in_features, int64_t hidden_features = 0, int64_t out_features = 128, int layers = 2);
  std::string type_name() const override { return "ProjectionHead"; }
};

// SupCon's head: Linear(in, hidden) -> ReLU -> Linear(hidden, out), then each row scaled
// to unit L2 norm (F.normalize(head(feat), dim=1)). PyTorch's default Linear init.
// hidden_features = 0 means in_features, as in SupContrast.
class SupConHead : public nn::Sequential {
 public:
  SupConHead(int64_t in_features, int64_t hidden_features = 0, int64_t out_features = 128);
  Tensor forward(const Tensor& features) override;  // (N, in) -> (N, out), unit rows
  std::string type_name() const override { return "SupConHead"; }
};

// logits = features W^T + b, the Linear named "fc" (torchvision's resnet and SupContrast's
// LinearClassifier both call it so).
class LinearClassifier : public nn::Module {
 public:
  LinearClassifier(int64_t in_features, int64_t classes);
  Tensor forward(const Tensor& features) override { return fc->forward(features); }
  std::string type_name() const override { return "LinearClassifier"; }

  std::shared_ptr<nn::Linear> fc;
};

// The encoder with a linear classifier ("classifier.fc") on its pooled features: the network
// of the cross-entropy baseline (SupContrast resnet_big.py SupCEResNet) and of fine-tuning an
// encoder that has no head of its own.
class EncoderClassifier : public nn::Module {
 public:
  EncoderClassifier(std::shared_ptr<nn::Module> encoder, int64_t feature_dim, int64_t classes);
  Tensor forward(const Tensor& images) override { return classifier->forward(encoder->forward(images)); }
  std::string type_name() const override { return "EncoderClassifier"; }
  std::string describe() const override;

  std::shared_ptr<nn::Module> encoder;
  std::shared_ptr<LinearClassifier> classifier;
};

}  // namespace visrep::models
