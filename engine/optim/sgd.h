// Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight
// decay, exactly as torch.optim.SGD:
//   g = grad + weight_decay * p
//   b = momentum * b + (1 - dampening) * g        (b = g on the first step)
//   g = nesterov ? g + momentum * b : b
//   p = p - lr * g
#pragma once

#include <string>
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

struct SgdParamGroup {
  std::string name;  // for messages and logs, e.g. "weights" or "norms_and_biases"
  std::vector<Tensor> parameters;
  SgdOptions options;
};

class Sgd : public Optimizer {
 public:
  explicit Sgd(std::vector<SgdParamGroup> groups);
  Sgd(const std::vector<Tensor>& parameters, const SgdOptions& options);

  void step() override;
  void set_learning_rate(double learning_rate) override;
  double learning_rate() const override;
  std::map<std::string, Tensor> state_dict() const override;
  void load_state_dict(const std::map<std::string, Tensor>& state) override;

  const std::vector<SgdParamGroup>& groups() const { return groups_; }

 protected:
  std::vector<Tensor> all_parameters() const override;

 private:
  std::vector<SgdParamGroup> groups_;
  std::vector<std::vector<Tensor>> momentum_buffers_;  // [group][param], undefined until the first step
  double base_learning_rate_;
};

}  // namespace visrep::optim
