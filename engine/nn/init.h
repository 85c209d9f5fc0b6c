// Weight initialisers, in place and without autograd, with PyTorch's definitions
// (torch.nn.init) so that models start from the same distributions.
#pragma once

#include "engine/random.h"
#include "engine/tensor.h"

namespace visrep::nn::init {

enum class FanMode { FanIn, FanOut };
enum class Nonlinearity { Linear, ReLU, LeakyReLU };

// fan_in = size(1) * receptive field, fan_out = size(0) * receptive field (2-D and up).
int64_t fan_in(const Tensor& weight);
int64_t fan_out(const Tensor& weight);
// The gain of torch.nn.init.calculate_gain: 1 (linear), sqrt(2) (relu),
// sqrt(2 / (1 + a^2)) (leaky relu with slope a).
double gain(Nonlinearity nonlinearity, double negative_slope = 0.0);

// He et al. 2015: std = gain / sqrt(fan).
void kaiming_normal_(Tensor& weight, FanMode mode = FanMode::FanIn, Nonlinearity nonlinearity = Nonlinearity::ReLU,
                     double negative_slope = 0.0, Generator& generator = default_generator());
// Uniform in [-bound, bound], bound = gain * sqrt(3 / fan).
void kaiming_uniform_(Tensor& weight, FanMode mode = FanMode::FanIn, Nonlinearity nonlinearity = Nonlinearity::ReLU,
                      double negative_slope = 0.0, Generator& generator = default_generator());
void normal_(Tensor& tensor, double mean = 0.0, double std = 1.0, Generator& generator = default_generator());
void uniform_(Tensor& tensor, double low = 0.0, double high = 1.0, Generator& generator = default_generator());
void constant_(Tensor& tensor, double value);
void zeros_(Tensor& tensor);

}  // namespace visrep::nn::init
