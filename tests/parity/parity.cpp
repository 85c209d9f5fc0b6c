#include "tests/parity/parity.h"

// The event listener below (the report's "start" and "test" lines) needs Catch2's reporter
// interfaces outside the file that holds Catch2's implementation.
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <string>

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

// Appends one JSON line to the VISREP_PARITY_REPORT file, if set. Opened and closed per
// line, so a crash later loses nothing that was written.
void append_to_report(const nlohmann::json& line) {
  const char* path = std::getenv("VISREP_PARITY_REPORT");
  if (path == nullptr || *path == '\0') return;
  if (FILE* file = std::fopen(path, "a")) {
    const std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    std::fputs(text.c_str(), file);
    std::fclose(file);
  }
}

std::string current_test_name() { return Catch::getResultCapture().getCurrentTestName(); }

// Every CUDA allocation is filled with NaN bytes while a check runs (see parity.h), and only
// then: the guard switches it off again however the check ends, so a check that throws
// does not leave the poisoning on for the cases after it in the same process.
class PoisonedAllocations {
 public:
  PoisonedAllocations() { kernels::cuda::set_poison_allocations(true); }
  ~PoisonedAllocations() { kernels::cuda::set_poison_allocations(false); }
  PoisonedAllocations(const PoisonedAllocations&) = delete;
  PoisonedAllocations& operator=(const PoisonedAllocations&) = delete;
};

// The comparisons of one case; REQUIREs what must hold before errors mean anything.
ParityResult run_check(const ParityCase& parity_case, std::string& problem) {
  const PoisonedAllocations poisoned;
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
  if (!forward.problem.empty()) problem = "forward: " + forward.problem;

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
      if (!backward.problem.empty() && problem.empty()) {
        problem = fmt::format("gradient of input {}: {}", i, backward.problem);
      }
      result.backward_error = std::max(result.backward_error, backward.error);
    }
  }
  // Errors a kernel left for later (kernels/cuda/deferred_errors.h) belong to this case.
  cuda::synchronize();
  return result;
}

}  // namespace

void report_parity_check(const ParityCheckReport& report) {
  std::printf("parity %-44s %s  forward %.2e  backward %.2e  (tolerance %.0e)%s%s\n", report.name.c_str(),
              report.passed ? "ok    " : "FAILED", report.forward_error, report.backward_error, report.tolerance,
              report.note.empty() ? "" : "  ", report.note.c_str());
  nlohmann::json line = {{"kind", "check"},
                         {"test", current_test_name()},
                         {"case", report.name},
                         {"metric", report.metric},
                         {"forward_error", report.forward_error},
                         {"backward_error", report.backward_error},
                         {"tolerance", report.tolerance},
                         {"passed", report.passed}};
  if (!report.problem.empty()) line["problem"] = report.problem;
  if (!report.note.empty()) line["note"] = report.note;
  append_to_report(line);  // NaN and Inf errors become null there, which the summary reads as a failure
}

ParityResult check_parity(const ParityCase& parity_case_in) {
  REQUIRE(cuda_available());
  ParityCase parity_case = parity_case_in;
  if (parity_case.name.empty()) parity_case.name = current_test_name();
  ParityCheckReport report{.name = parity_case.name, .tolerance = parity_case.tolerance};
  ParityResult result;
  try {
    result = run_check(parity_case, report.problem);
  } catch (const std::exception& error) {
    report.problem = std::string("threw: ") + error.what();
    report_parity_check(report);
    throw;
  } catch (...) {  // a failed REQUIRE (Catch2's own exception type); the test's line says which
    if (report.problem.empty()) report.problem = "a REQUIRE failed before the errors were measured";
    report_parity_check(report);
    throw;
  }
  report.forward_error = result.forward_error;
  report.backward_error = result.backward_error;
  report.passed = report.problem.empty() && result.forward_error <= parity_case.tolerance &&
                  result.backward_error <= parity_case.tolerance;
  report_parity_check(report);
  CHECK(result.forward_error <= parity_case.tolerance);
  CHECK(result.backward_error <= parity_case.tolerance);
  return result;
}

ScopedTf32::ScopedTf32(bool enabled) : previous_(cuda::tf32_enabled()) { cuda::set_tf32_enabled(enabled); }
ScopedTf32::~ScopedTf32() { cuda::set_tf32_enabled(previous_); }

namespace {

// Writes the report's "start" and "test" lines (see parity.h). After each test case it also
// synchronises the device: an error a kernel left for later is charged to the case that
// caused it, not to the next one. Should the device still fail after that (a kernel fault
// leaves the CUDA context unusable, and every later case would fail for it), it says so
// and ends the process with exit code 3, so that tools/gpu-check.sh runs the remaining
// cases in a fresh one.
class ParityReportListener : public Catch::TestEventListenerBase {
 public:
  using TestEventListenerBase::TestEventListenerBase;

  void testCaseStarting(const Catch::TestCaseInfo& info) override {
    TestEventListenerBase::testCaseStarting(info);
    started_ = std::chrono::steady_clock::now();
    first_failure_.clear();
    append_to_report({{"kind", "start"}, {"test", info.name}});
  }

  bool assertionEnded(const Catch::AssertionStats& stats) override {
    const Catch::AssertionResult& result = stats.assertionResult;
    if (!result.isOk() && first_failure_.empty()) {
      const Catch::SourceLineInfo where = result.getSourceInfo();
      first_failure_ = fmt::format("{}:{}: ", where.file, where.line);
      if (result.hasExpression()) first_failure_ += result.getExpandedExpression();
      if (result.hasMessage()) first_failure_ += (result.hasExpression() ? "; " : "") + result.getMessage();
      for (const Catch::MessageInfo& info : stats.infoMessages) first_failure_ += "; " + info.message;
    }
    return true;
  }

  void testCaseEnded(const Catch::TestCaseStats& stats) override {
    std::string after;
    bool device_lost = false;
    if (cuda_available()) {
      try {
        cuda::synchronize();
      } catch (const std::exception& error) {
        after = error.what();
        try {
          cuda::synchronize();  // a second failure: the error is sticky, the context gone
        } catch (const std::exception&) {
          device_lost = true;
        }
      }
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    const bool passed = stats.totals.assertions.failed == 0 && after.empty();
    nlohmann::json line = {{"kind", "test"},
                           {"test", stats.testInfo.name},
                           {"passed", passed},
                           {"failed_assertions", stats.totals.assertions.failed},
                           {"seconds", seconds}};
    if (!first_failure_.empty()) line["failure"] = first_failure_;
    if (!after.empty()) line["error_after_test"] = after;
    if (device_lost) line["device_lost"] = true;
    append_to_report(line);
    TestEventListenerBase::testCaseEnded(stats);
    if (device_lost) {
      std::printf("parity: the CUDA device is unusable after \"%s\" (%s); ending this process\n",
                  stats.testInfo.name.c_str(), after.c_str());
      std::fflush(stdout);
      std::_Exit(3);
    }
  }

 private:
  std::chrono::steady_clock::time_point started_;
  std::string first_failure_;
};

}  // namespace

CATCH_REGISTER_LISTENER(ParityReportListener)

}  // namespace visrep::testing
