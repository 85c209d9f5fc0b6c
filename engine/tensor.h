// Tensor: an n-dimensional view (shape, strides, offset, dtype) onto shared Storage, plus
// the autograd state (requires_grad, grad, the node that produced it).
//
// A Tensor is a cheap handle: copying it shares the same data, as in PyTorch. Views
// (reshape of a contiguous tensor, permute, transpose, slice, expand, squeeze) share the
// storage and never copy; clone() always copies, contiguous() and to() copy unless the
// tensor already is what they ask for (then they return it, sharing its data, as PyTorch's
// do: write to the result and you write to the source). Ops are free functions in
// namespace visrep (engine/ops/*.h); the members here are the ones that are about the
// tensor itself.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/dtype.h"
#include "engine/error.h"
#include "engine/shape.h"
#include "engine/storage.h"

namespace visrep {

class Node;
class Tensor;

// What a factory function makes: dtype, device and whether it is a leaf that wants a
// gradient. Converts implicitly from a DType or a Device, so zeros({2, 3}, kFloat64) and
// zeros({2, 3}, Device::cuda()) both read naturally.
struct TensorOptions {
  DType dtype = kFloat32;
  Device device = Device::cpu();
  bool requires_grad = false;

  TensorOptions() = default;
  TensorOptions(DType dtype_, Device device_ = Device::cpu(), bool requires_grad_ = false)  // NOLINT: implicit
      : dtype(dtype_), device(device_), requires_grad(requires_grad_) {}
  TensorOptions(Device device_) : device(device_) {}  // NOLINT: implicit

  TensorOptions with_dtype(DType value) const { auto copy = *this; copy.dtype = value; return copy; }
  TensorOptions with_requires_grad(bool value) const { auto copy = *this; copy.requires_grad = value; return copy; }
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  Shape strides;  // in elements
  DType dtype = kFloat32;

  // Autograd. A tensor is a leaf when it has no grad_fn; only leaves keep .grad.
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<Node> grad_fn;
  size_t grad_fn_output = 0;  // which output of grad_fn this tensor is (0 for one-output ops)
};

class Tensor {
 public:
  Tensor() = default;  // undefined: holds nothing
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  const std::shared_ptr<TensorImpl>& impl() const { return impl_; }

  // ---- geometry ------------------------------------------------------------------------
  const Shape& shape() const { return checked().shape; }
  const Shape& strides() const { return checked().strides; }
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t size(int64_t dim) const;    // negative dims count from the end
  int64_t stride(int64_t dim) const;
  int64_t numel() const { return shape_numel(shape()); }
  DType dtype() const { return checked().dtype; }
  Device device() const { return checked().storage->device(); }
  bool is_contiguous() const;
  int64_t storage_offset() const { return checked().offset; }
  const std::shared_ptr<Storage>& storage() const { return checked().storage; }
  kernels::StridedLayout layout() const { return make_layout(shape(), strides()); }

  // ---- element access (CPU tensors) --------------------------------------------------------
  // Typed pointer to the first element; throws unless T matches dtype().
  template <class T>
  T* data() const;
  void* raw_data() const;  // untyped pointer to the first element, any device
  // The value of a one-element tensor, converted to double (copied from the GPU if needed).
  double item() const;
  template <class T>
  T item() const { return static_cast<T>(item()); }
  // All elements in row-major order, converted to T (copied from the GPU if needed).
  template <class T>
  std::vector<T> to_vector() const;

  // ---- views (no copy) --------------------------------------------------------------------
  Tensor view(const Shape& shape) const;       // contiguous tensors only; one size may be -1
  Tensor reshape(const Shape& shape) const;    // a view when possible, otherwise a copy
  Tensor permute(const std::vector<int64_t>& order) const;
  Tensor transpose(int64_t dim0, int64_t dim1) const;
  Tensor t() const;  // 2-D transpose
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;  // Python's x[start:end:step]
  Tensor select(int64_t dim, int64_t index) const;  // x[..., index, ...], dropping the dimension
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor expand(const Shape& shape) const;  // broadcast without copying; -1 keeps a size
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;

  // ---- copies and conversions ---------------------------------------------------------------
  Tensor contiguous() const;  // itself when already contiguous
  Tensor clone() const;       // always a fresh contiguous copy (differentiable)
  Tensor to(Device device) const;  // itself when already on `device`
  Tensor to(DType dtype) const;    // itself when already of `dtype`
  Tensor cpu() const { return to(Device::cpu()); }
  Tensor detach() const;  // same data, cut from the graph

  // ---- autograd ------------------------------------------------------------------------------
  bool requires_grad() const { return checked().requires_grad; }
  // Marks a leaf as wanting (or no longer wanting) a gradient. Floating dtypes only.
  Tensor& set_requires_grad(bool value = true);
  bool is_leaf() const { return checked().grad_fn == nullptr; }
  const std::shared_ptr<Node>& grad_fn() const { return checked().grad_fn; }
  size_t grad_fn_output() const { return checked().grad_fn_output; }
  // The accumulated gradient of a leaf; undefined until a backward pass reaches it.
  Tensor grad() const;
  void set_grad(const Tensor& grad) const;
  // Reverse-mode pass from this tensor. Without a seed the tensor must hold one element
  // and the seed is 1. Gradients add into the .grad of every leaf that requires one
  // (several roots at once, or gradients without .grad: engine/autograd.h).
  void backward(const Tensor& seed = Tensor()) const;

  // ---- in-place writes (no autograd; they bump the storage version) --------------------------
  Tensor& copy_(const Tensor& source);  // broadcasts source, converts dtype, crosses devices
  Tensor& fill_(double value);
  Tensor& add_(const Tensor& other, double alpha = 1.0);  // this += alpha * other
  Tensor& mul_(double factor);

  // ---- printing --------------------------------------------------------------------------------
  std::string to_string() const;
  std::string description() const;  // "float32 [2, 3] on cpu", for error messages

 private:
  const TensorImpl& checked() const;

  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& out, const Tensor& tensor);

// ---- factories -------------------------------------------------------------------------------
Tensor empty(const Shape& shape, TensorOptions options = {});
Tensor zeros(const Shape& shape, TensorOptions options = {});
Tensor ones(const Shape& shape, TensorOptions options = {});
Tensor full(const Shape& shape, double value, TensorOptions options = {});
Tensor empty_like(const Tensor& like);
Tensor zeros_like(const Tensor& like);
Tensor ones_like(const Tensor& like);
Tensor full_like(const Tensor& like, double value);
// A zero-dimensional tensor holding `value`.
Tensor scalar_tensor(double value, TensorOptions options = {});
// [start, end) in steps of `step`.
Tensor arange(double start, double end, double step = 1.0, TensorOptions options = {});
Tensor arange(int64_t end, TensorOptions options = kInt64);
// A tensor holding a copy of `values`, shaped `shape` (1-D of values.size() when empty).
// The dtype follows T (float -> float32, double -> float64, int64_t -> int64, ...) unless
// options.dtype says otherwise, in which case the values are converted.
template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape = {}, std::optional<TensorOptions> options = {});

}  // namespace visrep
