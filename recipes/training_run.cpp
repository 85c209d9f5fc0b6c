#include "recipes/training_run.h"

#include <fmt/format.h>

#include <cmath>
#include <optional>

#include "engine/error.h"
#include "engine/io/safetensors.h"
#include "engine/ops.h"
#include "engine/shape.h"
#include "engine/util/plot.h"
#include "models/model_description.h"
#include "recipes/run_files.h"
#include "recipes/stop_request.h"

namespace visrep::recipes {

TrainingRun::TrainingRun(RunOptions options) : options_(std::move(options)), parallel_(options_.ranks) {
  const std::string& recipe = options_.recipe;
  if (with_epochs()) {
    VISREP_CHECK(options_.epochs >= 1 && options_.steps == 0,
                 "{}: a run of {} steps per epoch needs epochs >= 1 (got {}) and no separate step count (got {})",
                 recipe, options_.steps_per_epoch, options_.epochs, options_.steps);
  } else {
    VISREP_CHECK(options_.steps >= 1 && options_.epochs == 0,
                 "{}: a run without epochs needs steps >= 1 (got {}) and no epochs (got {})", recipe, options_.steps,
                 options_.epochs);
  }
  VISREP_CHECK(options_.checkpoint_every >= 0, "{}: checkpoint_every must be >= 0, got {}", recipe,
               options_.checkpoint_every);
  VISREP_CHECK(options_.resumable || options_.resume.empty(), "{}: this run cannot resume (from '{}')", recipe,
               options_.resume);
}

int64_t TrainingRun::total_steps() const {
  return with_epochs() ? options_.epochs * options_.steps_per_epoch : options_.steps;
}

// ---- what a checkpoint holds ------------------------------------------------------------------

void TrainingRun::checkpoint_module(const std::string& name, nn::Module& module) {
  VISREP_CHECK(!started_, "{}: checkpoint_module('{}') after start()", options_.recipe, name);
  modules_.emplace_back(name, &module);
}

void TrainingRun::checkpoint_optimizer(optim::Optimizer& optimizer) {
  VISREP_CHECK(!started_, "{}: checkpoint_optimizer after start()", options_.recipe);
  optimizer_ = &optimizer;
}

void TrainingRun::checkpoint_input(nlohmann::json input) {
  VISREP_CHECK(!started_, "{}: checkpoint_input after start()", options_.recipe);
  input_ = std::move(input);
}

void TrainingRun::checkpoint_history(const std::string& name, std::vector<double>& values,
                                     std::optional<HistoryPlot> plot) {
  VISREP_CHECK(!started_, "{}: checkpoint_history('{}') after start()", options_.recipe, name);
  histories_.push_back({name, &values, std::move(plot)});
}

nn::NamedTensors TrainingRun::checkpointed_parameters() const {
  nn::NamedTensors parameters;  // named as in the checkpoint: "<module>.<parameter>"
  for (const auto& [name, module] : modules_) {
    for (auto& [parameter, tensor] : module->named_parameters()) parameters.emplace_back(name + "." + parameter, tensor);
  }
  return parameters;
}

// ---- starting: resume, the run folder ---------------------------------------------------------

void TrainingRun::start() {
  VISREP_CHECK(!started_, "{}: start() called twice", options_.recipe);
  started_ = true;
  if (!options_.resume.empty()) resume_from(load_checkpoint(options_.resume), options_.resume);
  // Every rank starts from rank 0's parameters and buffers (the same after a resume, and
  // after a seeded initialisation; this makes it so whatever the initialisation was).
  for (auto& [name, module] : modules_) parallel_.broadcast_state(*module);
  first_step_ = steps_done_;
  if (writing()) {
    const std::string metrics_path = options_.run_directory + "/metrics.jsonl";
    if (!options_.resume.empty()) drop_metrics_after(metrics_path, steps_done_, options_.steps_per_epoch);
    metrics_ = open_run_directory(options_.run_directory, !options_.resume.empty(), options_.recipe);
  }
  if (!with_epochs()) progress_.emplace(progress_label(options_.progress_label), total_steps() - steps_done_);
  progress_open_ = !with_epochs();
}

std::string TrainingRun::progress_label(const std::string& label) const {
  if (!parallel_.several()) return label;
  return fmt::format("{} ({} ranks x {}, batch {})", label, parallel_.size(),
                     options_.images_per_step / parallel_.size(), options_.images_per_step);
}

// Rank 0 reads the checkpoint and every rank gets its contents (or rank 0's error), so that
// every rank resumes from the same bytes and refuses a checkpoint with the same message.
io::SafetensorsContents TrainingRun::load_checkpoint(const std::string& path) const {
  io::SafetensorsContents contents;
  std::string error;
  if (parallel_.is_root()) {
    try {
      contents = io::load_safetensors(path);
    } catch (const Error& failure) {
      error = failure.what();
    }
  }
  error = parallel_.broadcast_text(error);
  VISREP_CHECK(error.empty(), "{}", error);
  parallel_.broadcast_contents(contents);
  return contents;
}

void TrainingRun::resume_from(const io::SafetensorsContents& contents, const std::string& path) {
  require_checkpoint_recipe(contents, options_.recipe, path);
  // A checkpoint without the entry predates data-parallel training: a job of one.
  const int64_t ranks = contents.metadata.count("ranks") ? checkpoint_integer(contents, "ranks", path) : 1;
  VISREP_CHECK(ranks == parallel_.size(),
               "resume: the checkpoint '{}' was written by a job of {} rank(s), and this job has {}: resume it on "
               "the ranks it was trained on (mpirun -np {}), which split each batch the same way",
               path, ranks, parallel_.size(), ranks);
  for (const Setting& setting : settings_) {
    if (setting.missing && !contents.metadata.count(setting.key)) {
      VISREP_CHECK(*setting.missing == setting.value,
                   "resume: the checkpoint '{}' was trained with {} {} (it predates the setting), the config asks "
                   "for {}",
                   path, setting.key, *setting.missing, setting.value);
      continue;
    }
    require_checkpoint_setting(contents, setting.key, setting.value, path);
  }

  // Every number is checked against this run before it is used, and before any product: a
  // file is not trusted to be one this recipe wrote (epochs_done = 2^62 would overflow
  // epochs_done * steps_per_epoch into a position that passes, and the run would end at once).
  const int64_t step = checkpoint_integer(contents, "step", path);
  VISREP_CHECK(step >= 0 && step <= total_steps(),
               "resume: the checkpoint '{}' stands at step {} (its 'step' entry), outside this run's 0..{}", path,
               step, total_steps());
  if (with_epochs()) {
    const int64_t per_epoch = options_.steps_per_epoch;
    const int64_t epochs_done = checkpoint_integer(contents, "epochs_done", path);
    const int64_t batch = checkpoint_integer(contents, "batch", path);
    const double epoch_loss_sum = checkpoint_double(contents, "epoch_loss_sum", path);
    VISREP_CHECK(epochs_done >= 0 && epochs_done <= options_.epochs,
                 "resume: the checkpoint '{}' has 'epochs_done' {}, outside this run's 0..{} epochs", path,
                 epochs_done, options_.epochs);
    VISREP_CHECK(batch >= 0 && batch < per_epoch,
                 "resume: the checkpoint '{}' has 'batch' {}, outside an epoch's 0..{} of this run", path, batch,
                 per_epoch - 1);
    VISREP_CHECK(step == epochs_done * per_epoch + batch,
                 "resume: the checkpoint '{}' stands at epoch {} batch {} step {}, which does not fit {} steps per "
                 "epoch",
                 path, epochs_done, batch, step, per_epoch);
    // A sum of finite losses (end_step refuses others), and none at an epoch's start.
    VISREP_CHECK(std::isfinite(epoch_loss_sum) && (batch > 0 || epoch_loss_sum == 0.0),
                 "resume: the checkpoint '{}' has 'epoch_loss_sum' {} at batch {} (a sum of finite losses, 0 at an "
                 "epoch's start)",
                 path, epoch_loss_sum, batch);
    epoch_loss_sum_ = epoch_loss_sum;
  }
  steps_done_ = step;

  try {
    for (auto& [name, module] : modules_) module->load_state_dict(tensors_with_prefix(contents.tensors, name + "."));
    if (optimizer_ != nullptr) {
      optimizer_->load_state_dict(tensors_with_prefix(contents.tensors, "optimizer."), checkpointed_parameters());
    }
  } catch (const Error& error) {
    std::string ours, theirs;
    for (const auto& [name, module] : modules_) {
      const std::string separator = ours.empty() ? "" : " + ";
      ours += separator + module->describe();
      theirs += separator + (contents.metadata.count(name) ? contents.metadata.at(name) : "?");
    }
    VISREP_FAIL("resume: the checkpoint '{}' does not fit this model ({}; the checkpoint's: {}): {}", path, ours,
                theirs, error.what());
  }
  // The histories: 1-D, finite where a step writes them (the losses; other histories may hold
  // NaN for "not measured"), the step losses one per step done.
  const auto read_history = [&](const std::string& key) -> std::optional<std::vector<double>> {
    const auto found = contents.tensors.find(key);
    if (found == contents.tensors.end()) return std::nullopt;
    VISREP_CHECK(found->second.dim() == 1, "resume: the checkpoint '{}' has '{}' of shape {} (a history is 1-D)",
                 path, key, shape_string(found->second.shape()));
    return found->second.to_vector<double>();
  };
  if (auto losses = read_history("history.step_losses")) {
    VISREP_CHECK(static_cast<int64_t>(losses->size()) == steps_done_,
                 "resume: the checkpoint '{}' has {} entries in 'history.step_losses' for {} steps done", path,
                 losses->size(), steps_done_);
    for (size_t i = 0; i < losses->size(); ++i) {
      VISREP_CHECK(std::isfinite((*losses)[i]),
                   "resume: the checkpoint '{}' has a loss of {} at step {} of 'history.step_losses'", path,
                   (*losses)[i], i);
    }
    loss_history_ = std::move(*losses);
  }
  for (const History& history : histories_) {
    if (auto values = read_history("history." + history.name)) *history.values = std::move(*values);
  }
}

// ---- the loop ---------------------------------------------------------------------------------

bool TrainingRun::next_epoch() {
  VISREP_CHECK(started_ && with_epochs(), "{}: next_epoch() needs a started run with epochs", options_.recipe);
  if (stopped_) return false;
  const int64_t per_epoch = options_.steps_per_epoch;
  epoch_ = steps_done_ / per_epoch + 1;  // a resume may stand within it
  if (epoch_ > options_.epochs) return false;
  epoch_first_batch_ = steps_done_ % per_epoch;
  if (epoch_first_batch_ == 0) epoch_loss_sum_ = 0.0;
  const std::string label = options_.progress_label.empty() ? "epoch" : options_.progress_label + " epoch";
  progress_.emplace(progress_label(fmt::format("{} {}/{}", label, epoch_, options_.epochs)),
                    per_epoch - epoch_first_batch_);
  progress_open_ = true;
  return true;
}

bool TrainingRun::next_step() {
  VISREP_CHECK(started_ && (!with_epochs() || epoch_ > 0), "{}: next_step() before start() (or next_epoch())",
               options_.recipe);
  if (stopped_) return false;
  const int64_t end = with_epochs() ? epoch_ * options_.steps_per_epoch : total_steps();
  if (steps_done_ < end) return true;
  if (progress_open_ && showing()) progress_->finish();
  progress_open_ = false;
  return false;
}

int64_t TrainingRun::batch_in_epoch() const { return steps_done_ - (epoch_ - 1) * options_.steps_per_epoch; }

double TrainingRun::epoch_mean_loss() const {
  return epoch_loss_sum_ / static_cast<double>(options_.steps_per_epoch);
}

double TrainingRun::images_per_second() const { return progress_ ? progress_->items_per_second() : 0.0; }

void TrainingRun::end_step(double rank_loss, double learning_rate, const nlohmann::json& extra) {
  const int64_t step = steps_done_;
  // The global batch's loss, the mean of the ranks' shares, and whether any rank was asked to
  // stop: one exchange of two numbers per step.
  double loss = rank_loss;
  if (parallel_.several()) {
    const Tensor numbers = from_vector(std::vector<double>{rank_loss, stop_requested() ? 1.0 : 0.0}, {2});
    parallel_.ranks()->all_reduce(numbers, distributed::ReduceOp::Sum);
    const std::vector<double> sums = numbers.to_vector<double>();
    loss = sums[0] / parallel_.size();
    stop_agreed_ = sums[1] > 0;
  }
  VISREP_CHECK(std::isfinite(loss), "{}: the loss became {} at step {} (lr {}); lower the learning rate",
               options_.recipe, loss, step, learning_rate);
  ++steps_done_;
  loss_history_.push_back(loss);
  step_losses_.push_back(loss);
  nlohmann::json record = {{"kind", "step"}, {"step", step}, {"loss", loss}, {"lr", learning_rate}};
  if (with_epochs()) {
    epoch_loss_sum_ += loss;
    record["epoch"] = epoch_;
    // The progress line shows the epoch's running mean, which is what its summary will say.
    if (showing()) {
      progress_->update(batch_in_epoch() - epoch_first_batch_, options_.images_per_step,
                        {{"loss", epoch_loss_sum_ / static_cast<double>(batch_in_epoch())}, {"lr", learning_rate}});
    }
  } else if (showing()) {
    progress_->update(steps_done_ - first_step_, options_.images_per_step, {{"loss", loss}, {"lr", learning_rate}});
  }
  for (const auto& item : extra.items()) record[item.key()] = item.value();
  write_record(record);
  if (options_.on_step) options_.on_step(step, loss);

  // After an epoch's last step the epoch ends first (its summary, then end_epoch stops).
  const bool epoch_ends = with_epochs() && batch_in_epoch() == options_.steps_per_epoch;
  if (stopping() && !epoch_ends) {
    if (showing()) progress_->finish();
    progress_open_ = false;
    stop();
  } else if (!with_epochs() && due(options_.checkpoint_every)) {
    write_checkpoint();
  }
}

void TrainingRun::end_epoch(nlohmann::json record) {
  VISREP_CHECK(with_epochs() && epoch_ > 0 && batch_in_epoch() == options_.steps_per_epoch,
               "{}: end_epoch() before the epoch's last step", options_.recipe);
  record["kind"] = "epoch";
  record["epoch"] = epoch_;
  write_record(record);
  agree_on_stop(stop_requested());  // a request during the epoch's evaluation, on any rank
  if (stopping()) {
    stop();
  } else if (options_.resumable && options_.checkpoint_every > 0 && epoch_ % options_.checkpoint_every == 0 &&
             epoch_ < options_.epochs) {
    write_checkpoint();  // the last epoch's is finish()'s
  }
}

void TrainingRun::finish() {
  VISREP_CHECK(started_ && !stopped_, "{}: finish() of a run that was {}", options_.recipe,
               stopped_ ? "stopped" : "not started");
  if (options_.resumable) {
    write_checkpoint();
  } else if (writing()) {
    write_plots();
  }
}

void TrainingRun::average_gradients() {
  std::vector<Tensor> parameters;
  for (const auto& [name, module] : modules_) {
    for (const Tensor& parameter : module->parameters()) parameters.push_back(parameter);
  }
  parallel_.average_gradients(parameters);
}

// Several ranks stop together or not at all: they agree on whether any was asked to.
void TrainingRun::agree_on_stop(bool requested) {
  if (parallel_.several()) stop_agreed_ = parallel_.sum(requested ? 1.0 : 0.0) > 0;
}

bool TrainingRun::stopping() const {
  const bool requested = parallel_.several() ? stop_agreed_ : stop_requested();
  return options_.resumable && requested && steps_done_ < total_steps();
}

bool TrainingRun::due(int64_t every) const {
  return every > 0 && !stopped_ && steps_done_ < total_steps() && steps_done_ % every == 0;
}

// A stop: the checkpoint of where the run stands, then a "stopped" record.
void TrainingRun::stop() {
  write_checkpoint();
  nlohmann::json record = {{"kind", "stopped"}, {"step", steps_done_}};
  if (with_epochs()) record["epoch"] = epoch_;
  write_record(record);
  stopped_ = true;
}

// ---- output -----------------------------------------------------------------------------------

void TrainingRun::log(const std::string& line) const {
  if (showing()) fmt::print(stderr, "{}\n", line);
}

void TrainingRun::write_record(const nlohmann::json& record) {
  if (metrics_.is_open()) metrics_.write(record);
}

void TrainingRun::save_model(const std::string& file, const nn::Module& module,
                             std::map<std::string, std::string> metadata) {
  if (!writing()) return;
  metadata["format"] = "pt";
  std::string name = "model";  // the module's checkpoint name, when it has one
  for (const auto& [checkpointed, other] : modules_) {
    if (other == &module) name = checkpointed;
  }
  metadata[models::kModelDescriptionKey] = models::model_description({{name, &module}}, input_);
  io::save_safetensors(options_.run_directory + "/" + file, module.state_dict(), metadata);
}

void TrainingRun::write_checkpoint() {
  checkpoint_path_ = options_.run_directory.empty() ? "" : options_.run_directory + "/" + kCheckpointFileName;
  if (!writing()) return;
  io::TensorMap tensors;
  std::map<std::string, std::string> metadata = {{"format", "pt"}, {"recipe", options_.recipe}};
  std::vector<std::pair<std::string, const nn::Module*>> described;
  for (const auto& [name, module] : modules_) {
    add_with_prefix(tensors, module->state_dict(), name + ".");
    metadata[name] = module->describe();
    described.emplace_back(name, module);
  }
  metadata[models::kModelDescriptionKey] = models::model_description(described, input_);
  if (optimizer_ != nullptr) add_with_prefix(tensors, optimizer_->state_dict(checkpointed_parameters()), "optimizer.");
  const auto add_history = [&](const std::string& name, const std::vector<double>& values) {
    if (!values.empty()) tensors["history." + name] = from_vector(values, {static_cast<int64_t>(values.size())});
  };
  add_history("step_losses", loss_history_);
  for (const History& history : histories_) add_history(history.name, *history.values);

  // Where the run stands: the next step is batch `batch` of epoch `epochs_done` + 1.
  metadata["step"] = std::to_string(steps_done_);
  if (with_epochs()) {
    const int64_t batch = steps_done_ % options_.steps_per_epoch;
    metadata["epochs_done"] = std::to_string(steps_done_ / options_.steps_per_epoch);
    metadata["batch"] = std::to_string(batch);
    metadata["epoch_loss_sum"] = exact_text(batch > 0 ? epoch_loss_sum_ : 0.0);
    metadata["epochs"] = std::to_string(options_.epochs);
  } else {
    metadata["steps"] = std::to_string(options_.steps);
  }
  for (const Setting& setting : settings_) metadata[setting.key] = setting.text;
  metadata["ranks"] = std::to_string(parallel_.size());

  io::save_safetensors(checkpoint_path_, tensors, metadata);
  write_plots();
}

void TrainingRun::write_plots() const {
  if (!loss_history_.empty()) {
    util::write_line_plot_png(options_.run_directory + "/loss.png", options_.loss_plot_title, "step", "loss",
                              {{"loss", loss_history_}});
  }
  for (const History& history : histories_) {
    if (!history.plot) continue;
    bool any_finite = false;
    for (double value : *history.values) any_finite = any_finite || std::isfinite(value);
    if (!any_finite) continue;
    util::write_line_plot_png(options_.run_directory + "/" + history.plot->file, history.plot->title,
                              history.plot->x_label, history.plot->y_label, {{history.plot->legend, *history.values}});
  }
}

}  // namespace visrep::recipes
