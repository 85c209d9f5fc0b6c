// Module: the building block of models, in the manner of torch.nn.Module and flashlight's
// Module. A module owns named parameters (tensors trained by the optimizer), named
// buffers (state that is saved but not trained, such as BatchNorm's running statistics)
// and named child modules; names join with dots ("layer1.0.conv1.weight"), so a state
// dict reads like PyTorch's and timm's.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace visrep::nn {

// A parameter is a Tensor that requires a gradient and is registered with a module.
using Parameter = Tensor;

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  virtual ~Module() = default;

  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }

  // The type, e.g. "Conv2d", and its settings, e.g. "Conv2d(3, 64, kernel=3, stride=1)".
  virtual std::string type_name() const = 0;
  virtual std::string describe() const { return type_name(); }
  // The whole tree, one module per line, indented.
  std::string to_string() const;

  // Recursive, in registration order, with dotted names.
  NamedTensors named_parameters() const;
  NamedTensors named_buffers() const;
  std::vector<Tensor> parameters() const;
  int64_t parameter_count() const;

  // Train/eval mode, set on the whole tree (BatchNorm uses batch or running statistics).
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Drops the gradient of every parameter.
  void zero_grad();

  // Calls function on every module of the tree, each child's subtree before its parent, this
  // module last (PyTorch's Module.apply).
  void apply(const std::function<void(Module&)>& function);

  // Moves (converts) every parameter and buffer in place: tensors held elsewhere, such as
  // a layer's own `weight` member or an optimizer's list, see the change.
  void to(Device device);
  void to(DType dtype);  // floating parameters and buffers only; integer buffers stay

  // Parameters and buffers by dotted name (detached views of the live tensors).
  std::map<std::string, Tensor> state_dict() const;
  // Copies values in. strict: every key of the module must be present and no others;
  // a shape or dtype mismatch is always an error naming the key and both shapes or dtypes
  // (values are never converted on the way in). Nothing is copied unless every key fits.
  void load_state_dict(const std::map<std::string, Tensor>& state, bool strict = true);

 protected:
  // Registers `tensor` as a parameter (requires_grad is set) and returns the stored handle.
  Tensor register_parameter(const std::string& name, Tensor tensor);
  Tensor register_buffer(const std::string& name, Tensor tensor);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> module);
  void collect(const std::string& prefix, bool parameters, NamedTensors& out) const;
  void describe_tree(const std::string& name, int depth, std::string& out) const;

  NamedTensors parameters_;
  NamedTensors buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

using ModulePtr = std::shared_ptr<Module>;

}  // namespace visrep::nn
