#include "recipes/contrastive_training.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>

#include "engine/data/loader.h"
#include "engine/ops.h"
#include "engine/optim/lars.h"
#include "engine/optim/sgd.h"
#include "models/model_description.h"
#include "recipes/data_parallel.h"
#include "recipes/training_run.h"

namespace visrep::recipes {

// ---- configuration -----------------------------------------------------------------------------

ContrastiveOptimizer parse_contrastive_optimizer(const std::string& name) {
  if (name == "lars") return ContrastiveOptimizer::Lars;
  if (name == "sgd") return ContrastiveOptimizer::Sgd;
  VISREP_FAIL("unknown optimizer '{}' (known: lars, sgd)", name);
}

void check_config(const ContrastiveTrainingConfig& config, const data::ImageDataset& train_set,
                  const std::string& recipe) {
  VISREP_CHECK(config.epochs >= 1, "{}: epochs must be >= 1, got {}", recipe, config.epochs);
  VISREP_CHECK(config.batch_size >= 2, "{}: batch_size must be >= 2 (batch norm and negatives), got {}", recipe,
               config.batch_size);
  VISREP_CHECK(std::isfinite(config.base_learning_rate) && config.base_learning_rate > 0,
               "{}: base_learning_rate must be positive, got {}", recipe, config.base_learning_rate);
  VISREP_CHECK(config.warmup_epochs >= 0 && config.warmup_epochs <= static_cast<double>(config.epochs),
               "{}: warmup_epochs must lie in [0, epochs = {}], got {}", recipe, config.epochs, config.warmup_epochs);
  VISREP_CHECK(config.weight_decay >= 0, "{}: weight_decay must be >= 0, got {}", recipe, config.weight_decay);
  VISREP_CHECK(config.momentum >= 0 && config.momentum < 1, "{}: momentum must lie in [0, 1), got {}", recipe,
               config.momentum);
  VISREP_CHECK(config.trust_coefficient > 0, "{}: trust_coefficient must be positive, got {}", recipe,
               config.trust_coefficient);
  VISREP_CHECK(config.image_size >= 0, "{}: image_size must be >= 0 (0: the dataset's), got {}", recipe,
               config.image_size);
  VISREP_CHECK(config.eval_image_size >= 0, "{}: eval_image_size must be >= 0 (0: the views' size), got {}", recipe,
               config.eval_image_size);
  VISREP_CHECK(config.checkpoint_every >= 0, "{}: checkpoint_every must be >= 0, got {}", recipe,
               config.checkpoint_every);
  VISREP_CHECK(config.knn_every >= 1, "{}: knn_every must be >= 1, got {}", recipe, config.knn_every);
  VISREP_CHECK(config.knn.k >= 1 && config.knn.temperature > 0,
               "{}: the kNN monitor needs k >= 1 and temperature > 0, got k = {}, temperature = {}", recipe,
               config.knn.k, config.knn.temperature);
  VISREP_CHECK(config.loader_workers >= 0, "{}: loader_workers must be >= 0, got {}", recipe, config.loader_workers);
  VISREP_CHECK(train_set.size() >= config.batch_size, "{}: the training set has {} images, fewer than one batch of {}",
               recipe, train_set.size(), config.batch_size);
  // (Rank 0 reads the checkpoint and sends it to the others: only it needs the file.)
  VISREP_CHECK(config.resume.empty() || DataParallel(config.ranks).rank() != 0 ||
                   std::filesystem::is_regular_file(config.resume),
               "{}: cannot resume: the checkpoint '{}' does not exist", recipe, config.resume);
}

data::AugmentConfig resolve_augment(const ContrastiveTrainingConfig& config, const data::ImageDataset& dataset) {
  if (config.augment) return *config.augment;
  return data::augment_preset(config.augment_preset, config.image_size > 0 ? config.image_size : dataset.height());
}

data::AugmentConfig resolve_evaluation_transform(const ContrastiveTrainingConfig& config,
                                                 const data::ImageDataset& dataset) {
  return evaluation_transform(resolve_augment(config, dataset), config.eval_image_size);
}

// ---- the loop ----------------------------------------------------------------------------------

namespace {

nn::NamedTensors prefixed(const nn::NamedTensors& named, const std::string& prefix) {
  nn::NamedTensors out;
  for (const auto& [name, tensor] : named) out.emplace_back(prefix + name, tensor);
  return out;
}

std::unique_ptr<optim::Optimizer> make_optimizer(const nn::Module& encoder, const nn::Module& head,
                                                 const ContrastiveTrainingConfig& config, double learning_rate) {
  nn::NamedTensors named = prefixed(encoder.named_parameters(), "encoder.");
  for (auto& entry : prefixed(head.named_parameters(), "head.")) named.push_back(entry);
  if (config.optimizer == ContrastiveOptimizer::Lars) {
    // simclr lars_optimizer.py with exclude_from_weight_decay = exclude_from_layer_adaptation
    // = ['batch_normalization', 'bias'] (tf2/model.py build_optimizer).
    optim::LarsOptions options{.learning_rate = learning_rate, .momentum = config.momentum,
                               .weight_decay = config.weight_decay, .trust_coefficient = config.trust_coefficient};
    return std::make_unique<optim::Lars>(optim::lars_parameter_groups(named, options));
  }
  // SupContrast main_supcon.py set_optimizer: optim.SGD(model.parameters(), lr, momentum,
  // weight_decay), i.e. weight decay on every parameter.
  std::vector<Tensor> parameters;
  for (auto& [name, parameter] : named) parameters.push_back(parameter);
  return std::make_unique<optim::Sgd>(
      parameters, optim::SgdOptions{.learning_rate = learning_rate, .momentum = config.momentum,
                                    .weight_decay = config.weight_decay});
}

}  // namespace

ContrastiveTrainingResult train_contrastive(nn::Module& encoder, nn::Module& head, const data::ImageDataset& train_set,
                                            const data::ImageDataset& test_set,
                                            const ContrastiveTrainingConfig& config, const std::string& recipe,
                                            const ContrastiveLossFunction& loss_function) {
  check_config(config, train_set, recipe);
  const data::AugmentConfig augment = resolve_augment(config, train_set);
  data::check_augment_config(augment);
  const data::AugmentConfig eval_transform = resolve_evaluation_transform(config, train_set);
  const bool knn_monitor = config.knn_monitor && test_set.size() > 0;
  const DataParallel parallel(config.ranks);
  const int64_t local_batch = parallel.local_batch_size(config.batch_size, recipe);

  encoder.to(config.device);
  head.to(config.device);
  encoder.train();
  head.train();
  const ScopedSyncBatchNorm global_batch_norm({&encoder, &head}, parallel, config.sync_batch_norm);

  // SimCLR's schedule (tf2/model.py WarmUpAndCosineDecay): the base rate scaled by the (global)
  // batch size, a linear warmup over warmup_epochs, then a cosine decay to 0 at the last step.
  const int64_t steps_per_epoch = train_set.size() / config.batch_size;  // drop_last: full batches only
  const int64_t total_steps = steps_per_epoch * config.epochs;
  const double learning_rate =
      optim::scale_learning_rate(config.base_learning_rate, config.batch_size, config.learning_rate_scaling);
  const int64_t warmup_steps =
      std::min<int64_t>(total_steps, std::llround(config.warmup_epochs * static_cast<double>(steps_per_epoch)));
  const optim::WarmupCosineSchedule schedule(learning_rate, warmup_steps, total_steps);
  const std::unique_ptr<optim::Optimizer> optimizer = make_optimizer(encoder, head, config, learning_rate);

  std::vector<double> knn_history;  // per epoch, NaN where the monitor did not run
  TrainingRun run({.recipe = recipe, .progress_label = recipe, .loss_plot_title = recipe + " training loss per step",
                   .run_directory = config.run_directory, .resume = config.resume,
                   .checkpoint_every = config.checkpoint_every, .epochs = config.epochs,
                   .steps_per_epoch = steps_per_epoch, .images_per_step = config.batch_size,
                   .show_progress = config.show_progress, .on_step = config.on_step, .ranks = config.ranks});
  run.checkpoint_module("encoder", encoder);
  run.checkpoint_module("head", head);
  run.checkpoint_optimizer(*optimizer);
  run.checkpoint_input(models::describe_input(eval_transform, train_set.channels()));
  // The data order and the views are keyed by the seed, and a batch's contents by the batch
  // size: with either changed, the run would not continue the same way.
  run.checkpoint_setting("batch_size", config.batch_size);
  run.checkpoint_setting("seed", config.seed);
  // Batch norm over the global batch or each rank's slice: another model (one rank: local).
  run.checkpoint_setting("sync_batch_norm", global_batch_norm.layers() > 0 ? 1 : 0, /*missing=*/0);
  run.checkpoint_history("knn_accuracy", knn_history,
                         HistoryPlot{.file = "knn.png", .title = recipe + " kNN top-1 accuracy per epoch",
                                     .x_label = "epoch", .y_label = "accuracy", .legend = "kNN accuracy"});
  run.start();

  ContrastiveTrainingResult result;
  // Every rank's loader cuts the same global batches (batch_size, the epoch's order) and builds
  // its part of each: local_batch images, two views each, keyed as on one process.
  data::DataLoader loader(train_set, {.batch_size = config.batch_size,
                                      .shuffle = true,
                                      .drop_last = true,
                                      .seed = config.seed,
                                      .workers = config.loader_workers,
                                      .device = config.device,
                                      .augment = augment,
                                      .views = 2,
                                      .part = parallel.rank(),
                                      .parts = parallel.size()});
  while (run.next_epoch()) {
    loader.start_epoch(run.epoch(), run.batch_in_epoch());
    while (run.next_step()) {
      const data::Batch batch = loader.next_required(recipe);
      optimizer->set_learning_rate(schedule.at(run.step()));
      // One forward pass over both views together (2B rows), so batch norm sees all of them,
      // as simclr's tf2/model.py does by concatenating the views along the batch axis.
      const Tensor embeddings = head(encoder(batch.images));
      VISREP_CHECK(embeddings.size(0) == 2 * local_batch, "{}: {} embeddings for a batch of {} images", recipe,
                   embeddings.size(0), local_batch);
      const Tensor loss = loss_function(embeddings, batch.labels, parallel.ranks());
      optimizer->zero_grad();
      loss.backward();
      run.average_gradients();
      optimizer->step();
      run.end_step(loss.item(), optimizer->learning_rate());
    }
    if (run.stopped()) break;  // within the epoch

    ContrastiveEpochSummary summary{.epoch = run.epoch(), .loss = run.epoch_mean_loss(),
                                    .learning_rate = optimizer->learning_rate(),
                                    .images_per_second = run.images_per_second()};
    if (knn_monitor && !run.stopping() && (run.epoch() % config.knn_every == 0 || run.epoch() == config.epochs)) {
      const bool last = run.epoch() == config.epochs;
      summary.knn_accuracy = knn_monitor_accuracy(encoder, train_set, test_set, eval_transform, config.device,
                                                  config.knn, parallel.ranks(), last ? &result.final_features : nullptr);
    }
    knn_history.push_back(summary.knn_accuracy.value_or(std::numeric_limits<double>::quiet_NaN()));
    result.epochs.push_back(summary);
    run.log(fmt::format("{} epoch {}: loss {:.4f}, lr {:.4g}, {:.0f} img/s{}", recipe, summary.epoch, summary.loss,
                        summary.learning_rate, summary.images_per_second,
                        summary.knn_accuracy ? fmt::format(", kNN accuracy {:.2f}%", 100 * *summary.knn_accuracy)
                                             : ""));
    nlohmann::json record = {{"loss", summary.loss}, {"lr", summary.learning_rate},
                             {"images_per_second", summary.images_per_second}};
    if (summary.knn_accuracy) record["knn_accuracy"] = *summary.knn_accuracy;
    run.end_epoch(record);
  }

  if (!run.stopped()) {
    run.finish();
    run.save_model("encoder.safetensors", encoder,
                   {{"recipe", recipe}, {"model", encoder.describe()}, {"epochs", std::to_string(config.epochs)}});
  }
  result.step_losses = run.step_losses();
  result.first_step = run.first_step();
  result.stopped = run.stopped();
  result.checkpoint_path = run.checkpoint_path();
  return result;
}

}  // namespace visrep::recipes
