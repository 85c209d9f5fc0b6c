// What every training loop of the recipes does around its forward / loss / backward / step:
// the run folder and its metrics.jsonl, the progress line, checkpoints (written, and read
// back on resume with the settings a resume must match), a clean stop on request (Ctrl-C,
// recipes/stop_request.h) and the on_step callback. train_bit's loop, for example:
//
//   TrainingRun run(options);                   // the recipe's name, files, the run's length
//   run.checkpoint_module("model", model);      // what a checkpoint holds
//   run.checkpoint_optimizer(optimizer);
//   run.checkpoint_setting("seed", config.seed);  // what a resume must match
//   run.start();                                // resume (or not), open the run folder
//   while (run.next_step()) {                   // false at the end, or after a stop
//     ... the batch of step run.step(), forward, loss, backward, optimizer step ...
//     run.end_step(loss, learning_rate);        // metrics, progress, on_step, checkpoints, stop
//   }
//   if (!run.stopped()) run.finish();           // the final checkpoint and plots
//
// A run with epochs (steps_per_epoch > 0: the contrastive recipes, the classifier) wraps its
// steps in epochs, each with its progress line and an "epoch" record:
//
//   while (run.next_epoch()) {
//     while (run.next_step()) { ... run.end_step(loss, learning_rate); }
//     if (run.stopped()) break;                 // stopped within the epoch
//     ... evaluate ...
//     run.end_epoch(record);                    // a stop after the epoch's last step stops here
//   }
//
// Where a run stands is its step count (and, with epochs, the running loss of the unfinished
// epoch): the recipes keep no random state, every batch and view is keyed by the seed, the
// epoch and the sample (engine/data/loader.h), so a checkpoint of the modules, the optimizer and
// the position resumes with bit-identical losses on the CPU.
//
// Files in run_directory (nothing when it is empty), all written atomically:
//   metrics.jsonl           "step" records (step, loss, lr, and the recipe's extras), "epoch"
//                           and "eval" records, a "stopped" record on a stop. On resume it
//                           keeps the records up to the checkpoint and continues after them,
//                           so a step that ran twice (after a crash past the last checkpoint)
//                           is there once.
//   checkpoint.safetensors  each module's state dict under "<name>.", the optimizer's under
//                           "optimizer.", "history.<name>" series (step_losses and the
//                           recipe's); in the metadata the recipe, each module's description,
//                           "visrep.model" (models/model_description.h), the position (step; with epochs also epochs_done, batch and
//                           epoch_loss_sum), the settings, and the run's length (epochs or
//                           steps). Every checkpoint_every epochs (or steps), on a stop
//                           request and at the end.
//   loss.png                the loss per step (and a plot per history that asks for one),
//                           with every checkpoint
//   the recipe's model file at the end (save_model)
//
// This object is the only writer of the run folder and the only printer of a run's lines.
// On the ranks of a data-parallel job (options.ranks; recipes/data_parallel.h) every rank
// runs the loop and the recipe trains on its slice of each step's batch; this object then
//   - resumes every rank from rank 0's checkpoint (read there, broadcast) and broadcasts
//     rank 0's modules at start(), so every rank starts from the same parameters and buffers;
//   - average_gradients(), between backward() and the optimizer's step, averages the
//     checkpoint modules' gradients over the ranks;
//   - end_step() takes the rank's share of the loss and reports the mean over the ranks (the
//     global batch's loss), and the ranks agree there on a stop request (any rank's);
//   - rank 0 alone writes the run folder and prints; a checkpoint records the number of
//     ranks, and a resume with another number is refused.
#pragma once

#include <concepts>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/distributed/collectives.h"
#include "engine/io/safetensors.h"
#include "engine/nn/module.h"
#include "engine/optim/optimizer.h"
#include "engine/util/metrics.h"
#include "engine/util/progress.h"
#include "recipes/data_parallel.h"

namespace visrep::recipes {

struct RunOptions {
  std::string recipe;          // names the run in messages and checkpoints ("simclr", "bit", ...)
  std::string progress_label;  // "<label> epoch 2/5" ("epoch 2/5" when empty); a run without epochs: "<label>"
  std::string loss_plot_title;  // loss.png's
  std::string run_directory;    // empty: write nothing
  // Checkpoints, resume and stop requests; false: none of them, so a stop request does not
  // end the run (train_classifier).
  bool resumable = true;
  std::string resume;            // a checkpoint to continue from; empty: a fresh run
  int64_t checkpoint_every = 0;  // epochs (steps in a run without epochs) between checkpoints; 0: only on a stop and at the end
  // The run's length: `epochs` of `steps_per_epoch`, or `steps` without epochs.
  int64_t epochs = 0;
  int64_t steps_per_epoch = 0;
  int64_t steps = 0;
  int64_t images_per_step = 0;  // the global batch: for the progress line's images/s
  bool show_progress = true;    // the progress line and the run's lines on stderr (rank 0's)
  // Called after every step with its number (0-based) and loss, e.g. to request a stop from a test.
  std::function<void(int64_t step, double loss)> on_step;
  // The ranks of a data-parallel job (not owned); null: one process. See the top of this file.
  distributed::Collectives* ranks = nullptr;
};

// A plot of a history series, written with every checkpoint when any value is finite.
struct HistoryPlot {
  std::string file;  // in the run folder
  std::string title, x_label, y_label, legend;
};

class TrainingRun {
 public:
  explicit TrainingRun(RunOptions options);

  // ---- what a checkpoint holds (before start) -----------------------------------------------

  // The module's state dict as "<name>.*", its describe() as the metadata entry <name>.
  void checkpoint_module(const std::string& name, nn::Module& module);
  // The optimizer's state as "optimizer.<module>.<parameter>.<buffer>": every parameter it
  // updates must belong to a checkpointed module.
  void checkpoint_optimizer(optim::Optimizer& optimizer);
  // The input the modules expect (models::describe_input), recorded with their architectures
  // in the "visrep.model" entry of every checkpoint and model file (models/model_description.h).
  void checkpoint_input(nlohmann::json input);
  // A setting whose change would make a resumed run differ from an uninterrupted one (the
  // seed, the batch size, ...): written to the metadata, and a resume with another value is
  // refused, naming it.
  // `missing`: what a checkpoint written before the setting existed stands for.
  template <std::integral Integer>
  void checkpoint_setting(const std::string& key, Integer value, std::optional<int64_t> missing = {}) {
    settings_.push_back({key, std::to_string(value), static_cast<int64_t>(value), missing});
  }
  // A series the recipe appends to (per epoch, say) as "history.<name>": restored on resume.
  void checkpoint_history(const std::string& name, std::vector<double>& values, std::optional<HistoryPlot> plot = {});

  // ---- the run ----------------------------------------------------------------------------------

  // Resumes from options.resume when set (the modules, the optimizer, the histories and the
  // position; refused, naming the file and the entry, when the checkpoint is another
  // recipe's, was trained with other settings or does not fit the modules), then opens the
  // run folder. Nothing is written before the checkpoint is accepted.
  void start();

  // With epochs: starts the next epoch (the one a resume stands in, first) and its progress
  // line; false after the last epoch or a stop.
  bool next_epoch();
  // True while the epoch (or the run, without epochs) has a step left and no stop ended it;
  // closes the progress line when it has none.
  bool next_step();
  // After a step: checks that the loss is finite, appends it to the history, writes the "step"
  // record (step, loss, lr, the epoch, `extra`), updates the progress line, calls on_step;
  // then, unless this was the run's last step, writes a checkpoint and stops on a stop
  // request (with epochs, only within an epoch: after its last step the epoch ends first) or
  // writes the periodic checkpoint of a run without epochs.
  void end_step(double loss, double learning_rate, const nlohmann::json& extra = nlohmann::json::object());
  // With epochs, after the epoch's steps: writes the "epoch" record (`record` + epoch), then
  // on a stop request a checkpoint and the stop, else the periodic checkpoint.
  void end_epoch(nlohmann::json record);
  // At the end of the run: the final checkpoint (a resumable run) and the plots.
  void finish();

  // Between backward() and the optimizer's step: every checkpoint module's parameter
  // gradients become their mean over the ranks (DataParallel::average_gradients); nothing
  // on one rank.
  void average_gradients();
  const DataParallel& data_parallel() const { return parallel_; }

  int64_t step() const { return steps_done_; }  // the next step's number: the steps done so far
  int64_t epoch() const { return epoch_; }       // with epochs: the current one, 1-based
  int64_t batch_in_epoch() const;                // with epochs: the next step's batch in its epoch
  double epoch_mean_loss() const;                // with epochs: over the epoch's steps, those before a resume too
  double images_per_second() const;              // of the current epoch (or the run)
  bool stopping() const;  // a stop was requested (resumable runs) and the run is not at its end
  bool stopped() const { return stopped_; }
  // Work every `every` steps is due after this step: not at the run's end, not after a stop.
  bool due(int64_t every) const;

  // ---- output (the run's one writer and printer) -------------------------------------------

  void log(const std::string& line) const;  // on stderr, when show_progress, on rank 0
  void write_record(const nlohmann::json& record);  // to metrics.jsonl
  // The run's model file (`file` in the run folder): the module's state dict, `metadata`
  // with "format": "pt" and the "visrep.model" description of the module (under its
  // checkpoint name, else "model") and the input.
  void save_model(const std::string& file, const nn::Module& module, std::map<std::string, std::string> metadata);

  // ---- results ----------------------------------------------------------------------------------

  const std::vector<double>& step_losses() const { return step_losses_; }  // the steps this call ran
  int64_t first_step() const { return first_step_; }                      // their first one's number
  const std::string& checkpoint_path() const { return checkpoint_path_; }  // the last one written; empty when none

 private:
  struct Setting {
    std::string key, text;
    int64_t value;
    std::optional<int64_t> missing;
  };
  struct History {
    std::string name;
    std::vector<double>* values;
    std::optional<HistoryPlot> plot;
  };

  bool with_epochs() const { return options_.steps_per_epoch > 0; }
  int64_t total_steps() const;
  bool writing() const { return !options_.run_directory.empty() && parallel_.is_root(); }
  bool showing() const { return options_.show_progress && parallel_.is_root(); }
  std::string progress_label(const std::string& label) const;
  io::SafetensorsContents load_checkpoint(const std::string& path) const;
  void resume_from(const io::SafetensorsContents& contents, const std::string& path);
  void agree_on_stop(bool requested);
  // The checkpointed modules' parameters, "<module>.<parameter>": the names the optimizer's
  // state is keyed by.
  nn::NamedTensors checkpointed_parameters() const;
  void write_checkpoint();
  void write_plots() const;
  void stop();

  RunOptions options_;
  DataParallel parallel_;
  std::vector<std::pair<std::string, nn::Module*>> modules_;
  optim::Optimizer* optimizer_ = nullptr;
  nlohmann::json input_;  // null until checkpoint_input
  std::vector<Setting> settings_;
  std::vector<History> histories_;

  int64_t steps_done_ = 0;
  int64_t first_step_ = 0;
  int64_t epoch_ = 0;
  int64_t epoch_first_batch_ = 0;  // where this call started the current epoch
  double epoch_loss_sum_ = 0.0;    // of the current epoch's steps, those before a resume too
  std::vector<double> loss_history_;  // every step of the run
  std::vector<double> step_losses_;   // the steps this call ran
  bool stopped_ = false;
  bool started_ = false;
  bool stop_agreed_ = false;  // several ranks: a stop request seen by any of them, at the last end_step/end_epoch

  util::MetricsWriter metrics_;
  std::optional<util::ProgressBar> progress_;
  bool progress_open_ = false;
  std::string checkpoint_path_;
};

}  // namespace visrep::recipes
