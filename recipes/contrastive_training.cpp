#include "recipes/contrastive_training.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>

#include "engine/data/loader.h"
#include "engine/io/safetensors.h"
#include "engine/ops.h"
#include "engine/optim/lars.h"
#include "engine/optim/sgd.h"
#include "engine/util/metrics.h"
#include "engine/util/plot.h"
#include "engine/util/progress.h"
#include "recipes/run_files.h"

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
  VISREP_CHECK(config.checkpoint_every >= 0, "{}: checkpoint_every must be >= 0, got {}", recipe,
               config.checkpoint_every);
  VISREP_CHECK(config.knn_every >= 1, "{}: knn_every must be >= 1, got {}", recipe, config.knn_every);
  VISREP_CHECK(config.knn.k >= 1 && config.knn.temperature > 0,
               "{}: the kNN monitor needs k >= 1 and temperature > 0, got k = {}, temperature = {}", recipe,
               config.knn.k, config.knn.temperature);
  VISREP_CHECK(config.loader_workers >= 0, "{}: loader_workers must be >= 0, got {}", recipe, config.loader_workers);
  VISREP_CHECK(train_set.size() >= config.batch_size, "{}: the training set has {} images, fewer than one batch of {}",
               recipe, train_set.size(), config.batch_size);
  VISREP_CHECK(config.resume.empty() || std::filesystem::is_regular_file(config.resume),
               "{}: cannot resume: the checkpoint '{}' does not exist", recipe, config.resume);
}

data::AugmentConfig resolve_augment(const ContrastiveTrainingConfig& config, const data::ImageDataset& dataset) {
  if (config.augment) return *config.augment;
  return data::augment_preset(config.augment_preset, config.image_size > 0 ? config.image_size : dataset.height());
}

// ---- the loop ----------------------------------------------------------------------------------

namespace {

// Where a run stands: the next step is batch `batch` of epoch `epochs_done + 1`.
struct Position {
  int64_t epochs_done = 0;
  int64_t batch = 0;
  int64_t step = 0;
  double epoch_loss_sum = 0.0;  // of the unfinished epoch's steps so far
};

// Everything a plot of the whole run needs, carried through checkpoints.
struct History {
  std::vector<double> step_losses;
  std::vector<double> knn_accuracy;  // per epoch, NaN where the monitor did not run
};

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

void save_checkpoint(const std::string& path, const nn::Module& encoder, const nn::Module& head,
                     const optim::Optimizer& optimizer, const Position& position, const History& history,
                     const ContrastiveTrainingConfig& config, const std::string& recipe) {
  io::TensorMap tensors;
  add_with_prefix(tensors, encoder.state_dict(), "encoder.");
  add_with_prefix(tensors, head.state_dict(), "head.");
  add_with_prefix(tensors, optimizer.state_dict(), "optimizer.");
  if (!history.step_losses.empty()) {
    tensors["history.step_losses"] = from_vector(history.step_losses, {static_cast<int64_t>(history.step_losses.size())});
  }
  if (!history.knn_accuracy.empty()) {
    tensors["history.knn_accuracy"] =
        from_vector(history.knn_accuracy, {static_cast<int64_t>(history.knn_accuracy.size())});
  }
  io::save_safetensors(path, tensors,
                       {{"format", "pt"}, {"recipe", recipe}, {"encoder", encoder.describe()},
                        {"head", head.describe()}, {"epochs_done", std::to_string(position.epochs_done)},
                        {"batch", std::to_string(position.batch)}, {"step", std::to_string(position.step)},
                        {"epoch_loss_sum", exact_text(position.epoch_loss_sum)}, {"seed", std::to_string(config.seed)},
                        {"batch_size", std::to_string(config.batch_size)}, {"epochs", std::to_string(config.epochs)}});
}

Position load_checkpoint(const std::string& path, nn::Module& encoder, nn::Module& head, optim::Optimizer& optimizer,
                         History& history, const ContrastiveTrainingConfig& config, const std::string& recipe,
                         int64_t steps_per_epoch) {
  const io::SafetensorsContents contents = io::load_safetensors(path);
  require_checkpoint_recipe(contents, recipe, path);
  // The data order and the views are keyed by the seed, and a batch's contents by the
  // batch size: with either changed, the run would not continue the same way.
  require_checkpoint_setting(contents, "batch_size", config.batch_size, path);
  require_checkpoint_setting(contents, "seed", static_cast<int64_t>(config.seed), path);

  Position position;
  position.epochs_done = checkpoint_integer(contents, "epochs_done", path);
  position.batch = checkpoint_integer(contents, "batch", path);
  position.step = checkpoint_integer(contents, "step", path);
  position.epoch_loss_sum = checkpoint_double(contents, "epoch_loss_sum", path);
  VISREP_CHECK(position.batch >= 0 && position.batch < steps_per_epoch &&
                   position.step == position.epochs_done * steps_per_epoch + position.batch,
               "resume: the checkpoint '{}' stands at epoch {} batch {} step {}, which does not fit {} steps per epoch",
               path, position.epochs_done, position.batch, position.step, steps_per_epoch);

  try {
    encoder.load_state_dict(tensors_with_prefix(contents.tensors, "encoder."));
    head.load_state_dict(tensors_with_prefix(contents.tensors, "head."));
    optimizer.load_state_dict(tensors_with_prefix(contents.tensors, "optimizer."));
  } catch (const Error& error) {
    VISREP_FAIL("resume: the checkpoint '{}' does not fit this model ({} + {}; the checkpoint's: {} + {}): {}", path,
                encoder.describe(), head.describe(),
                contents.metadata.count("encoder") ? contents.metadata.at("encoder") : "?",
                contents.metadata.count("head") ? contents.metadata.at("head") : "?", error.what());
  }
  if (contents.tensors.count("history.step_losses")) {
    history.step_losses = contents.tensors.at("history.step_losses").to_vector<double>();
  }
  if (contents.tensors.count("history.knn_accuracy")) {
    history.knn_accuracy = contents.tensors.at("history.knn_accuracy").to_vector<double>();
  }
  return position;
}

void write_plots(const std::string& directory, const History& history, const std::string& recipe) {
  if (!history.step_losses.empty()) {
    util::write_line_plot_png(directory + "/loss.png", recipe + " training loss per step", "step", "loss",
                              {{"loss", history.step_losses}});
  }
  bool any_knn = false;
  for (double accuracy : history.knn_accuracy) any_knn = any_knn || std::isfinite(accuracy);
  if (any_knn) {
    util::write_line_plot_png(directory + "/knn.png", recipe + " kNN top-1 accuracy per epoch", "epoch",
                              "accuracy", {{"kNN accuracy", history.knn_accuracy}});
  }
}

}  // namespace

ContrastiveTrainingResult train_contrastive(nn::Module& encoder, nn::Module& head, const data::ImageDataset& train_set,
                                            const data::ImageDataset& test_set,
                                            const ContrastiveTrainingConfig& config, const std::string& recipe,
                                            const ContrastiveLossFunction& loss_function) {
  check_config(config, train_set, recipe);
  const data::AugmentConfig augment = resolve_augment(config, train_set);
  data::check_augment_config(augment);
  const data::AugmentConfig eval_transform = evaluation_transform(augment);
  const bool knn_monitor = config.knn_monitor && test_set.size() > 0;

  encoder.to(config.device);
  head.to(config.device);
  encoder.train();
  head.train();

  // SimCLR's schedule (tf2/model.py WarmUpAndCosineDecay): the base rate scaled by the batch
  // size, a linear warmup over warmup_epochs, then a cosine decay to 0 at the last step.
  const int64_t steps_per_epoch = train_set.size() / config.batch_size;  // drop_last: full batches only
  const int64_t total_steps = steps_per_epoch * config.epochs;
  const double learning_rate =
      optim::scale_learning_rate(config.base_learning_rate, config.batch_size, config.learning_rate_scaling);
  const int64_t warmup_steps =
      std::min<int64_t>(total_steps, std::llround(config.warmup_epochs * static_cast<double>(steps_per_epoch)));
  const optim::WarmupCosineSchedule schedule(learning_rate, warmup_steps, total_steps);
  const std::unique_ptr<optim::Optimizer> optimizer = make_optimizer(encoder, head, config, learning_rate);

  History history;
  Position position;
  if (!config.resume.empty()) {
    position = load_checkpoint(config.resume, encoder, head, *optimizer, history, config, recipe, steps_per_epoch);
  }

  const bool writing = !config.run_directory.empty();
  const std::string checkpoint_path = writing ? config.run_directory + "/" + kCheckpointFileName : "";
  util::MetricsWriter metrics;
  if (writing) metrics = open_run_directory(config.run_directory, !config.resume.empty(), recipe);

  ContrastiveTrainingResult result;
  result.first_step = position.step;
  auto write_checkpoint = [&](const Position& at) {
    if (!writing) return;
    save_checkpoint(checkpoint_path, encoder, head, *optimizer, at, history, config, recipe);
    write_plots(config.run_directory, history, recipe);
    result.checkpoint_path = checkpoint_path;
  };

  data::DataLoader loader(train_set, {.batch_size = config.batch_size, .shuffle = true, .drop_last = true,
                                      .seed = config.seed, .workers = config.loader_workers, .device = config.device,
                                      .augment = augment, .views = 2});
  int64_t step = position.step;
  for (int64_t epoch = position.epochs_done + 1; epoch <= config.epochs; ++epoch) {
    const int64_t first_batch = epoch == position.epochs_done + 1 ? position.batch : 0;
    double loss_sum = first_batch > 0 ? position.epoch_loss_sum : 0.0;
    loader.start_epoch(epoch, first_batch);
    util::ProgressBar progress(fmt::format("{} epoch {}/{}", recipe, epoch, config.epochs),
                               steps_per_epoch - first_batch);
    for (int64_t batch_index = first_batch; batch_index < steps_per_epoch; ++batch_index, ++step) {
      std::optional<data::Batch> batch = loader.next();
      VISREP_CHECK(batch.has_value(), "{}: the loader ended epoch {} after {} of {} batches", recipe, epoch,
                   batch_index, steps_per_epoch);
      optimizer->set_learning_rate(schedule.at(step));
      // One forward pass over both views together (2B rows), so batch norm sees all of them,
      // as simclr's tf2/model.py does by concatenating the views along the batch axis.
      const Tensor embeddings = head(encoder(batch->images));
      const Tensor loss = loss_function(embeddings, batch->labels);
      optimizer->zero_grad();
      loss.backward();
      optimizer->step();

      const double loss_value = loss.item();
      VISREP_CHECK(std::isfinite(loss_value), "{}: the loss became {} at step {} (lr {}); lower the learning rate",
                   recipe, loss_value, step, optimizer->learning_rate());
      loss_sum += loss_value;
      result.step_losses.push_back(loss_value);
      history.step_losses.push_back(loss_value);
      if (config.show_progress) {
        progress.update(batch_index - first_batch + 1, config.batch_size,
                        {{"loss", loss_sum / static_cast<double>(batch_index + 1)},
                         {"lr", optimizer->learning_rate()}});
      }
      if (metrics.is_open()) {
        metrics.write({{"kind", "step"}, {"epoch", epoch}, {"step", step}, {"loss", loss_value},
                       {"lr", optimizer->learning_rate()}});
      }
      if (config.on_step) config.on_step(step, loss_value);
      // A stop within the epoch: save where we are and leave. (After the epoch's last step,
      // the epoch is finished first, below.)
      if (stop_requested() && batch_index + 1 < steps_per_epoch) {
        if (config.show_progress) progress.finish();
        write_checkpoint({.epochs_done = epoch - 1, .batch = batch_index + 1, .step = step + 1,
                          .epoch_loss_sum = loss_sum});
        if (metrics.is_open()) metrics.write({{"kind", "stopped"}, {"epoch", epoch}, {"step", step + 1}});
        result.stopped = true;
        return result;
      }
    }
    if (config.show_progress) progress.finish();

    ContrastiveEpochSummary summary;
    summary.epoch = epoch;
    summary.loss = loss_sum / static_cast<double>(steps_per_epoch);
    summary.learning_rate = optimizer->learning_rate();
    summary.images_per_second = progress.items_per_second();
    const bool stopping = stop_requested() && epoch < config.epochs;
    if (knn_monitor && !stopping && (epoch % config.knn_every == 0 || epoch == config.epochs)) {
      summary.knn_accuracy = knn_monitor_accuracy(encoder, train_set, test_set, eval_transform, config.device,
                                                  config.knn);
    }
    history.knn_accuracy.push_back(summary.knn_accuracy.value_or(std::numeric_limits<double>::quiet_NaN()));
    result.epochs.push_back(summary);
    if (config.show_progress) {
      fmt::print(stderr, "{} epoch {}: loss {:.4f}, lr {:.4g}, {:.0f} img/s{}\n", recipe, epoch, summary.loss,
                 summary.learning_rate, summary.images_per_second,
                 summary.knn_accuracy ? fmt::format(", kNN accuracy {:.2f}%", 100 * *summary.knn_accuracy) : "");
    }
    if (metrics.is_open()) {
      nlohmann::json record = {{"kind", "epoch"}, {"epoch", epoch}, {"loss", summary.loss},
                               {"lr", summary.learning_rate}, {"images_per_second", summary.images_per_second}};
      if (summary.knn_accuracy) record["knn_accuracy"] = *summary.knn_accuracy;
      metrics.write(record);
    }

    const Position at_epoch_end{.epochs_done = epoch, .batch = 0, .step = step, .epoch_loss_sum = 0.0};
    if (stopping) {
      write_checkpoint(at_epoch_end);
      if (metrics.is_open()) metrics.write({{"kind", "stopped"}, {"epoch", epoch}, {"step", step}});
      result.stopped = true;
      return result;
    }
    if (epoch == config.epochs || (config.checkpoint_every > 0 && epoch % config.checkpoint_every == 0)) {
      write_checkpoint(at_epoch_end);
    }
  }

  if (writing) {
    io::save_safetensors(config.run_directory + "/encoder.safetensors", encoder.state_dict(),
                         {{"format", "pt"}, {"recipe", recipe}, {"model", encoder.describe()},
                          {"epochs", std::to_string(config.epochs)}});
  }
  return result;
}

}  // namespace visrep::recipes
