// Learning-rate schedules: a function from the step number (0-based, counted in optimizer
// updates) to the learning rate. The training loop calls
//   optimizer.set_learning_rate(schedule.at(step))
// before each update.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace visrep::optim {

class LearningRateSchedule {
 public:
  virtual ~LearningRateSchedule() = default;
  virtual double at(int64_t step) const = 0;
};

class ConstantSchedule : public LearningRateSchedule {
 public:
  explicit ConstantSchedule(double learning_rate) : learning_rate_(learning_rate) {}
  double at(int64_t) const override { return learning_rate_; }

 private:
  double learning_rate_;
};

// Linear warmup from 0 over `warmup_steps`, then `base` divided by `factor` at each boundary
// (BiT-HyperRule style: boundaries {500, 3000, 6000, 9000}, factor 10).
class WarmupStepSchedule : public LearningRateSchedule {
 public:
  WarmupStepSchedule(double base, int64_t warmup_steps, std::vector<int64_t> boundaries, double factor = 10.0);
  double at(int64_t step) const override;

 private:
  double base_;
  int64_t warmup_steps_;
  std::vector<int64_t> boundaries_;
  double factor_;
};

// Linear warmup from 0 to `base` over `warmup_steps`, then a cosine decay to `final` at
// `total_steps` (SimCLR's schedule, with final = 0).
class WarmupCosineSchedule : public LearningRateSchedule {
 public:
  WarmupCosineSchedule(double base, int64_t warmup_steps, int64_t total_steps, double final_value = 0.0);
  double at(int64_t step) const override;

 private:
  double base_;
  int64_t warmup_steps_;
  int64_t total_steps_;
  double final_;
};

}  // namespace visrep::optim
