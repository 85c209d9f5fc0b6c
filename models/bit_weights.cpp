// Official BiT .npz checkpoints and timm-named safetensors into and out of ResNetV2 (see
// bit_weights.h); the name mapping is timm's _load_weights in timm/models/resnetv2.py.
#include "models/bit_weights.h"

#include <charconv>
#include <map>
#include <set>
#include <string_view>

#include <fmt/format.h>

#include "engine/error.h"
#include "engine/io/binary_reader.h"
#include "engine/io/npz.h"

namespace visrep::models {

namespace {

constexpr std::string_view kPrefix = "resnet/";
constexpr std::string_view kConvName = "standardized_conv2d";
const std::string kRootKernel = "resnet/root_block/standardized_conv2d/kernel";
const std::string kHeadKernel = "resnet/head/conv2d/kernel";
const std::string kHeadBias = "resnet/head/conv2d/bias";

bool is_head_name(const std::string& name) { return name == kHeadKernel || name == kHeadBias; }

// The official array as the parameter it becomes: HWIO kernels to OIHW (big_transfer's
// tf2th, transpose [3, 2, 0, 1]); (1, ..., 1, C) vectors to (C).
Tensor to_timm_layout(const Tensor& array, bool is_kernel) {
  if (is_kernel) return array.dim() == 4 ? array.permute({3, 2, 0, 1}).contiguous() : array;
  if (array.dim() <= 1) return array;
  for (int64_t d = 0; d + 1 < array.dim(); ++d) {
    if (array.size(d) != 1) return array;  // left as it is; the shape check reports it
  }
  return array.reshape({array.size(array.dim() - 1)});
}

// `name` as prefix, a number, middle, a number, suffix (then anything): the two numbers, or
// false when the name has another form.
bool parse_numbered_name(std::string_view name, std::string_view prefix, std::string_view middle,
                         std::string_view suffix, int& first, int& second) {
  const auto expect = [&name](std::string_view text) {
    if (!name.starts_with(text)) return false;
    name.remove_prefix(text.size());
    return true;
  };
  const auto number = [&name](int& value) {
    const auto [end, error] = std::from_chars(name.data(), name.data() + name.size(), value);
    if (error != std::errc() || end == name.data()) return false;
    name.remove_prefix(static_cast<size_t>(end - name.data()));
    return true;
  };
  return expect(prefix) && number(first) && expect(middle) && number(second) && expect(suffix);
}

// The official "resnet/block{b}/unit{u}/...": the 1-based block and unit.
bool parse_unit_name(const std::string& name, int& block, int& unit) {
  return parse_numbered_name(name, "resnet/block", "/unit", "/", block, unit);
}

// timm's "stages.{stage}.blocks.{block}.<rest>": the 0-based stage and block.
bool parse_timm_unit_name(const std::string& name, int& stage, int& block) {
  return parse_numbered_name(name, "stages.", ".blocks.", ".", stage, block);
}

// What a checkpoint holds, for error messages: its inferred architecture, or why none is.
std::string describe_checkpoint(const io::TensorMap& npz) {
  try {
    const ResNetV2Config config = infer_resnet_v2_config(npz, 1);
    const std::array<int, 4> units = resnet_v2_units(config);
    return fmt::format("the file holds ResNetV2-{}x{} (units [{}], stem width {}, {} classes)", resnet_v2_depth(config),
                       config.width_factor, fmt::join(units, ", "), config.base_width * config.width_factor,
                       config.classes);
  } catch (const Error& error) {
    return fmt::format("the file's layout: {}", error.what());
  }
}

}  // namespace

std::vector<BitWeightName> bit_weight_names(const ResNetV2Config& config, bool include_head) {
  validate(config);
  std::vector<BitWeightName> names;
  const auto add = [&names](std::string npz_name, std::string timm_name, bool is_kernel, Shape shape) {
    names.push_back({std::move(npz_name), std::move(timm_name), is_kernel, std::move(shape)});
  };
  // The channel counts of ResNetV2's constructor (resnet_v2.cpp): stage i's units are
  // base_width * width_factor * 2^i wide inside and 4 times that at their output; the first
  // unit of each stage projects its input (the channels change, or the stride is 2).
  const int64_t width = config.base_width * config.width_factor;
  add(kRootKernel, "stem.conv.weight", true, {width, config.in_channels, 7, 7});

  const std::array<int, 4> units = resnet_v2_units(config);
  int64_t channels = width;
  for (int stage = 0; stage < 4; ++stage) {
    const int64_t mid = width << stage;
    const int64_t out = 4 * mid;
    for (int unit = 0; unit < units[stage]; ++unit) {
      const std::string npz = fmt::format("{}block{}/unit{:02d}/", kPrefix, stage + 1, unit + 1);
      const std::string timm = fmt::format("stages.{}.blocks.{}.", stage, unit);
      // Sub-layers a, b, c of the official unit are timm's conv1/norm1, conv2/norm2,
      // conv3/norm3; norm k normalises conv k's input.
      const std::array<char, 3> letters = {'a', 'b', 'c'};
      const std::array<Shape, 3> kernels = {Shape{mid, channels, 1, 1}, Shape{mid, mid, 3, 3}, Shape{out, mid, 1, 1}};
      const std::array<int64_t, 3> norm_channels = {channels, mid, mid};
      for (size_t layer = 0; layer < 3; ++layer) {
        const char letter = letters[layer];
        add(fmt::format("{}{}/{}/kernel", npz, letter, kConvName), fmt::format("{}conv{}.weight", timm, layer + 1),
            true, kernels[layer]);
        add(fmt::format("{}{}/group_norm/gamma", npz, letter), fmt::format("{}norm{}.weight", timm, layer + 1), false,
            {norm_channels[layer]});
        add(fmt::format("{}{}/group_norm/beta", npz, letter), fmt::format("{}norm{}.bias", timm, layer + 1), false,
            {norm_channels[layer]});
      }
      if (unit == 0) {
        add(fmt::format("{}a/proj/{}/kernel", npz, kConvName), timm + "downsample.conv.weight", true,
            {out, channels, 1, 1});
      }
      channels = out;
    }
  }
  add("resnet/group_norm/gamma", "norm.weight", false, {channels});
  add("resnet/group_norm/beta", "norm.bias", false, {channels});
  if (include_head && config.classes > 0) {
    add(kHeadKernel, "head.fc.weight", true, {config.classes, channels, 1, 1});
    add(kHeadBias, "head.fc.bias", false, {config.classes});
  }
  return names;
}

std::vector<BitWeightName> bit_weight_names(const ResNetV2& model, bool include_head) {
  return bit_weight_names(model.config(), include_head && model.head != nullptr);
}

namespace {

// "[1, 3]", or for a long list its ends: "[1, 2, 3, 4, ..., 2000] (1999 units)".
std::string unit_list(const std::set<int>& units) {
  constexpr size_t kShown = 4;
  if (units.size() <= 2 * kShown) return fmt::format("[{}]", fmt::join(units, ", "));
  const std::vector<int> first(units.begin(), std::next(units.begin(), kShown));
  return fmt::format("[{}, ..., {}] ({} units)", fmt::join(first, ", "), *units.rbegin(), units.size());
}

// The config of a network with these units per block (block numbers 1-based, each a set of
// 1-based unit numbers), stem channels, input channels and classes; `source` names the
// function and the kind of names in messages.
ResNetV2Config config_from_layout(const std::map<int, std::set<int>>& units_by_block, int64_t in_channels,
                                  int64_t stem_width, int64_t classes, int64_t gn_groups, const std::string& source) {
  std::vector<int> block_numbers;
  for (const auto& [block, units] : units_by_block) block_numbers.push_back(block);
  VISREP_CHECK(block_numbers == std::vector<int>({1, 2, 3, 4}),
               "{}: unknown architecture: {} blocks (numbered [{}]); ResNetV2 has 4, block1 to block4", source,
               block_numbers.size(), fmt::join(block_numbers, ", "));
  std::vector<int> units_per_stage;
  for (const auto& [block, units] : units_by_block) {
    const int count = static_cast<int>(units.size());
    VISREP_CHECK(*units.begin() == 1 && *units.rbegin() == count,
                 "{}: unknown architecture: block{} has units {}, not unit01 to unit{:02d}", source, block,
                 unit_list(units), count);
    VISREP_CHECK(count <= kMaxResNetV2UnitsPerStage,
                 "{}: block{} has {} units, more than the {} visrep reads (BiT's deepest stage has 36)", source, block,
                 count, kMaxResNetV2UnitsPerStage);
    units_per_stage.push_back(count);
  }
  VISREP_CHECK(stem_width >= 1 && stem_width <= kMaxResNetV2StemWidth,
               "{}: the stem has {} output channels, outside the 1 to {} visrep reads (BiT's widest has 256)", source,
               stem_width, kMaxResNetV2StemWidth);
  VISREP_CHECK(in_channels >= 1 && in_channels <= kMaxResNetV2InChannels,
               "{}: the stem takes {} input channels, outside the 1 to {} visrep reads (BiT's take 3)", source,
               in_channels, kMaxResNetV2InChannels);
  VISREP_CHECK(classes >= 0 && classes <= kMaxResNetV2Classes,
               "{}: the head has {} classes, more than the {} visrep reads (BiT-M's has 21843)", source, classes,
               kMaxResNetV2Classes);

  ResNetV2Config config;
  config.in_channels = in_channels;
  if (stem_width % 64 == 0 && stem_width / 64 >= 1 && stem_width / 64 <= 4) {
    config.width_factor = static_cast<int>(stem_width / 64);
    config.base_width = 64;
  } else {
    config.width_factor = 1;  // not one of BiT's widths: a network of our own (tests)
    config.base_width = stem_width;
  }
  config.depth = 3 * (units_per_stage[0] + units_per_stage[1] + units_per_stage[2] + units_per_stage[3]) + 2;
  config.units_per_stage = units_per_stage;
  for (int depth : {50, 101, 152}) {
    ResNetV2Config standard;
    standard.depth = depth;
    const std::array<int, 4> units = resnet_v2_units(standard);
    if (std::vector<int>(units.begin(), units.end()) == units_per_stage) config.units_per_stage.clear();
  }
  config.classes = classes;
  config.gn_groups = gn_groups;
  validate(config);
  return config;
}

}  // namespace

ResNetV2Config infer_resnet_v2_config(const io::TensorMap& npz, int64_t gn_groups) {
  const auto root = npz.find(kRootKernel);
  VISREP_CHECK(root != npz.end(), "infer_resnet_v2_config: unknown architecture: no '{}' among the {} arrays",
               kRootKernel, npz.size());
  const Shape& root_shape = root->second.shape();
  VISREP_CHECK(root_shape.size() == 4 && root_shape[0] == 7 && root_shape[1] == 7,
               "infer_resnet_v2_config: unknown architecture: the root kernel '{}' has shape {}, not (7, 7, in, out)",
               kRootKernel, shape_string(root_shape));
  // Units present in each block, from the names of their arrays.
  std::map<int, std::set<int>> units_by_block;
  for (const auto& [name, array] : npz) {
    int block = 0, unit = 0;
    if (parse_unit_name(name, block, unit)) units_by_block[block].insert(unit);
  }
  const auto head_bias = npz.find(kHeadBias);
  return config_from_layout(units_by_block, root_shape[2], root_shape[3],
                            head_bias == npz.end() ? 0 : head_bias->second.numel(), gn_groups,
                            "infer_resnet_v2_config");
}

ResNetV2Config infer_resnet_v2_config_from_state(const io::TensorMap& state, int64_t gn_groups) {
  const auto stem = state.find("stem.conv.weight");
  VISREP_CHECK(stem != state.end(),
               "infer_resnet_v2_config_from_state: unknown architecture: no 'stem.conv.weight' among the {} tensors "
               "(not a ResNetV2 with timm's names)",
               state.size());
  const Shape& stem_shape = stem->second.shape();
  VISREP_CHECK(stem_shape.size() == 4 && stem_shape[2] == 7 && stem_shape[3] == 7,
               "infer_resnet_v2_config_from_state: unknown architecture: 'stem.conv.weight' has shape {}, not (out, "
               "in, 7, 7)",
               shape_string(stem_shape));
  // timm counts from 0; the layout check counts as the official names do, from 1.
  std::map<int, std::set<int>> units_by_block;
  for (const auto& [name, tensor] : state) {
    int stage = 0, block = 0;
    if (parse_timm_unit_name(name, stage, block)) units_by_block[stage + 1].insert(block + 1);
  }
  const auto head_bias = state.find("head.fc.bias");
  return config_from_layout(units_by_block, stem_shape[1], stem_shape[0],
                            head_bias == state.end() ? 0 : head_bias->second.numel(), gn_groups,
                            "infer_resnet_v2_config_from_state");
}

namespace {

// The file's array as the parameter `name` describes, in `dtype`: floating-point arrays are
// converted (see load_bit_weights), others refused.
Tensor as_parameter(const Tensor& array, const BitWeightName& name, DType dtype, const std::string& source) {
  VISREP_CHECK(is_floating(array.dtype()), "load_bit_npz: {}: '{}' (timm '{}') is {}, not a floating-point array",
               source, io::printable(name.npz_name), name.timm_name, dtype_name(array.dtype()));
  return array.dtype() == dtype ? array : array.to(dtype);
}

// The official checkpoint's arrays as the timm-named state of the `config` network, each
// checked for presence and shape; an array the network has no place for is an error too.
// Nothing of the model exists yet: this is what makes a check-then-build possible.
std::map<std::string, Tensor> checked_bit_state(const io::TensorMap& npz, const ResNetV2Config& config, bool take_head,
                                                DType dtype, const std::string& source) {
  std::map<std::string, Tensor> state;
  std::set<std::string> used;
  for (const BitWeightName& name : bit_weight_names(config, take_head)) {
    const auto found = npz.find(name.npz_name);
    VISREP_CHECK(found != npz.end(), "load_bit_npz: {}: missing '{}' (timm '{}', shape {}); {}", source, name.npz_name,
                 name.timm_name, shape_string(name.shape), describe_checkpoint(npz));
    const Tensor converted = to_timm_layout(found->second, name.is_kernel);
    if (converted.shape() != name.shape) {
      const std::string layout = name.is_kernel ? fmt::format(" (HWIO, i.e. OIHW {})", shape_string(converted.shape()))
                                                : std::string(" (a vector is stored as (C) or (1, 1, 1, C))");
      VISREP_FAIL("load_bit_npz: {}: '{}' (timm '{}') has shape {} in the file{} but the model expects {}; {}", source,
                  name.npz_name, name.timm_name, shape_string(found->second.shape()), layout,
                  shape_string(name.shape), describe_checkpoint(npz));
    }
    state.emplace(name.timm_name, as_parameter(converted, name, dtype, source));
    used.insert(name.npz_name);
  }
  // An array left over means the file holds a larger network (more units, say): loading
  // part of it would silently give a different model.
  for (const auto& [name, array] : npz) {
    if (used.count(name) || is_head_name(name)) continue;
    VISREP_FAIL("load_bit_npz: {}: the file has an array the model has no place for, '{}' (shape {}); {}, the model "
                "is {}",
                source, io::printable(name), shape_string(array.shape()), describe_checkpoint(npz),
                resnet_v2_description(config));
  }
  return state;
}

// Whether the checkpoint's head is taken: asked for, and of the config's class count.
bool takes_head(const io::TensorMap& npz, const ResNetV2Config& config, bool load_head) {
  const auto file_head = npz.find(kHeadKernel);
  return load_head && config.classes > 0 && file_head != npz.end() && file_head->second.dim() == 4 &&
         file_head->second.size(3) == config.classes;
}

// The model's head at zero, for a state that has none from the file.
void add_zero_head(std::map<std::string, Tensor>& state, const ResNetV2& model) {
  if (!model.head) return;
  const std::map<std::string, Tensor> targets = model.state_dict();
  for (const char* name : {"head.fc.weight", "head.fc.bias"}) state.emplace(name, zeros_like(targets.at(name)));
}

}  // namespace

bool load_bit_weights(ResNetV2& model, const io::TensorMap& npz, bool load_head, const std::string& source) {
  const bool take_head = model.head != nullptr && takes_head(npz, model.config(), load_head);
  const DType dtype = model.stem->conv->weight.dtype();
  std::map<std::string, Tensor> state = checked_bit_state(npz, model.config(), take_head, dtype, source);
  if (!take_head) add_zero_head(state, model);
  model.load_state_dict(state, /*strict=*/true);
  return take_head;
}

std::shared_ptr<ResNetV2> make_resnet_v2_from_bit_weights(const io::TensorMap& npz, const ResNetV2Config& config,
                                                           bool load_head, const std::string& source) {
  const bool take_head = takes_head(npz, config, load_head);
  std::map<std::string, Tensor> state = checked_bit_state(npz, config, take_head, kFloat32, source);
  auto model = std::make_shared<ResNetV2>(config);  // only now: every array is there
  if (!take_head) add_zero_head(state, *model);
  model->load_state_dict(state, /*strict=*/true);
  return model;
}

std::shared_ptr<ResNetV2> make_resnet_v2_from_timm_state(const io::TensorMap& state, const ResNetV2Config& config,
                                                          const std::string& source) {
  // The expected tensors are those of the official mapping, under their timm names.
  std::map<std::string, Tensor> backbone;
  std::set<std::string> expected;
  for (const BitWeightName& name : bit_weight_names(config, /*include_head=*/false)) {
    expected.insert(name.timm_name);
    const auto found = state.find(name.timm_name);
    VISREP_CHECK(found != state.end(), "{}: missing '{}' (shape {}) for {}", source, name.timm_name,
                 shape_string(name.shape), resnet_v2_description(config));
    VISREP_CHECK(found->second.shape() == name.shape, "{}: '{}' has shape {} but {} expects {}", source,
                 name.timm_name, shape_string(found->second.shape()), resnet_v2_description(config),
                 shape_string(name.shape));
    backbone.emplace(name.timm_name, as_parameter(found->second, name, kFloat32, source));
  }
  for (const auto& [name, tensor] : state) {
    if (expected.count(name) == 0 && !name.starts_with("head.")) {
      VISREP_FAIL("{}: the file has a tensor {} has no place for, '{}' (shape {})", source,
                  resnet_v2_description(config), io::printable(name), shape_string(tensor.shape()));
    }
  }
  auto model = std::make_shared<ResNetV2>(config);  // only now: every tensor is there
  add_zero_head(backbone, *model);
  model->load_state_dict(backbone, /*strict=*/true);
  return model;
}

bool load_bit_npz(ResNetV2& model, const std::string& path, bool load_head) {
  return load_bit_weights(model, io::load_npz(path), load_head, fmt::format("'{}'", path));
}

void save_resnet_v2_safetensors(const ResNetV2& model, const std::string& path) {
  const std::map<std::string, Tensor> state = model.state_dict();
  io::save_safetensors(path, io::TensorMap(state.begin(), state.end()), {{"format", "pt"}});
}

void load_resnet_v2_safetensors(ResNetV2& model, const std::string& path) {
  const io::SafetensorsContents contents = io::load_safetensors(path);
  try {
    model.load_state_dict(contents.tensors, /*strict=*/true);
  } catch (const Error& error) {
    VISREP_FAIL("load_resnet_v2_safetensors: '{}' into {}: {}", path, model.describe(), error.what());
  }
}

}  // namespace visrep::models
