// Learning-rate schedules: a function from the step number (0-based, counted in optimizer
// updates) to the learning rate. The training loop calls
//   optimizer.set_learning_rate(schedule.at(step))
// before each update.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
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

// How the base learning rate grows with the batch size, as google-research/simclr
// (tf2/model.py WarmUpAndCosineDecay, learning_rate_scaling): Linear gives lr * B / 256
// (the SimCLR paper's default with LARS, lr = 0.3), SquareRoot gives lr * sqrt(B) (the
// paper's choice for small batches, lr = 0.075; appendix B.1), None leaves lr alone. B counts images, not views: SimCLR's
// train_batch_size is the number of images, each of which gives two views.
enum class LearningRateScaling { Linear, SquareRoot, None };

double scale_learning_rate(double base_learning_rate, int64_t batch_size, LearningRateScaling scaling);
// "linear" or "sqrt" (SimCLR's flag values) or "none"; anything else is an error naming it.
LearningRateScaling parse_learning_rate_scaling(const std::string& name);
std::string learning_rate_scaling_name(LearningRateScaling scaling);

}  // namespace visrep::optim
