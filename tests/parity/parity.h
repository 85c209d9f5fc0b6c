// CPU vs CUDA parity, in the manner of ggml's tests/test-backend-ops.cpp: each case builds
// its inputs on the CPU from a seeded generator, copies them to the GPU, runs the same
// function on both devices, then compares
//   - the forward output, and
//   - for every input that requires a gradient, its gradient after a backward pass seeded
//     with the same random direction on both devices,
// by normalized mean squared error, NMSE = sum (cuda - cpu)^2 / sum cpu^2, which must stay
// below the case's tolerance. NaN and Inf must sit at the same positions on both sides.
// Every CUDA allocation is poisoned with NaN bytes first, so an element a kernel forgot to
// write shows up as a NaN the CPU does not have.
//
// The cases are Catch2 TEST_CASEs tagged [gpu] (ctest label gpu); without a GPU the
// parity executable prints why and exits with ctest's skip code, never a silent pass:
//   TEST_CASE("add broadcast", "[gpu]") {
//     check_parity({.make_inputs = [](Generator& g) { ... }, .function = [](auto& in) { ... },
//                   .tolerance = 1e-12});
//   }
//
// The report: when the environment variable VISREP_PARITY_REPORT names a file, every check
// appends one JSON line to it (kind "check": test, case, metric, forward and backward error,
// tolerance, passed, and what went wrong), whether it passed, failed or threw, and every
// TEST_CASE appends a "start" line when it begins and a "test" line when it ends (passed,
// failed assertions, seconds, the first failure), so tools/gpu-check.sh can run the whole
// suite in one process and still say which case failed, which one a crash happened in and
// which ones never ran (tools/gpu_check_summary.py reads the file).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/ops.h"

namespace visrep::testing {

struct ParityCase {
  std::string name;  // empty: the Catch2 test's name
  // CPU inputs. Set requires_grad on the floating inputs whose gradients are compared.
  std::function<std::vector<Tensor>(Generator&)> make_inputs;
  // Runs on whichever device its inputs are on; may return any floating or integer tensor.
  std::function<Tensor(const std::vector<Tensor>&)> function;
  double tolerance = 1e-10;       // NMSE bound, forward and backward (1e-10 ~ 1e-5 relative)
  bool compare_backward = true;   // off for outputs without a gradient (argmax, comparisons)
};

struct ParityResult {
  double forward_error = 0.0;
  double backward_error = 0.0;  // worst over the inputs
};

// Runs the case and REQUIREs parity; also prints one line with the errors and reports it
// (report_parity_check), failed and with the exception's message should it throw.
ParityResult check_parity(const ParityCase& parity_case);

// One check's line of the report, for checks that compare in their own way (the random
// draws count ulps); check_parity fills one for each case.
struct ParityCheckReport {
  std::string name;
  std::string metric = "nmse";  // what the errors and the tolerance measure
  double forward_error = 0.0;
  double backward_error = 0.0;
  double tolerance = 0.0;
  bool passed = false;
  std::string problem;  // why it failed, when that is more than an error above tolerance
  std::string note;     // anything else worth a reader's eye (e.g. how many values were bit-identical)
};
// Prints the check's line and appends it to the VISREP_PARITY_REPORT file (if set) as JSON.
void report_parity_check(const ParityCheckReport& report);

using ParityInputs = std::vector<Tensor>;

// " float32", " float64", ...: the dtype appended to a case's name.
inline std::string dtype_suffix(DType dtype) { return " " + std::string(dtype_name(dtype)); }

// The NMSE bound of the normalisation ops (group_norm, weight_standardization): the CPU
// computes in double and rounds once; the GPU keeps float32 statistics and arithmetic
// (float64 for float64), so float32 results differ by a few float32 roundings of sums over
// up to ~10^5 values: NMSE ~1e-13, bound 1e-10 (a formula slip, e.g. a missing gamma or an
// unbiased variance, is >= 1e-4). bfloat16: the two sides round their (slightly different)
// float results to 8 bits, so some elements differ by one bfloat16 ulp (2^-8 relative):
// NMSE <= ~1e-5, bound 1e-4. float64: 1e-24.
inline double normalization_tolerance(DType dtype) {
  if (dtype == kFloat64) return 1e-24;
  return dtype == kBFloat16 ? 1e-4 : 1e-10;
}

// An input whose gradient is compared: `tensor` converted to `dtype`, requiring a gradient.
inline Tensor parity_leaf(const Tensor& tensor, DType dtype = kFloat32) {
  return tensor.to(dtype).detach().set_requires_grad();
}

// Sets the TF32 switch for one scope (cases that test the tensor-core paths).
class ScopedTf32 {
 public:
  explicit ScopedTf32(bool enabled);
  ~ScopedTf32();
  ScopedTf32(const ScopedTf32&) = delete;
  ScopedTf32& operator=(const ScopedTf32&) = delete;

 private:
  bool previous_;
};

}  // namespace visrep::testing
