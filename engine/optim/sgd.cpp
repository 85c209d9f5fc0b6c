#include "engine/optim/sgd.h"

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"

namespace visrep::optim {
namespace {

void check_options(const SgdParamGroup& group) {
  const SgdOptions& o = group.options;
  VISREP_CHECK(o.learning_rate >= 0, "Sgd: group '{}' has a negative learning rate {}", group.name, o.learning_rate);
  VISREP_CHECK(o.momentum >= 0, "Sgd: group '{}' has a negative momentum {}", group.name, o.momentum);
  VISREP_CHECK(o.weight_decay >= 0, "Sgd: group '{}' has a negative weight decay {}", group.name, o.weight_decay);
  VISREP_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0),
               "Sgd: group '{}': Nesterov momentum needs momentum > 0 and zero dampening", group.name);
}

}  // namespace

Sgd::Sgd(std::vector<SgdParamGroup> groups) : MomentumOptimizer("Sgd", std::move(groups), check_options) {}

Sgd::Sgd(const std::vector<Tensor>& parameters, const SgdOptions& options)
    : Sgd(std::vector<SgdParamGroup>{{"all", parameters, options}}) {}

void Sgd::step() {
  NoGradGuard no_grad;
  for (size_t g = 0; g < groups().size(); ++g) {
    const SgdOptions& o = groups()[g].options;
    for (size_t i = 0; i < groups()[g].parameters.size(); ++i) {
      Tensor parameter = groups()[g].parameters[i];
      Tensor grad = parameter.grad();
      if (!grad.defined()) continue;
      if (o.weight_decay != 0) grad = add(grad, mul(parameter, o.weight_decay));
      if (o.momentum != 0) {
        Tensor& buffer = momentum_buffer(g, i);
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

}  // namespace visrep::optim
