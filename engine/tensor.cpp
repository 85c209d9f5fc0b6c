#include "engine/tensor.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <ostream>

#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduction.h"
#include "kernels/cpu/copy.h"
#include "kernels/cuda/copy.h"

namespace visrep {
namespace {

// In-place writes bypass autograd, so they are refused on tensors that are part of a graph
// while it is being recorded (PyTorch refuses the same for leaves).
void check_inplace_allowed(const Tensor& tensor, std::string_view op) {
  VISREP_CHECK(!(grad_enabled() && tensor.requires_grad()),
               "{}: in-place write to a tensor that requires grad; wrap it in NoGradGuard (as optimizers do) or use "
               "the out-of-place op",
               op);
}

Tensor new_like_geometry(const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->offset = offset;
  impl->shape = shape;
  impl->strides = strides;
  impl->dtype = base.dtype();
  return Tensor(std::move(impl));
}

// Replaces one -1 in `shape` by the size that makes numel match.
Shape infer_shape(Shape shape, int64_t numel, std::string_view op, const Shape& from) {
  int64_t known = 1;
  int64_t infer_at = -1;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == -1) {
      VISREP_CHECK(infer_at < 0, "{}: only one dimension may be -1, got {}", op, shape_string(shape));
      infer_at = static_cast<int64_t>(d);
    } else {
      VISREP_CHECK(shape[d] >= 0, "{}: negative size in {}", op, shape_string(shape));
      known *= shape[d];
    }
  }
  if (infer_at >= 0) {
    VISREP_CHECK(known > 0 && numel % known == 0, "{}: cannot reshape {} ({} elements) into {}", op,
                 shape_string(from), numel, shape_string(shape));
    shape[infer_at] = numel / known;
  }
  VISREP_CHECK(shape_numel(shape) == numel, "{}: cannot reshape {} ({} elements) into {} ({} elements)", op,
               shape_string(from), numel, shape_string(shape), shape_numel(shape));
  return shape;
}

template <class T>
double to_double(T value) {
  if constexpr (std::is_same_v<T, bfloat16>) return static_cast<double>(static_cast<float>(value));
  else return static_cast<double>(value);
}

template <class T>
std::string format_element(T value, bool scientific) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(value)) return "nan";  // fmt shows a NaN's sign bit ("-nan"); PyTorch prints nan
    return scientific ? fmt::format("{:.4e}", value) : fmt::format("{:.4f}", value);
  } else {
    return fmt::format("{}", static_cast<int64_t>(value));
  }
}

}  // namespace

// ---- geometry ----------------------------------------------------------------------------

const TensorImpl& Tensor::checked() const {
  VISREP_CHECK(impl_ != nullptr, "operation on an undefined tensor");
  return *impl_;
}

int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim(d, dim(), "size")]; }
int64_t Tensor::stride(int64_t d) const { return strides()[wrap_dim(d, dim(), "stride")]; }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int64_t d = dim() - 1; d >= 0; --d) {
    if (shape()[d] != 1 && strides()[d] != expected) return false;
    expected *= shape()[d];
  }
  return true;
}

void* Tensor::raw_data() const {
  return static_cast<char*>(storage()->data()) + storage_offset() * static_cast<int64_t>(element_size(dtype()));
}

template <class T>
T* Tensor::data() const {
  VISREP_CHECK(dtype() == dtype_of<T>(), "data<{}>() called on a {} tensor", dtype_name(dtype_of<T>()),
               dtype_name(dtype()));
  VISREP_CHECK(device().is_cpu(), "data(): the tensor is on {}; copy it with .cpu() first", device().str());
  return static_cast<T*>(raw_data());
}

template float* Tensor::data<float>() const;
template double* Tensor::data<double>() const;
template bfloat16* Tensor::data<bfloat16>() const;
template int32_t* Tensor::data<int32_t>() const;
template int64_t* Tensor::data<int64_t>() const;
template uint8_t* Tensor::data<uint8_t>() const;

double Tensor::item() const {
  VISREP_CHECK(numel() == 1, "item(): the tensor has {} elements (shape {}), not one", numel(),
               shape_string(shape()));
  Tensor host = cpu().contiguous();
  return visit_dtype(dtype(), [&](auto tag) { return to_double(*host.data<typename decltype(tag)::type>()); });
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  Tensor host = cpu().to(dtype_of<T>()).contiguous();
  const T* begin = host.data<T>();
  return std::vector<T>(begin, begin + host.numel());
}

template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<bfloat16> Tensor::to_vector<bfloat16>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<uint8_t> Tensor::to_vector<uint8_t>() const;

// ---- views ----------------------------------------------------------------------------------

Tensor Tensor::view(const Shape& new_shape) const {
  const Shape target = infer_shape(new_shape, numel(), "view", shape());
  VISREP_CHECK(is_contiguous(), "view: the tensor of shape {} is not contiguous; use reshape() (which copies)",
               shape_string(shape()));
  Tensor result = new_like_geometry(*this, target, contiguous_strides(target), storage_offset());
  const Shape input_shape = shape();
  return record("view", result, {*this},
                [input_shape](const Tensor& grad) -> TensorList { return {grad.reshape(input_shape)}; });
}

Tensor Tensor::reshape(const Shape& new_shape) const {
  const Shape target = infer_shape(new_shape, numel(), "reshape", shape());  // errors name reshape, not view
  if (is_contiguous()) return view(target);
  return contiguous().view(target);
}

Tensor Tensor::permute(const std::vector<int64_t>& order) const {
  VISREP_CHECK(static_cast<int64_t>(order.size()) == dim(), "permute: order {} has {} entries for a tensor of rank {}",
               shape_string(order), order.size(), dim());
  Shape new_shape(order.size()), new_strides(order.size());
  std::vector<int64_t> inverse(order.size(), -1);
  for (size_t i = 0; i < order.size(); ++i) {
    const int64_t d = wrap_dim(order[i], dim(), "permute");
    VISREP_CHECK(inverse[d] < 0, "permute: dimension {} appears twice in {}", d, shape_string(order));
    inverse[d] = static_cast<int64_t>(i);
    new_shape[i] = shape()[d];
    new_strides[i] = strides()[d];
  }
  Tensor result = new_like_geometry(*this, new_shape, new_strides, storage_offset());
  return record("permute", result, {*this},
                [inverse](const Tensor& grad) -> TensorList { return {grad.permute(inverse)}; });
}

Tensor Tensor::transpose(int64_t dim0, int64_t dim1) const {
  std::vector<int64_t> order(static_cast<size_t>(dim()));
  std::iota(order.begin(), order.end(), 0);
  std::swap(order[wrap_dim(dim0, dim(), "transpose")], order[wrap_dim(dim1, dim(), "transpose")]);
  return permute(order);
}

Tensor Tensor::t() const {
  VISREP_CHECK(dim() == 2, "t: expected a 2-D tensor, got shape {}", shape_string(shape()));
  return transpose(0, 1);
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  d = wrap_dim(d, dim(), "slice");
  VISREP_CHECK(step > 0, "slice: step must be positive, got {}", step);
  const int64_t length = shape()[d];
  // Python semantics: negative bounds count from the end, out-of-range bounds clip.
  if (start < 0) start += length;
  if (end < 0) end += length;
  start = std::clamp<int64_t>(start, 0, length);
  end = std::clamp<int64_t>(end, start, length);
  Shape new_shape = shape();
  Shape new_strides = strides();
  new_shape[d] = (end - start + step - 1) / step;
  new_strides[d] = strides()[d] * step;
  Tensor result = new_like_geometry(*this, new_shape, new_strides, storage_offset() + start * strides()[d]);
  const Shape input_shape = shape();
  return record("slice", result, {*this}, [input_shape, d, start, end, step](const Tensor& grad) -> TensorList {
    Tensor full_grad = zeros(input_shape, TensorOptions(grad.dtype(), grad.device()));
    full_grad.slice(d, start, end, step).copy_(grad);
    return {full_grad};
  });
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  d = wrap_dim(d, dim(), "select");
  const int64_t length = shape()[d];
  VISREP_CHECK(index >= -length && index < length, "select: index {} is out of range for dimension {} of size {}",
               index, d, length);
  if (index < 0) index += length;
  return slice(d, index, index + 1).squeeze(d);
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  d = wrap_dim(d, dim(), "narrow");
  // A negative start counts from the end, as in torch.narrow.
  const int64_t first = start < 0 ? start + shape()[d] : start;
  VISREP_CHECK(first >= 0 && length >= 0 && first + length <= shape()[d],
               "narrow: start {} length {} is out of range for dimension {} of size {} in shape {}", start, length, d,
               shape()[d], shape_string(shape()));
  return slice(d, first, first + length);
}

Tensor Tensor::expand(const Shape& target) const {
  VISREP_CHECK(static_cast<int64_t>(target.size()) >= dim(), "expand: cannot expand shape {} to fewer dimensions {}",
               shape_string(shape()), shape_string(target));
  const size_t lead = target.size() - shape().size();
  Shape new_shape(target.size()), new_strides(target.size(), 0);
  for (size_t i = 0; i < target.size(); ++i) {
    if (i < lead) {
      VISREP_CHECK(target[i] >= 0, "expand: new leading dimension {} cannot be {}", i, target[i]);
      new_shape[i] = target[i];
      continue;
    }
    const int64_t size = shape()[i - lead];
    const int64_t wanted = target[i] == -1 ? size : target[i];
    VISREP_CHECK(size == wanted || size == 1, "expand: cannot expand shape {} to {} (dimension {}: {} vs {})",
                 shape_string(shape()), shape_string(target), i, size, wanted);
    new_shape[i] = wanted;
    new_strides[i] = size == wanted ? strides()[i - lead] : 0;
  }
  Tensor result = new_like_geometry(*this, new_shape, new_strides, storage_offset());
  const Shape input_shape = shape();
  return record("expand", result, {*this},
                [input_shape](const Tensor& grad) -> TensorList { return {sum_to(grad, input_shape)}; });
}

Tensor Tensor::squeeze(int64_t d) const {
  d = wrap_dim(d, dim(), "squeeze");
  if (shape()[d] != 1) return *this;
  Shape new_shape = shape();
  new_shape.erase(new_shape.begin() + d);
  Shape new_strides = strides();
  new_strides.erase(new_strides.begin() + d);
  Tensor result = new_like_geometry(*this, new_shape, new_strides, storage_offset());
  const Shape input_shape = shape();
  return record("squeeze", result, {*this},
                [input_shape](const Tensor& grad) -> TensorList { return {grad.reshape(input_shape)}; });
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape new_shape = shape();
  Shape new_strides = strides();
  const int64_t stride_here = d < dim() ? strides()[d] * shape()[d] : 1;
  new_shape.insert(new_shape.begin() + d, 1);
  new_strides.insert(new_strides.begin() + d, stride_here);
  Tensor result = new_like_geometry(*this, new_shape, new_strides, storage_offset());
  const Shape input_shape = shape();
  return record("unsqueeze", result, {*this},
                [input_shape](const Tensor& grad) -> TensorList { return {grad.reshape(input_shape)}; });
}

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  if (dim() == 0) return reshape({1});
  start_dim = wrap_dim(start_dim, dim(), "flatten");
  end_dim = wrap_dim(end_dim, dim(), "flatten");
  VISREP_CHECK(start_dim <= end_dim, "flatten: start_dim {} is after end_dim {}", start_dim, end_dim);
  Shape new_shape(shape().begin(), shape().begin() + start_dim);
  int64_t merged = 1;
  for (int64_t d = start_dim; d <= end_dim; ++d) merged *= shape()[d];
  new_shape.push_back(merged);
  new_shape.insert(new_shape.end(), shape().begin() + end_dim + 1, shape().end());
  return reshape(new_shape);
}

// ---- copies and conversions -------------------------------------------------------------------

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::clone() const {
  Tensor result = empty(shape(), TensorOptions(dtype(), device()));
  {
    NoGradGuard no_grad;
    result.copy_(*this);
  }
  return record("clone", result, {*this}, [](const Tensor& grad) -> TensorList { return {grad}; });
}

Tensor Tensor::to(Device target) const {
  if (target == device()) return *this;
  check_device_usable(target, "to");
  Tensor source = contiguous();
  Tensor result = empty(shape(), TensorOptions(dtype(), target));
  copy_bytes(result.raw_data(), target, source.raw_data(), device(), static_cast<size_t>(numel()) * element_size(dtype()));
  const Device source_device = device();
  return record("to_device", result, {*this},
                [source_device](const Tensor& grad) -> TensorList { return {grad.to(source_device)}; });
}

Tensor Tensor::to(DType target) const {
  if (target == dtype()) return *this;
  Tensor result = empty(shape(), TensorOptions(target, device()));
  {
    NoGradGuard no_grad;
    result.copy_(*this);
  }
  if (!is_floating(target) || !is_floating(dtype())) return result;  // integers carry no gradient
  const DType source_dtype = dtype();
  return record("to_dtype", result, {*this},
                [source_dtype](const Tensor& grad) -> TensorList { return {grad.to(source_dtype)}; });
}

Tensor Tensor::detach() const {
  Tensor result = new_like_geometry(*this, shape(), strides(), storage_offset());
  return result;
}

// ---- autograd ----------------------------------------------------------------------------------

Tensor& Tensor::set_requires_grad(bool value) {
  VISREP_CHECK(is_leaf(), "set_requires_grad: only leaf tensors can be marked; this one was computed by '{}'",
               grad_fn() ? std::string(grad_fn()->name()) : "?");
  VISREP_CHECK(!value || is_floating(dtype()), "set_requires_grad: {} tensors cannot have gradients",
               dtype_name(dtype()));
  impl_->requires_grad = value;
  return *this;
}

Tensor Tensor::grad() const { return checked().grad ? Tensor(checked().grad) : Tensor(); }

void Tensor::set_grad(const Tensor& grad) const {
  if (!grad.defined()) {
    impl_->grad = nullptr;
    return;
  }
  VISREP_CHECK(grad.shape() == shape() && grad.dtype() == dtype() && grad.device() == device(),
               "set_grad: gradient {} does not match the tensor {}", grad.description(), description());
  impl_->grad = grad.impl();
}

void Tensor::backward(const Tensor& seed) const { ::visrep::backward({*this}, {seed}); }

// ---- in-place writes ---------------------------------------------------------------------------

Tensor& Tensor::copy_(const Tensor& source) {
  check_inplace_allowed(*this, "copy_");
  VISREP_CHECK(source.defined(), "copy_: the source tensor is undefined");
  Tensor from = source;
  VISREP_CHECK(broadcast_shapes(from.shape(), shape(), "copy_") == shape(),
               "copy_: source shape {} does not broadcast to destination shape {}", shape_string(from.shape()),
               shape_string(shape()));
  if (from.device() != device()) {
    if (from.dtype() == dtype() && from.shape() == shape() && is_contiguous()) {
      from = from.contiguous();  // on its own device; the bytes then cross as they are
    } else {
      from = from.to(device());  // move first, then convert or broadcast on the destination's device
    }
  }
  if (from.dtype() == dtype() && from.shape() == shape() && from.is_contiguous() && is_contiguous()) {
    copy_bytes(raw_data(), device(), from.raw_data(), from.device(), static_cast<size_t>(numel()) * element_size(dtype()));
    storage()->bump_version();
    return *this;
  }
  // Both on this tensor's device from here on.
  const kernels::StridedLayout destination_layout = layout();
  const kernels::StridedLayout source_layout =
      make_layout(shape(), broadcast_strides(from.shape(), from.strides(), shape()));
  visit_dtype(from.dtype(), [&](auto source_tag) {
    using Source = typename decltype(source_tag)::type;
    visit_dtype(dtype(), [&](auto destination_tag) {
      using Destination = typename decltype(destination_tag)::type;
      VISREP_RUN_KERNEL("copy_", device(), copy,
                        kernels::Copy<Source, Destination>{.src = data_or_null<const Source>(from),
                                                           .src_layout = source_layout,
                                                           .dst = data_or_null<Destination>(*this),
                                                           .dst_layout = destination_layout});
    });
  });
  storage()->bump_version();
  return *this;
}

Tensor& Tensor::fill_(double value) {
  check_inplace_allowed(*this, "fill_");
  const kernels::StridedLayout destination_layout = layout();
  visit_dtype(dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T converted;
    if constexpr (std::is_same_v<T, bfloat16>) converted = bfloat16(static_cast<float>(value));
    else converted = static_cast<T>(value);
    VISREP_RUN_KERNEL(
        "fill_", device(), fill,
        kernels::Fill<T>{.dst = data_or_null<T>(*this), .dst_layout = destination_layout, .value = converted});
  });
  storage()->bump_version();
  return *this;
}

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  check_inplace_allowed(*this, "add_");
  NoGradGuard no_grad;
  Tensor increment = alpha == 1.0 ? other : mul(other, alpha);
  copy_(add(*this, increment));
  return *this;
}

Tensor& Tensor::mul_(double factor) {
  check_inplace_allowed(*this, "mul_");
  NoGradGuard no_grad;
  copy_(mul(*this, factor));
  return *this;
}

// ---- printing -------------------------------------------------------------------------------------

std::string Tensor::description() const {
  if (!defined()) return "undefined tensor";
  return fmt::format("{} {} on {}", dtype_name(dtype()), shape_string(shape()), device().str());
}

std::string Tensor::to_string() const {
  if (!defined()) return "tensor(undefined)";
  Tensor host = cpu().contiguous();
  if (host.dtype() == kBFloat16) host = host.to(kFloat32);
  constexpr int64_t kSummarizeAbove = 1000;  // PyTorch's print threshold
  constexpr int64_t kEdgeItems = 3;
  const bool summarize = numel() > kSummarizeAbove;

  std::string body = visit_dtype(host.dtype(), [&](auto tag) -> std::string {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, bfloat16>) {
      return "";
    } else {
      const T* values = host.data<T>();
      bool scientific = false;
      if constexpr (std::is_floating_point_v<T>) {
        double largest = 0.0, smallest = INFINITY;
        for (int64_t i = 0; i < host.numel(); ++i) {
          const double magnitude = std::abs(static_cast<double>(values[i]));
          if (!std::isfinite(magnitude)) continue;
          largest = std::max(largest, magnitude);
          if (magnitude > 0) smallest = std::min(smallest, magnitude);
        }
        scientific = largest >= 1e5 || (smallest < 1e-4 && smallest != INFINITY);
      }
      const Shape& sizes = host.shape();
      const Shape strides = contiguous_strides(sizes);
      // Recursive printer over dimension d starting at element offset.
      std::function<std::string(size_t, int64_t, int)> print = [&](size_t d, int64_t offset, int indent) {
        if (d == sizes.size()) return format_element(values[offset], scientific);
        std::string out = "[";
        const int64_t count = sizes[d];
        for (int64_t i = 0; i < count; ++i) {
          if (summarize && count > 2 * kEdgeItems && i == kEdgeItems) {
            out += d + 1 == sizes.size() ? "..., " : "...,\n" + std::string(indent + 1, ' ');
            i = count - kEdgeItems - 1;
            continue;
          }
          out += print(d + 1, offset + i * strides[d], indent + 1);
          if (i + 1 < count) out += d + 1 == sizes.size() ? ", " : ",\n" + std::string(indent + 1, ' ');
        }
        return out + "]";
      };
      return print(0, 0, 7);
    }
  });
  std::string suffix = fmt::format(", dtype={}", dtype_name(dtype()));
  if (!device().is_cpu()) suffix += ", device=" + device().str();
  if (requires_grad()) suffix += ", requires_grad=true";
  return "tensor(" + body + suffix + ")";
}

std::ostream& operator<<(std::ostream& out, const Tensor& tensor) { return out << tensor.to_string(); }

// ---- factories ---------------------------------------------------------------------------------------

Tensor empty(const Shape& shape, TensorOptions options) {
  for (int64_t size : shape) VISREP_CHECK(size >= 0, "empty: negative size in shape {}", shape_string(shape));
  VISREP_CHECK(shape.size() <= static_cast<size_t>(kernels::kMaxDims),
               "empty: rank {} exceeds the supported {} dimensions", shape.size(), kernels::kMaxDims);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = Storage::allocate(static_cast<size_t>(shape_numel(shape)) * element_size(options.dtype), options.device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = options.dtype;
  Tensor result(std::move(impl));
  if (options.requires_grad) result.set_requires_grad(true);
  return result;
}

Tensor full(const Shape& shape, double value, TensorOptions options) {
  Tensor result = empty(shape, options.with_requires_grad(false));
  result.fill_(value);  // on the tensor's device
  if (options.requires_grad) result.set_requires_grad(true);
  return result;
}

Tensor zeros(const Shape& shape, TensorOptions options) { return full(shape, 0.0, options); }
Tensor ones(const Shape& shape, TensorOptions options) { return full(shape, 1.0, options); }
Tensor empty_like(const Tensor& like) { return empty(like.shape(), TensorOptions(like.dtype(), like.device())); }
Tensor zeros_like(const Tensor& like) { return zeros(like.shape(), TensorOptions(like.dtype(), like.device())); }
Tensor ones_like(const Tensor& like) { return ones(like.shape(), TensorOptions(like.dtype(), like.device())); }
Tensor full_like(const Tensor& like, double value) {
  return full(like.shape(), value, TensorOptions(like.dtype(), like.device()));
}
Tensor scalar_tensor(double value, TensorOptions options) { return full({}, value, options); }

Tensor arange(double start, double end, double step, TensorOptions options) {
  VISREP_CHECK(step != 0.0, "arange: step must not be zero");
  const double span = (end - start) / step;
  const int64_t count = span > 0 ? static_cast<int64_t>(std::ceil(span)) : 0;
  std::vector<double> values(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) values[i] = start + static_cast<double>(i) * step;
  return from_vector(values, {count}, options);
}

Tensor arange(int64_t end, TensorOptions options) { return arange(0.0, static_cast<double>(end), 1.0, options); }

template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, std::optional<TensorOptions> options) {
  // As documented: no shape means 1-D, one value included (from_vector({7}) is [7], like
  // torch.tensor([7])); a 0-dim tensor is scalar_tensor(value).
  const Shape target = shape.empty() ? Shape{static_cast<int64_t>(values.size())} : shape;
  VISREP_CHECK(shape_numel(target) == static_cast<int64_t>(values.size()),
               "from_vector: {} values do not fill shape {} ({} elements)", values.size(), shape_string(target),
               shape_numel(target));
  Tensor host = empty(target, TensorOptions(dtype_of<T>()));
  std::copy(values.begin(), values.end(), host.data<T>());
  if (!options) return host;
  Tensor result = host.to(options->dtype).to(options->device);
  if (options->requires_grad) result.set_requires_grad(true);
  return result;
}

template Tensor from_vector<float>(const std::vector<float>&, const Shape&, std::optional<TensorOptions>);
template Tensor from_vector<double>(const std::vector<double>&, const Shape&, std::optional<TensorOptions>);
template Tensor from_vector<int32_t>(const std::vector<int32_t>&, const Shape&, std::optional<TensorOptions>);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&, const Shape&, std::optional<TensorOptions>);
template Tensor from_vector<uint8_t>(const std::vector<uint8_t>&, const Shape&, std::optional<TensorOptions>);
template Tensor from_vector<bfloat16>(const std::vector<bfloat16>&, const Shape&, std::optional<TensorOptions>);

}  // namespace visrep
