// A one-line progress display for loops that run longer than a few seconds:
//   epoch 2/5 [=========>          ] 48%  225/469  loss 0.4123  lr 0.0870  1830 img/s  ETA 0:07
// On a terminal it redraws in place (carriage return); when stderr is a file or a CI log
// it prints a full line at most every `log_interval_seconds` so logs stay readable.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace visrep::util {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total_steps, double log_interval_seconds = 10.0);

  // After step `step` (1-based) finished `items` more items (images); `values` are the
  // named numbers to show (loss, lr, ...).
  void update(int64_t step, int64_t items, const std::vector<std::pair<std::string, double>>& values);
  // Prints the final state and a newline; in a log, only when that line is not already
  // there (update() printed the last step with the same values).
  void finish(const std::vector<std::pair<std::string, double>>& values = {});

  double items_per_second() const;
  double elapsed_seconds() const;

 private:
  std::string render(const std::vector<std::pair<std::string, double>>& values) const;

  std::string label_;
  int64_t total_steps_;
  int64_t step_ = 0;
  int64_t printed_step_ = -1;  // the step of the last line written to a log
  int64_t items_ = 0;
  double log_interval_seconds_;
  bool interactive_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_print_;
  std::vector<std::pair<std::string, double>> last_values_;
};

// "1:02:03" or "2:03".
std::string format_duration(double seconds);

}  // namespace visrep::util
