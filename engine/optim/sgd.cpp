#include "engine/optim/sgd.h"

#include <fmt/format.h>

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"

namespace visrep::optim {
namespace {

std::string state_key(size_t group, size_t parameter) { return fmt::format("group{}.param{}.momentum", group, parameter); }

}  // namespace

Sgd::Sgd(std::vector<SgdParamGroup> groups) : groups_(std::move(groups)) {
  VISREP_CHECK(!groups_.empty(), "Sgd: no parameter groups given");
  for (const SgdParamGroup& group : groups_) {
    const SgdOptions& o = group.options;
    VISREP_CHECK(o.learning_rate >= 0, "Sgd: group '{}' has a negative learning rate {}", group.name, o.learning_rate);
    VISREP_CHECK(o.momentum >= 0, "Sgd: group '{}' has a negative momentum {}", group.name, o.momentum);
    VISREP_CHECK(o.weight_decay >= 0, "Sgd: group '{}' has a negative weight decay {}", group.name, o.weight_decay);
    VISREP_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0),
                 "Sgd: group '{}': Nesterov momentum needs momentum > 0 and zero dampening", group.name);
    for (const Tensor& parameter : group.parameters) {
      VISREP_CHECK(parameter.requires_grad() && parameter.is_leaf(),
                   "Sgd: group '{}' holds a tensor that is not a trainable leaf ({})", group.name,
                   parameter.description());
    }
    momentum_buffers_.emplace_back(group.parameters.size());
  }
  base_learning_rate_ = groups_.front().options.learning_rate / groups_.front().options.lr_scale;
}

Sgd::Sgd(const std::vector<Tensor>& parameters, const SgdOptions& options)
    : Sgd(std::vector<SgdParamGroup>{{"all", parameters, options}}) {}

void Sgd::step() {
  NoGradGuard no_grad;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const SgdOptions& o = groups_[g].options;
    for (size_t i = 0; i < groups_[g].parameters.size(); ++i) {
      Tensor parameter = groups_[g].parameters[i];
      Tensor grad = parameter.grad();
      if (!grad.defined()) continue;
      if (o.weight_decay != 0) grad = add(grad, mul(parameter, o.weight_decay));
      if (o.momentum != 0) {
        Tensor& buffer = momentum_buffers_[g][i];
        if (!buffer.defined()) {
          buffer = grad.clone();
        } else {
          buffer.mul_(o.momentum).add_(grad, 1.0 - o.dampening);
        }
        grad = o.nesterov ? add(grad, mul(buffer, o.momentum)) : buffer;
      }
      parameter.add_(grad, -o.learning_rate);
    }
  }
}

void Sgd::set_learning_rate(double learning_rate) {
  base_learning_rate_ = learning_rate;
  for (SgdParamGroup& group : groups_) group.options.learning_rate = learning_rate * group.options.lr_scale;
}

double Sgd::learning_rate() const { return base_learning_rate_; }

std::vector<Tensor> Sgd::all_parameters() const {
  std::vector<Tensor> parameters;
  for (const SgdParamGroup& group : groups_) parameters.insert(parameters.end(), group.parameters.begin(), group.parameters.end());
  return parameters;
}

std::map<std::string, Tensor> Sgd::state_dict() const {
  std::map<std::string, Tensor> state;
  for (size_t g = 0; g < groups_.size(); ++g) {
    for (size_t i = 0; i < groups_[g].parameters.size(); ++i) {
      if (momentum_buffers_[g][i].defined()) state[state_key(g, i)] = momentum_buffers_[g][i];
    }
  }
  return state;
}

void Sgd::load_state_dict(const std::map<std::string, Tensor>& state) {
  for (auto& [key, tensor] : state) {
    bool known = false;
    for (size_t g = 0; g < groups_.size() && !known; ++g) {
      for (size_t i = 0; i < groups_[g].parameters.size() && !known; ++i) {
        if (key != state_key(g, i)) continue;
        const Tensor& parameter = groups_[g].parameters[i];
        VISREP_CHECK(tensor.shape() == parameter.shape(),
                     "Sgd.load_state_dict: '{}' has shape {} but its parameter has {}", key,
                     shape_string(tensor.shape()), shape_string(parameter.shape()));
        momentum_buffers_[g][i] = tensor.to(parameter.dtype()).to(parameter.device()).clone();
        known = true;
      }
    }
    VISREP_CHECK(known, "Sgd.load_state_dict: unknown key '{}' (the optimizer has {} group(s))", key, groups_.size());
  }
}

}  // namespace visrep::optim
