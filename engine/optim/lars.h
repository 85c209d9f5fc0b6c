// LARS, layer-wise adaptive rate scaling (You, Gitman and Ginsburg 2017,
// https://arxiv.org/abs/1708.03888), exactly as SimCLR trains with it: google-research/simclr
// lars_optimizer.py, LARSOptimizer with classic_momentum=True (its default). Per parameter w
// with gradient g and momentum buffer v (zeros before the first step):
//
//   g = g + weight_decay * w                      (unless excluded from weight decay)
//   trust_ratio = eeta * ||w|| / ||g||            (1 when ||w|| = 0 or ||g|| = 0, and 1 for
//                                                  parameters excluded from adaptation)
//   v = momentum * v + lr * trust_ratio * g       (the learning rate goes into the buffer)
//   w = w - v                                     (Nesterov: w - (momentum * v + lr * trust_ratio * g))
//
// Norms are L2 over the whole tensor (a layer's weight is one "layer" for the ratio).
// SimCLR excludes batch-norm parameters and biases from both weight decay and adaptation,
// by variable name ('batch_normalization', 'bias'); here that is the explicit predicate
// is_bias_or_norm_parameter (a parameter of dim <= 1: every bias and every BN/GN gamma and
// beta is 1-D, every convolution and linear weight is >= 2-D), applied by
// lars_parameter_groups. The "popular momentum" variant (classic_momentum=False) is not
// implemented: nothing in SimCLR uses it.
//
// Runs on CPU and CUDA tensors with engine ops only; the trust ratio stays on the device
// (no host synchronisation per parameter).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/nn/module.h"
#include "engine/optim/optimizer.h"

namespace visrep::optim {

struct LarsOptions {
  double learning_rate = 0.1;        // already batch-scaled, see scale_learning_rate
  double momentum = 0.9;             // SimCLR's default
  double weight_decay = 0.0;         // SimCLR pretraining uses 1e-6
  double trust_coefficient = 0.001;  // eeta, SimCLR's EETA_DEFAULT
  bool layer_adaptation = true;      // false: plain momentum SGD with the lr inside the buffer
  bool nesterov = false;             // SimCLR's use_nesterov
  double lr_scale = 1.0;             // this group's learning rate relative to the schedule's value
};

using LarsParamGroup = ParamGroup<LarsOptions>;

// SimCLR's exclusion rule made explicit: biases and normalisation parameters (dim <= 1) get
// neither weight decay nor the trust ratio.
bool is_bias_or_norm_parameter(const std::string& name, const Tensor& parameter);

using ParameterPredicate = std::function<bool(const std::string& name, const Tensor& parameter)>;

// Splits named parameters (nn::Module::named_parameters()) into at most two groups:
// "weights" with `options`, and "biases_and_norms" (those `excluded` accepts) with the same
// options but weight_decay = 0 and layer_adaptation = false. Empty groups are dropped.
std::vector<LarsParamGroup> lars_parameter_groups(const nn::NamedTensors& named_parameters,
                                                  const LarsOptions& options,
                                                  const ParameterPredicate& excluded = is_bias_or_norm_parameter);

// Groups, learning rate and the momentum buffers' state dict ("group<g>.param<i>.momentum",
// as Sgd's) come from MomentumOptimizer.
class Lars : public MomentumOptimizer<LarsOptions> {
 public:
  explicit Lars(std::vector<LarsParamGroup> groups);
  // One group, every parameter adapted and decayed (use lars_parameter_groups for SimCLR's rule).
  Lars(const std::vector<Tensor>& parameters, const LarsOptions& options);

  void step() override;
  // As MomentumOptimizer's, after rejecting a learning rate that is negative or not finite.
  void set_learning_rate(double learning_rate) override;
};

}  // namespace visrep::optim
