// BiT's ResNetV2 (see resnet_v2.h): big_transfer's bit_pytorch/models.py layer by layer, with
// timm's resnetv2.py module names and initialisation.
#include "models/resnet_v2.h"

#include <numeric>

#include <fmt/format.h>

#include "engine/error.h"
#include "engine/nn/init.h"
#include "engine/ops.h"

namespace visrep::models {

namespace {

// BiT's three depths (big_transfer's KNOWN_MODELS; He et al. 2016, table 1).
std::array<int, 4> units_for_depth(int depth) {
  switch (depth) {
    case 50: return {3, 4, 6, 3};
    case 101: return {3, 4, 23, 3};
    case 152: return {3, 8, 36, 3};
    default:
      VISREP_FAIL("ResNetV2: depth {} is not supported; use 50, 101 or 152 (or set units_per_stage)", depth);
  }
}

int depth_for_units(const std::array<int, 4>& units) { return 3 * std::accumulate(units.begin(), units.end(), 0) + 2; }

// A bias-free StdConv2d with timm's init for every conv of its ResNetV2 (_init_weights):
// kaiming_normal_(mode="fan_out", nonlinearity="relu"), std = sqrt(2 / (out * k * k)).
std::shared_ptr<nn::StdConv2d> make_std_conv(int64_t in_channels, int64_t out_channels, int64_t kernel,
                                             int64_t stride, int64_t padding, double eps) {
  auto conv = std::make_shared<nn::StdConv2d>(
      in_channels, out_channels, kernel,
      nn::StdConv2dConfig{.stride = {stride, stride}, .padding = {padding, padding}, .bias = false, .eps = eps});
  nn::init::kaiming_normal_(conv->weight, nn::init::FanMode::FanOut, nn::init::Nonlinearity::ReLU);
  return conv;
}

// GroupNorm followed by ReLU, fused: every norm of BiT's network is one.
std::shared_ptr<nn::GroupNorm> make_norm_relu(int64_t groups, int64_t channels) {
  return std::make_shared<nn::GroupNorm>(groups, channels, nn::GroupNormConfig{.eps = 1e-5, .relu = true});
}

}  // namespace

void validate(const ResNetV2Config& config) {
  if (config.units_per_stage.empty()) {
    units_for_depth(config.depth);  // throws on a depth it does not know
  } else {
    VISREP_CHECK(config.units_per_stage.size() == 4, "ResNetV2: units_per_stage needs 4 counts (one per stage), got {}",
                 config.units_per_stage.size());
    for (int units : config.units_per_stage) {
      VISREP_CHECK(units >= 1, "ResNetV2: every stage needs at least one unit, got units_per_stage [{}]",
                   fmt::join(config.units_per_stage, ", "));
    }
    const int depth = depth_for_units(resnet_v2_units(config));
    VISREP_CHECK(config.depth == 0 || config.depth == depth,
                 "ResNetV2: depth {} does not match units_per_stage [{}], which make depth {} (3 per unit + 2); "
                 "set depth to {} or 0",
                 config.depth, fmt::join(config.units_per_stage, ", "), depth, depth);
  }
  VISREP_CHECK(config.width_factor >= 1 && config.width_factor <= 4,
               "ResNetV2: width factor {} is not supported; use 1 to 4", config.width_factor);
  VISREP_CHECK(config.classes >= 0, "ResNetV2: classes must be positive, or 0 for no head; got {}", config.classes);
  VISREP_CHECK(config.in_channels > 0, "ResNetV2: in_channels must be positive (3 for RGB), got {}",
               config.in_channels);
  VISREP_CHECK(config.base_width > 0, "ResNetV2: base_width must be positive, got {}", config.base_width);
  VISREP_CHECK(config.std_conv_eps > 0, "ResNetV2: std_conv_eps must be positive, got {}", config.std_conv_eps);
  // The narrowest GroupNorm is the first unit's norm1 and norm2 (base_width * width
  // channels); every other channel count is a power-of-two multiple of it.
  const int64_t narrowest = config.base_width * config.width_factor;
  VISREP_CHECK(config.gn_groups >= 1 && narrowest % config.gn_groups == 0,
               "ResNetV2: {} GroupNorm groups do not divide the {} channels of the narrowest norm "
               "(base_width {} x width factor {})",
               config.gn_groups, narrowest, config.base_width, config.width_factor);
}

std::array<int, 4> resnet_v2_units(const ResNetV2Config& config) {
  if (config.units_per_stage.empty()) return units_for_depth(config.depth);
  VISREP_CHECK(config.units_per_stage.size() == 4, "ResNetV2: units_per_stage needs 4 counts (one per stage), got {}",
               config.units_per_stage.size());
  return {config.units_per_stage[0], config.units_per_stage[1], config.units_per_stage[2], config.units_per_stage[3]};
}

int resnet_v2_depth(const ResNetV2Config& config) { return depth_for_units(resnet_v2_units(config)); }

int64_t resnet_v2_feature_dim(const ResNetV2Config& config) {
  validate(config);
  return 32 * config.base_width * config.width_factor;
}

// ---- standardised weights -----------------------------------------------------------------

StandardizedWeights::StandardizedWeights(const std::vector<const nn::StdConv2d*>& layers) {
  const std::vector<Tensor> standardized = nn::standardized_weights(layers);
  for (size_t index = 0; index < layers.size(); ++index) weights_.emplace(layers[index], standardized[index]);
}

const Tensor& StandardizedWeights::of(const nn::StdConv2d& layer) const {
  const auto found = weights_.find(&layer);
  VISREP_CHECK(found != weights_.end(), "StandardizedWeights: no weight for the layer {}", layer.describe());
  return found->second;
}

// ---- stem, shortcut, unit, head -----------------------------------------------------------

ResNetV2Stem::ResNetV2Stem(int64_t in_channels, int64_t out_channels, double std_conv_eps) {
  conv = register_module("conv", make_std_conv(in_channels, out_channels, 7, 2, 3, std_conv_eps));
}

Tensor ResNetV2Stem::forward(const Tensor& images) { return forward(images, StandardizedWeights({conv.get()})); }

Tensor ResNetV2Stem::forward(const Tensor& images, const StandardizedWeights& weights) {
  const Tensor x = conv->forward(images, weights.of(*conv));
  return max_pool2d(pad(x, {1, 1, 1, 1}), Pool2dOptions{.kernel = {3, 3}, .stride = {2, 2}});
}

DownsampleConv::DownsampleConv(int64_t in_channels, int64_t out_channels, int64_t stride, double std_conv_eps) {
  conv = register_module("conv", make_std_conv(in_channels, out_channels, 1, stride, 0, std_conv_eps));
}

PreActBottleneck::PreActBottleneck(int64_t in_channels, int64_t mid_channels, int64_t out_channels, int64_t stride,
                                   const ResNetV2Config& config) {
  const double eps = config.std_conv_eps;
  // Registration order gives timm's state dict order (downsample first, as timm builds it).
  if (in_channels != out_channels || stride != 1) {
    downsample =
        register_module("downsample", std::make_shared<DownsampleConv>(in_channels, out_channels, stride, eps));
  }
  norm1 = register_module("norm1", make_norm_relu(config.gn_groups, in_channels));
  conv1 = register_module("conv1", make_std_conv(in_channels, mid_channels, 1, 1, 0, eps));
  norm2 = register_module("norm2", make_norm_relu(config.gn_groups, mid_channels));
  conv2 = register_module("conv2", make_std_conv(mid_channels, mid_channels, 3, stride, 1, eps));
  norm3 = register_module("norm3", make_norm_relu(config.gn_groups, mid_channels));
  conv3 = register_module("conv3", make_std_conv(mid_channels, out_channels, 1, 1, 0, eps));
}

std::vector<const nn::StdConv2d*> PreActBottleneck::std_convs() const {
  std::vector<const nn::StdConv2d*> layers = {conv1.get(), conv2.get(), conv3.get()};
  if (downsample) layers.push_back(downsample->conv.get());
  return layers;
}

Tensor PreActBottleneck::forward(const Tensor& x) { return forward(x, StandardizedWeights(std_convs())); }

Tensor PreActBottleneck::forward(const Tensor& x, const StandardizedWeights& weights) {
  const Tensor preactivated = norm1->forward(x);
  const Tensor shortcut = downsample ? downsample->conv->forward(preactivated, weights.of(*downsample->conv)) : x;
  Tensor y = conv1->forward(preactivated, weights.of(*conv1));
  y = conv2->forward(norm2->forward(y), weights.of(*conv2));
  y = conv3->forward(norm3->forward(y), weights.of(*conv3));
  return add(y, shortcut);
}

ResNetV2Head::ResNetV2Head(int64_t features, int64_t classes) {
  fc = register_module("fc", std::make_shared<nn::Conv2d>(features, classes, 1, nn::Conv2dConfig{.bias = true}));
  // timm's _init_weights for head.fc; BiT's zero_head (the default) then zeroes both.
  nn::init::normal_(fc->weight, 0.0, 0.01);
  nn::init::zeros_(fc->bias);
}

Tensor ResNetV2Head::forward(const Tensor& features) {
  VISREP_CHECK(features.dim() == 2 && features.size(1) == fc->weight.size(1),
               "ResNetV2Head: expected features of shape (N, {}), got {}", fc->weight.size(1),
               shape_string(features.shape()));
  // A 1x1 conv on a 1x1 map is x W^T + b with W the (classes, C) matrix of the kernel.
  return linear(features, fc->weight.reshape({fc->weight.size(0), fc->weight.size(1)}), fc->bias);
}

// ---- the network -------------------------------------------------------------------------

ResNetV2::ResNetV2(const ResNetV2Config& config) : config_(config) {
  validate(config);
  feature_dim_ = resnet_v2_feature_dim(config);
  const int64_t width = config.base_width * config.width_factor;
  const std::array<int, 4> units = resnet_v2_units(config);

  stem = register_module("stem", std::make_shared<ResNetV2Stem>(config.in_channels, width, config.std_conv_eps));
  stages = register_module("stages", std::make_shared<nn::Sequential>());
  int64_t channels = width;
  for (int stage_index = 0; stage_index < 4; ++stage_index) {
    const int64_t mid_channels = width << stage_index;
    const int64_t out_channels = 4 * mid_channels;
    auto stage = std::make_shared<ResNetV2Stage>();
    for (int unit_index = 0; unit_index < units[stage_index]; ++unit_index) {
      const int64_t stride = stage_index > 0 && unit_index == 0 ? 2 : 1;
      auto unit = std::make_shared<PreActBottleneck>(channels, mid_channels, out_channels, stride, config);
      stage->blocks->push_back(unit);
      units_.push_back(unit);
      channels = out_channels;
    }
    stages->push_back(stage);
  }
  VISREP_CHECK(channels == feature_dim_, "ResNetV2: internal error, {} channels after the last stage, expected {}",
               channels, feature_dim_);
  norm = register_module("norm", make_norm_relu(config.gn_groups, channels));
  if (config.classes > 0) {
    head = register_module("head", std::make_shared<ResNetV2Head>(channels, config.classes));
    if (config.zero_head) {
      nn::init::zeros_(head->fc->weight);
      nn::init::zeros_(head->fc->bias);
    }
  }

  std_convs_.push_back(stem->conv.get());
  for (const auto& unit : units_) {
    for (const nn::StdConv2d* layer : unit->std_convs()) std_convs_.push_back(layer);
  }
}

Tensor ResNetV2::forward_features(const Tensor& images) {
  VISREP_CHECK(images.dim() == 4 && images.size(1) == config_.in_channels,
               "{}: expected images of shape (N, {}, H, W), got {}", describe(), config_.in_channels,
               shape_string(images.shape()));
  // Every weight standardised by one call (and their gradients by one call backward).
  const StandardizedWeights weights(std_convs_);
  Tensor x = stem->forward(images, weights);
  for (const auto& unit : units_) x = unit->forward(x, weights);
  return global_avg_pool2d(norm->forward(x));
}

Tensor ResNetV2::forward(const Tensor& images) {
  const Tensor features = forward_features(images);
  return head ? head->forward(features) : features;
}

std::string resnet_v2_description(const ResNetV2Config& config) {
  std::string details = config.classes > 0 ? fmt::format("{} classes", config.classes) : "features";
  if (config.base_width != 64) details += fmt::format(", base width {}", config.base_width);
  if (config.gn_groups != 32) details += fmt::format(", {} GN groups", config.gn_groups);
  if (config.in_channels != 3) details += fmt::format(", {} input channels", config.in_channels);
  return fmt::format("ResNetV2-{}x{} (BiT, {})", resnet_v2_depth(config), config.width_factor, details);
}

std::string ResNetV2::describe() const { return resnet_v2_description(config_); }

}  // namespace visrep::models
