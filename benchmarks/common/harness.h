// The small harness every benchmark binary shares: wall-clock timing (warm-up, then the
// median of many repeats), an aligned text table for stdout and JSON-lines records for
// files, so every benchmark reports a ratio against a baseline measured in the same run.
//
// Contenders that are compared with each other (a kernel and its baseline) are timed
// interleaved, one repeat of each in turn, so a burst of load from another process on the
// machine slows both rather than flattering one side of the ratio.
//
// The CUDA part (built with the CUDA backend only): CUDA events around a number of
// back-to-back runs make one sample, so the host queues ahead and the GPU never waits for
// it; the device's name for the records; and the "skipped" exit every GPU benchmark takes
// where there is no usable device, so tools/gpu-check.sh can run them all unconditionally.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "engine/device.h"

#if VISREP_WITH_CUDA
#include <cuda_runtime_api.h>

#include "kernels/cuda/runtime.h"
#endif

namespace visrep::bench {

// ---- flags every benchmark takes -----------------------------------------------------------
struct CommonFlags {
  int warmup = 2;
  int repeats = 10;
  std::string json_path;  // empty: no JSON lines
};

inline void add_common_flags(CLI::App& app, CommonFlags& flags) {
  app.add_option("--warmup", flags.warmup, "untimed runs before timing each case")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  app.add_option("--repeats", flags.repeats, "timed runs per case; the median is reported")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--json", flags.json_path, "write one JSON record per result to this file (JSON lines)");
}

// ---- timing ---------------------------------------------------------------------------------
struct Timing {
  double median_ms = 0;
  double min_ms = 0;
  int repeats = 0;
};

inline double median_of(std::vector<double> values) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const size_t middle = values.size() / 2;
  return values.size() % 2 == 1 ? values[middle] : 0.5 * (values[middle - 1] + values[middle]);
}

// Times each contender `repeats` times after `warmup` untimed runs, round-robin.
// `before_each`, when given, runs untimed before every timed run (bench_distributed's barrier).
inline std::vector<Timing> measure_interleaved(const std::vector<std::function<void()>>& contenders,
                                               const CommonFlags& flags,
                                               const std::function<void()>& before_each = {}) {
  using Clock = std::chrono::steady_clock;
  for (int i = 0; i < flags.warmup; ++i)
    for (const auto& run : contenders) run();
  std::vector<std::vector<double>> samples(contenders.size());
  for (int r = 0; r < flags.repeats; ++r) {
    for (size_t c = 0; c < contenders.size(); ++c) {
      if (before_each) before_each();
      const auto start = Clock::now();
      contenders[c]();
      samples[c].push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    }
  }
  std::vector<Timing> timings;
  for (const auto& s : samples) timings.push_back({median_of(s), *std::min_element(s.begin(), s.end()), flags.repeats});
  return timings;
}

inline Timing measure(const std::function<void()>& run, const CommonFlags& flags) {
  return measure_interleaved({run}, flags).front();
}

#if VISREP_WITH_CUDA
// Like measure_interleaved, on the GPU: one sample is CUDA events around `iterations`
// back-to-back runs of a contender on device 0's stream (the stream every op is queued on),
// and its time is the sample's milliseconds per run. Warm-up rounds are interleaved too.
inline std::vector<Timing> measure_interleaved_on_device(const std::vector<std::function<void()>>& contenders,
                                                         const CommonFlags& flags, int iterations = 1) {
  kernels::cuda::Event start(0), stop(0);
  const auto sample = [&](const std::function<void()>& run) {
    start.record();
    for (int i = 0; i < iterations; ++i) run();
    stop.record();
    stop.synchronize();
    return static_cast<double>(stop.elapsed_ms_since(start)) / iterations;
  };
  for (int w = 0; w < flags.warmup; ++w)
    for (const auto& run : contenders) sample(run);
  std::vector<std::vector<double>> samples(contenders.size());
  for (int r = 0; r < flags.repeats; ++r)
    for (size_t c = 0; c < contenders.size(); ++c) samples[c].push_back(sample(contenders[c]));
  std::vector<Timing> timings;
  for (const auto& s : samples) timings.push_back({median_of(s), *std::min_element(s.begin(), s.end()), flags.repeats});
  return timings;
}

// A bandwidth case: a row of the table, the bytes one run must read plus write at the least
// (for GB/s), and the run itself.
struct Case {
  std::string name;
  std::string shape;
  double bytes = 0;
  std::function<void()> run;
};

// The median milliseconds per run of each case, timed interleaved on the GPU.
inline std::vector<double> median_ms_on_device(const std::vector<Case>& cases, const CommonFlags& flags,
                                               int iterations) {
  std::vector<std::function<void()>> runs;
  for (const Case& c : cases) runs.push_back(c.run);
  std::vector<double> medians;
  for (const Timing& timing : measure_interleaved_on_device(runs, flags, iterations)) medians.push_back(timing.median_ms);
  return medians;
}

// The device's L2 cache in bytes (50 MiB if the query fails): benchmarks that must not read
// what the previous run left in L2 rotate their inputs over several times this.
inline int64_t l2_cache_bytes() {
  int bytes = 0;
  if (cudaDeviceGetAttribute(&bytes, cudaDevAttrL2CacheSize, 0) != cudaSuccess) return 50 << 20;
  return bytes;
}
#endif

// Billions of floating-point operations per second for `flops` done in `ms` milliseconds.
inline double gflops_per_second(double flops, double ms) { return ms > 0 ? flops / (ms * 1e6) : 0.0; }

// ---- the device ------------------------------------------------------------------------------

// The GPU's name ("NVIDIA H100 80GB HBM3") for a CUDA device, else the device as text ("cpu").
inline std::string device_name(Device device) {
#if VISREP_WITH_CUDA
  if (device.is_cuda()) {
    cudaDeviceProp properties{};
    if (cudaGetDeviceProperties(&properties, device.index) == cudaSuccess) return properties.name;
  }
#endif
  return device.str();
}

// Without a usable CUDA device: prints "<program>: no CUDA device: skipped (<why>)" and
// returns true; the caller then exits 0.
inline bool skipped_without_cuda(const std::string& program) {
  if (cuda_available()) return false;
#if VISREP_WITH_CUDA
  const std::string why = kernels::cuda::unavailable_reason();
#else
  const std::string why = "built without the CUDA backend";
#endif
  std::cout << program << ": no CUDA device: skipped (" << why << ")\n";
  return true;
}

// main()'s body: returns what `body` returns, or prints "<program>: <what>" on stderr and
// returns 1 when it throws.
template <class Body>
int run_reporting_errors(const std::string& program, Body&& body) {
  try {
    return body();
  } catch (const std::exception& error) {
    std::cerr << program << ": " << error.what() << '\n';
    return 1;
  }
}

// ---- text table --------------------------------------------------------------------------------
inline std::string fixed(double value, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  return buffer;
}

// Columns are padded to their widest cell; the first column is left-aligned (names), the
// rest right-aligned (numbers). An empty row prints as a rule.
class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}

  void add_row(std::vector<std::string> cells) {
    cells.resize(headers_.size());
    rows_.push_back(std::move(cells));
  }
  void add_rule() { rows_.emplace_back(); }

  void print(std::ostream& out) const {
    std::vector<size_t> widths(headers_.size());
    for (size_t c = 0; c < headers_.size(); ++c) widths[c] = headers_[c].size();
    for (const auto& row : rows_)
      for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
    size_t total = 0;
    for (size_t w : widths) total += w + 2;
    const auto print_row = [&](const std::vector<std::string>& cells) {
      for (size_t c = 0; c < cells.size(); ++c) {
        const size_t pad = widths[c] - cells[c].size();
        if (c == 0) out << cells[c] << std::string(pad, ' ');
        else out << "  " << std::string(pad, ' ') << cells[c];
      }
      out << '\n';
    };
    print_row(headers_);
    out << std::string(total - 2, '-') << '\n';
    for (const auto& row : rows_) {
      if (row.empty()) out << std::string(total - 2, '-') << '\n';
      else print_row(row);
    }
    out.flush();
  }

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// ---- JSON lines ---------------------------------------------------------------------------------
// The fields every record carries; a benchmark adds its own (GFLOP/s, baseline, ratio...).
// peak_bytes is null when the benchmark does not know it.
inline nlohmann::json make_record(const std::string& name, const std::string& shape, double ms,
                                  const std::string& device) {
  return {{"name", name}, {"shape", shape}, {"ms", ms}, {"peak_bytes", nullptr}, {"device", device}};
}

// Collects records and writes them at the end, to a temporary name that is then renamed,
// so an interrupted run never leaves a half-written file behind. Without a path it does
// nothing.
class JsonLinesWriter {
 public:
  // Fails now, before any benchmark has run, if the file could not be written later.
  explicit JsonLinesWriter(std::string path) : path_(std::move(path)) {
    if (!enabled()) return;
    const std::string temporary = path_ + ".tmp";
    if (!std::ofstream(temporary, std::ios::trunc)) throw std::runtime_error("cannot open " + temporary + " for writing");
    std::filesystem::remove(temporary);
  }

  bool enabled() const { return !path_.empty(); }
  void add(const nlohmann::json& record) {
    if (enabled()) lines_.push_back(record.dump());
  }

  void commit() const {
    if (!enabled()) return;
    const std::string temporary = path_ + ".tmp";
    {
      std::ofstream out(temporary, std::ios::trunc);
      if (!out) throw std::runtime_error("cannot open " + temporary + " for writing");
      for (const auto& line : lines_) out << line << '\n';
      out.flush();
      if (!out) throw std::runtime_error("could not write " + temporary);
    }
    std::error_code error;
    std::filesystem::rename(temporary, path_, error);
    if (error) throw std::runtime_error("cannot rename " + temporary + " to " + path_ + ": " + error.message());
  }

 private:
  std::string path_;
  std::vector<std::string> lines_;
};

#if VISREP_WITH_CUDA
// ---- bandwidth tables ---------------------------------------------------------------------------
// One row of a bandwidth table: a case's bytes and time next to the GB/s of the device copy
// of the same bytes measured in the same run; `rule` makes a separator line instead.
struct BandwidthRow {
  std::string name, shape;
  double bytes = 0, ms = 0;
  double baseline_gbps = 0;
  bool rule = false;
};

// The rows of `cases` timed `ms` (cases[0] is the copy baseline the others are compared with).
inline void add_bandwidth_rows(std::vector<BandwidthRow>& rows, const std::vector<Case>& cases,
                               const std::vector<double>& ms) {
  const double baseline_gbps = cases[0].bytes / (ms[0] * 1e6);
  for (size_t i = 0; i < cases.size(); ++i) {
    rows.push_back({cases[i].name, cases[i].shape, cases[i].bytes, ms[i], baseline_gbps});
  }
}

// Prints the rows as a table (case, shape, us, GB/s, copy GB/s, % of copy) under `title`
// and writes one JSON line per row (gb_per_s, bytes, copy_gb_per_s, fraction_of_copy) to
// json_path (nothing without one).
inline void report_bandwidth(const std::vector<BandwidthRow>& rows, const std::string& device,
                             const std::string& json_path, const std::string& title) {
  JsonLinesWriter json(json_path);
  Table table({"case", "shape", "us", "GB/s", "copy GB/s", "% of copy"});
  for (const BandwidthRow& row : rows) {
    if (row.rule) {
      table.add_rule();
      continue;
    }
    const double gbps = row.bytes / (row.ms * 1e6);
    table.add_row({row.name, row.shape, fixed(row.ms * 1e3, 1), fixed(gbps, 0), fixed(row.baseline_gbps, 0),
                   fixed(100.0 * gbps / row.baseline_gbps, 1)});
    nlohmann::json record = make_record(row.name, row.shape, row.ms, device);
    record["gb_per_s"] = gbps;
    record["bytes"] = row.bytes;
    record["copy_gb_per_s"] = row.baseline_gbps;
    record["fraction_of_copy"] = gbps / row.baseline_gbps;
    json.add(record);
  }
  std::cout << title << "\n";
  table.print(std::cout);
  json.commit();
}
#endif

}  // namespace visrep::bench
