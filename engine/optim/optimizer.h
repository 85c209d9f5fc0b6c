// The optimizer interface: parameter groups, each with its own options (so a recipe can,
// say, exclude biases and norm parameters from weight decay), one step() per update,
// and a state dict of the per-parameter buffers for checkpoints.
#pragma once

#include <map>
#include <string>
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

}  // namespace visrep::optim
