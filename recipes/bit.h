// BigTransfer (BiT) fine-tuning with the BiT-HyperRule: Kolesnikov et al., "Big Transfer
// (BiT): General Visual Representation Learning" (ECCV 2020), section 3.3, as
// google-research/big_transfer implements it in bit_hyperrule.py (the rule) and
// bit_pytorch/train.py (the loop).
//
// The HyperRule sets every fine-tuning hyperparameter from two facts about the downstream
// dataset, its image size and its number of examples:
//   resolution  area below 96 x 96: resize to 160 x 160, random crop 128; else 512 and 480
//   schedule    below 20k examples 500 steps, below 500k 10k steps, else 20k steps: a linear
//               warmup over the first boundary, then the rate / 10 after each later one
//   MixUp       alpha 0.1 from 20k examples on, none below
// and fixes the rest: SGD with momentum 0.9, no weight decay, batch 512, learning rate 0.003.
//
// train_bit fine-tunes any classifier (an nn::Module mapping (N, C, H, W) images in [-1, 1]
// to (N, classes) logits; models/resnet_v2.h is the one BiT uses) with it. Differences from
// train.py, each deliberate:
//   - the learning rate is 0.003 x B / 512 (train.py uses 0.003 whatever --batch is; at the
//     default batch of 512 they agree); scale_learning_rate = false gives train.py's;
//   - MixUp blends images across the whole batch, before it is split into micro-batches
//     (train.py mixes within each micro-batch; BiT's TF and JAX input pipelines mix the whole
//     batch), so batch_split changes the memory needed and nothing else;
//   - a training set smaller than a batch (few-shot) is visited in reshuffled passes laid end
//     to end instead of train.py's sampling with replacement.
//
// Reproducibility: nothing in the loop holds random state. Step s's batch is a function of
// (seed, s): pass p over the training set visits it in the permutation drawn from Philox
// stream p of the seed (data::epoch_order), batches are consecutive runs of the passes laid
// end to end (data::batches_over_passes), each image's crop and flip are keyed by (seed, pass,
// image), and MixUp's weight and partners by (seed, s) (recipes/mixup.h). So the model, the
// optimizer's momentum buffers, the step and the seed are the whole state: resuming a
// checkpoint on the CPU gives bit-identical next losses.
//
// Files in run_directory (nothing when it is empty), all written atomically (the run folder,
// metrics and checkpoints are recipes/training_run.h's):
//   metrics.jsonl           one record per step ("step": loss, lr, mixup_lambda) and per
//                           evaluation ("eval": top1, loss)
//   checkpoint.safetensors  model.*, optimizer.* and history.step_losses tensors; step, seed
//                           and the settings a resume must match in the metadata. Every
//                           checkpoint_every steps, on a stop request and at the end.
//   model.safetensors       the fine-tuned model's state dict alone, at the end
//   loss.png                the loss per step
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/data/augment.h"
#include "engine/data/dataset.h"
#include "engine/distributed/collectives.h"
#include "engine/nn/module.h"
#include "recipes/stop_request.h"  // request_stop(), for an app's SIGINT handler

namespace visrep::recipes {

// ---- the HyperRule (bit_hyperrule.py) -------------------------------------------------------------

// Training images are resized to resize x resize, then a random crop x crop is taken;
// evaluation images are resized to crop x crop directly.
struct BitResolution {
  int64_t resize = 0;
  int64_t crop = 0;
};

// get_resolution: (160, 128) for images of area below 96 x 96, else (512, 480).
BitResolution bit_resolution(int64_t height, int64_t width);

// get_schedule: the learning-rate boundaries in steps; the run ends at the last one.
//   below 20 000 examples    100, 200, 300, 400, 500
//   below 500 000            500, 3000, 6000, 9000, 10 000
//   otherwise                500, 6000, 12 000, 18 000, 20 000
std::vector<int64_t> bit_schedule(int64_t dataset_size);

// get_mixup: 0.1 from 20 000 examples on, 0 (no MixUp) below.
double bit_mixup_alpha(int64_t dataset_size);

// get_lr: the learning rate of `step` (0-based) under `schedule` with peak `base`:
//   step < schedule[0]                 base x step / schedule[0]   (linear warmup from 0)
//   schedule[0] <= step < last         base / 10^k, k = the later boundaries strictly below step
//   step >= last                       none: training is over
// (A boundary's own step still has the higher rate: the decay takes effect after it.)
std::optional<double> bit_learning_rate(int64_t step, const std::vector<int64_t>& schedule, double base);

// 0.003 at BiT's batch of 512, scaled linearly with the batch size: base x batch_size / 512.
double bit_scaled_learning_rate(int64_t batch_size, double base = 0.003);

// The augmentations: training resizes to resolution.resize, takes a random crop of
// resolution.crop and flips half the images; evaluation resizes to resolution.crop. Both
// bilinear, and both scale pixels to [-1, 1] (train.py's Normalize(0.5, 0.5)).
data::AugmentConfig bit_train_transform(const BitResolution& resolution);
data::AugmentConfig bit_eval_transform(const BitResolution& resolution);

// ---- configuration ------------------------------------------------------------------------------

// The in-class defaults are the HyperRule's and train.py's (bit_common.py flags).
struct BitConfig {
  int64_t batch_size = 512;
  // Micro-batches per step: each runs forward and backward on batch_size / batch_split images
  // with its loss divided by batch_split, the gradients add up, and one optimizer step
  // follows; the same update as the whole batch at once, in less memory (for a model
  // without batch norm: BiT's ResNetV2 uses GroupNorm).
  int64_t batch_split = 1;
  double base_learning_rate = 0.003;  // at batch 512
  bool scale_learning_rate = true;    // x batch_size / 512; false: base_learning_rate as it is
  double momentum = 0.9;              // SGD, no weight decay (train.py: "Note: no weight-decay!")

  // The HyperRule's choices, unless set here.
  std::optional<BitResolution> resolution;  // none: bit_resolution(the training images' size)
  std::vector<int64_t> schedule;            // empty: bit_schedule(training examples)
  std::optional<double> mixup_alpha;        // none: bit_mixup_alpha(training examples)

  // Few-shot transfer: examples_per_class > 0 trains on that many images of each class,
  // chosen with examples_per_class_seed (data::few_shot_subset); the HyperRule then sees
  // the few-shot set's size, as train.py does.
  int64_t examples_per_class = 0;
  uint64_t examples_per_class_seed = 0;

  uint64_t seed = 0;  // of the data order, the augmentation and MixUp (the model's init is the caller's)
  Device device = Device::cpu();

  // Top-1 accuracy (and mean loss) on the test set every eval_every steps and at the end;
  // 0: only at the end. eval_batch_size 0: the micro-batch size, as train.py.
  int64_t eval_every = 0;
  int64_t eval_batch_size = 0;

  std::string run_directory;     // empty: write nothing
  int64_t checkpoint_every = 0;  // steps between checkpoints; 0: only on a stop request and at the end
  std::string resume;            // a checkpoint.safetensors to continue from; empty: a fresh run

  bool show_progress = true;
  // Called after every step with its number (0-based) and loss, e.g. to request a stop from a test.
  std::function<void(int64_t step, double loss)> on_step;

  // Data-parallel training (recipes/data_parallel.h): the job's ranks (not owned); null: one
  // process. batch_size stays the global batch: each rank trains on batch_size / P images of it
  // (in batch_split micro-batches), MixUp partners are drawn over the global batch, the
  // learning rate scales with the global batch.
  distributed::Collectives* ranks = nullptr;
  // With several ranks, batch norm over the global batch (SyncBatchNorm) in a model that has
  // any (BiT's ResNetV2 has GroupNorm and needs nothing; an encoder from a SimCLR or SupCon run
  // may have batch norm). Nothing changes on one rank.
  bool sync_batch_norm = true;
};

// What a run will do: the HyperRule applied to a training set (after the few-shot choice).
struct BitPlan {
  int64_t training_examples = 0;
  BitResolution resolution;
  std::vector<int64_t> schedule;  // boundaries; the run is schedule.back() steps
  double mixup_alpha = 0.0;
  double learning_rate = 0.0;  // the peak, after scaling with the batch size
  int64_t steps() const { return schedule.back(); }
};

// Throws visrep::Error naming the first setting that is out of range (batch_size not divisible
// by batch_split, an empty or decreasing schedule, ...).
void check_bit_config(const BitConfig& config);

// The training images a run uses: the few-shot subset when examples_per_class > 0, else all.
data::ImageDataset bit_training_set(const BitConfig& config, const data::ImageDataset& train_set);

// The plan for `training_set` (as bit_training_set returns it); throws when it is empty.
BitPlan plan_bit_run(const BitConfig& config, const data::ImageDataset& training_set);

// One line: "BiT-HyperRule for 50000 examples of 32x32: resize 160, crop 128; 10000 steps ...".
std::string describe(const BitPlan& plan, const data::ImageDataset& training_set);

// ---- results ------------------------------------------------------------------------------------

struct BitEvaluation {
  int64_t step = 0;     // steps done when it ran
  double top1 = 0.0;    // accuracy in [0, 1]
  double loss = 0.0;    // mean cross-entropy
};

struct BitResult {
  BitPlan plan;
  std::vector<double> step_losses;  // the steps this call ran, in order
  std::vector<double> step_learning_rates;
  int64_t first_step = 0;           // number of step_losses[0]: nonzero after a resume
  std::vector<BitEvaluation> evaluations;
  bool stopped = false;             // a stop request ended the run early
  std::string checkpoint_path;      // the last checkpoint written; empty when none
};

// ---- the loop -----------------------------------------------------------------------------------

// Fine-tunes `model` (its head sized for the training set's classes) on `train_set` with the
// HyperRule and evaluates it on `test_set` (which may be empty). The model's number of
// outputs must equal the training set's number of classes.
BitResult train_bit(nn::Module& model, const data::ImageDataset& train_set, const data::ImageDataset& test_set,
                    const BitConfig& config);

// Top-1 accuracy and mean cross-entropy of `model` on `dataset` through `transform`, in
// evaluation mode without a graph (the model's mode is restored). With the ranks of a job,
// each encodes its share and every rank gets the same numbers (encode_dataset).
BitEvaluation evaluate_classifier(nn::Module& model, const data::ImageDataset& dataset,
                                  const data::AugmentConfig& transform, Device device, int64_t batch_size,
                                  distributed::Collectives* ranks = nullptr);

}  // namespace visrep::recipes
