#include "tests/parity/parity.h"

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "engine/cuda.h"
#include "kernels/cuda/allocator.h"

namespace visrep::testing {
namespace {

struct Comparison {
  double error = 0.0;
  std::string problem;  // empty when NaN/Inf positions agree
};

// NMSE of `actual` against `expected`, both copied to the CPU as float64, after checking
// that non-finite values sit at the same places.
Comparison compare(const Tensor& expected_in, const Tensor& actual_in) {
  const Tensor expected = expected_in.detach().cpu().to(kFloat64).contiguous();
  const Tensor actual = actual_in.detach().cpu().to(kFloat64).contiguous();
  Comparison result;
  if (expected.shape() != actual.shape()) {
    result.problem = fmt::format("shapes differ: cpu {} vs cuda {}", shape_string(expected.shape()),
                                 shape_string(actual.shape()));
    result.error = INFINITY;
    return result;
  }
  const double* e = expected.data<double>();
  const double* a = actual.data<double>();
  double squared_difference = 0.0, squared_reference = 0.0;
  for (int64_t i = 0; i < expected.numel(); ++i) {
    const bool e_finite = std::isfinite(e[i]), a_finite = std::isfinite(a[i]);
    if (!e_finite || !a_finite) {
      const bool same = (std::isnan(e[i]) && std::isnan(a[i])) || e[i] == a[i];
      if (!same && result.problem.empty()) {
        result.problem = fmt::format("element {} is {} on the cpu but {} on cuda (an unwritten element reads NaN)",
                                     i, e[i], a[i]);
      }
      continue;
    }
    squared_difference += (a[i] - e[i]) * (a[i] - e[i]);
    squared_reference += e[i] * e[i];
  }
  result.error = squared_reference > 0 ? squared_difference / squared_reference : squared_difference;
  return result;
}

std::vector<Tensor> to_cuda(const std::vector<Tensor>& inputs) {
  std::vector<Tensor> copies;
  for (const Tensor& input : inputs) {
    if (!input.defined()) {
      copies.push_back(input);
      continue;
    }
    // Same values, same layout class (the copy is contiguous; cases make views inside the
    // function so both devices see the same strides).
    Tensor copy = input.detach().to(Device::cuda());
    if (input.requires_grad()) copy.set_requires_grad(true);
    copies.push_back(copy);
  }
  return copies;
}

void report(const ParityCase& parity_case, const ParityResult& result) {
  const std::string line = fmt::format("parity {:<44} forward nmse {:.2e}  backward nmse {:.2e}  (tolerance {:.0e})",
                                       parity_case.name, result.forward_error, result.backward_error,
                                       parity_case.tolerance);
  std::printf("%s\n", line.c_str());
  if (const char* path = std::getenv("VISREP_PARITY_REPORT")) {
    if (FILE* file = std::fopen(path, "a")) {
      std::fprintf(file, "{\"case\": \"%s\", \"forward_nmse\": %.3e, \"backward_nmse\": %.3e, \"tolerance\": %.1e}\n",
                   parity_case.name.c_str(), result.forward_error, result.backward_error, parity_case.tolerance);
      std::fclose(file);
    }
  }
}

}  // namespace

ParityResult check_parity(const ParityCase& parity_case_in) {
  REQUIRE(cuda_available());
  ParityCase parity_case = parity_case_in;
  if (parity_case.name.empty()) parity_case.name = Catch::getResultCapture().getCurrentTestName();
  kernels::cuda::set_poison_allocations(true);
  Generator generator(std::hash<std::string>{}(parity_case.name) & 0xffffffffu);
  const std::vector<Tensor> cpu_inputs = parity_case.make_inputs(generator);
  const std::vector<Tensor> cuda_inputs = to_cuda(cpu_inputs);

  const Tensor cpu_output = parity_case.function(cpu_inputs);
  const Tensor cuda_output = parity_case.function(cuda_inputs);
  REQUIRE(cuda_output.device().is_cuda());
  REQUIRE(cuda_output.dtype() == cpu_output.dtype());

  ParityResult result;
  const Comparison forward = compare(cpu_output, cuda_output);
  result.forward_error = forward.error;
  INFO(parity_case.name << " forward: " << forward.problem);
  CHECK(forward.problem.empty());

  if (parity_case.compare_backward && cpu_output.requires_grad()) {
    Generator direction_generator(99);
    const Tensor seed = randn(cpu_output.shape(), cpu_output.dtype(), direction_generator);
    cpu_output.backward(seed);
    cuda_output.backward(seed.to(Device::cuda()));
    for (size_t i = 0; i < cpu_inputs.size(); ++i) {
      if (!cpu_inputs[i].defined() || !cpu_inputs[i].requires_grad()) continue;
      REQUIRE(cuda_inputs[i].grad().defined());
      const Comparison backward = compare(cpu_inputs[i].grad(), cuda_inputs[i].grad());
      INFO(parity_case.name << " gradient of input " << i << ": " << backward.problem);
      CHECK(backward.problem.empty());
      result.backward_error = std::max(result.backward_error, backward.error);
    }
  }
  cuda::synchronize();
  kernels::cuda::set_poison_allocations(false);
  report(parity_case, result);
  CHECK(result.forward_error <= parity_case.tolerance);
  CHECK(result.backward_error <= parity_case.tolerance);
  return result;
}

ScopedTf32::ScopedTf32(bool enabled) : previous_(cuda::tf32_enabled()) { cuda::set_tf32_enabled(enabled); }
ScopedTf32::~ScopedTf32() { cuda::set_tf32_enabled(previous_); }

}  // namespace visrep::testing
