// What every model, encoder and checkpoint file visrep writes says of itself, in ONE
// safetensors metadata entry, "visrep.model", holding JSON text of one schema:
//
//   {"visrep_version": "0.1.0",
//    "modules": {"<name>": <module>, ...},   // "encoder" (+ "head"), or "model"
//    "input": {"channels": 3, "height": 32, "width": 32, "value_range": [0, 1],
//              "mean": [...], "std": [...]}}  // x = (pixel in value_range - mean) / std
//
// where a module is its architecture, exactly (nothing has to be guessed from the weights:
// ResNetV2's GroupNorm groups leave no trace in them, and guessing them wrong changes the
// features by tens of percent without an error):
//
//   {"family": "resnet_v2", "units_per_stage": [3, 4, 6, 3], "depth": 50, "base_width": 64,
//    "width_factor": 1, "stage_widths": [256, 512, 1024, 2048], "gn_groups": 32,
//    "std_conv_eps": 1e-10, "in_channels": 3, "feature_dim": 2048, "classes": 0}
//   {"family": "resnet", "depth": 18, "width_multiplier": 1, "stem": "CIFAR", "in_channels": 3,
//    "feature_dim": 512}
//   {"family": "small_convnet", "width": 16, "in_channels": 1, "classes": 0, "feature_dim": 64}
//   {"family": "EncoderClassifier", "encoder": <module>, "classifier": <module>}
//   {"family": "<type_name()>", "linear_layers": [{"name": "0", "in": 512, "out": 512}, ...]}
//                                                // heads and other modules: their Linear layers
//
// The README shows how to build the matching timm / PyTorch model from it in Python.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/data/augment.h"
#include "engine/nn/module.h"
#include "models/factory.h"
#include "models/resnet_v2.h"

namespace visrep::models {

inline constexpr const char* kModelDescriptionKey = "visrep.model";

// The architecture of one module, as above.
nlohmann::json describe_architecture(const nn::Module& module);

// The input the modules expect: `channels` of the augmentation's output size, in [0, 1] and
// then normalised by its mean and std (empty: 0 and 1).
nlohmann::json describe_input(const data::AugmentConfig& augment, int64_t channels);

// The "visrep.model" entry's text for these named modules and that input.
std::string model_description(const std::vector<std::pair<std::string, const nn::Module*>>& modules,
                              const nlohmann::json& input);

}  // namespace visrep::models

namespace visrep::models {

// ---- reading it back ----------------------------------------------------------------------

// The architecture the "visrep.model" entry of a file's metadata records for its encoder (the
// module "encoder", else "model", or the encoder within an EncoderClassifier); none for a file written before the descriptions. Throws,
// naming `path`, for an entry that is not JSON of the schema above.
std::optional<nlohmann::json> described_encoder(const std::map<std::string, std::string>& metadata,
                                                const std::string& path);

// The --arch name and --width of a described architecture, as models/factory.h names
// networks: {"small", 16}, {"resnet18", 1}, {"bit-r50x1", 0}, {"bit-tiny", 0}; a ResNetV2 the
// factory has no name for is "resnet_v2 (<its description>)".
std::pair<std::string, int64_t> described_architecture_name(const nlohmann::json& architecture);

// The ResNetV2 config a "resnet_v2" description records, range-checked (every count and
// width bounded, so a hostile file asks for no giant network); throws naming `path` and the
// field.
ResNetV2Config described_resnet_v2_config(const nlohmann::json& architecture, const std::string& path);

// The encoder a description records, built exactly (ResNetV2, ResNet or SmallConvNet, without
// classifier), initialised from the global generator; throws naming `path` and the field.
Encoder make_described_encoder(const nlohmann::json& architecture, const std::string& path);

}  // namespace visrep::models
