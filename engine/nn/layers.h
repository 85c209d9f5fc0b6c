// The standard layers: Linear, Conv2d, BatchNorm, activations, pooling, containers.
// Defaults and initialisation follow PyTorch, so a visrep model and its PyTorch twin start
// from the same distributions and their state dicts use the same names.
#pragma once

#include <initializer_list>
#include <memory>
#include <vector>

#include "engine/nn/module.h"
#include "engine/ops/conv2d.h"

namespace visrep::nn {

// y = x W^T + b. weight (out, in) and bias start uniform in +-1/sqrt(in) (PyTorch's
// kaiming_uniform with a = sqrt(5)).
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Linear"; }
  std::string describe() const override;

  Parameter weight;
  Parameter bias;  // undefined without bias
};

struct Conv2dConfig {
  Pair stride = {1, 1};
  Pair padding = {0, 0};
  Pair dilation = {1, 1};
  int64_t groups = 1;
  bool bias = true;
};

// 2-D convolution; weight (out, in / groups, kH, kW) initialised as PyTorch's Conv2d.
class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, Pair kernel, const Conv2dConfig& config = {});
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, const Conv2dConfig& config = {})
      : Conv2d(in_channels, out_channels, Pair{kernel, kernel}, config) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Conv2d"; }
  std::string describe() const override;
  Conv2dOptions options() const;

  Parameter weight;
  Parameter bias;
  const Conv2dConfig config;
};

struct BatchNormConfig {
  double eps = 1e-5;
  double momentum = 0.1;
  bool affine = true;               // learnable weight (gamma = 1) and bias (beta = 0)
  bool track_running_stats = true;  // keep running_mean/var for evaluation
};

// Batch normalisation of (N, C, H, W) inputs (BatchNorm2d) or (N, C) inputs (BatchNorm1d).
// Buffers: running_mean, running_var, num_batches_tracked (as in PyTorch's state dict).
class BatchNorm : public Module {
 public:
  BatchNorm(int64_t channels, int64_t expected_rank, const BatchNormConfig& config);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return expected_rank_ == 4 ? "BatchNorm2d" : "BatchNorm1d"; }
  std::string describe() const override;

  Parameter weight;
  Parameter bias;
  Tensor running_mean;
  Tensor running_var;
  Tensor num_batches_tracked;
  const BatchNormConfig config;

 private:
  int64_t channels_;
  int64_t expected_rank_;
};

class BatchNorm2d : public BatchNorm {
 public:
  explicit BatchNorm2d(int64_t channels, const BatchNormConfig& config = {}) : BatchNorm(channels, 4, config) {}
};

class BatchNorm1d : public BatchNorm {
 public:
  explicit BatchNorm1d(int64_t channels, const BatchNormConfig& config = {}) : BatchNorm(channels, 2, config) {}
};

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "ReLU"; }
};

class Identity : public Module {
 public:
  Tensor forward(const Tensor& x) override { return x; }
  std::string type_name() const override { return "Identity"; }
};

// Flattens dims [start_dim, end_dim] (default: everything but the batch).
class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1) : start_dim_(start_dim), end_dim_(end_dim) {}
  Tensor forward(const Tensor& x) override { return x.flatten(start_dim_, end_dim_); }
  std::string type_name() const override { return "Flatten"; }

 private:
  int64_t start_dim_, end_dim_;
};

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(const Pool2dOptions& options) : options_(options) {}
  Tensor forward(const Tensor& x) override { return max_pool2d(x, options_); }
  std::string type_name() const override { return "MaxPool2d"; }
  std::string describe() const override;

 private:
  Pool2dOptions options_;
};

// (N, C, H, W) -> (N, C).
class GlobalAvgPool2d : public Module {
 public:
  Tensor forward(const Tensor& x) override { return global_avg_pool2d(x); }
  std::string type_name() const override { return "GlobalAvgPool2d"; }
};

// Applies its children in order; they are named "0", "1", ... as in PyTorch.
class Sequential : public Module {
 public:
  Sequential() = default;
  Sequential(std::initializer_list<ModulePtr> modules);
  void push_back(ModulePtr module);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Sequential"; }
  size_t size() const { return modules_.size(); }
  const ModulePtr& operator[](size_t index) const { return modules_.at(index); }

 private:
  std::vector<ModulePtr> modules_;
};

}  // namespace visrep::nn
