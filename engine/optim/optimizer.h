// The optimizer interface: parameter groups, each with its own options (so a recipe can,
// say, exclude biases and norm parameters from weight decay), one step() per update,
// and a state dict of the per-parameter buffers for checkpoints.
//
// MomentumOptimizer is the bookkeeping Sgd and Lars share: the groups, one momentum buffer
// per parameter, the schedule's base learning rate, and the buffers' checkpoint form. Each
// optimizer keeps its own options, their checks and its own update rule.
//
// The state dict is keyed by parameter name, "<name>.momentum", the way
// torch.distributed.checkpoint's get_optimizer_state_dict keys PyTorch's optimizer state by
// fully qualified parameter name instead of torch.optim's positions: a checkpoint then
// survives parameters listed in another order or split into other groups, and a buffer that
// does not fit names its parameter. The names come from the caller (the modules the
// parameters belong to), since an optimizer is built from tensors.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/nn/module.h"
#include "engine/tensor.h"

namespace visrep::optim {

class Optimizer {
 public:
  virtual ~Optimizer() = default;

  // Applies one update from the parameters' current .grad (parameters without a gradient
  // are skipped).
  virtual void step() = 0;
  // Drops every parameter's gradient (PyTorch's zero_grad(set_to_none=True)).
  void zero_grad();

  // Sets the learning rate of every group to `learning_rate` times the group's lr_scale,
  // which is how a schedule drives the optimizer.
  virtual void set_learning_rate(double learning_rate) = 0;
  virtual double learning_rate() const = 0;  // of the first group, unscaled

  // Per-parameter state (momentum buffers, ...) keyed "<parameter name>.<buffer>", e.g.
  // "encoder.stem.conv.weight.momentum". `parameters` names every parameter the optimizer
  // updates (a module's named_parameters(), with a prefix per module when there are several),
  // matched by identity; a parameter it does not name is an error. Loading the state into an
  // optimizer over parameters of the same names resumes exactly.
  virtual std::map<std::string, Tensor> state_dict(const nn::NamedTensors& parameters) const = 0;
  // Refuses, naming the key, an entry that names no parameter of the optimizer and a buffer
  // whose shape or dtype is not its parameter's (the state is never converted: a float64
  // buffer for a float32 parameter means the file is not what this run wrote); nothing is
  // loaded then. Parameters without an entry keep no state (a step creates it). Also reads
  // the position-keyed state of checkpoints written before the names ("group<g>.param<i>.momentum"),
  // which fits only the same groups in the same order.
  virtual void load_state_dict(const std::map<std::string, Tensor>& state, const nn::NamedTensors& parameters) = 0;

 protected:
  virtual std::vector<Tensor> all_parameters() const = 0;
};

// Parameters that share one set of options. Options needs learning_rate and lr_scale.
template <class Options>
struct ParamGroup {
  std::string name;  // for messages and logs, e.g. "weights" or "biases_and_norms"
  std::vector<Tensor> parameters;
  Options options;
};

namespace detail {

// The state dict's key of a parameter's momentum buffer: "<name>.momentum".
std::string momentum_state_key(const std::string& parameter_name);
// The key checkpoints written before the names used: "group<g>.param<i>.momentum" (read only).
std::string positional_momentum_state_key(size_t group, size_t parameter);
// Throws unless every parameter is defined, requires grad and is a leaf; messages start
// with "<optimizer>: group '<group>'".
void check_trainable_leaves(const char* optimizer, const std::string& group, const std::vector<Tensor>& parameters);
// The name of each (group, parameter) slot of `groups`, from `parameters` (matched by
// identity); throws, naming the slot, for a parameter it does not name.
std::vector<std::vector<std::string>> parameter_names(const char* optimizer,
                                                      const std::vector<std::vector<Tensor>>& groups,
                                                      const nn::NamedTensors& parameters);
// The (group, parameter) slot of each state dict entry (see Optimizer::load_state_dict);
// throws naming the key for an entry that names no slot, or two entries for one slot.
std::map<std::string, std::pair<size_t, size_t>> state_slots(const char* optimizer,
                                                            const std::map<std::string, Tensor>& state,
                                                            const std::vector<std::vector<std::string>>& names);
// A saved buffer checked against its parameter's shape and dtype and copied to its device.
Tensor momentum_buffer_from_state(const char* optimizer, const std::string& key, const Tensor& saved,
                                  const Tensor& parameter);

}  // namespace detail

template <class Options>
class MomentumOptimizer : public Optimizer {
 public:
  using Group = ParamGroup<Options>;

  void set_learning_rate(double learning_rate) override {
    base_learning_rate_ = learning_rate;
    for (Group& group : groups_) group.options.learning_rate = learning_rate * group.options.lr_scale;
  }
  double learning_rate() const override { return base_learning_rate_; }

  // The momentum buffers that exist (a step creates them), keyed "<parameter name>.momentum".
  std::map<std::string, Tensor> state_dict(const nn::NamedTensors& parameters) const override {
    const std::vector<std::vector<std::string>> names = detail::parameter_names(name_, group_parameters(), parameters);
    std::map<std::string, Tensor> state;
    for (size_t g = 0; g < groups_.size(); ++g) {
      for (size_t i = 0; i < groups_[g].parameters.size(); ++i) {
        if (momentum_buffers_[g][i].defined()) state[detail::momentum_state_key(names[g][i])] = momentum_buffers_[g][i];
      }
    }
    return state;
  }
  void load_state_dict(const std::map<std::string, Tensor>& state, const nn::NamedTensors& parameters) override {
    const std::vector<std::vector<std::string>> names = detail::parameter_names(name_, group_parameters(), parameters);
    // Every entry is checked before any buffer changes.
    std::vector<std::pair<std::pair<size_t, size_t>, Tensor>> loaded;
    for (const auto& [key, slot] : detail::state_slots(name_, state, names)) {
      const auto [g, i] = slot;
      loaded.push_back({slot, detail::momentum_buffer_from_state(name_, key, state.at(key), groups_[g].parameters[i])});
    }
    for (auto& [slot, buffer] : loaded) momentum_buffers_[slot.first][slot.second] = std::move(buffer);
  }

  const std::vector<Group>& groups() const { return groups_; }

 protected:
  // `name` ("Sgd", "Lars") starts every message. Each group is checked by check_options,
  // then its parameters must be trainable leaves.
  MomentumOptimizer(const char* name, std::vector<Group> groups, void (*check_options)(const Group&))
      : name_(name), groups_(std::move(groups)) {
    VISREP_CHECK(!groups_.empty(), "{}: no parameter groups given", name_);
    for (const Group& group : groups_) {
      check_options(group);
      detail::check_trainable_leaves(name_, group.name, group.parameters);
      momentum_buffers_.emplace_back(group.parameters.size());
    }
    base_learning_rate_ = groups_.front().options.learning_rate / groups_.front().options.lr_scale;
  }

  std::vector<Tensor> all_parameters() const override {
    std::vector<Tensor> parameters;
    for (const Group& group : groups_) {
      parameters.insert(parameters.end(), group.parameters.begin(), group.parameters.end());
    }
    return parameters;
  }

  // Undefined until the update rule creates it.
  Tensor& momentum_buffer(size_t group, size_t parameter) { return momentum_buffers_[group][parameter]; }

 private:
  std::vector<std::vector<Tensor>> group_parameters() const {
    std::vector<std::vector<Tensor>> parameters;
    for (const Group& group : groups_) parameters.push_back(group.parameters);
    return parameters;
  }

  const char* name_;
  std::vector<Group> groups_;
  std::vector<std::vector<Tensor>> momentum_buffers_;  // [group][param]
  double base_learning_rate_;
};

}  // namespace visrep::optim
