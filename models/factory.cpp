#include "models/factory.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

#include "engine/error.h"
#include "models/resnet.h"
#include "models/small_convnet.h"

namespace visrep::models {

std::string architecture_names() { return "small, resnet18, resnet34, resnet50, bit-tiny or bit-r50x1 ... bit-r152x4"; }

bool is_resnet_v2_architecture(const std::string& name) { return name.rfind("bit-", 0) == 0; }

int64_t default_gn_groups(int64_t stem_channels) {
  return stem_channels >= 64 ? 32 : std::max<int64_t>(stem_channels / 2, 1);
}

ResNetV2Config resnet_v2_architecture(const std::string& name, int64_t in_channels, int64_t classes,
                                      int64_t base_width) {
  ResNetV2Config config;
  config.in_channels = in_channels;
  config.classes = classes;
  if (name == "bit-tiny") {
    VISREP_CHECK(base_width >= 0 && base_width <= 1024, "bit-tiny's base width must be in [1, 1024] (0: 16), not {}",
                 base_width);
    config.depth = 0;
    config.units_per_stage = {1, 1, 1, 1};
    config.base_width = base_width > 0 ? base_width : 16;
    config.gn_groups = default_gn_groups(config.base_width);  // 8 at 16
    validate(config);
    return config;
  }
  VISREP_CHECK(base_width == 0, "{} takes no width ({}): the bit-r names carry theirs (e.g. bit-r50x2); only bit-tiny "
               "takes a base width", name, base_width);
  // "bit-r<depth>x<width>"
  int depth = 0, width = 0;
  const char* text = name.c_str();
  const char* end = text + name.size();
  bool parsed = name.rfind("bit-r", 0) == 0;
  if (parsed) {
    auto [after_depth, depth_error] = std::from_chars(text + 5, end, depth);
    parsed = depth_error == std::errc() && after_depth < end && *after_depth == 'x';
    if (parsed) {
      auto [after_width, width_error] = std::from_chars(after_depth + 1, end, width);
      parsed = width_error == std::errc() && after_width == end;
    }
  }
  VISREP_CHECK(parsed, "unknown architecture '{}'; use {}", name, architecture_names());
  config.depth = depth;
  config.width_factor = width;
  validate(config);
  return config;
}

Encoder make_encoder(const std::string& architecture, int64_t width, int64_t in_channels, int64_t image_size) {
  if (architecture == "small") {
    auto net = std::make_shared<SmallConvNet>(SmallConvNetConfig{.in_channels = in_channels, .classes = 0, .width = width});
    return {net, net->feature_dim(), fmt::format("SmallConvNet width {}", width)};
  }
  if (is_resnet_v2_architecture(architecture)) {
    auto net = std::make_shared<ResNetV2>(resnet_v2_architecture(architecture, in_channels, 0, width));
    return {net, net->feature_dim(), net->describe()};
  }
  for (int depth : {18, 34, 50}) {
    if (architecture == fmt::format("resnet{}", depth)) {
      ResNetConfig config{.depth = depth, .width_multiplier = static_cast<int>(width),
                          .stem = stem_for_image_size(image_size), .in_channels = in_channels};
      auto net = std::make_shared<ResNet>(config);
      return {net, resnet_feature_dim(config),
              fmt::format("ResNet-{} {}x, {} stem", depth, width, stem_name(config.stem))};
    }
  }
  VISREP_FAIL("unknown architecture '{}'; use {}", architecture, architecture_names());
}

}  // namespace visrep::models
