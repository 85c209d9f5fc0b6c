#include "engine/nn/bit_layers.h"

#include <fmt/format.h>

#include "engine/ops/group_norm.h"

namespace visrep::nn {

GroupNorm::GroupNorm(int64_t groups_in, int64_t channels_in, const GroupNormConfig& config_in)
    : groups(groups_in), channels(channels_in), config(config_in) {
  VISREP_CHECK(groups >= 1 && channels >= 1 && channels % groups == 0,
               "GroupNorm: {} groups must be a positive divisor of the {} channels", groups, channels);
  VISREP_CHECK(config.eps > 0, "GroupNorm: eps must be positive, got {}", config.eps);
  if (config.affine) {
    weight = register_parameter("weight", ones({channels}));
    bias = register_parameter("bias", zeros({channels}));
  }
}

Tensor GroupNorm::forward(const Tensor& x) {
  VISREP_CHECK(x.dim() >= 2 && x.size(1) == channels, "GroupNorm({}, {}): expected input of shape (N, {}, ...), got {}",
               groups, channels, channels, shape_string(x.shape()));
  return group_norm(x, groups, weight, bias, config.eps, config.relu);
}

std::string GroupNorm::describe() const {
  return fmt::format("GroupNorm({}, {}, eps={}, affine={}{})", groups, channels, config.eps, config.affine,
                     config.relu ? ", relu=true" : "");
}

namespace {

Conv2dConfig convolution_config(const StdConv2dConfig& config) {
  return {.stride = config.stride,
          .padding = config.padding,
          .dilation = config.dilation,
          .groups = config.groups,
          .bias = config.bias};
}

}  // namespace

StdConv2d::StdConv2d(int64_t in_channels, int64_t out_channels, Pair kernel, const StdConv2dConfig& config_in)
    : Conv2d(in_channels, out_channels, kernel, convolution_config(config_in)), eps(config_in.eps) {
  VISREP_CHECK(eps > 0, "StdConv2d: eps must be positive, got {}", eps);
}

Tensor StdConv2d::standardized_weight() const { return weight_standardization(weight, eps); }

Tensor StdConv2d::forward(const Tensor& x) { return forward(x, standardized_weight()); }

Tensor StdConv2d::forward(const Tensor& x, const Tensor& standardized) {
  VISREP_CHECK(standardized.defined() && standardized.shape() == weight.shape(),
               "StdConv2d: standardized weight of shape {} given for a weight of shape {}",
               standardized.defined() ? shape_string(standardized.shape()) : "undefined", shape_string(weight.shape()));
  return conv2d(x, standardized, bias, options());
}

std::string StdConv2d::describe() const {
  std::string text = "Std" + Conv2d::describe();
  text.insert(text.size() - 1, fmt::format(", eps={}", eps));
  return text;
}

std::vector<Tensor> standardized_weights(const std::vector<const StdConv2d*>& layers) {
  if (layers.empty()) return {};
  std::vector<Tensor> weights;
  for (const StdConv2d* layer : layers) {
    VISREP_CHECK(layer->eps == layers.front()->eps,
                 "standardized_weights: the layers must share eps; the first has {} but another has {}",
                 layers.front()->eps, layer->eps);
    weights.push_back(layer->weight);
  }
  return weight_standardization(weights, layers.front()->eps);
}

}  // namespace visrep::nn
