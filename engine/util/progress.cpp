#include "engine/util/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace visrep::util {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t total = static_cast<int64_t>(seconds + 0.5);
  const int64_t hours = total / 3600, minutes = (total / 60) % 60, secs = total % 60;
  return hours > 0 ? fmt::format("{}:{:02}:{:02}", hours, minutes, secs) : fmt::format("{}:{:02}", minutes, secs);
}

ProgressBar::ProgressBar(std::string label, int64_t total_steps, double log_interval_seconds)
    : label_(std::move(label)),
      total_steps_(total_steps),
      log_interval_seconds_(log_interval_seconds),
      interactive_(isatty(fileno(stderr)) != 0),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {}

double ProgressBar::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

double ProgressBar::items_per_second() const {
  const double elapsed = elapsed_seconds();
  return elapsed > 0 ? static_cast<double>(items_) / elapsed : 0.0;
}

std::string ProgressBar::render(const std::vector<std::pair<std::string, double>>& values) const {
  constexpr int kWidth = 20;
  const double fraction = total_steps_ > 0 ? static_cast<double>(step_) / static_cast<double>(total_steps_) : 1.0;
  const int filled = static_cast<int>(fraction * kWidth);
  std::string bar(static_cast<size_t>(filled), '=');
  if (filled < kWidth) bar += '>' + std::string(static_cast<size_t>(kWidth - filled - 1), ' ');
  std::string line = fmt::format("{} [{}] {:3.0f}%  {}/{}", label_, bar, 100.0 * fraction, step_, total_steps_);
  for (const auto& [name, value] : values) {
    const double magnitude = std::abs(value);
    line += (magnitude != 0 && (magnitude < 1e-3 || magnitude >= 1e5)) ? fmt::format("  {} {:.3e}", name, value)
                                                                        : fmt::format("  {} {:.4f}", name, value);
  }
  const double elapsed = elapsed_seconds();
  line += fmt::format("  {:.0f} img/s", items_per_second());
  const double remaining = step_ > 0 ? elapsed / static_cast<double>(step_) * static_cast<double>(total_steps_ - step_) : NAN;
  line += step_ >= total_steps_ ? fmt::format("  took {}", format_duration(elapsed))
                                : fmt::format("  ETA {}", format_duration(remaining));
  return line;
}

void ProgressBar::update(int64_t step, int64_t items, const std::vector<std::pair<std::string, double>>& values) {
  step_ = step;
  items_ += items;
  last_values_ = values;
  const auto now = std::chrono::steady_clock::now();
  const double since_print = std::chrono::duration<double>(now - last_print_).count();
  if (interactive_) {
    if (since_print < 0.1 && step_ < total_steps_) return;  // at most ten redraws a second
    std::fprintf(stderr, "\r%s\033[K", render(values).c_str());
  } else {
    if (since_print < log_interval_seconds_ && step_ < total_steps_) return;
    std::fprintf(stderr, "%s\n", render(values).c_str());
    printed_step_ = step_;
  }
  std::fflush(stderr);
  last_print_ = now;
}

void ProgressBar::finish(const std::vector<std::pair<std::string, double>>& values) {
  step_ = std::max(step_, total_steps_);
  const auto& shown = values.empty() ? last_values_ : values;
  if (interactive_) {
    std::fprintf(stderr, "\r%s\033[K\n", render(shown).c_str());
  } else if (printed_step_ != step_ || (!values.empty() && values != last_values_)) {
    // In a log the line update() printed at the last step stays; repeat it only with news.
    std::fprintf(stderr, "%s\n", render(shown).c_str());
  }
  std::fflush(stderr);
}

}  // namespace visrep::util
