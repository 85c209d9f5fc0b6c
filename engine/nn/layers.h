// The standard layers: Linear, Conv2d, BatchNorm, activations, pooling, containers, and
// the two of BiT's ResNetV2 (Kolesnikov et al. 2020, sec. 2.1 and 4.3): GroupNorm and
// StdConv2d, a convolution whose weight is standardised on every forward pass
// (big_transfer's bit_pytorch/models.py). Defaults and initialisation follow PyTorch, so a
// visrep model and its PyTorch twin start from the same distributions and their state
// dicts use the same names.
#pragma once

#include <initializer_list>
#include <memory>
#include <vector>

#include "engine/distributed/collectives.h"
#include "engine/nn/module.h"
#include "engine/ops/conv2d.h"
#include "engine/ops/pool.h"

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
  // SyncBatchNorm: when set, training mode normalises with the statistics of the batch over
  // every rank of this job (sync_batch_norm, engine/ops/batch_norm.h); null (the default):
  // with this process's batch alone. synchronize_batch_norm() sets it on a whole model. Not
  // owned: the job's communicator outlives the model's use. The state dict is the same
  // either way.
  distributed::Collectives* sync_ranks = nullptr;

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

// Makes every BatchNorm of `model` synchronise its statistics over `ranks` (null: back to each
// rank's own batch), as PyTorch's nn.SyncBatchNorm.convert_sync_batchnorm does; returns how
// many layers it set.
int64_t synchronize_batch_norm(Module& model, distributed::Collectives* ranks);

struct GroupNormConfig {
  double eps = 1e-5;
  bool affine = true;  // learnable weight (gamma = 1) and bias (beta = 0), one per channel
  bool relu = false;   // fuse the ReLU that follows (BiT's pre-activation GN -> ReLU)
};

// Group normalisation (Wu & He 2018; engine/ops/group_norm.h) of (N, C, ...) inputs:
// channels in `groups` groups, each (sample, group) normalised over its channels and
// positions. Parameters "weight" and "bias" as in PyTorch's nn.GroupNorm, so state dicts
// carry over.
class GroupNorm : public Module {
 public:
  GroupNorm(int64_t groups, int64_t channels, const GroupNormConfig& config = {});
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "GroupNorm"; }
  std::string describe() const override;

  Parameter weight;  // undefined without affine
  Parameter bias;
  const int64_t groups;
  const int64_t channels;
  const GroupNormConfig config;
};

struct StdConv2dConfig {
  Pair stride = {1, 1};
  Pair padding = {0, 0};
  Pair dilation = {1, 1};
  int64_t groups = 1;
  bool bias = false;   // BiT's convolutions have none
  double eps = 1e-10;  // big_transfer's StdConv2d; timm's BiT models use 1e-8
};

// A 2-D convolution whose weight is standardised per output channel before every use
// (Qiao et al. 2019; engine/ops/weight_standardization.h): conv2d(x, (w - mean) /
// sqrt(var + eps), bias). The trained parameter
// is the raw weight, initialised as Conv2d's; state dict names as PyTorch's Conv2d.
class StdConv2d : public Conv2d {
 public:
  StdConv2d(int64_t in_channels, int64_t out_channels, Pair kernel, const StdConv2dConfig& config = {});
  StdConv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, const StdConv2dConfig& config = {})
      : StdConv2d(in_channels, out_channels, Pair{kernel, kernel}, config) {}

  Tensor forward(const Tensor& x) override;
  // The convolution with a weight standardised elsewhere, e.g. by one multi-tensor call
  // over every StdConv2d of a model (standardized_weights below).
  Tensor forward(const Tensor& x, const Tensor& standardized_weight);
  // (w - mean) / sqrt(var + eps) of the current weight, differentiable.
  Tensor standardized_weight() const;

  std::string type_name() const override { return "StdConv2d"; }
  std::string describe() const override;

  const double eps;
};

// The standardised weights of several StdConv2d layers in one kernel call forward and one
// backward (weight_standardization over a list). The layers must share eps, dtype and
// device. Returns one weight per layer, in order, for StdConv2d::forward(x, weight).
std::vector<Tensor> standardized_weights(const std::vector<const StdConv2d*>& layers);

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
