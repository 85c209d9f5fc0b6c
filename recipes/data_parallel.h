// Data-parallel training: what a recipe's step does on the ranks of a job (one process per
// rank, `mpirun -np P build/apps/visrep-simclr ...`; engine/distributed/communicator.h), so
// that a run of P ranks computes what a run of one computes on the same global batch:
//
//   - rank 0's parameters and buffers (freshly initialised or resumed) are broadcast to every
//     rank before the first step (TrainingRun::start does it);
//   - each step's global batch of B samples is drawn from the shared seed as on one process,
//     and rank r trains on its slice [r B / P, (r + 1) B / P) (local_part); the augmentation is
//     keyed by (seed, epoch, sample, view), so every view is the one the one-process run sees;
//   - each rank's loss is its share, scaled so that the mean over the ranks is the global
//     loss: the mean over its slice for the per-sample losses (cross-entropy), the cross-rank
//     losses' own scaling for the contrastive ones (engine/ops/contrastive.h);
//   - after backward, the gradients are averaged over the ranks in a few bucketed
//     all-reduces (average_gradients), so every rank takes the same optimizer step;
//   - batch norm, where the recipe asks for it, is SyncBatchNorm (nn::synchronize_batch_norm):
//     the global batch's statistics;
//   - the learning rate scales with the global batch (--batch-size is the global batch);
//   - rank 0 alone writes the run folder, the progress line and the results (TrainingRun).
//
// A job of one rank (no launcher, or ranks == nullptr) does none of this: every collective is
// the identity and no call is made.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/distributed/collectives.h"
#include "engine/error.h"
#include "engine/io/safetensors.h"
#include "engine/nn/module.h"

namespace visrep::recipes {

class DataParallel {
 public:
  // `ranks`: the job's communicator (not owned); null: a job of one.
  explicit DataParallel(distributed::Collectives* ranks = nullptr) : ranks_(ranks) {}

  int rank() const { return ranks_ != nullptr ? ranks_->rank() : 0; }
  int size() const { return ranks_ != nullptr ? ranks_->size() : 1; }
  bool is_root() const { return rank() == 0; }
  bool several() const { return size() > 1; }
  distributed::Collectives* ranks() const { return several() ? ranks_ : nullptr; }

  // B / P, the samples each rank takes of a global batch of `global_batch`; refuses, naming
  // both numbers, a global batch the ranks do not divide ("<recipe>: --batch-size 250 is not
  // divisible by the 3 ranks of this job ...").
  int64_t local_batch_size(int64_t global_batch, const std::string& recipe) const;
  // This rank's share of n items: [rank * n / P, (rank + 1) * n / P), the loader's part of a
  // batch (data::LoaderConfig::part) and of an evaluation's samples; shares differ by at most one.
  std::pair<int64_t, int64_t> local_range(int64_t n) const { return {rank() * n / size(), (rank() + 1) * n / size()}; }
  // Every rank's share of n rows (local_range(n) of them, `share` here, (rows, ...)), gathered
  // in rank order: the n rows on every rank.
  Tensor gather_shares(const Tensor& share, int64_t n) const;

  // Every parameter and buffer of `module` becomes rank 0's.
  void broadcast_state(const nn::Module& module) const;
  // Every rank's `contents` become rank 0's (names, dtypes, shapes, values and metadata).
  void broadcast_contents(io::SafetensorsContents& contents) const;
  // Rank 0's text, on every rank.
  std::string broadcast_text(const std::string& text) const;

  // The gradient of each of `parameters` (those that have one) becomes its mean over the
  // ranks. The gradients are flattened into buckets of at most bucket_bytes (per dtype and
  // device, in order), one all-reduce each, and copied back: for the models of the recipes,
  // a few megabytes, one or two calls per step instead of one per tensor.
  void average_gradients(const std::vector<Tensor>& parameters, int64_t bucket_bytes = int64_t{25} << 20) const;

  // A host number's sum over the ranks (mean: sum / size()).
  double sum(double value) const;

  // Refuses, on every rank, a job whose ranks disagree about `text` (their flags, say):
  // "<what> differ between the ranks of this job: rank 1's '--epochs = 3', rank 0's
  // '--epochs = 2'" (the first line in which the rank differs from rank 0's).
  void require_same_on_every_rank(const std::string& text, const std::string& what) const;

 private:
  distributed::Collectives* ranks_;
};

// SyncBatchNorm (nn::synchronize_batch_norm) on every BatchNorm of `modules` while it lives,
// when `enabled` and the job has several ranks; back to local batch norm afterwards (the
// modules may be trained again, by a later stage on one rank).
class ScopedSyncBatchNorm {
 public:
  ScopedSyncBatchNorm(std::vector<nn::Module*> modules, const DataParallel& parallel, bool enabled);
  ~ScopedSyncBatchNorm();
  ScopedSyncBatchNorm(const ScopedSyncBatchNorm&) = delete;
  ScopedSyncBatchNorm& operator=(const ScopedSyncBatchNorm&) = delete;

  int64_t layers() const { return layers_; }  // how many batch norms synchronise (0: none)

 private:
  std::vector<nn::Module*> modules_;
  int64_t layers_ = 0;
};

}  // namespace visrep::recipes
