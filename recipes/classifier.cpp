#include "recipes/classifier.h"

#include <fmt/format.h>

#include "engine/data/loader.h"
#include "engine/ops.h"
#include "engine/optim/learning_rate_schedule.h"
#include "engine/optim/sgd.h"
#include "models/model_description.h"
#include "recipes/data_parallel.h"
#include "recipes/training_run.h"

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

// The loader of the classifier's batches. Training: shuffled full batches (for batch norm),
// one view per image when the config asks for augmentation (keyed by seed, epoch and sample),
// else the images normalised by config.mean and std. Evaluation: every image once, in order,
// never augmented.
data::LoaderConfig batches_of(const ClassifierConfig& config, bool training) {
  data::LoaderConfig batches{.batch_size = config.batch_size, .seed = config.seed, .device = config.device};
  if (training && config.augment) {
    batches.augment = config.augment;
  } else {
    batches.mean = config.mean;
    batches.std = config.std;
  }
  if (!training) {
    batches.batch_size = std::max<int64_t>(config.batch_size, 256);
    batches.shuffle = batches.drop_last = false;
  }
  return batches;
}

}  // namespace

double evaluate_accuracy(nn::Module& model, const data::ImageDataset& dataset, const ClassifierConfig& config) {
  if (dataset.size() == 0) return 0.0;
  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  const DataParallel parallel(config.ranks);
  const auto [begin, end] = parallel.local_range(dataset.size());
  int64_t correct = 0;
  if (end > begin) {
    const data::ImageDataset share =
        parallel.several()
            ? data::subset(dataset, arange(static_cast<double>(begin), static_cast<double>(end), 1.0, kInt64))
            : dataset;
    data::DataLoader loader(share, batches_of(config, /*training=*/false));
    loader.start_epoch(0);
    while (const std::optional<data::Batch> batch = loader.next()) {
      correct += sum(eq(argmax(model(batch->images), 1), batch->labels)).item<int64_t>();
    }
  }
  model.train(was_training);
  return parallel.sum(static_cast<double>(correct)) / static_cast<double>(dataset.size());
}

ClassifierResult train_classifier(nn::Module& model, const data::ImageDataset& train_set,
                                  const data::ImageDataset& test_set, const ClassifierConfig& config) {
  check_config(config, train_set);
  const DataParallel parallel(config.ranks);
  parallel.local_batch_size(config.batch_size, "train_classifier");
  model.to(config.device);
  model.train();
  const ScopedSyncBatchNorm global_batch_norm({&model}, parallel, config.sync_batch_norm);
  optim::Sgd optimizer(parameter_groups(model, config));

  const int64_t steps_per_epoch = train_set.size() / config.batch_size;  // full batches (drop_last)
  const int64_t total_steps = steps_per_epoch * config.epochs;
  const optim::WarmupCosineSchedule schedule(config.learning_rate, std::max<int64_t>(steps_per_epoch / 10, 1),
                                             total_steps);
  // Every rank cuts the same global batches and builds its part of each.
  data::LoaderConfig batches = batches_of(config, /*training=*/true);
  batches.part = parallel.rank();
  batches.parts = parallel.size();
  data::DataLoader loader(train_set, batches);

  // Not resumable: no checkpoints and no resume (visrep-classifier has neither), and a stop
  // request does not end the run (visrep-supcon reports its baseline's last epoch).
  TrainingRun run({.recipe = "train_classifier", .loss_plot_title = "training loss per step",
                   .run_directory = config.run_directory, .resumable = false, .epochs = config.epochs,
                   .steps_per_epoch = steps_per_epoch, .images_per_step = config.batch_size,
                   .show_progress = config.show_progress, .ranks = config.ranks});
  // No checkpoint is written; this says what the ranks start from and whose gradients they average.
  run.checkpoint_module("model", model);
  // Evaluated (and saved for) unaugmented images normalised by config.mean and std.
  run.checkpoint_input(models::describe_input(
      {.height = train_set.height(), .width = train_set.width(), .mean = config.mean, .std = config.std},
      train_set.channels()));
  run.start();

  ClassifierResult result;
  while (run.next_epoch()) {
    loader.start_epoch(run.epoch(), run.batch_in_epoch());
    int64_t correct = 0;
    while (run.next_step()) {
      const data::Batch batch = loader.next_required("train_classifier");
      optimizer.set_learning_rate(schedule.at(run.step()));
      const Tensor logits = model(batch.images);
      // The mean over this rank's slice: its mean over the ranks is the global batch's mean.
      const Tensor loss = cross_entropy(logits, batch.labels, {.label_smoothing = config.label_smoothing});
      optimizer.zero_grad();
      loss.backward();
      run.average_gradients();
      optimizer.step();
      run.end_step(loss.item(), optimizer.learning_rate());
      {
        NoGradGuard no_grad;
        correct += sum(eq(argmax(logits, 1), batch.labels)).item<int64_t>();
      }
    }

    EpochSummary summary;
    summary.epoch = run.epoch();
    summary.train_loss = run.epoch_mean_loss();
    summary.train_accuracy =
        parallel.sum(static_cast<double>(correct)) / static_cast<double>(steps_per_epoch * config.batch_size);
    summary.images_per_second = run.images_per_second();
    summary.test_accuracy = test_set.size() > 0 ? evaluate_accuracy(model, test_set, config) : 0.0;
    result.epochs.push_back(summary);
    run.log(fmt::format("epoch {}: train loss {:.4f}, train accuracy {:.2f}%, test accuracy {:.2f}%, {:.0f} img/s",
                        summary.epoch, summary.train_loss, 100 * summary.train_accuracy, 100 * summary.test_accuracy,
                        summary.images_per_second));
    run.end_epoch({{"train_loss", summary.train_loss}, {"train_accuracy", summary.train_accuracy},
                   {"test_accuracy", summary.test_accuracy}, {"images_per_second", summary.images_per_second}});
  }

  run.save_model("model.safetensors", model, {{"model", model.type_name()}, {"epochs", std::to_string(config.epochs)}});
  run.finish();
  result.step_losses = run.step_losses();
  return result;
}

}  // namespace visrep::recipes
