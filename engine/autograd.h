// Reverse-mode automatic differentiation, define-by-run.
//
// Every differentiable op computes its outputs, then calls record(): when grad mode is on
// and an input requires a gradient, the outputs get one grad_fn node holding the op's
// backward function (a lambda over the tensors it saved) and one edge per input; output k
// of a several-output op remembers that it is output k of that node. backward() walks the
// nodes reachable from the roots in reverse topological order, so each node runs once,
// after every gradient flowing into each of its outputs has been summed. Leaves accumulate
// into .grad; intermediate gradients are dropped as soon as they are consumed.
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
class Node;

// Where a gradient goes: output `output` of `node`.
struct Edge {
  std::shared_ptr<Node> node;
  size_t output = 0;
};

class Node {
 public:
  virtual ~Node() = default;
  virtual std::string_view name() const = 0;
  // The gradients of the op's inputs given those of its outputs: grad_outputs[k] is the
  // summed gradient of output k, undefined when none reached it (at least one did). Returns
  // one gradient per input; an undefined tensor for an input that needs none.
  virtual TensorList apply(const TensorList& grad_outputs) = 0;

  // next[i]: where input i's gradient goes (a null node: input i needs no gradient).
  std::vector<Edge> next;
  // Shape and dtype of each input, to check what apply() returns.
  std::vector<Shape> input_shapes;
  std::vector<DType> input_dtypes;
  size_t output_count = 1;
};

using BackwardFunction = std::function<TensorList(const Tensor& grad_output)>;
using MultiOutputBackwardFunction = std::function<TensorList(const TensorList& grad_outputs)>;

// True when grad mode is on and at least one input requires a gradient.
bool needs_grad(const TensorList& inputs);

// Attaches `output` to the graph as the result of op `name` applied to `inputs`, with
// `backward` mapping the output's gradient to one gradient per input. Does nothing (and
// returns output unchanged) when needs_grad(inputs) is false.
Tensor record(std::string_view name, Tensor output, const TensorList& inputs, BackwardFunction backward);

// The same for an op with several outputs (one call computing many results, e.g. the list
// form of weight standardisation): one node for all of them, run once per backward pass
// with every output's gradient (undefined for the outputs no gradient reached).
TensorList record(std::string_view name, TensorList outputs, const TensorList& inputs,
                  MultiOutputBackwardFunction backward);

// Reverse-mode pass from several roots at once (Tensor::backward is the one-root case):
// seeds[k] is the gradient of roots[k]; an undefined seed stands for 1 and needs a
// one-element root. Gradients add into the .grad of every leaf that requires one.
void backward(const TensorList& roots, const TensorList& seeds);

// The gradients of the roots (seeded as in backward()) with respect to `inputs`, returned
// instead of accumulated: no .grad is read or written (torch.autograd.grad). An input the
// roots do not depend on gets an undefined tensor. Every input must require a gradient.
TensorList gradients(const TensorList& roots, const TensorList& inputs, const TensorList& seeds);

}  // namespace visrep
