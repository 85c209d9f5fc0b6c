// weight_standardization of one weight or a list: checks, the kernel call and its backward
// (kernels/cpu/weight_standardization.h lists the family's files).
#include "engine/ops/weight_standardization.h"

#include <string_view>
#include <utility>

#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "kernels/cpu/weight_standardization.h"
#include "kernels/cuda/weight_standardization.h"

namespace visrep {
namespace {

constexpr std::string_view kOp = "weight_standardization";

// Rows (output channels) and fan-in of a weight (C_out, ...).
std::pair<int64_t, int64_t> rows_and_fan_in(const Tensor& weight) {
  int64_t fan_in = 1;
  for (int64_t d = 1; d < weight.dim(); ++d) fan_in *= weight.size(d);
  return {weight.size(0), fan_in};
}

// The forward pass over a list: one kernel call for every weight. The outputs are views of
// one buffer; the statistics of weight i are rows [first_row[i], first_row[i + 1]) of
// mean and invstd.
struct Standardized {
  std::vector<Tensor> weights;  // the inputs, contiguous
  std::vector<Tensor> outputs;
  Tensor mean, invstd;
  std::vector<int64_t> first_row;
};

Standardized standardize(const std::vector<Tensor>& weights_in, double eps) {
  check_eps(kOp, eps);
  Standardized result;
  if (weights_in.empty()) return result;
  int64_t elements = 0, rows = 0;
  for (size_t i = 0; i < weights_in.size(); ++i) {
    const Tensor& w = weights_in[i];
    VISREP_CHECK(w.defined(), "{}: weight {} of the list is an undefined tensor", kOp, i);
    VISREP_CHECK(w.dim() >= 2, "{}: weight {} has shape {}; expected (C_out, fan-in dimensions...), at least 2-D",
                 kOp, i, shape_string(w.shape()));
    check_floating_or_bfloat16(kOp, w, "the weight");
    const Tensor& first = weights_in.front();
    VISREP_CHECK(w.device() == first.device() && w.dtype() == first.dtype(),
                 "{}: all weights must share dtype and device; weight 0 is {} but weight {} is {}", kOp,
                 first.description(), i, w.description());
    result.weights.push_back(w.contiguous());
    result.first_row.push_back(rows);
    rows += w.size(0);
    elements += w.numel();
  }
  result.first_row.push_back(rows);
  const Tensor& first = result.weights.front();
  const Tensor flat = empty({elements}, TensorOptions(first.dtype(), first.device()));
  result.mean = empty({rows}, accumulate_options(first));
  result.invstd = empty({rows}, accumulate_options(first));
  int64_t offset = 0;
  for (const Tensor& w : result.weights) {
    result.outputs.push_back(flat.narrow(0, offset, w.numel()).view(w.shape()));
    offset += w.numel();
  }

  visit_floating_or_bfloat16(first.dtype(), kOp, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using S = kernels::AccumulateType<T>;
    std::vector<kernels::WeightStandardizationForward<T>> list;
    for (size_t i = 0; i < result.weights.size(); ++i) {
      const auto [weight_rows, fan_in] = rows_and_fan_in(result.weights[i]);
      list.push_back({.weight = data_or_null<const T>(result.weights[i]),
                      .standardized = data_or_null<T>(result.outputs[i]),
                      .mean = data_or_null<S>(result.mean) + result.first_row[i],
                      .invstd = data_or_null<S>(result.invstd) + result.first_row[i],
                      .rows = weight_rows,
                      .fan_in = fan_in});
    }
    VISREP_RUN_KERNEL(kOp, first.device(), weight_standardization_forward, list.data(),
                      static_cast<int64_t>(list.size()), eps);
  });
  return result;
}

// dL/dw for every weight whose gradient dL/dw_hat is defined, in one kernel call; undefined
// for the others. Allocates the results and runs the kernel: nothing is kept between
// calls, so a pass that throws leaves nothing behind.
TensorList standardize_backward(const std::vector<SavedTensor>& saved_weights, const TensorList& grads,
                                const Tensor& mean, const Tensor& invstd, const std::vector<int64_t>& first_row) {
  TensorList result(saved_weights.size());
  std::vector<Tensor> weights(saved_weights.size()), contiguous_grads(saved_weights.size());
  for (size_t i = 0; i < saved_weights.size(); ++i) {
    if (!grads[i].defined()) continue;
    weights[i] = saved_weights[i].get();
    contiguous_grads[i] = grads[i].contiguous();
    result[i] = empty_like(weights[i]);
  }
  const DType dtype = saved_weights.front().get().dtype();
  visit_floating_or_bfloat16(dtype, kOp, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using S = kernels::AccumulateType<T>;
    std::vector<kernels::WeightStandardizationBackward<T>> list;
    for (size_t i = 0; i < weights.size(); ++i) {
      if (!result[i].defined()) continue;
      const auto [weight_rows, fan_in] = rows_and_fan_in(weights[i]);
      list.push_back({.weight = data_or_null<const T>(weights[i]),
                      .grad_standardized = data_or_null<const T>(contiguous_grads[i]),
                      .grad_weight = data_or_null<T>(result[i]),
                      .mean = data_or_null<const S>(mean) + first_row[i],
                      .invstd = data_or_null<const S>(invstd) + first_row[i],
                      .rows = weight_rows,
                      .fan_in = fan_in});
    }
    if (list.empty()) return;
    VISREP_RUN_KERNEL(kOp, mean.device(), weight_standardization_backward, list.data(),
                      static_cast<int64_t>(list.size()));
  });
  return result;
}

std::vector<Tensor> record_standardization(Standardized s, const TensorList& weights) {
  return record(kOp, std::move(s.outputs), weights,
                [saved = std::vector<SavedTensor>(s.weights.begin(), s.weights.end()), mean = s.mean,
                 invstd = s.invstd, first_row = s.first_row](const TensorList& grad_outputs) -> TensorList {
                  return standardize_backward(saved, grad_outputs, mean, invstd, first_row);
                });
}

}  // namespace

Tensor weight_standardization(const Tensor& weight, double eps) {
  check_defined(kOp, weight, "weight");
  return record_standardization(standardize({weight}, eps), {weight}).front();
}

std::vector<Tensor> weight_standardization(const std::vector<Tensor>& weights, double eps) {
  return record_standardization(standardize(weights, eps), weights);
}

}  // namespace visrep
