#include "engine/autograd.h"

#include <unordered_map>

#include "engine/ops/elementwise.h"

namespace visrep {
namespace {

thread_local bool grad_mode = true;

// Runs a lambda-defined backward function; any error it throws is prefixed with the op.
class FunctionNode final : public Node {
 public:
  FunctionNode(std::string name, BackwardFunction backward) : name_(std::move(name)), backward_(std::move(backward)) {}
  std::string_view name() const override { return name_; }
  TensorList apply(const Tensor& grad_output) override {
    try {
      return backward_(grad_output);
    } catch (const Error& error) {
      VISREP_FAIL("backward of '{}': {}", name_, error.what());
    }
  }

 private:
  std::string name_;
  BackwardFunction backward_;
};

// The sink for a leaf: adds the incoming gradient into leaf.grad.
class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(std::shared_ptr<TensorImpl> leaf) : leaf_(std::move(leaf)) {}
  std::string_view name() const override { return "accumulate_grad"; }
  TensorList apply(const Tensor& grad_output) override {
    if (leaf_->grad == nullptr) {
      // A private copy: the incoming gradient may be a view shared with other nodes.
      leaf_->grad = grad_output.detach().clone().impl();
    } else {
      Tensor(leaf_->grad).add_(grad_output);
    }
    return {};
  }

 private:
  std::shared_ptr<TensorImpl> leaf_;
};

std::shared_ptr<Node> gradient_sink(const Tensor& input) {
  if (!input.requires_grad()) return nullptr;
  if (input.grad_fn()) return input.grad_fn();
  return std::make_shared<AccumulateGrad>(input.impl());
}

// Nodes reachable from `root`, ordered so that every node comes before the nodes it feeds
// gradients into (reverse post-order of an iterative depth-first search).
std::vector<Node*> topological_order(Node* root) {
  std::vector<Node*> post_order;
  std::unordered_map<Node*, bool> visited;
  std::vector<std::pair<Node*, size_t>> stack = {{root, 0}};
  visited[root] = true;
  while (!stack.empty()) {
    auto& [node, next_child] = stack.back();
    if (next_child < node->next.size()) {
      Node* child = node->next[next_child++].get();
      if (child != nullptr && !visited[child]) {
        visited[child] = true;
        stack.emplace_back(child, 0);
      }
    } else {
      post_order.push_back(node);
      stack.pop_back();
    }
  }
  return {post_order.rbegin(), post_order.rend()};
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

Tensor record(std::string_view name, Tensor output, const TensorList& inputs, BackwardFunction backward) {
  if (!needs_grad(inputs)) return output;
  auto node = std::make_shared<FunctionNode>(std::string(name), std::move(backward));
  for (const Tensor& input : inputs) {
    node->next.push_back(input.defined() ? gradient_sink(input) : nullptr);
    node->input_shapes.push_back(input.defined() ? input.shape() : Shape{});
    node->input_dtypes.push_back(input.defined() ? input.dtype() : kFloat32);
  }
  output.impl()->grad_fn = std::move(node);
  output.impl()->requires_grad = true;
  return output;
}

void run_backward(const Tensor& root, const Tensor& seed) {
  VISREP_CHECK(root.requires_grad(),
               "backward: the tensor does not require a gradient (no input of the computation had requires_grad set, "
               "or it ran under NoGradGuard)");
  Tensor root_grad = seed;
  if (!root_grad.defined()) {
    VISREP_CHECK(root.numel() == 1, "backward: a seed gradient is needed for a non-scalar tensor of shape {}",
                 shape_string(root.shape()));
    root_grad = ones_like(root);
  }
  VISREP_CHECK(root_grad.shape() == root.shape(), "backward: seed gradient shape {} does not match the tensor's {}",
               shape_string(root_grad.shape()), shape_string(root.shape()));
  VISREP_CHECK(root_grad.dtype() == root.dtype() && root_grad.device() == root.device(),
               "backward: seed gradient is {} but the tensor is {}", root_grad.description(), root.description());

  NoGradGuard no_grad;  // backward functions are computed, not recorded
  std::shared_ptr<Node> root_node = gradient_sink(root);
  std::unordered_map<Node*, Tensor> pending;  // summed gradient waiting at each node
  pending[root_node.get()] = root_grad;

  for (Node* node : topological_order(root_node.get())) {
    auto found = pending.find(node);
    if (found == pending.end()) continue;  // no gradient reached this node
    Tensor grad_output = std::move(found->second);
    pending.erase(found);
    TensorList grad_inputs = node->apply(grad_output);
    for (size_t i = 0; i < node->next.size(); ++i) {
      Node* next = node->next[i].get();
      if (next == nullptr || i >= grad_inputs.size() || !grad_inputs[i].defined()) continue;
      const Tensor& grad = grad_inputs[i];
      VISREP_CHECK(grad.shape() == node->input_shapes[i] && grad.dtype() == node->input_dtypes[i],
                   "backward of '{}': gradient {} for input {} does not match the input's {} {}", node->name(),
                   grad.description(), i, dtype_name(node->input_dtypes[i]), shape_string(node->input_shapes[i]));
      Tensor& slot = pending[next];
      slot = slot.defined() ? add(slot, grad) : grad;
    }
  }
}

}  // namespace visrep
