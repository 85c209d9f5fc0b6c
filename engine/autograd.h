// Reverse-mode automatic differentiation, define-by-run.
//
// Every differentiable op computes its output, then calls record(): when grad mode is on
// and an input requires a gradient, the output gets a grad_fn node holding the op's
// backward function (a lambda over the tensors it saved) and one edge per input. backward()
// walks the nodes reachable from the root in reverse topological order, so each node runs
// once, after every gradient flowing into it has been summed. Leaves accumulate into .grad;
// intermediate gradients are dropped as soon as they are consumed.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tensor.h"

namespace visrep {

using TensorList = std::vector<Tensor>;

// ---- grad mode ---------------------------------------------------------------------------
bool grad_enabled();
void set_grad_enabled(bool enabled);

// Disables graph recording in its scope (evaluation, optimizer updates).
class NoGradGuard {
 public:
  NoGradGuard() : previous_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// ---- saved tensors -------------------------------------------------------------------------
// A tensor an op keeps for its backward pass. It holds a detached alias (so a node that
// saves its own output creates no reference cycle) and the storage version at save time:
// if the data is overwritten in place before backward runs, get() throws instead of
// silently returning a wrong gradient.
class SavedTensor {
 public:
  SavedTensor() = default;
  SavedTensor(const Tensor& tensor);  // NOLINT: implicit, so lambdas can capture [x = SavedTensor(x)]
  const Tensor& get() const;
  bool defined() const { return tensor_.defined(); }

 private:
  Tensor tensor_;
  uint64_t version_ = 0;
};

// ---- graph ------------------------------------------------------------------------------------
class Node {
 public:
  virtual ~Node() = default;
  virtual std::string_view name() const = 0;
  // The gradients of the op's inputs given the gradient of its output; an undefined tensor
  // for an input that needs none.
  virtual TensorList apply(const Tensor& grad_output) = 0;

  // next[i]: the node that receives input i's gradient (null: input i needs no gradient).
  std::vector<std::shared_ptr<Node>> next;
  // Shape and dtype of each input, to check what apply() returns.
  std::vector<Shape> input_shapes;
  std::vector<DType> input_dtypes;
};

using BackwardFunction = std::function<TensorList(const Tensor& grad_output)>;

// True when grad mode is on and at least one input requires a gradient.
bool needs_grad(const TensorList& inputs);

// Attaches `output` to the graph as the result of op `name` applied to `inputs`, with
// `backward` mapping the output's gradient to one gradient per input. Does nothing (and
// returns output unchanged) when needs_grad(inputs) is false.
Tensor record(std::string_view name, Tensor output, const TensorList& inputs, BackwardFunction backward);

// The engine behind Tensor::backward().
void run_backward(const Tensor& root, const Tensor& seed);

}  // namespace visrep
