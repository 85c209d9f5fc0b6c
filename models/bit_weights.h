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
};

// Every array `model` takes from an official checkpoint, stem first; the head's two only
// when include_head is set and the model has a head.
std::vector<BitWeightName> bit_weight_names(const ResNetV2& model, bool include_head);

// The architecture an official checkpoint holds: the units of its four blocks (depth 50,
// 101, 152, or units_per_stage for other counts), the width factor (root kernel's output
// channels / 64; other widths become base_width with width factor 1), the input channels,
// and the classes (the head bias's size; 0 without a head). The GroupNorm groups leave no
// trace in the weights and come from `gn_groups` (BiT: 32). Throws visrep::Error saying what
// was found for a layout it does not know ("unknown architecture: 5 blocks ...").
ResNetV2Config infer_resnet_v2_config(const io::TensorMap& npz, int64_t gn_groups = 32);

// The same for a state dict with timm's names (a safetensors file of
// save_resnet_v2_safetensors, or timm's): units from the stages.{i}.blocks.{j} keys, widths
// from stem.conv.weight (out, in, 7, 7), classes from head.fc.bias. Errors as above.
ResNetV2Config infer_resnet_v2_config_from_state(const io::TensorMap& state, int64_t gn_groups = 32);

// Copies an official checkpoint (io::load_npz) into `model`, converting dtypes to the
// model's. The head is loaded when load_head is set and the file's head has the model's
// class count; otherwise it is set to zero (BiT's zero_head: fine-tuning starts a new head
// from zero). Returns whether the head came from the file. A missing array, a wrong shape or
// an array the model has no place for (a checkpoint of another architecture) throws
// visrep::Error naming the file, both names and both shapes; nothing is copied then.
bool load_bit_npz(ResNetV2& model, const std::string& path, bool load_head);
// The same from arrays already loaded; `source` names them in error messages.
bool load_bit_weights(ResNetV2& model, const io::TensorMap& npz, bool load_head, const std::string& source);

// The state dict with timm's names, as safetensors (metadata "format": "pt", as timm's
// files carry).
void save_resnet_v2_safetensors(const ResNetV2& model, const std::string& path);
// Loads every parameter strictly: a missing or unexpected key, or a wrong shape, throws
// visrep::Error naming the file, the key and the shapes.
void load_resnet_v2_safetensors(ResNetV2& model, const std::string& path);

}  // namespace visrep::models
