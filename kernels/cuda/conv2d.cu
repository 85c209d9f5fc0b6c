// 2-D convolution on cuDNN, the CUDA twins of kernels/cpu/conv2d.h: NCHW, cross-correlation,
// stride, zero padding, dilation and groups (cudnnSetConvolutionGroupCount), float and
// double, through cuDNN's legacy convolution API (forward, backward data, backward filter),
// cudnnAddTensor for the bias and cudnnConvolutionBackwardBias for its gradient.
//
// Numerics: float data computes in float, double in double. Without tf32_enabled() the
// convolution descriptor asks for CUDNN_FMA_MATH: cuDNN's CUDNN_DEFAULT_MATH would allow
// TF32 tensor cores for float on Ampere and newer, silently. With TF32 on it asks for
// CUDNN_DEFAULT_MATH (TF32 allowed), as PyTorch does.
//
// Algorithm choice: cuDNN's heuristics (cudnnGet*Algorithm_v7), not a timed search: the
// first call for a shape costs microseconds, not a benchmark of every algorithm with its
// workspace, and the choice does not depend on timing noise. The heuristics list
// algorithms best first; we take the first one that succeeded, whose math type is FMA when
// TF32 is off (cuDNN reports the math type each algorithm runs with; should none be FMA,
// the first that cuDNN accepts with the descriptor held at FMA), and whose workspace
// (asked of cuDNN for that algorithm) is at most kMaxWorkspaceBytes. The choice is cached
// per (pass, geometry, dtype, TF32, device); the workspace comes from the caching allocator
// (DeviceBuffer) at each call.
//
// Alignment: cuDNN's vectorised and tensor-core kernels load 16 bytes at a time, and the
// algorithm cache knows nothing of pointers, so every pointer handed to cuDNN must be 16-byte
// aligned. A contiguous view at an odd offset (x.narrow(0, 1, n)) is contiguous, so the op
// passes it on as it is: such an input is first copied to an aligned scratch buffer on the
// same stream (AlignedInput; one extra read and write of that tensor). Outputs are the op's
// fresh allocations, which the caching allocator aligns to 256 bytes; a misaligned output is
// rejected.
//
// Outputs are overwritten (beta = 0; cuDNN does not read the output then, so NaN in fresh
// memory is harmless). Null gradient pointers are not computed. Shapes where the input
// contributes nothing (empty batch, no input or output channels, an empty input plane) are
// handled without cuDNN's convolutions, which reject zero-sized tensors.
#include "kernels/cuda/conv2d.h"

#include <array>
#include <climits>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/library_handles.h"
#include "kernels/cuda/library_status.h"
#include "kernels/cuda/runtime.h"

namespace visrep::kernels::cuda {
namespace {

constexpr size_t kMaxWorkspaceBytes = size_t{1} << 30;  // 1 GiB

std::string geometry_string(const Conv2dGeometry& g) {
  auto s = [](int64_t v) { return std::to_string(v); };
  return "input (" + s(g.batch) + ", " + s(g.in_channels) + ", " + s(g.in_height) + ", " + s(g.in_width) +
         "), weight (" + s(g.out_channels) + ", " + s(g.groups > 0 ? g.in_channels / g.groups : 0) + ", " +
         s(g.kernel_height) + ", " + s(g.kernel_width) + "), stride (" + s(g.stride_height) + ", " +
         s(g.stride_width) + "), padding (" + s(g.padding_height) + ", " + s(g.padding_width) + "), dilation (" +
         s(g.dilation_height) + ", " + s(g.dilation_width) + "), groups " + s(g.groups);
}

// The same rules as the CPU twin; the engine op has already checked them with messages for users.
void check_geometry(const Conv2dGeometry& g) {
  const bool positive = g.batch >= 0 && g.in_channels >= 0 && g.out_channels >= 0 && g.groups >= 1 &&
                        g.in_height >= 0 && g.in_width >= 0 && g.kernel_height >= 1 && g.kernel_width >= 1 &&
                        g.stride_height >= 1 && g.stride_width >= 1 && g.dilation_height >= 1 &&
                        g.dilation_width >= 1 && g.padding_height >= 0 && g.padding_width >= 0;
  const bool divisible = positive && g.in_channels % g.groups == 0 && g.out_channels % g.groups == 0;
  const bool fits = g.in_height + 2 * g.padding_height >= g.dilation_height * (g.kernel_height - 1) + 1 &&
                    g.in_width + 2 * g.padding_width >= g.dilation_width * (g.kernel_width - 1) + 1;
  if (!divisible || !fits) throw std::runtime_error("conv2d kernel: invalid geometry: " + geometry_string(g));
}

int64_t input_numel(const Conv2dGeometry& g) { return g.batch * g.in_channels * g.in_height * g.in_width; }
int64_t weight_numel(const Conv2dGeometry& g) {
  return g.out_channels * (g.in_channels / g.groups) * g.kernel_height * g.kernel_width;
}
int64_t output_numel(const Conv2dGeometry& g) { return g.batch * g.out_channels * g.out_height() * g.out_width(); }

// The input contributes nothing to the output: output = bias, input and weight gradients 0.
bool is_degenerate(const Conv2dGeometry& g) {
  return g.batch == 0 || g.in_channels == 0 || g.out_channels == 0 || g.in_height == 0 || g.in_width == 0;
}

// cuDNN's legacy API counts sizes and strides in int.
int to_cudnn_int(int64_t value, const char* what, const Conv2dGeometry& g) {
  if (value < 0 || value > INT_MAX) {
    throw std::runtime_error(std::string("conv2d: ") + what + " = " + std::to_string(value) +
                             " is beyond cuDNN's 32-bit sizes (" + geometry_string(g) + ")");
  }
  return static_cast<int>(value);
}

template <class T>
constexpr cudnnDataType_t cudnn_data_type() {
  return std::is_same_v<T, float> ? CUDNN_DATA_FLOAT : CUDNN_DATA_DOUBLE;
}

// ---- descriptors (RAII) ------------------------------------------------------------------

class TensorDescriptor {
 public:
  TensorDescriptor() { VISREP_CUDNN_CHECK(cudnnCreateTensorDescriptor(&descriptor_)); }
  ~TensorDescriptor() { cudnnDestroyTensorDescriptor(descriptor_); }
  TensorDescriptor(const TensorDescriptor&) = delete;
  TensorDescriptor& operator=(const TensorDescriptor&) = delete;
  cudnnTensorDescriptor_t get() const { return descriptor_; }

  // A packed NCHW tensor.
  void set(cudnnDataType_t type, int64_t n, int64_t c, int64_t h, int64_t w, const Conv2dGeometry& g) {
    to_cudnn_int(n * c * h * w, "a tensor's element count", g);
    VISREP_CUDNN_CHECK(cudnnSetTensor4dDescriptor(descriptor_, CUDNN_TENSOR_NCHW, type, to_cudnn_int(n, "N", g),
                                                  to_cudnn_int(c, "C", g), to_cudnn_int(h, "H", g),
                                                  to_cudnn_int(w, "W", g)));
  }

 private:
  cudnnTensorDescriptor_t descriptor_ = nullptr;
};

class FilterDescriptor {
 public:
  FilterDescriptor() { VISREP_CUDNN_CHECK(cudnnCreateFilterDescriptor(&descriptor_)); }
  ~FilterDescriptor() { cudnnDestroyFilterDescriptor(descriptor_); }
  FilterDescriptor(const FilterDescriptor&) = delete;
  FilterDescriptor& operator=(const FilterDescriptor&) = delete;
  cudnnFilterDescriptor_t get() const { return descriptor_; }

 private:
  cudnnFilterDescriptor_t descriptor_ = nullptr;
};

class ConvolutionDescriptor {
 public:
  ConvolutionDescriptor() { VISREP_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&descriptor_)); }
  ~ConvolutionDescriptor() { cudnnDestroyConvolutionDescriptor(descriptor_); }
  ConvolutionDescriptor(const ConvolutionDescriptor&) = delete;
  ConvolutionDescriptor& operator=(const ConvolutionDescriptor&) = delete;
  cudnnConvolutionDescriptor_t get() const { return descriptor_; }

 private:
  cudnnConvolutionDescriptor_t descriptor_ = nullptr;
};

// Output and bias only: enough for the bias and its gradient.
struct OutputDescriptors {
  TensorDescriptor output, bias;
  OutputDescriptors(const Conv2dGeometry& g, cudnnDataType_t type) {
    output.set(type, g.batch, g.out_channels, g.out_height(), g.out_width(), g);
    bias.set(type, 1, g.out_channels, 1, 1, g);
  }
};

// Everything a convolution call needs. Not degenerate geometries only.
struct ConvolutionDescriptors : OutputDescriptors {
  TensorDescriptor input;
  FilterDescriptor weight;
  ConvolutionDescriptor convolution;

  ConvolutionDescriptors(const Conv2dGeometry& g, cudnnDataType_t type) : OutputDescriptors(g, type) {
    input.set(type, g.batch, g.in_channels, g.in_height, g.in_width, g);
    to_cudnn_int(weight_numel(g), "the weight's element count", g);
    VISREP_CUDNN_CHECK(cudnnSetFilter4dDescriptor(weight.get(), type, CUDNN_TENSOR_NCHW,
                                                  to_cudnn_int(g.out_channels, "C_out", g),
                                                  to_cudnn_int(g.in_channels / g.groups, "C_in / groups", g),
                                                  to_cudnn_int(g.kernel_height, "kH", g),
                                                  to_cudnn_int(g.kernel_width, "kW", g)));
    // The compute type is the data type: float accumulates in float, double in double.
    VISREP_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
        convolution.get(), to_cudnn_int(g.padding_height, "padding", g), to_cudnn_int(g.padding_width, "padding", g),
        to_cudnn_int(g.stride_height, "stride", g), to_cudnn_int(g.stride_width, "stride", g),
        to_cudnn_int(g.dilation_height, "dilation", g), to_cudnn_int(g.dilation_width, "dilation", g),
        CUDNN_CROSS_CORRELATION, type));
    VISREP_CUDNN_CHECK(cudnnSetConvolutionGroupCount(convolution.get(), to_cudnn_int(g.groups, "groups", g)));
    // Our output size and cuDNN's must agree, or the output descriptor describes other memory.
    int n = 0, c = 0, h = 0, w = 0;
    VISREP_CUDNN_CHECK(
        cudnnGetConvolution2dForwardOutputDim(convolution.get(), input.get(), weight.get(), &n, &c, &h, &w));
    if (n != g.batch || c != g.out_channels || h != g.out_height() || w != g.out_width()) {
      throw std::runtime_error("conv2d: cuDNN computes an output of (" + std::to_string(n) + ", " +
                               std::to_string(c) + ", " + std::to_string(h) + ", " + std::to_string(w) +
                               ") for " + geometry_string(g));
    }
  }
};

// ---- algorithm choice ------------------------------------------------------------------------

enum class Pass { kForward, kBackwardData, kBackwardFilter };

struct Algorithm {
  int algorithm = 0;  // a cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t, by pass
  cudnnMathType_t math_type = CUDNN_DEFAULT_MATH;
  size_t workspace_bytes = 0;
};

// What the descriptor asks for before the heuristics run (see the top of the file).
template <class T>
cudnnMathType_t requested_math_type() {
  if (std::is_same_v<T, float> && !tf32_enabled()) return CUDNN_FMA_MATH;
  return CUDNN_DEFAULT_MATH;
}

// One pass's heuristics, workspace query and call, behind one interface.
struct ForwardPass {
  using Perf = cudnnConvolutionFwdAlgoPerf_t;
  static constexpr int kCount = CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
  static cudnnStatus_t heuristics(cudnnHandle_t h, const ConvolutionDescriptors& d, int* returned, Perf* results) {
    return cudnnGetConvolutionForwardAlgorithm_v7(h, d.input.get(), d.weight.get(), d.convolution.get(),
                                                  d.output.get(), kCount, returned, results);
  }
  static cudnnStatus_t workspace(cudnnHandle_t h, const ConvolutionDescriptors& d, int algorithm, size_t* bytes) {
    return cudnnGetConvolutionForwardWorkspaceSize(h, d.input.get(), d.weight.get(), d.convolution.get(),
                                                   d.output.get(), static_cast<cudnnConvolutionFwdAlgo_t>(algorithm),
                                                   bytes);
  }
};

struct BackwardDataPass {
  using Perf = cudnnConvolutionBwdDataAlgoPerf_t;
  static constexpr int kCount = CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT;
  static cudnnStatus_t heuristics(cudnnHandle_t h, const ConvolutionDescriptors& d, int* returned, Perf* results) {
    return cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.weight.get(), d.output.get(), d.convolution.get(),
                                                       d.input.get(), kCount, returned, results);
  }
  static cudnnStatus_t workspace(cudnnHandle_t h, const ConvolutionDescriptors& d, int algorithm, size_t* bytes) {
    return cudnnGetConvolutionBackwardDataWorkspaceSize(h, d.weight.get(), d.output.get(), d.convolution.get(),
                                                        d.input.get(),
                                                        static_cast<cudnnConvolutionBwdDataAlgo_t>(algorithm), bytes);
  }
};

struct BackwardFilterPass {
  using Perf = cudnnConvolutionBwdFilterAlgoPerf_t;
  static constexpr int kCount = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
  static cudnnStatus_t heuristics(cudnnHandle_t h, const ConvolutionDescriptors& d, int* returned, Perf* results) {
    return cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.input.get(), d.output.get(), d.convolution.get(),
                                                         d.weight.get(), kCount, returned, results);
  }
  static cudnnStatus_t workspace(cudnnHandle_t h, const ConvolutionDescriptors& d, int algorithm, size_t* bytes) {
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(
        h, d.input.get(), d.output.get(), d.convolution.get(), d.weight.get(),
        static_cast<cudnnConvolutionBwdFilterAlgo_t>(algorithm), bytes);
  }
};

const char* pass_name(Pass pass) {
  switch (pass) {
    case Pass::kForward: return "forward";
    case Pass::kBackwardData: return "backward data";
    case Pass::kBackwardFilter: return "backward filter";
  }
  return "?";
}

template <class PassTraits>
Algorithm choose_algorithm(cudnnHandle_t handle, const ConvolutionDescriptors& d, cudnnMathType_t requested,
                           Pass pass, const Conv2dGeometry& g) {
  VISREP_CUDNN_CHECK(cudnnSetConvolutionMathType(d.convolution.get(), requested));
  typename PassTraits::Perf results[PassTraits::kCount];
  int returned = 0;
  VISREP_CUDNN_CHECK(PassTraits::heuristics(handle, d, &returned, results));
  for (int i = 0; i < returned; ++i) {
    const auto& perf = results[i];
    if (perf.status != CUDNN_STATUS_SUCCESS) continue;
    // Without TF32 only plain fp32 FMA kernels will do (PyTorch asserts the same).
    if (requested == CUDNN_FMA_MATH && perf.mathType != CUDNN_FMA_MATH) continue;
    // The workspace depends on the math type the algorithm runs with.
    VISREP_CUDNN_CHECK(cudnnSetConvolutionMathType(d.convolution.get(), perf.mathType));
    size_t bytes = 0;
    if (PassTraits::workspace(handle, d, static_cast<int>(perf.algo), &bytes) != CUDNN_STATUS_SUCCESS) continue;
    if (bytes > kMaxWorkspaceBytes) continue;
    return Algorithm{static_cast<int>(perf.algo), perf.mathType, bytes};
  }
  if (requested == CUDNN_FMA_MATH) {
    // Should no algorithm be labelled FMA: one that succeeded, run with the descriptor held
    // at CUDNN_FMA_MATH, which restricts cuDNN to FMA kernels (or makes it refuse the algorithm).
    VISREP_CUDNN_CHECK(cudnnSetConvolutionMathType(d.convolution.get(), CUDNN_FMA_MATH));
    for (int i = 0; i < returned; ++i) {
      if (results[i].status != CUDNN_STATUS_SUCCESS) continue;
      size_t bytes = 0;
      const int algorithm = static_cast<int>(results[i].algo);
      if (PassTraits::workspace(handle, d, algorithm, &bytes) != CUDNN_STATUS_SUCCESS) continue;
      if (bytes > kMaxWorkspaceBytes) continue;
      return Algorithm{algorithm, CUDNN_FMA_MATH, bytes};
    }
  }
  throw std::runtime_error(std::string("conv2d: cuDNN offers no ") + pass_name(pass) +
                           " algorithm with at most 1 GiB of workspace" +
                           (requested == CUDNN_FMA_MATH ? " and without TF32" : "") + " for " + geometry_string(g));
}

// The cached choice for this pass and geometry (choosing it on first use), with the
// descriptor's math type set to the one the algorithm runs with.
template <class T>
Algorithm algorithm_for(Pass pass, cudnnHandle_t handle, const ConvolutionDescriptors& d, const Conv2dGeometry& g) {
  const cudnnMathType_t requested = requested_math_type<T>();
  const std::array<int64_t, 18> key = {g.batch,          g.in_channels,    g.in_height,       g.in_width,
                                       g.out_channels,   g.kernel_height,  g.kernel_width,    g.stride_height,
                                       g.stride_width,   g.padding_height, g.padding_width,   g.dilation_height,
                                       g.dilation_width, g.groups,         static_cast<int64_t>(pass),
                                       std::is_same_v<T, double> ? 1 : 0,  requested == CUDNN_FMA_MATH ? 1 : 0,
                                       current_device()};
  static std::mutex mutex;
  static std::map<std::array<int64_t, 18>, Algorithm> cache;
  {
    const std::lock_guard<std::mutex> lock(mutex);
    const auto found = cache.find(key);
    if (found != cache.end()) {
      VISREP_CUDNN_CHECK(cudnnSetConvolutionMathType(d.convolution.get(), found->second.math_type));
      return found->second;
    }
  }
  Algorithm chosen;
  switch (pass) {
    case Pass::kForward: chosen = choose_algorithm<ForwardPass>(handle, d, requested, pass, g); break;
    case Pass::kBackwardData: chosen = choose_algorithm<BackwardDataPass>(handle, d, requested, pass, g); break;
    case Pass::kBackwardFilter: chosen = choose_algorithm<BackwardFilterPass>(handle, d, requested, pass, g); break;
  }
  VISREP_CUDNN_CHECK(cudnnSetConvolutionMathType(d.convolution.get(), chosen.math_type));
  const std::lock_guard<std::mutex> lock(mutex);
  cache.emplace(key, chosen);
  return chosen;
}

constexpr uintptr_t kCudnnAlignment = 16;

bool is_aligned(const void* pointer) { return reinterpret_cast<uintptr_t>(pointer) % kCudnnAlignment == 0; }

// `pointer` itself when it is aligned (or null), else an aligned copy of its `elements`.
template <class T>
class AlignedInput {
 public:
  AlignedInput(const T* pointer, int64_t elements, cudaStream_t stream) : pointer_(pointer) {
    if (pointer == nullptr || elements <= 0 || is_aligned(pointer)) return;
    const size_t bytes = static_cast<size_t>(elements) * sizeof(T);
    copy_.emplace(bytes, current_device(), stream);
    VISREP_CUDA_CHECK(cudaMemcpyAsync(copy_->get(), pointer, bytes, cudaMemcpyDeviceToDevice, stream));
    pointer_ = copy_->template get<T>();
  }
  const T* get() const { return pointer_; }

 private:
  const T* pointer_;
  std::optional<DeviceBuffer> copy_;  // released after the call's work is queued (device_buffer.h)
};

void check_output_aligned(const void* pointer, const char* what) {
  if (pointer != nullptr && !is_aligned(pointer)) {
    throw std::runtime_error(std::string("conv2d kernel: ") + what +
                             " is not 16-byte aligned, as cuDNN requires (the op passes fresh allocations)");
  }
}

void fill_zero(void* pointer, int64_t elements, size_t element_bytes, cudaStream_t stream) {
  if (elements <= 0) return;
  VISREP_CUDA_CHECK(cudaMemsetAsync(pointer, 0, static_cast<size_t>(elements) * element_bytes, stream));
}

}  // namespace

template <class T>
void conv2d_forward(const Conv2dForward<T>& arguments, cudaStream_t stream) {
  const Conv2dGeometry& g = arguments.geometry;
  const T* input_in = arguments.input;
  const T* weight_in = arguments.weight;
  const T* bias_in = arguments.bias;
  T* output = arguments.output;
  check_geometry(g);
  const int64_t out_elements = output_numel(g);
  if (out_elements == 0) return;
  check_output_aligned(output, "the output");
  const AlignedInput<T> aligned_input(input_in, input_numel(g), stream),
      aligned_weight(weight_in, weight_numel(g), stream), aligned_bias(bias_in, g.out_channels, stream);
  const T* input = aligned_input.get();
  const T* weight = aligned_weight.get();
  const T* bias = aligned_bias.get();
  // cuDNN reads its scaling factors as double for double data and as float otherwise: T.
  const T one = 1, zero = 0;
  CudnnLease cudnn(stream);
  if (is_degenerate(g)) {
    fill_zero(output, out_elements, sizeof(T), stream);
    if (bias != nullptr) {
      const OutputDescriptors d(g, cudnn_data_type<T>());
      VISREP_CUDNN_CHECK(cudnnAddTensor(cudnn.get(), &one, d.bias.get(), bias, &one, d.output.get(), output));
    }
    return;
  }
  const ConvolutionDescriptors d(g, cudnn_data_type<T>());
  const Algorithm algorithm = algorithm_for<T>(Pass::kForward, cudnn.get(), d, g);
  DeviceBuffer workspace(algorithm.workspace_bytes, current_device(), stream);
  VISREP_CUDNN_CHECK(cudnnConvolutionForward(cudnn.get(), &one, d.input.get(), input, d.weight.get(), weight,
                                             d.convolution.get(),
                                             static_cast<cudnnConvolutionFwdAlgo_t>(algorithm.algorithm),
                                             workspace.get(), algorithm.workspace_bytes, &zero, d.output.get(),
                                             output));
  if (bias != nullptr) {
    VISREP_CUDNN_CHECK(cudnnAddTensor(cudnn.get(), &one, d.bias.get(), bias, &one, d.output.get(), output));
  }
}

template <class T>
void conv2d_backward(const Conv2dBackward<T>& arguments, cudaStream_t stream) {
  const Conv2dGeometry& g = arguments.geometry;
  const T* grad_output_in = arguments.grad_output;
  const T* input_in = arguments.input;
  const T* weight_in = arguments.weight;
  T* grad_input = arguments.grad_input;
  T* grad_weight = arguments.grad_weight;
  T* grad_bias = arguments.grad_bias;
  check_geometry(g);
  if (grad_input == nullptr && grad_weight == nullptr && grad_bias == nullptr) return;
  check_output_aligned(grad_input, "grad_input");
  check_output_aligned(grad_weight, "grad_weight");
  check_output_aligned(grad_bias, "grad_bias");
  const AlignedInput<T> aligned_grad_output(grad_output_in, output_numel(g), stream),
      aligned_input(input_in, input_numel(g), stream), aligned_weight(weight_in, weight_numel(g), stream);
  const T* grad_output = aligned_grad_output.get();
  const T* input = aligned_input.get();
  const T* weight = aligned_weight.get();
  const T one = 1, zero = 0;
  const int64_t out_elements = output_numel(g);
  CudnnLease cudnn(stream);

  if (is_degenerate(g)) {
    if (grad_input != nullptr) fill_zero(grad_input, input_numel(g), sizeof(T), stream);
    if (grad_weight != nullptr) fill_zero(grad_weight, weight_numel(g), sizeof(T), stream);
    if (grad_bias != nullptr) {
      if (out_elements == 0) {
        fill_zero(grad_bias, g.out_channels, sizeof(T), stream);
      } else {
        const OutputDescriptors d(g, cudnn_data_type<T>());
        VISREP_CUDNN_CHECK(cudnnConvolutionBackwardBias(cudnn.get(), &one, d.output.get(), grad_output, &zero,
                                                        d.bias.get(), grad_bias));
      }
    }
    return;
  }

  const ConvolutionDescriptors d(g, cudnn_data_type<T>());
  if (grad_input != nullptr) {
    const Algorithm algorithm = algorithm_for<T>(Pass::kBackwardData, cudnn.get(), d, g);
    DeviceBuffer workspace(algorithm.workspace_bytes, current_device(), stream);
    VISREP_CUDNN_CHECK(cudnnConvolutionBackwardData(
        cudnn.get(), &one, d.weight.get(), weight, d.output.get(), grad_output, d.convolution.get(),
        static_cast<cudnnConvolutionBwdDataAlgo_t>(algorithm.algorithm), workspace.get(), algorithm.workspace_bytes,
        &zero, d.input.get(), grad_input));
  }
  if (grad_weight != nullptr) {
    const Algorithm algorithm = algorithm_for<T>(Pass::kBackwardFilter, cudnn.get(), d, g);
    DeviceBuffer workspace(algorithm.workspace_bytes, current_device(), stream);
    VISREP_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
        cudnn.get(), &one, d.input.get(), input, d.output.get(), grad_output, d.convolution.get(),
        static_cast<cudnnConvolutionBwdFilterAlgo_t>(algorithm.algorithm), workspace.get(), algorithm.workspace_bytes,
        &zero, d.weight.get(), grad_weight));
  }
  if (grad_bias != nullptr) {
    VISREP_CUDNN_CHECK(cudnnConvolutionBackwardBias(cudnn.get(), &one, d.output.get(), grad_output, &zero,
                                                    d.bias.get(), grad_bias));
  }
}

template void conv2d_forward<float>(const Conv2dForward<float>&, cudaStream_t);
template void conv2d_forward<double>(const Conv2dForward<double>&, cudaStream_t);
template void conv2d_backward<float>(const Conv2dBackward<float>&, cudaStream_t);
template void conv2d_backward<double>(const Conv2dBackward<double>&, cudaStream_t);

}  // namespace visrep::kernels::cuda
