#include "engine/optim/learning_rate_schedule.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "engine/error.h"

namespace visrep::optim {

WarmupStepSchedule::WarmupStepSchedule(double base, int64_t warmup_steps, std::vector<int64_t> boundaries, double factor)
    : base_(base), warmup_steps_(warmup_steps), boundaries_(std::move(boundaries)), factor_(factor) {
  VISREP_CHECK(warmup_steps_ >= 0, "WarmupStepSchedule: warmup_steps must be >= 0, got {}", warmup_steps_);
  VISREP_CHECK(std::is_sorted(boundaries_.begin(), boundaries_.end()),
               "WarmupStepSchedule: boundaries must be increasing");
  VISREP_CHECK(factor_ > 0, "WarmupStepSchedule: factor must be positive, got {}", factor_);
}

double WarmupStepSchedule::at(int64_t step) const {
  if (step < warmup_steps_) return base_ * static_cast<double>(step) / static_cast<double>(warmup_steps_);
  const auto passed = std::upper_bound(boundaries_.begin(), boundaries_.end(), step) - boundaries_.begin();
  return base_ / std::pow(factor_, static_cast<double>(passed));
}

WarmupCosineSchedule::WarmupCosineSchedule(double base, int64_t warmup_steps, int64_t total_steps, double final_value)
    : base_(base), warmup_steps_(warmup_steps), total_steps_(total_steps), final_(final_value) {
  VISREP_CHECK(warmup_steps_ >= 0 && total_steps_ >= warmup_steps_,
               "WarmupCosineSchedule: need 0 <= warmup_steps ({}) <= total_steps ({})", warmup_steps_, total_steps_);
}

double WarmupCosineSchedule::at(int64_t step) const {
  if (step < warmup_steps_) return base_ * static_cast<double>(step) / static_cast<double>(warmup_steps_);
  if (step >= total_steps_) return final_;
  const double progress =
      static_cast<double>(step - warmup_steps_) / static_cast<double>(std::max<int64_t>(total_steps_ - warmup_steps_, 1));
  return final_ + 0.5 * (base_ - final_) * (1.0 + std::cos(M_PI * progress));
}

double scale_learning_rate(double base_learning_rate, int64_t batch_size, LearningRateScaling scaling) {
  VISREP_CHECK(batch_size >= 1, "scale_learning_rate: batch_size must be >= 1, got {}", batch_size);
  VISREP_CHECK(std::isfinite(base_learning_rate) && base_learning_rate >= 0,
               "scale_learning_rate: base learning rate must be finite and >= 0, got {}", base_learning_rate);
  const auto b = static_cast<double>(batch_size);
  switch (scaling) {
    case LearningRateScaling::Linear: return base_learning_rate * b / 256.0;
    case LearningRateScaling::SquareRoot: return base_learning_rate * std::sqrt(b);
    case LearningRateScaling::None: return base_learning_rate;
  }
  VISREP_FAIL("scale_learning_rate: unknown scaling {}", static_cast<int>(scaling));
}

LearningRateScaling parse_learning_rate_scaling(const std::string& name) {
  if (name == "linear") return LearningRateScaling::Linear;
  if (name == "sqrt") return LearningRateScaling::SquareRoot;
  if (name == "none") return LearningRateScaling::None;
  VISREP_FAIL("unknown learning-rate scaling '{}' (expected linear, sqrt or none)", name);
}

std::string learning_rate_scaling_name(LearningRateScaling scaling) {
  switch (scaling) {
    case LearningRateScaling::Linear: return "linear";
    case LearningRateScaling::SquareRoot: return "sqrt";
    case LearningRateScaling::None: return "none";
  }
  VISREP_FAIL("learning_rate_scaling_name: unknown scaling {}", static_cast<int>(scaling));
}

}  // namespace visrep::optim
