// The layers of BiT's ResNetV2 (Kolesnikov et al. 2020, sec. 2.1 and 4.3) that the standard
// set lacks: GroupNorm and StdConv2d, a convolution whose weight is standardised on every
// forward pass (big_transfer's bit_pytorch/models.py). Both run on the CPU and CUDA, in
// float32, bfloat16 and float64 (engine/ops/group_norm.h).
#pragma once

#include <vector>

#include "engine/nn/layers.h"

namespace visrep::nn {

struct GroupNormConfig {
  double eps = 1e-5;
  bool affine = true;  // learnable weight (gamma = 1) and bias (beta = 0), one per channel
  bool relu = false;   // fuse the ReLU that follows (BiT's pre-activation GN -> ReLU)
};

// Group normalisation (Wu & He 2018) of (N, C, ...) inputs: channels in `groups` groups,
// each (sample, group) normalised over its channels and positions. Parameters "weight" and
// "bias" as in PyTorch's nn.GroupNorm, so state dicts carry over.
class GroupNorm : public Module {
 public:
  GroupNorm(int64_t groups, int64_t channels, const GroupNormConfig& config = {});
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "GroupNorm"; }
  std::string describe() const override;

  Parameter weight;  // undefined without affine
  Parameter bias;
  const int64_t groups;
  const int64_t channels;
  const GroupNormConfig config;
};

struct StdConv2dConfig {
  Pair stride = {1, 1};
  Pair padding = {0, 0};
  Pair dilation = {1, 1};
  int64_t groups = 1;
  bool bias = false;   // BiT's convolutions have none
  double eps = 1e-10;  // big_transfer's StdConv2d; timm's BiT models use 1e-8
};

// A 2-D convolution whose weight is standardised per output channel before every use
// (Qiao et al. 2019): conv2d(x, (w - mean) / sqrt(var + eps), bias). The trained parameter
// is the raw weight, initialised as Conv2d's; state dict names as PyTorch's Conv2d.
class StdConv2d : public Conv2d {
 public:
  StdConv2d(int64_t in_channels, int64_t out_channels, Pair kernel, const StdConv2dConfig& config = {});
  StdConv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, const StdConv2dConfig& config = {})
      : StdConv2d(in_channels, out_channels, Pair{kernel, kernel}, config) {}

  Tensor forward(const Tensor& x) override;
  // The convolution with a weight standardised elsewhere, e.g. by one multi-tensor call
  // over every StdConv2d of a model (standardized_weights below).
  Tensor forward(const Tensor& x, const Tensor& standardized_weight);
  // (w - mean) / sqrt(var + eps) of the current weight, differentiable.
  Tensor standardized_weight() const;

  std::string type_name() const override { return "StdConv2d"; }
  std::string describe() const override;

  const double eps;
};

// The standardised weights of several StdConv2d layers in one kernel call forward and one
// backward (weight_standardization over a list). The layers must share eps, dtype and
// device. Returns one weight per layer, in order, for StdConv2d::forward(x, weight).
std::vector<Tensor> standardized_weights(const std::vector<const StdConv2d*>& layers);

}  // namespace visrep::nn
