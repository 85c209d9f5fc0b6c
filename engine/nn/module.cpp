#include "engine/nn/module.h"

#include <set>

#include "engine/autograd.h"

namespace visrep::nn {
namespace {

// Points every handle of `target` at the data of `source` (same TensorImpl, new storage),
// keeping its autograd flags; the old gradient, on the old device or dtype, is dropped.
void replace_data(const Tensor& target, const Tensor& source) {
  TensorImpl& impl = *target.impl();
  impl.storage = source.storage();
  impl.offset = source.storage_offset();
  impl.shape = source.shape();
  impl.strides = source.strides();
  impl.dtype = source.dtype();
  impl.grad = nullptr;
}

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

}  // namespace

Tensor Module::register_parameter(const std::string& name, Tensor tensor) {
  VISREP_CHECK(tensor.defined(), "{}: parameter '{}' is undefined", type_name(), name);
  tensor.set_requires_grad(true);
  parameters_.emplace_back(name, tensor);
  return tensor;
}

Tensor Module::register_buffer(const std::string& name, Tensor tensor) {
  VISREP_CHECK(tensor.defined(), "{}: buffer '{}' is undefined", type_name(), name);
  buffers_.emplace_back(name, tensor);
  return tensor;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
  VISREP_CHECK(module != nullptr, "{}: child module '{}' is null", type_name(), name);
  children_.emplace_back(name, std::move(module));
}

void Module::collect(const std::string& prefix, bool parameters, NamedTensors& out) const {
  for (const auto& [name, tensor] : parameters ? parameters_ : buffers_) out.emplace_back(join(prefix, name), tensor);
  for (const auto& [name, child] : children_) child->collect(join(prefix, name), parameters, out);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  collect("", true, out);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  collect("", false, out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, tensor] : named_parameters()) out.push_back(tensor);
  return out;
}

int64_t Module::parameter_count() const {
  int64_t count = 0;
  for (const Tensor& parameter : parameters()) count += parameter.numel();
  return count;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::apply(const std::function<void(Module&)>& function) {
  for (auto& [name, child] : children_) child->apply(function);
  function(*this);
}

void Module::zero_grad() {
  for (const Tensor& parameter : parameters()) parameter.set_grad(Tensor());
}

void Module::to(Device device) {
  NoGradGuard no_grad;
  for (auto& [name, tensor] : named_parameters()) replace_data(tensor, tensor.to(device));
  for (auto& [name, tensor] : named_buffers()) replace_data(tensor, tensor.to(device));
}

void Module::to(DType dtype) {
  VISREP_CHECK(is_floating(dtype), "{}.to: modules convert to floating dtypes only, got {}", type_name(),
               dtype_name(dtype));
  NoGradGuard no_grad;
  for (auto& [name, tensor] : named_parameters()) replace_data(tensor, tensor.to(dtype));
  for (auto& [name, tensor] : named_buffers()) {
    if (is_floating(tensor.dtype())) replace_data(tensor, tensor.to(dtype));
  }
}

std::map<std::string, Tensor> Module::state_dict() const {
  std::map<std::string, Tensor> state;
  for (auto& [name, tensor] : named_parameters()) state[name] = tensor.detach();
  for (auto& [name, tensor] : named_buffers()) state[name] = tensor.detach();
  return state;
}

void Module::load_state_dict(const std::map<std::string, Tensor>& state, bool strict) {
  NamedTensors targets = named_parameters();
  NamedTensors buffers = named_buffers();
  targets.insert(targets.end(), buffers.begin(), buffers.end());

  std::set<std::string> expected;
  std::vector<std::string> missing;
  for (auto& [name, target] : targets) {
    expected.insert(name);
    auto found = state.find(name);
    if (found == state.end()) {
      missing.push_back(name);
      continue;
    }
    VISREP_CHECK(found->second.shape() == target.shape(),
                 "load_state_dict: '{}' has shape {} in the state dict but {} in the {}", name,
                 shape_string(found->second.shape()), shape_string(target.shape()), type_name());
    // No silent conversion: an int32 tensor where the module keeps float32 means the file
    // is not what it claims to be. A caller that means to convert (float32 weights into a
    // float64 model) converts first.
    VISREP_CHECK(found->second.dtype() == target.dtype(),
                 "load_state_dict: '{}' is {} in the state dict but {} in the {} (convert it first if that is meant)",
                 name, dtype_name(found->second.dtype()), dtype_name(target.dtype()), type_name());
  }
  std::vector<std::string> unexpected;
  for (auto& [name, tensor] : state) {
    if (!expected.count(name)) unexpected.push_back(name);
  }
  if (strict) {
    VISREP_CHECK(missing.empty(), "load_state_dict: {} key(s) missing from the state dict, first '{}'", missing.size(),
                 missing.empty() ? "" : missing.front());
    VISREP_CHECK(unexpected.empty(), "load_state_dict: {} unexpected key(s) in the state dict, first '{}'",
                 unexpected.size(), unexpected.empty() ? "" : unexpected.front());
  }
  NoGradGuard no_grad;
  for (auto& [name, target] : targets) {
    auto found = state.find(name);
    if (found != state.end()) Tensor(target).copy_(found->second);
  }
}

void Module::describe_tree(const std::string& name, int depth, std::string& out) const {
  out += std::string(static_cast<size_t>(2 * depth), ' ');
  if (!name.empty()) out += "(" + name + "): ";
  out += describe() + "\n";
  for (const auto& [child_name, child] : children_) child->describe_tree(child_name, depth + 1, out);
}

std::string Module::to_string() const {
  std::string out;
  describe_tree("", 0, out);
  return out;
}

}  // namespace visrep::nn
