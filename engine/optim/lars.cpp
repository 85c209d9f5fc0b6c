#include "engine/optim/lars.h"

#include <cmath>

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduction.h"

namespace visrep::optim {
namespace {

// ||x||_2 over every element, as a 0-dim tensor on x's device.
Tensor l2_norm(const Tensor& x) { return sqrt(sum(mul(x, x))); }

// lars_optimizer.py: eeta * ||w|| / ||g|| where both norms are positive, else 1. Computed on
// the device; the division's inf/nan where ||g|| = 0 is discarded by the where().
Tensor trust_ratio(const Tensor& parameter, const Tensor& grad, double trust_coefficient) {
  Tensor weight_norm = l2_norm(parameter);
  Tensor grad_norm = l2_norm(grad);
  Tensor one = ones_like(weight_norm);
  Tensor ratio = div(mul(weight_norm, trust_coefficient), grad_norm);
  return where(gt(weight_norm, 0.0), where(gt(grad_norm, 0.0), ratio, one), one);
}

void check_options(const LarsParamGroup& group) {
  const LarsOptions& o = group.options;
  VISREP_CHECK(std::isfinite(o.learning_rate) && o.learning_rate >= 0,
               "Lars: group '{}' has an invalid learning rate {} (must be finite and >= 0)", group.name,
               o.learning_rate);
  VISREP_CHECK(o.momentum >= 0 && o.momentum < 1, "Lars: group '{}' has momentum {} outside [0, 1)", group.name,
               o.momentum);
  VISREP_CHECK(o.weight_decay >= 0, "Lars: group '{}' has a negative weight decay {}", group.name, o.weight_decay);
  VISREP_CHECK(o.trust_coefficient > 0, "Lars: group '{}' has a trust coefficient (eeta) {} that is not positive",
               group.name, o.trust_coefficient);
  VISREP_CHECK(o.lr_scale > 0, "Lars: group '{}' has lr_scale {} that is not positive", group.name, o.lr_scale);
  VISREP_CHECK(!o.nesterov || o.momentum > 0, "Lars: group '{}': Nesterov momentum needs momentum > 0", group.name);
}

}  // namespace

bool is_bias_or_norm_parameter(const std::string& /*name*/, const Tensor& parameter) { return parameter.dim() <= 1; }

std::vector<LarsParamGroup> lars_parameter_groups(const nn::NamedTensors& named_parameters, const LarsOptions& options,
                                                  const ParameterPredicate& excluded) {
  LarsParamGroup weights{"weights", {}, options};
  LarsParamGroup plain{"biases_and_norms", {}, options};
  plain.options.weight_decay = 0.0;
  plain.options.layer_adaptation = false;
  for (const auto& [name, parameter] : named_parameters) {
    (excluded(name, parameter) ? plain : weights).parameters.push_back(parameter);
  }
  std::vector<LarsParamGroup> groups;
  for (LarsParamGroup* group : {&weights, &plain}) {
    if (!group->parameters.empty()) groups.push_back(std::move(*group));
  }
  VISREP_CHECK(!groups.empty(), "lars_parameter_groups: no parameters given");
  return groups;
}

Lars::Lars(std::vector<LarsParamGroup> groups) : MomentumOptimizer("Lars", std::move(groups), check_options) {}

Lars::Lars(const std::vector<Tensor>& parameters, const LarsOptions& options)
    : Lars(std::vector<LarsParamGroup>{{"all", parameters, options}}) {}

void Lars::step() {
  NoGradGuard no_grad;
  for (size_t g = 0; g < groups().size(); ++g) {
    const LarsOptions& o = groups()[g].options;
    for (size_t i = 0; i < groups()[g].parameters.size(); ++i) {
      Tensor parameter = groups()[g].parameters[i];
      Tensor grad = parameter.grad();
      if (!grad.defined()) continue;
      // Weight decay joins the gradient before the trust ratio sees it (lars_optimizer.py).
      if (o.weight_decay != 0) grad = add(grad, mul(parameter, o.weight_decay));
      // lr * trust_ratio * g: a 0-dim device tensor times g when adapting, a scalar otherwise.
      Tensor scaled_grad = o.layer_adaptation
                               ? mul(grad, mul(trust_ratio(parameter, grad, o.trust_coefficient), o.learning_rate))
                               : mul(grad, o.learning_rate);
      Tensor& buffer = momentum_buffer(g, i);
      if (!buffer.defined()) buffer = zeros_like(parameter);  // SimCLR's zeros_initializer
      buffer.mul_(o.momentum).add_(scaled_grad);
      if (o.nesterov) {
        parameter.add_(buffer, -o.momentum).add_(scaled_grad, -1.0);
      } else {
        parameter.add_(buffer, -1.0);
      }
    }
  }
}

void Lars::set_learning_rate(double learning_rate) {
  VISREP_CHECK(std::isfinite(learning_rate) && learning_rate >= 0,
               "Lars.set_learning_rate: invalid learning rate {} (must be finite and >= 0)", learning_rate);
  MomentumOptimizer::set_learning_rate(learning_rate);
}

}  // namespace visrep::optim
