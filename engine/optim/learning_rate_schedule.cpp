#include "engine/optim/learning_rate_schedule.h"

#include <algorithm>
#include <cmath>

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

}  // namespace visrep::optim
