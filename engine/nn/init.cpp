#include "engine/nn/init.h"

#include <cmath>

#include "engine/autograd.h"

namespace visrep::nn::init {
namespace {

int64_t receptive_field(const Tensor& weight) {
  int64_t size = 1;
  for (int64_t d = 2; d < weight.dim(); ++d) size *= weight.size(d);
  return size;
}

int64_t fan(const Tensor& weight, FanMode mode) { return mode == FanMode::FanIn ? fan_in(weight) : fan_out(weight); }

}  // namespace

int64_t fan_in(const Tensor& weight) {
  VISREP_CHECK(weight.dim() >= 2, "init: fan_in needs a weight with at least 2 dimensions, got {}",
               shape_string(weight.shape()));
  return weight.size(1) * receptive_field(weight);
}

int64_t fan_out(const Tensor& weight) {
  VISREP_CHECK(weight.dim() >= 2, "init: fan_out needs a weight with at least 2 dimensions, got {}",
               shape_string(weight.shape()));
  return weight.size(0) * receptive_field(weight);
}

double gain(Nonlinearity nonlinearity, double negative_slope) {
  switch (nonlinearity) {
    case Nonlinearity::Linear: return 1.0;
    case Nonlinearity::ReLU: return std::sqrt(2.0);
    case Nonlinearity::LeakyReLU: return std::sqrt(2.0 / (1.0 + negative_slope * negative_slope));
  }
  return 1.0;
}

void kaiming_normal_(Tensor& weight, FanMode mode, Nonlinearity nonlinearity, double negative_slope,
                     Generator& generator) {
  const double std = gain(nonlinearity, negative_slope) / std::sqrt(static_cast<double>(fan(weight, mode)));
  visrep::normal_(weight, 0.0, std, generator);
}

void kaiming_uniform_(Tensor& weight, FanMode mode, Nonlinearity nonlinearity, double negative_slope,
                      Generator& generator) {
  const double bound = gain(nonlinearity, negative_slope) * std::sqrt(3.0 / static_cast<double>(fan(weight, mode)));
  visrep::uniform_(weight, -bound, bound, generator);
}

void normal_(Tensor& tensor, double mean, double std, Generator& generator) {
  visrep::normal_(tensor, mean, std, generator);
}

void uniform_(Tensor& tensor, double low, double high, Generator& generator) {
  visrep::uniform_(tensor, low, high, generator);
}

void constant_(Tensor& tensor, double value) {
  NoGradGuard no_grad;
  tensor.fill_(value);
}

void zeros_(Tensor& tensor) { constant_(tensor, 0.0); }

}  // namespace visrep::nn::init
