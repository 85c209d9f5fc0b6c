// The networks by architecture name, as the binaries' --arch flag names them:
//   small              SmallConvNet without its classifier: 4 x width features (trains on a
//                      laptop CPU in minutes)
//   resnet18|34|50     ResNet v1 (models/resnet.h) with width multiplier 1 or 2, the CIFAR stem
//                      at 32 px and below
//   bit-tiny           BiT's ResNetV2 (models/resnet_v2.h) at its smallest: one unit per
//                      stage, base width 16 (or --width), half as many GroupNorm groups,
//                      32 x base width features (512 at 16)
//   bit-r<D>x<W>       BiT's ResNetV2 of depth D and width factor W (bit-r50x1 ... bit-r152x4)
// ResNetV2 has GroupNorm and Weight Standardization instead of batch statistics. Which name
// "auto" stands for is the binaries' choice (apps/app_common.h resolve_architecture).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/nn/module.h"
#include "models/resnet_v2.h"

namespace visrep::models {

// One line for messages: "small, resnet18, resnet34, resnet50, bit-tiny or bit-r50x1 ... bit-r152x4".
std::string architecture_names();

// BiT's networks are named "bit-...".
bool is_resnet_v2_architecture(const std::string& name);

// The GroupNorm groups of a ResNetV2 whose stem has `stem_channels`: BiT's 32 for BiT's
// widths (64 channels or more), half the stem's channels for narrower ones (2 channels per
// group in the narrowest norm, as bit-tiny). The groups leave no trace in the weights, so
// reading a checkpoint relies on this rule unless told otherwise.
int64_t default_gn_groups(int64_t stem_channels);

// "bit-r50x1" -> depth 50, width factor 1; "bit-tiny" -> one unit per stage of `base_width`
// stem channels (0: 16) and default_gn_groups of them. `classes` 0: no head (an encoder).
// Throws visrep::Error for another name, an unsupported depth or width, or a base width
// given to a bit-r name, naming it.
ResNetV2Config resnet_v2_architecture(const std::string& name, int64_t in_channels, int64_t classes,
                                      int64_t base_width = 0);

// An encoder: images (N, in_channels, H, W) -> pooled features (N, feature_dim).
struct Encoder {
  std::shared_ptr<nn::Module> module;
  int64_t feature_dim = 0;
  std::string description;  // "SmallConvNet width 16", "ResNet-18 1x, CIFAR stem", ...
};

// The encoder `architecture` names (one of the list above; "auto" is not), initialised from
// the global generator. `width`: SmallConvNet's first channels, ResNet's multiplier,
// bit-tiny's base width (0: 16; its GroupNorm groups are default_gn_groups of it); a bit-r*
// name with a width is refused. `image_size` picks ResNet's stem.
Encoder make_encoder(const std::string& architecture, int64_t width, int64_t in_channels, int64_t image_size);

}  // namespace visrep::models
