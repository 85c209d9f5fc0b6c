#include "recipes/classifier.h"

#include <fmt/format.h>

#include "engine/io/safetensors.h"
#include "engine/ops.h"
#include "engine/optim/learning_rate_schedule.h"
#include "engine/optim/sgd.h"
#include "engine/util/metrics.h"
#include "engine/util/plot.h"
#include "engine/util/progress.h"
#include "recipes/batches.h"
#include "recipes/run_files.h"

namespace visrep::recipes {
namespace {

// Weight decay applies to the weights of convolutions and linear layers; biases and
// normalisation parameters (1-D tensors) are left alone, the usual practice.
std::vector<optim::SgdParamGroup> parameter_groups(const nn::Module& model, const ClassifierConfig& config) {
  optim::SgdParamGroup decayed{"weights", {}, {}}, plain{"biases_and_norms", {}, {}};
  for (auto& [name, parameter] : model.named_parameters()) {
    (parameter.dim() > 1 ? decayed : plain).parameters.push_back(parameter);
  }
  decayed.options = {.learning_rate = config.learning_rate, .momentum = config.momentum,
                     .weight_decay = config.weight_decay};
  plain.options = {.learning_rate = config.learning_rate, .momentum = config.momentum, .weight_decay = 0.0};
  std::vector<optim::SgdParamGroup> groups;
  for (auto* group : {&decayed, &plain}) {
    if (!group->parameters.empty()) groups.push_back(*group);
  }
  return groups;
}

void check_config(const ClassifierConfig& config, const data::ImageDataset& train_set) {
  VISREP_CHECK(config.epochs >= 1, "train_classifier: epochs must be >= 1, got {}", config.epochs);
  VISREP_CHECK(config.batch_size >= 2, "train_classifier: batch_size must be >= 2 (batch norm), got {}",
               config.batch_size);
  VISREP_CHECK(config.learning_rate > 0, "train_classifier: learning_rate must be positive, got {}",
               config.learning_rate);
  if (config.augment) data::check_augment_config(*config.augment);
  VISREP_CHECK(train_set.size() >= config.batch_size,
               "train_classifier: the training set has {} images, fewer than one batch of {}", train_set.size(),
               config.batch_size);
}

}  // namespace

double evaluate_accuracy(nn::Module& model, const data::ImageDataset& dataset, const ClassifierConfig& config) {
  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  int64_t correct = 0;
  const int64_t batch_size = std::max<int64_t>(config.batch_size, 256);
  const BatchTransform plain{.mean = config.mean, .std = config.std};  // evaluation never augments
  for (int64_t start = 0; start < dataset.size(); start += batch_size) {
    std::vector<BatchSample> samples;
    for (int64_t i = start; i < std::min(start + batch_size, dataset.size()); ++i) samples.push_back({.index = i});
    const data::Batch batch = make_batch(dataset, samples, plain, config.device);
    correct += sum(eq(argmax(model(batch.images), 1), batch.labels)).item<int64_t>();
  }
  model.train(was_training);
  return dataset.size() > 0 ? static_cast<double>(correct) / static_cast<double>(dataset.size()) : 0.0;
}

ClassifierResult train_classifier(nn::Module& model, const data::ImageDataset& train_set,
                                  const data::ImageDataset& test_set, const ClassifierConfig& config) {
  check_config(config, train_set);
  model.to(config.device);
  model.train();
  optim::Sgd optimizer(parameter_groups(model, config));

  const int64_t steps_per_epoch = train_set.size() / config.batch_size;  // drop_last: full batches for batch norm
  const int64_t total_steps = steps_per_epoch * config.epochs;
  const optim::WarmupCosineSchedule schedule(config.learning_rate, std::max<int64_t>(steps_per_epoch / 10, 1),
                                             total_steps);

  util::MetricsWriter metrics;
  if (!config.run_directory.empty()) metrics = open_run_directory(config.run_directory, false, "train_classifier");

  // One view per image when the config asks for augmentation (keyed by seed, epoch and
  // sample), else the plain normalised images.
  const BatchTransform input{.augment = config.augment, .seed = config.seed, .mean = config.mean, .std = config.std};

  ClassifierResult result;
  int64_t step = 0;
  for (int64_t epoch = 1; epoch <= config.epochs; ++epoch) {
    const std::vector<int64_t> order = epoch_order(train_set.size(), config.seed, epoch);
    util::ProgressBar progress(fmt::format("epoch {}/{}", epoch, config.epochs), steps_per_epoch);
    double loss_total = 0.0;
    int64_t correct = 0;
    for (int64_t batch_index = 0; batch_index < steps_per_epoch; ++batch_index, ++step) {
      std::vector<BatchSample> samples;
      for (int64_t i = 0; i < config.batch_size; ++i) {
        samples.push_back({.index = order[static_cast<size_t>(batch_index * config.batch_size + i)], .epoch = epoch});
      }
      const data::Batch batch = make_batch(train_set, samples, input, config.device);
      optimizer.set_learning_rate(schedule.at(step));
      Tensor logits = model(batch.images);
      Tensor loss = cross_entropy(logits, batch.labels, {.label_smoothing = config.label_smoothing});
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();

      const double loss_value = loss.item();
      VISREP_CHECK(std::isfinite(loss_value), "train_classifier: the loss became {} at step {} (lr {}); lower the "
                   "learning rate", loss_value, step, optimizer.learning_rate());
      loss_total += loss_value;
      {
        NoGradGuard no_grad;
        correct += sum(eq(argmax(logits, 1), batch.labels)).item<int64_t>();
      }
      result.step_losses.push_back(loss_value);
      if (config.show_progress) {
        progress.update(batch_index + 1, config.batch_size,
                        {{"loss", loss_total / static_cast<double>(batch_index + 1)}, {"lr", optimizer.learning_rate()}});
      }
      if (metrics.is_open()) {
        metrics.write({{"kind", "step"}, {"epoch", epoch}, {"step", step}, {"loss", loss_value},
                       {"lr", optimizer.learning_rate()}});
      }
    }
    EpochSummary summary;
    summary.epoch = epoch;
    summary.train_loss = loss_total / static_cast<double>(steps_per_epoch);
    summary.train_accuracy = static_cast<double>(correct) / static_cast<double>(steps_per_epoch * config.batch_size);
    summary.images_per_second = progress.items_per_second();
    if (config.show_progress) progress.finish();
    summary.test_accuracy = test_set.size() > 0 ? evaluate_accuracy(model, test_set, config) : 0.0;
    result.epochs.push_back(summary);
    if (config.show_progress) {
      fmt::print(stderr, "epoch {}: train loss {:.4f}, train accuracy {:.2f}%, test accuracy {:.2f}%, {:.0f} img/s\n",
                 epoch, summary.train_loss, 100 * summary.train_accuracy, 100 * summary.test_accuracy,
                 summary.images_per_second);
    }
    if (metrics.is_open()) {
      metrics.write({{"kind", "epoch"}, {"epoch", epoch}, {"train_loss", summary.train_loss},
                     {"train_accuracy", summary.train_accuracy}, {"test_accuracy", summary.test_accuracy},
                     {"images_per_second", summary.images_per_second}});
    }
  }

  if (!config.run_directory.empty()) {
    std::map<std::string, Tensor> state = model.state_dict();
    io::save_safetensors(config.run_directory + "/model.safetensors", state,
                         {{"format", "pt"}, {"model", model.type_name()}, {"epochs", std::to_string(config.epochs)}});
    util::write_line_plot_png(config.run_directory + "/loss.png", "training loss per step", "step", "loss",
                              {{"loss", result.step_losses}});
  }
  return result;
}

}  // namespace visrep::recipes
