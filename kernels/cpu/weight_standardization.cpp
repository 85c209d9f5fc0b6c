// Weight standardisation on the CPU: the reference for kernels/cuda/weight_standardization.cu
// (kernels/cpu/weight_standardization.h specifies it and lists the family's files).
// Rows (output channels) are independent; each is an exact two-pass mean and biased
// variance in double. The rows of every tensor in the list run in parallel (OpenMP over
// one flattened (tensor, row) index, so a list of small weights still fills the cores).
#include "kernels/cpu/weight_standardization.h"

#include <cmath>
#include <utility>
#include <vector>

#include "kernels/cpu/double_accumulation.h"

namespace visrep::kernels::cpu {
namespace {

// (tensor, row) pairs of the whole list, in order, so one parallel loop covers them all.
template <class Descriptor>
std::vector<std::pair<int64_t, int64_t>> all_rows(const Descriptor* tensors, int64_t count, int64_t& elements) {
  std::vector<std::pair<int64_t, int64_t>> rows;
  elements = 0;
  for (int64_t t = 0; t < count; ++t) {
    for (int64_t r = 0; r < tensors[t].rows; ++r) rows.emplace_back(t, r);
    elements += tensors[t].rows * tensors[t].fan_in;
  }
  return rows;
}

constexpr int64_t kParallelThreshold = 32768;  // elements

}  // namespace

template <class T>
void weight_standardization_forward(const WeightStandardizationForward<T>* tensors, int64_t count, double eps) {
  using Statistic = AccumulateType<T>;
  int64_t elements = 0;
  const auto rows = all_rows(tensors, count, elements);
  const int64_t total_rows = static_cast<int64_t>(rows.size());
#pragma omp parallel for schedule(static) if (elements >= kParallelThreshold)
  for (int64_t index = 0; index < total_rows; ++index) {
    const auto& tensor = tensors[rows[static_cast<size_t>(index)].first];
    const int64_t row = rows[static_cast<size_t>(index)].second;
    const int64_t k = tensor.fan_in;
    const T* w = tensor.weight + row * k;
    T* out = tensor.standardized + row * k;
    double total = 0.0;
    for (int64_t i = 0; i < k; ++i) total += to_double(w[i]);
    const double mean = k > 0 ? total / static_cast<double>(k) : 0.0;
    double squares = 0.0;
    for (int64_t i = 0; i < k; ++i) {
      const double d = to_double(w[i]) - mean;
      squares += d * d;
    }
    const double variance = k > 0 ? squares / static_cast<double>(k) : 0.0;
    const double invstd = 1.0 / std::sqrt(variance + eps);
    for (int64_t i = 0; i < k; ++i) out[i] = from_double<T>((to_double(w[i]) - mean) * invstd);
    if (tensor.mean != nullptr) tensor.mean[row] = static_cast<Statistic>(k > 0 ? mean - to_double(w[0]) : 0.0);
    if (tensor.invstd != nullptr) tensor.invstd[row] = static_cast<Statistic>(invstd);
  }
}

template <class T>
void weight_standardization_backward(const WeightStandardizationBackward<T>* tensors, int64_t count) {
  int64_t elements = 0;
  const auto rows = all_rows(tensors, count, elements);
  const int64_t total_rows = static_cast<int64_t>(rows.size());
#pragma omp parallel for schedule(static) if (elements >= kParallelThreshold)
  for (int64_t index = 0; index < total_rows; ++index) {
    const auto& tensor = tensors[rows[static_cast<size_t>(index)].first];
    const int64_t row = rows[static_cast<size_t>(index)].second;
    const int64_t k = tensor.fan_in;
    const T* w = tensor.weight + row * k;
    const T* g = tensor.grad_standardized + row * k;
    T* dw = tensor.grad_weight + row * k;
    const double first = k > 0 ? to_double(w[0]) : 0.0;  // the saved mean is relative to the row's first value
    const double center = static_cast<double>(tensor.mean[row]);
    const double invstd = static_cast<double>(tensor.invstd[row]);
    double sum_g = 0.0, sum_g_what = 0.0;
    for (int64_t i = 0; i < k; ++i) {
      const double w_hat = (to_double(w[i]) - first - center) * invstd;
      sum_g += to_double(g[i]);
      sum_g_what += to_double(g[i]) * w_hat;
    }
    const double mean_g = sum_g / static_cast<double>(k), mean_g_what = sum_g_what / static_cast<double>(k);
    for (int64_t i = 0; i < k; ++i) {
      const double w_hat = (to_double(w[i]) - first - center) * invstd;
      dw[i] = from_double<T>(invstd * (to_double(g[i]) - mean_g - w_hat * mean_g_what));
    }
  }
}

#define VISREP_INSTANTIATE_WEIGHT_STANDARDIZATION(T)                                                            \
  template void weight_standardization_forward<T>(const WeightStandardizationForward<T>*, int64_t, double); \
  template void weight_standardization_backward<T>(const WeightStandardizationBackward<T>*, int64_t);

VISREP_INSTANTIATE_WEIGHT_STANDARDIZATION(float)
VISREP_INSTANTIATE_WEIGHT_STANDARDIZATION(double)
VISREP_INSTANTIATE_WEIGHT_STANDARDIZATION(bfloat16)
#undef VISREP_INSTANTIATE_WEIGHT_STANDARDIZATION

}  // namespace visrep::kernels::cpu
