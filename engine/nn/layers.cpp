#include "engine/nn/layers.h"

#include <fmt/format.h>

#include <cmath>

#include "engine/autograd.h"
#include "engine/nn/init.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/batch_norm.h"
#include "engine/ops/group_norm.h"
#include "engine/ops/linear_algebra.h"
#include "engine/ops/weight_standardization.h"

namespace visrep::nn {
namespace {

// PyTorch's default for Linear and Conv2d: weight kaiming_uniform(a = sqrt(5)), i.e.
// uniform in +-1/sqrt(fan_in), and bias uniform in +-1/sqrt(fan_in).
void default_initialise(Tensor& weight, Tensor& bias) {
  init::kaiming_uniform_(weight, init::FanMode::FanIn, init::Nonlinearity::LeakyReLU, std::sqrt(5.0));
  if (bias.defined()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(init::fan_in(weight)));
    init::uniform_(bias, -bound, bound);
  }
}

// StdConv2d's convolution settings (everything but eps).
Conv2dConfig convolution_config(const StdConv2dConfig& config) {
  return {.stride = config.stride,
          .padding = config.padding,
          .dilation = config.dilation,
          .groups = config.groups,
          .bias = config.bias};
}

}  // namespace

Linear::Linear(int64_t in_features, int64_t out_features, bool with_bias) {
  VISREP_CHECK(in_features > 0 && out_features > 0, "Linear: features must be positive, got ({}, {})", in_features,
               out_features);
  Tensor w = empty({out_features, in_features});
  Tensor b = with_bias ? empty({out_features}) : Tensor();
  default_initialise(w, b);
  weight = register_parameter("weight", w);
  if (with_bias) bias = register_parameter("bias", b);
}

Tensor Linear::forward(const Tensor& x) { return linear(x, weight, bias); }

std::string Linear::describe() const {
  return fmt::format("Linear(in_features={}, out_features={}, bias={})", weight.size(1), weight.size(0),
                     bias.defined());
}

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, Pair kernel, const Conv2dConfig& config_in)
    : config(config_in) {
  VISREP_CHECK(in_channels > 0 && out_channels > 0 && kernel[0] > 0 && kernel[1] > 0,
               "Conv2d: channels and kernel must be positive, got in={}, out={}, kernel=({}, {})", in_channels,
               out_channels, kernel[0], kernel[1]);
  VISREP_CHECK(config.groups >= 1 && in_channels % config.groups == 0 && out_channels % config.groups == 0,
               "Conv2d: groups = {} must divide in_channels = {} and out_channels = {}", config.groups, in_channels,
               out_channels);
  Tensor w = empty({out_channels, in_channels / config.groups, kernel[0], kernel[1]});
  Tensor b = config.bias ? empty({out_channels}) : Tensor();
  default_initialise(w, b);
  weight = register_parameter("weight", w);
  if (config.bias) bias = register_parameter("bias", b);
}

Conv2dOptions Conv2d::options() const { return {config.stride, config.padding, config.dilation, config.groups}; }

Tensor Conv2d::forward(const Tensor& x) { return conv2d(x, weight, bias, options()); }

std::string Conv2d::describe() const {
  return fmt::format("Conv2d({}, {}, kernel=({}, {}), stride=({}, {}), padding=({}, {}){}{}{})",
                     weight.size(1) * config.groups, weight.size(0), weight.size(2), weight.size(3), config.stride[0],
                     config.stride[1], config.padding[0], config.padding[1],
                     config.dilation != Pair{1, 1} ? fmt::format(", dilation=({}, {})", config.dilation[0], config.dilation[1]) : "",
                     config.groups != 1 ? fmt::format(", groups={}", config.groups) : "", config.bias ? "" : ", bias=false");
}

BatchNorm::BatchNorm(int64_t channels, int64_t expected_rank, const BatchNormConfig& config_in)
    : config(config_in), channels_(channels), expected_rank_(expected_rank) {
  VISREP_CHECK(channels > 0, "{}: channels must be positive, got {}", type_name(), channels);
  VISREP_CHECK(config.eps > 0, "{}: eps must be positive, got {}", type_name(), config.eps);
  if (config.affine) {
    weight = register_parameter("weight", ones({channels}));
    bias = register_parameter("bias", zeros({channels}));
  }
  if (config.track_running_stats) {
    running_mean = register_buffer("running_mean", zeros({channels}));
    running_var = register_buffer("running_var", ones({channels}));
    num_batches_tracked = register_buffer("num_batches_tracked", zeros({}, kInt64));
  }
}

Tensor BatchNorm::forward(const Tensor& x) {
  VISREP_CHECK(x.dim() == expected_rank_ && x.size(1) == channels_, "{}({}): expected input of shape {}, got {}",
               type_name(), channels_, expected_rank_ == 4 ? "(N, C, H, W)" : "(N, C)", shape_string(x.shape()));
  const bool use_batch_statistics = is_training() || !config.track_running_stats;
  if (is_training() && config.track_running_stats) {
    NoGradGuard no_grad;
    num_batches_tracked.add_(ones({}, TensorOptions(kInt64, num_batches_tracked.device())));
  }
  const BatchNormOptions options{.training = use_batch_statistics, .momentum = config.momentum, .eps = config.eps};
  if (sync_ranks != nullptr && is_training()) {
    return sync_batch_norm(x, running_mean, running_var, weight, bias, options, *sync_ranks);
  }
  return batch_norm(x, running_mean, running_var, weight, bias, options);
}

int64_t synchronize_batch_norm(Module& model, distributed::Collectives* ranks) {
  int64_t layers = 0;
  model.apply([&](Module& module) {
    if (auto* batch_norm = dynamic_cast<BatchNorm*>(&module)) {
      batch_norm->sync_ranks = ranks;
      ++layers;
    }
  });
  return layers;
}

std::string BatchNorm::describe() const {
  return fmt::format("{}({}, eps={}, momentum={}, affine={})", type_name(), channels_, config.eps, config.momentum,
                     config.affine);
}

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

Tensor ReLU::forward(const Tensor& x) { return relu(x); }

std::string MaxPool2d::describe() const {
  return fmt::format("MaxPool2d(kernel=({}, {}), stride=({}, {}), padding=({}, {}))", options_.kernel[0],
                     options_.kernel[1], options_.stride[0], options_.stride[1], options_.padding[0],
                     options_.padding[1]);
}

Sequential::Sequential(std::initializer_list<ModulePtr> modules) {
  for (const ModulePtr& module : modules) push_back(module);
}

void Sequential::push_back(ModulePtr module) {
  register_module(std::to_string(modules_.size()), module);
  modules_.push_back(std::move(module));
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (const ModulePtr& module : modules_) y = module->forward(y);
  return y;
}

}  // namespace visrep::nn
