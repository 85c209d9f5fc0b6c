#include "engine/autograd.h"

#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "engine/ops/elementwise.h"

namespace visrep {
namespace {

thread_local bool grad_mode = true;

// Runs a lambda-defined backward function; any error it throws is prefixed with the op.
class FunctionNode final : public Node {
 public:
  FunctionNode(std::string name, MultiOutputBackwardFunction backward)
      : name_(std::move(name)), backward_(std::move(backward)) {}
  std::string_view name() const override { return name_; }
  TensorList apply(const TensorList& grad_outputs) override {
    try {
      return backward_(grad_outputs);
    } catch (const Error& error) {
      VISREP_FAIL("backward of '{}': {}", name_, error.what());
    }
  }

 private:
  std::string name_;
  MultiOutputBackwardFunction backward_;
};

// The sink for a leaf: adds the incoming gradient into leaf.grad.
class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(std::shared_ptr<TensorImpl> leaf) : leaf_(std::move(leaf)) {}
  std::string_view name() const override { return "accumulate_grad"; }
  TensorList apply(const TensorList& grad_outputs) override {
    const Tensor& grad_output = grad_outputs.front();
    if (leaf_->grad == nullptr) {
      // A private copy: the incoming gradient may be a view shared with other nodes.
      leaf_->grad = grad_output.detach().clone().impl();
    } else {
      Tensor(leaf_->grad).add_(grad_output);
    }
    return {};
  }
  const TensorImpl* leaf() const { return leaf_.get(); }

 private:
  std::shared_ptr<TensorImpl> leaf_;
};

// Where the gradient of `input` goes: its grad_fn's output, or a sink into its .grad.
Edge gradient_edge(const Tensor& input) {
  if (!input.requires_grad()) return {};
  if (input.grad_fn()) return {input.grad_fn(), input.grad_fn_output()};
  return {std::make_shared<AccumulateGrad>(input.impl()), 0};
}

// Nodes reachable from `roots`, ordered so that every node comes before the nodes it feeds
// gradients into (reverse post-order of an iterative depth-first search from each root).
std::vector<Node*> topological_order(const std::vector<Node*>& roots) {
  std::vector<Node*> post_order;
  std::unordered_set<Node*> visited;
  for (Node* root : roots) {
    if (!visited.insert(root).second) continue;
    std::vector<std::pair<Node*, size_t>> stack = {{root, 0}};
    while (!stack.empty()) {
      auto& [node, next_child] = stack.back();
      if (next_child < node->next.size()) {
        Node* child = node->next[next_child++].node.get();
        if (child != nullptr && visited.insert(child).second) stack.emplace_back(child, 0);
      } else {
        post_order.push_back(node);
        stack.pop_back();
      }
    }
  }
  return {post_order.rbegin(), post_order.rend()};
}

// The gradient of a root: the seed, or 1 for a one-element root without one.
Tensor seed_for(const Tensor& root, const Tensor& seed) {
  VISREP_CHECK(root.defined(), "backward: a root is an undefined tensor");
  VISREP_CHECK(root.requires_grad(),
               "backward: the tensor does not require a gradient (no input of the computation had requires_grad set, "
               "or it ran under NoGradGuard)");
  if (!seed.defined()) {
    VISREP_CHECK(root.numel() == 1, "backward: a seed gradient is needed for a non-scalar tensor of shape {}",
                 shape_string(root.shape()));
    return ones_like(root);
  }
  VISREP_CHECK(seed.shape() == root.shape(), "backward: seed gradient shape {} does not match the tensor's {}",
               shape_string(seed.shape()), shape_string(root.shape()));
  VISREP_CHECK(seed.dtype() == root.dtype() && seed.device() == root.device(),
               "backward: seed gradient is {} but the tensor is {}", seed.description(), root.description());
  return seed;
}

// The pass behind backward() and gradients(). With `captured` (gradients()), the gradient
// reaching input k's edge is summed into (*captured)[k] instead of flowing on, and no leaf
// sink runs; without it, every reached leaf accumulates into .grad.
void run_backward(const TensorList& roots, const TensorList& seeds, const TensorList* inputs,
                  TensorList* captured) {
  VISREP_CHECK(roots.size() == seeds.size(), "backward: {} roots but {} seed gradients", roots.size(),
               seeds.size());
  NoGradGuard no_grad;  // backward functions are computed, not recorded
  std::vector<Edge> root_edges;
  std::vector<Tensor> root_grads;
  for (size_t k = 0; k < roots.size(); ++k) {
    root_grads.push_back(seed_for(roots[k], seeds[k]));
    root_edges.push_back(gradient_edge(roots[k]));
  }

  // The summed gradient waiting at each output of each node.
  std::unordered_map<Node*, TensorList> pending;
  const auto add_to = [](Tensor& slot, const Tensor& grad) { slot = slot.defined() ? add(slot, grad) : grad; };
  // Input k of gradients() is reached through this edge: a leaf's sink (any sink of that
  // leaf) or a computed tensor's (node, output).
  const auto captured_index = [&](const Edge& edge) -> std::optional<size_t> {
    const auto* sink = dynamic_cast<const AccumulateGrad*>(edge.node.get());
    for (size_t k = 0; k < inputs->size(); ++k) {
      const Tensor& input = (*inputs)[k];
      if (sink != nullptr ? sink->leaf() == input.impl().get()
                          : edge.node == input.grad_fn() && edge.output == input.grad_fn_output()) {
        return k;
      }
    }
    return std::nullopt;
  };
  const auto deliver = [&](const Edge& edge, const Tensor& grad) {
    if (captured != nullptr) {
      if (const auto k = captured_index(edge)) return add_to((*captured)[*k], grad);
      if (dynamic_cast<const AccumulateGrad*>(edge.node.get()) != nullptr) return;  // no .grad is written
    }
    TensorList& slots = pending[edge.node.get()];
    slots.resize(edge.node->output_count);
    add_to(slots[edge.output], grad);
  };
  for (size_t k = 0; k < roots.size(); ++k) deliver(root_edges[k], root_grads[k]);

  std::vector<Node*> root_nodes;
  for (const Edge& edge : root_edges) root_nodes.push_back(edge.node.get());
  for (Node* node : topological_order(root_nodes)) {
    auto found = pending.find(node);
    if (found == pending.end()) continue;  // no gradient reached this node
    TensorList grad_outputs = std::move(found->second);
    pending.erase(found);
    TensorList grad_inputs = node->apply(grad_outputs);
    for (size_t i = 0; i < node->next.size(); ++i) {
      const Edge& edge = node->next[i];
      if (edge.node == nullptr || i >= grad_inputs.size() || !grad_inputs[i].defined()) continue;
      const Tensor& grad = grad_inputs[i];
      VISREP_CHECK(grad.shape() == node->input_shapes[i] && grad.dtype() == node->input_dtypes[i],
                   "backward of '{}': gradient {} for input {} does not match the input's {} {}", node->name(),
                   grad.description(), i, dtype_name(node->input_dtypes[i]), shape_string(node->input_shapes[i]));
      deliver(edge, grad);
    }
  }
}

}  // namespace

bool grad_enabled() { return grad_mode; }
void set_grad_enabled(bool enabled) { grad_mode = enabled; }

SavedTensor::SavedTensor(const Tensor& tensor) {
  if (!tensor.defined()) return;
  tensor_ = tensor.detach();
  version_ = tensor.storage()->version();
}

const Tensor& SavedTensor::get() const {
  VISREP_CHECK(!tensor_.defined() || tensor_.storage()->version() == version_,
               "a {} tensor saved for the backward pass was modified in place afterwards (version {} at save, now "
               "{}); clone it before writing to it",
               shape_string(tensor_.shape()), version_, tensor_.storage()->version());
  return tensor_;
}

bool needs_grad(const TensorList& inputs) {
  if (!grad_enabled()) return false;
  for (const Tensor& input : inputs) {
    if (input.defined() && input.requires_grad()) return true;
  }
  return false;
}

namespace {

std::shared_ptr<Node> make_node(std::string_view name, const TensorList& inputs, size_t output_count,
                                MultiOutputBackwardFunction backward) {
  auto node = std::make_shared<FunctionNode>(std::string(name), std::move(backward));
  for (const Tensor& input : inputs) {
    node->next.push_back(input.defined() ? gradient_edge(input) : Edge{});
    node->input_shapes.push_back(input.defined() ? input.shape() : Shape{});
    node->input_dtypes.push_back(input.defined() ? input.dtype() : kFloat32);
  }
  node->output_count = output_count;
  return node;
}

}  // namespace

Tensor record(std::string_view name, Tensor output, const TensorList& inputs, BackwardFunction backward) {
  if (!needs_grad(inputs)) return output;
  auto node = make_node(name, inputs, 1, [backward = std::move(backward)](const TensorList& grad_outputs) {
    return backward(grad_outputs.front());  // the node runs only when its one output has a gradient
  });
  output.impl()->grad_fn = std::move(node);
  output.impl()->grad_fn_output = 0;
  output.impl()->requires_grad = true;
  return output;
}

TensorList record(std::string_view name, TensorList outputs, const TensorList& inputs,
                  MultiOutputBackwardFunction backward) {
  if (!needs_grad(inputs)) return outputs;
  const std::shared_ptr<Node> node = make_node(name, inputs, outputs.size(), std::move(backward));
  for (size_t k = 0; k < outputs.size(); ++k) {
    outputs[k].impl()->grad_fn = node;
    outputs[k].impl()->grad_fn_output = k;
    outputs[k].impl()->requires_grad = true;
  }
  return outputs;
}

void backward(const TensorList& roots, const TensorList& seeds) { run_backward(roots, seeds, nullptr, nullptr); }

TensorList gradients(const TensorList& roots, const TensorList& inputs, const TensorList& seeds) {
  for (size_t k = 0; k < inputs.size(); ++k) {
    VISREP_CHECK(inputs[k].defined() && inputs[k].requires_grad(),
                 "gradients: input {} does not require a gradient ({}), so it has none", k,
                 inputs[k].defined() ? inputs[k].description() : "an undefined tensor");
  }
  TensorList captured(inputs.size());
  run_backward(roots, seeds, &inputs, &captured);
  return captured;
}

}  // namespace visrep
