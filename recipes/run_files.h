// The files of a training run, below recipes/training_run.h (which every recipe's loop
// uses): the run folder with its metrics.jsonl, and the parts of a checkpoint (prefixed
// tensor groups, exact numbers in the metadata, and reading them back with errors that name
// the file and the entry).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "engine/io/safetensors.h"
#include "engine/util/metrics.h"

namespace visrep::recipes {

// ---- the run folder ---------------------------------------------------------------------------

// The checkpoint's file name inside a run folder.
inline constexpr const char* kCheckpointFileName = "checkpoint.safetensors";

// Creates `directory` (and its parents) and opens its metrics.jsonl: appended to when
// `resuming`, truncated otherwise. `recipe` names the caller in the error message.
util::MetricsWriter open_run_directory(const std::string& directory, bool resuming, const std::string& recipe);

// Before a resume from a checkpoint taken after `steps_done` steps: drops the records of
// later steps from the metrics file at `path` (a run that went on past its last checkpoint,
// and crashed or was killed, wrote them; the resumed run writes them again), and a last line
// cut short by such an end. Which step a record belongs to: a "step" record's is its step,
// an "epoch" record's the epoch's last (with `steps_per_epoch` > 0), an "eval" or "stopped"
// record's the steps done it names; other lines are kept. Rewrites the file atomically, and
// only when that changes it; no file: nothing to do.
void drop_metrics_after(const std::string& path, int64_t steps_done, int64_t steps_per_epoch);

// ---- checkpoints ------------------------------------------------------------------------------

// Copies `tensors` into `into` with `prefix` before every name ("model." + "fc.weight").
void add_with_prefix(io::TensorMap& into, const std::map<std::string, Tensor>& tensors, const std::string& prefix);
// The tensors whose name starts with `prefix`, with it removed.
io::TensorMap tensors_with_prefix(const io::TensorMap& tensors, const std::string& prefix);

// A double as text that reads back to the same bits ("{:.17g}").
std::string exact_text(double value);

// Requires the checkpoint's "recipe" metadata entry to be `recipe`.
void require_checkpoint_recipe(const io::SafetensorsContents& contents, const std::string& recipe,
                               const std::string& path);
// A number from the checkpoint's metadata; a missing or malformed entry is an error naming
// the file and the entry.
int64_t checkpoint_integer(const io::SafetensorsContents& contents, const std::string& key, const std::string& path);
double checkpoint_double(const io::SafetensorsContents& contents, const std::string& key, const std::string& path);
// Requires the checkpoint to have been trained with `key` = `expected` (a setting whose change
// would make the resumed run differ from an uninterrupted one, such as the seed):
// "resume: the checkpoint '<path>' was trained with <key> <stored>, the config asks for <expected>".
void require_checkpoint_setting(const io::SafetensorsContents& contents, const std::string& key, int64_t expected,
                                const std::string& path);

}  // namespace visrep::recipes
