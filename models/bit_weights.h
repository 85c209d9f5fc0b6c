// Weights of BiT's ResNetV2 (models/resnet_v2.h) in and out of files:
//   - the official .npz checkpoints of google-research/big_transfer (BiT-S and BiT-M,
//     R50x1 ... R152x4), whose TensorFlow names and HWIO kernels map onto timm's names and
//     OIHW kernels as timm's _load_weights (timm/models/resnetv2.py) and big_transfer's
//     load_from (bit_pytorch/models.py) map them;
//   - safetensors files with timm's names, which timm's resnetv2_*_bit models load.
//
// Official name (prefix "resnet/")                         timm name
//   root_block/standardized_conv2d/kernel                  stem.conv.weight
//   block{i+1}/unit{j+1:02d}/{a,b,c}/standardized_conv2d/kernel  stages.i.blocks.j.conv{1,2,3}.weight
//   block{i+1}/unit{j+1:02d}/{a,b,c}/group_norm/{gamma,beta}     stages.i.blocks.j.norm{1,2,3}.{weight,bias}
//   block{i+1}/unit{j+1:02d}/a/proj/standardized_conv2d/kernel   stages.i.blocks.j.downsample.conv.weight
//   group_norm/{gamma,beta}                                norm.{weight,bias}
//   head/conv2d/{kernel,bias}                              head.fc.{weight,bias}
// Kernels are stored (kH, kW, in, out) and become (out, in, kH, kW); gammas and betas may
// be stored as (C) or (1, 1, 1, C).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/io/safetensors.h"
#include "models/resnet_v2.h"

namespace visrep::models {

// One array of an official checkpoint and the parameter it becomes.
struct BitWeightName {
  std::string npz_name;   // "resnet/block1/unit01/a/standardized_conv2d/kernel"
  std::string timm_name;  // "stages.0.blocks.0.conv1.weight"
  bool is_kernel = false;  // an HWIO kernel to transpose; otherwise a vector (C)
  Shape shape;             // of the parameter, in timm's layout: (out, in, kH, kW) or (C)
};

// Every array a ResNetV2 of `config` takes from an official checkpoint, stem first, with
// the parameter's shape, from the config alone (no model is built: a file is checked
// against this before anything is allocated for it); the head's two only when
// include_head is set and config.classes > 0.
std::vector<BitWeightName> bit_weight_names(const ResNetV2Config& config, bool include_head);
// The same for a built model (its config; the head when it has one).
std::vector<BitWeightName> bit_weight_names(const ResNetV2& model, bool include_head);

// The largest architecture read from a file: twice BiT's widest stem (R152x4: 256
// channels) and deepest stage (R152: 36 units). A file declaring more is refused before
// anything is built from it.
inline constexpr int64_t kMaxResNetV2StemWidth = 512;
inline constexpr int kMaxResNetV2UnitsPerStage = 72;
inline constexpr int64_t kMaxResNetV2InChannels = 64;
inline constexpr int64_t kMaxResNetV2Classes = int64_t{1} << 20;  // BiT-M's head: 21843

// The architecture an official checkpoint holds: the units of its four blocks (depth 50,
// 101, 152, or units_per_stage for other counts), the width factor (root kernel's output
// channels / 64; other widths become base_width with width factor 1), the input channels,
// and the classes (the head bias's size; 0 without a head). The GroupNorm groups leave no
// trace in the weights and come from `gn_groups` (BiT: 32). Throws visrep::Error saying what
// was found for a layout it does not know ("unknown architecture: 5 blocks ...") or sizes
// beyond the kMaxResNetV2 limits above.
ResNetV2Config infer_resnet_v2_config(const io::TensorMap& npz, int64_t gn_groups = 32);

// The same for a state dict with timm's names (a safetensors file of
// save_resnet_v2_safetensors, or timm's): units from the stages.{i}.blocks.{j} keys, widths
// from stem.conv.weight (out, in, 7, 7), classes from head.fc.bias. Errors as above.
ResNetV2Config infer_resnet_v2_config_from_state(const io::TensorMap& state, int64_t gn_groups = 32);

// Copies an official checkpoint (io::load_npz) into `model`. Floating-point arrays are
// converted to the model's dtype on purpose (the official files are float32; a float64
// model checks them against a NumPy reference); any other dtype is refused. The head is
// loaded when load_head is set and the file's head has the model's class count; otherwise
// it is set to zero (BiT's zero_head: fine-tuning starts a new head from zero). Returns
// whether the head came from the file. A missing array, a wrong shape or dtype, or an
// array the model has no place for (a checkpoint of another architecture) throws
// visrep::Error naming the file, both names and both shapes; nothing is copied then.
bool load_bit_npz(ResNetV2& model, const std::string& path, bool load_head);
// The same from arrays already loaded; `source` names them in error messages.
bool load_bit_weights(ResNetV2& model, const io::TensorMap& npz, bool load_head, const std::string& source);

// Check, then build: the ResNetV2 of `config` (usually infer_resnet_v2_config's, with the
// new task's classes) holding the checkpoint's weights. Every array the architecture needs
// is checked to be in `npz` with its shape before the model is allocated, so a small file
// declaring a huge network is refused, not built. The head as load_bit_weights loads it.
std::shared_ptr<ResNetV2> make_resnet_v2_from_bit_weights(const io::TensorMap& npz, const ResNetV2Config& config,
                                                           bool load_head, const std::string& source);
// The same for a state dict with timm's names (infer_resnet_v2_config_from_state's
// config): every tensor but the head's is checked and loaded (floating dtypes converted as
// above), the model's head starts at zero.
std::shared_ptr<ResNetV2> make_resnet_v2_from_timm_state(const io::TensorMap& state, const ResNetV2Config& config,
                                                          const std::string& source);

// The state dict with timm's names, as safetensors (metadata "format": "pt", as timm's
// files carry).
void save_resnet_v2_safetensors(const ResNetV2& model, const std::string& path);
// Loads every parameter strictly: a missing or unexpected key, or a wrong shape, throws
// visrep::Error naming the file, the key and the shapes.
void load_resnet_v2_safetensors(ResNetV2& model, const std::string& path);

}  // namespace visrep::models
