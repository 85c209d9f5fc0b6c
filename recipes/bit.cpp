#include "recipes/bit.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>

#include "engine/data/loader.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "engine/optim/sgd.h"
#include "models/model_description.h"
#include "recipes/evaluation.h"  // encode_dataset
#include "recipes/mixup.h"
#include "recipes/data_parallel.h"
#include "recipes/training_run.h"

namespace visrep::recipes {

// ---- the HyperRule ------------------------------------------------------------------------------

BitResolution bit_resolution(int64_t height, int64_t width) {
  VISREP_CHECK(height > 0 && width > 0, "bit_resolution: image size {}x{} must be positive", height, width);
  if (height * width < 96 * 96) return {.resize = 160, .crop = 128};
  return {.resize = 512, .crop = 480};
}

std::vector<int64_t> bit_schedule(int64_t dataset_size) {
  VISREP_CHECK(dataset_size > 0, "bit_schedule: the dataset size must be positive, got {}", dataset_size);
  if (dataset_size < 20'000) return {100, 200, 300, 400, 500};
  if (dataset_size < 500'000) return {500, 3000, 6000, 9000, 10'000};
  return {500, 6000, 12'000, 18'000, 20'000};
}

double bit_mixup_alpha(int64_t dataset_size) { return dataset_size < 20'000 ? 0.0 : 0.1; }

namespace {

void check_schedule(const std::vector<int64_t>& schedule, const char* who) {
  VISREP_CHECK(!schedule.empty(), "{}: the schedule has no boundaries (zero steps)", who);
  VISREP_CHECK(schedule.front() >= 1, "{}: the schedule's first boundary (the warmup) must be >= 1 step, got {}", who,
               schedule.front());
  for (size_t i = 1; i < schedule.size(); ++i) {
    VISREP_CHECK(schedule[i] > schedule[i - 1], "{}: the schedule's boundaries must increase, got {} after {}", who,
                 schedule[i], schedule[i - 1]);
  }
}

}  // namespace

std::optional<double> bit_learning_rate(int64_t step, const std::vector<int64_t>& schedule, double base) {
  check_schedule(schedule, "bit_learning_rate");
  VISREP_CHECK(step >= 0, "bit_learning_rate: step must be >= 0, got {}", step);
  if (step < schedule.front()) return base * static_cast<double>(step) / static_cast<double>(schedule.front());
  if (step >= schedule.back()) return std::nullopt;
  double rate = base;
  for (size_t i = 1; i < schedule.size(); ++i) {
    if (schedule[i] < step) rate /= 10.0;
  }
  return rate;
}

double bit_scaled_learning_rate(int64_t batch_size, double base) {
  VISREP_CHECK(batch_size >= 1, "bit_scaled_learning_rate: batch_size must be >= 1, got {}", batch_size);
  return base * static_cast<double>(batch_size) / 512.0;
}

data::AugmentConfig bit_train_transform(const BitResolution& resolution) {
  data::AugmentConfig transform = data::augment_preset("bit", resolution.crop);
  transform.crop_fraction = static_cast<double>(resolution.crop) / static_cast<double>(resolution.resize);
  return transform;
}

data::AugmentConfig bit_eval_transform(const BitResolution& resolution) {
  // train.py's val_tx: Resize((crop, crop)), nothing random. A resize-crop whose resized size
  // is the output is exactly that: the whole image, resized (not a central square of it).
  data::AugmentConfig transform = bit_train_transform({.resize = resolution.crop, .crop = resolution.crop});
  transform.preset = "bit-eval";
  transform.flip_probability = 0.0;
  return transform;
}

// ---- configuration ------------------------------------------------------------------------------

void check_bit_config(const BitConfig& config) {
  VISREP_CHECK(config.batch_size >= 1, "bit: batch_size must be >= 1, got {}", config.batch_size);
  VISREP_CHECK(config.batch_split >= 1, "bit: batch_split must be >= 1, got {}", config.batch_split);
  VISREP_CHECK(config.batch_size % config.batch_split == 0,
               "bit: batch_size {} is not divisible by batch_split {}", config.batch_size, config.batch_split);
  VISREP_CHECK(std::isfinite(config.base_learning_rate) && config.base_learning_rate > 0,
               "bit: base_learning_rate must be positive, got {}", config.base_learning_rate);
  VISREP_CHECK(config.momentum >= 0 && config.momentum < 1, "bit: momentum must lie in [0, 1), got {}",
               config.momentum);
  if (config.resolution) {
    VISREP_CHECK(config.resolution->crop >= 1 && config.resolution->resize >= config.resolution->crop,
                 "bit: resolution needs 1 <= crop <= resize, got resize {} and crop {}", config.resolution->resize,
                 config.resolution->crop);
  }
  if (!config.schedule.empty()) check_schedule(config.schedule, "bit");
  if (config.mixup_alpha) {
    VISREP_CHECK(std::isfinite(*config.mixup_alpha) && *config.mixup_alpha >= 0,
                 "bit: mixup_alpha must be >= 0, got {}", *config.mixup_alpha);
  }
  VISREP_CHECK(config.examples_per_class >= 0, "bit: examples_per_class must be >= 0, got {}",
               config.examples_per_class);
  VISREP_CHECK(config.eval_every >= 0, "bit: eval_every must be >= 0, got {}", config.eval_every);
  VISREP_CHECK(config.eval_batch_size >= 0, "bit: eval_batch_size must be >= 0, got {}", config.eval_batch_size);
  VISREP_CHECK(config.checkpoint_every >= 0, "bit: checkpoint_every must be >= 0, got {}", config.checkpoint_every);
  // (Rank 0 reads the checkpoint and sends it to the others: only it needs the file.)
  VISREP_CHECK(config.resume.empty() || DataParallel(config.ranks).rank() != 0 ||
                   std::filesystem::is_regular_file(config.resume),
               "bit: cannot resume: the checkpoint '{}' does not exist", config.resume);
}

data::ImageDataset bit_training_set(const BitConfig& config, const data::ImageDataset& train_set) {
  VISREP_CHECK(train_set.size() > 0, "bit: the training set is empty");
  if (config.examples_per_class == 0) return train_set;
  return data::few_shot_subset(train_set, config.examples_per_class, config.examples_per_class_seed);
}

BitPlan plan_bit_run(const BitConfig& config, const data::ImageDataset& training_set) {
  check_bit_config(config);
  VISREP_CHECK(training_set.size() > 0, "bit: the training set is empty");
  BitPlan plan;
  plan.training_examples = training_set.size();
  plan.resolution = config.resolution ? *config.resolution : bit_resolution(training_set.height(), training_set.width());
  plan.schedule = config.schedule.empty() ? bit_schedule(plan.training_examples) : config.schedule;
  plan.mixup_alpha = config.mixup_alpha ? *config.mixup_alpha : bit_mixup_alpha(plan.training_examples);
  plan.learning_rate = config.scale_learning_rate ? bit_scaled_learning_rate(config.batch_size, config.base_learning_rate)
                                                  : config.base_learning_rate;
  return plan;
}

std::string describe(const BitPlan& plan, const data::ImageDataset& training_set) {
  return fmt::format("BiT-HyperRule for {} examples of {}x{}: resize {}, crop {}; {} steps (boundaries {}); peak lr "
                     "{:.4g}; {}",
                     plan.training_examples, training_set.height(), training_set.width(), plan.resolution.resize,
                     plan.resolution.crop, plan.steps(), fmt::join(plan.schedule, ", "), plan.learning_rate,
                     plan.mixup_alpha > 0 ? fmt::format("MixUp alpha {:g}", plan.mixup_alpha) : "no MixUp");
}

// ---- evaluation ---------------------------------------------------------------------------------

BitEvaluation evaluate_classifier(nn::Module& model, const data::ImageDataset& dataset,
                                  const data::AugmentConfig& transform, Device device, int64_t batch_size,
                                  distributed::Collectives* ranks) {
  VISREP_CHECK(dataset.size() > 0, "evaluate_classifier: the dataset is empty");
  const Tensor logits = encode_dataset(model, dataset, transform, device, batch_size, ranks);
  NoGradGuard no_grad;
  const Tensor labels = dataset.labels.to(device);
  BitEvaluation evaluation;
  evaluation.top1 = mean(eq(argmax(logits, 1), labels).to(kFloat64)).item();
  evaluation.loss = cross_entropy(logits, labels).item();
  return evaluation;
}

// ---- the loop -----------------------------------------------------------------------------------

namespace {

constexpr const char* kRecipe = "bit";

// Rank r's slice of each global batch of `global` (DataParallel::local_range), then the MixUp
// partners of that slice's images (mixup_partners of the step, over the global batch): what a
// rank needs to mix its images as the one-process run mixes them.
data::BatchSampler slice_with_partners(data::BatchSampler global, const DataParallel& parallel, uint64_t seed) {
  return {.batches = global.batches,
          .samples = [global = std::move(global), &parallel, seed](int64_t step) {
            const std::vector<data::BatchSample> batch = global.samples(step);
            const auto size = static_cast<int64_t>(batch.size());
            const std::vector<int64_t> partners = mixup_partners(size, seed, step, Device::cpu()).to_vector<int64_t>();
            const auto [begin, end] = parallel.local_range(size);
            std::vector<data::BatchSample> samples(batch.begin() + begin, batch.begin() + end);
            for (int64_t i = begin; i < end; ++i) samples.push_back(batch[static_cast<size_t>(partners[i])]);
            return samples;
          }};
}

// The model's number of outputs, from one evaluation-mode forward pass of one image.
int64_t model_outputs(nn::Module& model, const data::ImageDataset& training_set, const data::AugmentConfig& transform,
                      Device device) {
  const Tensor logits = encode_dataset(model, data::subset(training_set, arange(0.0, 1.0, 1.0, kInt64)), transform,
                                       device, 1);
  VISREP_CHECK(logits.dim() == 2, "bit: the model must map images to (N, classes) logits, it gives {}",
               logits.description());
  return logits.size(1);
}

}  // namespace

BitResult train_bit(nn::Module& model, const data::ImageDataset& train_set, const data::ImageDataset& test_set,
                    const BitConfig& config) {
  check_bit_config(config);
  const data::ImageDataset training_set = bit_training_set(config, train_set);
  BitResult result;
  result.plan = plan_bit_run(config, training_set);
  const BitPlan& plan = result.plan;
  const data::AugmentConfig eval_transform = bit_eval_transform(plan.resolution);
  const DataParallel parallel(config.ranks);
  const int64_t local_batch = parallel.local_batch_size(config.batch_size, kRecipe);
  VISREP_CHECK(local_batch % config.batch_split == 0,
               "bit: each of the {} ranks trains on {} images of the batch of {}, which --batch-split {} does not "
               "divide",
               parallel.size(), local_batch, config.batch_size, config.batch_split);
  const int64_t micro_batch = local_batch / config.batch_split;
  const int64_t eval_batch = config.eval_batch_size > 0 ? config.eval_batch_size : micro_batch;

  model.to(config.device);
  const int64_t classes = training_set.class_count();
  const int64_t outputs = model_outputs(model, training_set, eval_transform, config.device);
  VISREP_CHECK(outputs == classes, "bit: the model has {} outputs but the training set has {} classes", outputs,
               classes);
  VISREP_CHECK(test_set.size() == 0 || test_set.class_count() <= outputs,
               "bit: the test set has {} classes, more than the model's {} outputs", test_set.class_count(), outputs);
  model.train();
  const ScopedSyncBatchNorm global_batch_norm({&model}, parallel, config.sync_batch_norm);

  // train.py: torch.optim.SGD(model.parameters(), lr, momentum=0.9), no weight decay.
  optim::Sgd optimizer(model.parameters(), optim::SgdOptions{.learning_rate = plan.learning_rate,
                                                             .momentum = config.momentum, .weight_decay = 0.0});
  TrainingRun run({.recipe = kRecipe, .progress_label = kRecipe, .loss_plot_title = "BiT fine-tuning loss per step",
                   .run_directory = config.run_directory, .resume = config.resume,
                   .checkpoint_every = config.checkpoint_every, .steps = plan.steps(),
                   .images_per_step = config.batch_size, .show_progress = config.show_progress,
                   .on_step = config.on_step, .ranks = config.ranks});
  run.checkpoint_module("model", model);
  run.checkpoint_optimizer(optimizer);
  run.checkpoint_input(models::describe_input(eval_transform, training_set.channels()));
  // The batches are keyed by the seed, the batch size and the training set: with any of them
  // changed the run would not continue the same way. (batch_split may change: for a model
  // without batch norm it does not change the update.)
  run.checkpoint_setting("seed", config.seed);
  run.checkpoint_setting("batch_size", config.batch_size);
  run.checkpoint_setting("training_examples", plan.training_examples);
  run.checkpoint_setting("examples_per_class", config.examples_per_class);
  run.checkpoint_setting("examples_per_class_seed", config.examples_per_class_seed);
  run.checkpoint_setting("sync_batch_norm", global_batch_norm.layers() > 0 ? 1 : 0, /*missing=*/0);
  run.start();
  result.first_step = run.first_step();
  auto evaluate = [&](int64_t steps_done) {
    if (test_set.size() == 0) return;
    BitEvaluation evaluation =
        evaluate_classifier(model, test_set, eval_transform, config.device, eval_batch, parallel.ranks());
    evaluation.step = steps_done;
    result.evaluations.push_back(evaluation);
    run.log(fmt::format("bit: step {}: test top-1 {:.2f}%, loss {:.4f}", steps_done, 100 * evaluation.top1,
                        evaluation.loss));
    run.write_record({{"kind", "eval"}, {"step", steps_done}, {"top1", evaluation.top1}, {"loss", evaluation.loss}});
  };

  run.log(describe(plan, training_set));
  // Step s's batch: the s-th batch_size images of the passes over the training set laid end to
  // end (see the header), one view of each, cropped and flipped as keyed by (seed, pass, image).
  // On several ranks each builds its slice of it and, with MixUp, its slice's partners, which
  // can be anywhere in the global batch: the loader's batch is then the slice, then the partners.
  const bool partners_in_batch = parallel.several() && plan.mixup_alpha > 0;
  data::DataLoader loader(training_set, {.batch_size = partners_in_batch ? 2 * local_batch : config.batch_size,
                                         .seed = config.seed,
                                         .device = config.device,
                                         .augment = bit_train_transform(plan.resolution),
                                         .part = partners_in_batch ? 0 : parallel.rank(),
                                         .parts = partners_in_batch ? 1 : parallel.size()});
  data::BatchSampler global_batches =
      data::batches_over_passes(training_set.size(), config.seed, config.batch_size, plan.steps());
  if (partners_in_batch) global_batches = slice_with_partners(std::move(global_batches), parallel, config.seed);
  loader.start(std::move(global_batches), run.first_step());
  while (run.next_step()) {
    const int64_t step = run.step();
    const double learning_rate = *bit_learning_rate(step, plan.schedule, plan.learning_rate);
    optimizer.set_learning_rate(learning_rate);
    const data::Batch batch = loader.next_required(kRecipe);
    // MixUp over the whole batch, then the micro-batches: batch_split only changes the memory.
    MixedBatch mixed{batch.images, batch.labels, batch.labels, 1.0};
    if (partners_in_batch) {
      // Rows [0, b): this rank's slice; rows [b, 2b): their partners. mix_batch's arithmetic.
      NoGradGuard no_grad;
      const double lambda = mixup_lambda(plan.mixup_alpha, config.seed, step);
      mixed = {add(mul(batch.images.narrow(0, 0, local_batch), lambda),
                   mul(batch.images.narrow(0, local_batch, local_batch), 1.0 - lambda)),
               batch.labels.narrow(0, 0, local_batch), batch.labels.narrow(0, local_batch, local_batch), lambda};
    } else if (plan.mixup_alpha > 0) {
      mixed = mix_batch(batch.images, batch.labels, mixup_partners(config.batch_size, config.seed, step, config.device),
                        mixup_lambda(plan.mixup_alpha, config.seed, step));
    }

    optimizer.zero_grad();
    double loss_value = 0.0;
    for (int64_t part = 0; part < config.batch_split; ++part) {
      const int64_t start = part * micro_batch;
      const Tensor logits = model(mixed.images.narrow(0, start, micro_batch));
      const Tensor loss = mixup_cross_entropy(logits, mixed.labels.narrow(0, start, micro_batch),
                                              mixed.partner_labels.narrow(0, start, micro_batch), mixed.lambda);
      // Each micro-batch's mean loss / batch_split: the gradients add up to the whole batch's
      // (to the rank's slice's, whose mean over the ranks is the global batch's).
      div(loss, static_cast<double>(config.batch_split)).backward();
      loss_value += loss.item() / static_cast<double>(config.batch_split);
    }
    run.average_gradients();
    optimizer.step();
    result.step_learning_rates.push_back(learning_rate);
    run.end_step(loss_value, learning_rate, {{"mixup_lambda", mixed.lambda}});
    if (run.due(config.eval_every)) evaluate(run.step());
  }

  if (!run.stopped()) {
    evaluate(plan.steps());
    run.finish();
    run.save_model("model.safetensors", model,
                   {{"recipe", kRecipe}, {"model", model.describe()}, {"steps", std::to_string(plan.steps())}});
  }
  result.step_losses = run.step_losses();
  result.stopped = run.stopped();
  result.checkpoint_path = run.checkpoint_path();
  return result;
}

}  // namespace visrep::recipes
