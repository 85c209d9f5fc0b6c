// The optimizer interface: parameter groups, each with its own options (so a recipe can,
// say, exclude biases and norm parameters from weight decay), one step() per update,
// and a state dict of the per-parameter buffers for checkpoints.
//
// MomentumOptimizer is the bookkeeping Sgd and Lars share: the groups, one momentum buffer
// per parameter, the schedule's base learning rate, and the buffers' checkpoint form. Each
// optimizer keeps its own options, their checks and its own update rule.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <utility>
#include <vector>

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

  // Per-parameter state (momentum buffers, ...) keyed "group<g>.param<i>.<name>"; loading
  // it into an optimizer over the same parameters resumes exactly.
  virtual std::map<std::string, Tensor> state_dict() const = 0;
  virtual void load_state_dict(const std::map<std::string, Tensor>& state) = 0;

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

// The checkpoint name of a momentum buffer: "group<g>.param<i>.momentum". Saved checkpoints
// depend on it.
std::string momentum_state_key(size_t group, size_t parameter);
// Throws unless every parameter is defined, requires grad and is a leaf; messages start
// with "<optimizer>: group '<group>'".
void check_trainable_leaves(const char* optimizer, const std::string& group, const std::vector<Tensor>& parameters);
// A saved buffer checked against its parameter's shape and copied to its dtype and device.
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

  // The momentum buffers that exist (a step creates them), keyed "group<g>.param<i>.momentum".
  std::map<std::string, Tensor> state_dict() const override {
    std::map<std::string, Tensor> state;
    for (size_t g = 0; g < groups_.size(); ++g) {
      for (size_t i = 0; i < groups_[g].parameters.size(); ++i) {
        if (momentum_buffers_[g][i].defined()) state[detail::momentum_state_key(g, i)] = momentum_buffers_[g][i];
      }
    }
    return state;
  }
  void load_state_dict(const std::map<std::string, Tensor>& state) override {
    std::map<std::string, std::pair<size_t, size_t>> slots;  // key -> (group, parameter)
    for (size_t g = 0; g < groups_.size(); ++g) {
      for (size_t i = 0; i < groups_[g].parameters.size(); ++i) slots[detail::momentum_state_key(g, i)] = {g, i};
    }
    for (const auto& [key, tensor] : state) {
      const auto slot = slots.find(key);
      VISREP_CHECK(slot != slots.end(), "{}.load_state_dict: unknown key '{}' (the optimizer has {} group(s))", name_,
                   key, groups_.size());
      const auto [g, i] = slot->second;
      momentum_buffers_[g][i] = detail::momentum_buffer_from_state(name_, key, tensor, groups_[g].parameters[i]);
    }
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
  const char* name_;
  std::vector<Group> groups_;
  std::vector<std::vector<Tensor>> momentum_buffers_;  // [group][param]
  double base_learning_rate_;
};

}  // namespace visrep::optim
