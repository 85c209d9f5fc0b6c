// Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight
// decay, exactly as torch.optim.SGD:
//   g = grad + weight_decay * p
//   b = momentum * b + (1 - dampening) * g        (b = g on the first step)
//   g = nesterov ? g + momentum * b : b
//   p = p - lr * g
#pragma once

#include <vector>

#include "engine/optim/optimizer.h"

namespace visrep::optim {

struct SgdOptions {
  double learning_rate = 0.1;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
  double lr_scale = 1.0;  // this group's learning rate relative to the schedule's value
};

using SgdParamGroup = ParamGroup<SgdOptions>;

// Groups, learning rate and the momentum buffers' state dict come from MomentumOptimizer.
class Sgd : public MomentumOptimizer<SgdOptions> {
 public:
  explicit Sgd(std::vector<SgdParamGroup> groups);
  Sgd(const std::vector<Tensor>& parameters, const SgdOptions& options);

  void step() override;
};

}  // namespace visrep::optim
