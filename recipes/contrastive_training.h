// The training loop SimCLR (recipes/simclr.h) and SupCon's first stage (recipes/supcon.h)
// share: two augmented views of every image, an encoder f and a head g, a contrastive loss
// on g(f(x)), warmup + cosine learning rate, LARS or SGD, an online kNN monitor on f's
// features, metrics, checkpoints, resume and a clean stop. The recipes differ only in the
// loss (and its labels), the head and their defaults, which they pass in.
//
// Reproducibility: nothing in the loop holds random state. The loader's order of epoch e is
// Philox stream e of the seed and every view's augmentation is keyed by (seed, epoch,
// sample, view) (engine/data/augment.h). So a checkpoint needs only the model, the
// optimizer's buffers and the position (epoch, batch, step): resuming from it on the CPU
// gives bit-identical next losses.
//
// Files in run_directory (nothing when it is empty), all written atomically (the run folder,
// metrics and checkpoints are recipes/training_run.h's):
//   metrics.jsonl             one record per step and per epoch (with the kNN accuracy)
//   checkpoint.safetensors    encoder.*, head.*, optimizer.* and history.* (step_losses,
//                             knn_accuracy) tensors; the position in the metadata. Every
//                             checkpoint_every epochs, on a stop request and at the end.
//   encoder.safetensors       the trained encoder's state dict alone (PyTorch names), at the end
//   loss.png, knn.png         the loss per step and the kNN accuracy per epoch
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
#include "engine/optim/learning_rate_schedule.h"
#include "recipes/evaluation.h"  // KnnOptions, and the evaluations the recipe binaries run
#include "recipes/stop_request.h"  // request_stop(), for an app's SIGINT handler

namespace visrep::recipes {

// ---- configuration -----------------------------------------------------------------------------

enum class ContrastiveOptimizer {
  Lars,  // google-research/simclr lars_optimizer.py: biases and norms excluded from decay and adaptation
  Sgd,   // torch.optim.SGD with momentum, weight decay on every parameter (SupContrast main_supcon.py)
};
ContrastiveOptimizer parse_contrastive_optimizer(const std::string& name);  // "lars" or "sgd"

// The in-class defaults are SimCLR's (google-research/simclr run.py flags): batch 512,
// learning_rate 0.3 scaled linearly (x B / 256), 10 warmup epochs, weight decay 1e-6, LARS
// with momentum 0.9 and trust coefficient 0.001. SupconConfig sets SupContrast's instead.
struct ContrastiveTrainingConfig {
  int64_t epochs = 100;
  int64_t batch_size = 512;  // images per step; each gives two views, so 2 x batch_size rows
  double base_learning_rate = 0.3;
  optim::LearningRateScaling learning_rate_scaling = optim::LearningRateScaling::Linear;
  double warmup_epochs = 10.0;  // linear warmup from 0, then cosine decay to 0 (SimCLR's schedule)
  double weight_decay = 1e-6;
  double momentum = 0.9;
  ContrastiveOptimizer optimizer = ContrastiveOptimizer::Lars;
  double trust_coefficient = 0.001;  // LARS's eeta

  // The views: `augment` when set, otherwise augment_preset(augment_preset, image_size);
  // image_size 0 means the dataset's height.
  std::string augment_preset = "simclr";
  int64_t image_size = 0;
  std::optional<data::AugmentConfig> augment;

  uint64_t seed = 0;  // of the data order and the augmentation (the model's init is the caller's)
  Device device = Device::cpu();
  int loader_workers = 0;  // 0: one per core

  std::string run_directory;      // empty: write nothing
  int64_t checkpoint_every = 0;   // epochs between checkpoints; 0: only on a stop request and at the end
  std::string resume;             // a checkpoint.safetensors to continue from; empty: a fresh run

  // The online kNN monitor: encoder features (evaluation mode, no augmentation) of the
  // training set as the memory bank, the test set as queries, every knn_every epochs and
  // after the last one. k = 200, temperature 0.1, cosine (recipes/evaluation.h).
  // The monitor's images are evaluation_transform(views, eval_image_size): the whole image (up
  // to 32 px) at eval_image_size x eval_image_size, 0: the views' size.
  bool knn_monitor = true;
  int64_t knn_every = 1;
  int64_t eval_image_size = 0;
  KnnOptions knn;

  bool show_progress = true;
  // Called after every step with its global number (0-based) and loss, e.g. to log or to
  // request a stop from a test.
  std::function<void(int64_t step, double loss)> on_step;

  // Data-parallel training (recipes/data_parallel.h): the job's ranks (not owned); null: one
  // process. batch_size stays the global batch: each rank trains on batch_size / P images of
  // it, the negatives (and SupCon's positives) come from every rank, and the learning rate
  // scales with the global batch.
  distributed::Collectives* ranks = nullptr;
  // With several ranks, batch norm over the global batch (SyncBatchNorm: simclr's global_bn)
  // in the encoder and the head; false: over each rank's slice (what a one-device run of
  // batch_size / P would see). Nothing changes on one rank.
  bool sync_batch_norm = true;
};

// Throws visrep::Error naming the first field that is out of range.
void check_config(const ContrastiveTrainingConfig& config, const data::ImageDataset& train_set,
                  const std::string& recipe);

// The views' augmentation the config asks for, for a dataset of that height.
data::AugmentConfig resolve_augment(const ContrastiveTrainingConfig& config, const data::ImageDataset& dataset);

// The transform the kNN monitor encodes through, and so the one the final evaluation must use
// with the result's final_features: evaluation_transform(views, config.eval_image_size).
data::AugmentConfig resolve_evaluation_transform(const ContrastiveTrainingConfig& config,
                                                 const data::ImageDataset& dataset);

// ---- results -----------------------------------------------------------------------------------

struct ContrastiveEpochSummary {
  int64_t epoch = 0;  // 1-based
  double loss = 0.0;  // mean over the epoch's steps (including those before a resume)
  double learning_rate = 0.0;  // at the epoch's last step
  double images_per_second = 0.0;
  std::optional<double> knn_accuracy;  // top-1 in [0, 1], when the monitor ran this epoch
};

struct ContrastiveTrainingResult {
  std::vector<double> step_losses;  // the steps this call ran, in order
  int64_t first_step = 0;           // global number of step_losses[0]: nonzero after a resume
  std::vector<ContrastiveEpochSummary> epochs;  // the epochs this call finished
  bool stopped = false;             // a stop request ended the run early
  std::string checkpoint_path;      // the last checkpoint written; empty when none
  // The kNN monitor's features after the last epoch (evaluation_transform(views,
  // eval_image_size)), for the final evaluation (evaluate_frozen_encoder); undefined when the
  // monitor did not run after it.
  SplitFeatures final_features;
};

// ---- the loop ----------------------------------------------------------------------------------

// The loss of one step: embeddings (2B, D), view-major (rows i and i + B are image i's two
// views), and the batch's labels (B) int64 on the same device. With the ranks of a job
// (`ranks` not null), B is this rank's slice and the loss its share of the global batch's
// (the cross-rank losses of engine/ops/contrastive.h); null: one process, the whole batch.
using ContrastiveLossFunction =
    std::function<Tensor(const Tensor& embeddings, const Tensor& labels, distributed::Collectives* ranks)>;

// Trains encoder + head on `train_set` with `loss`; `recipe` ("simclr", "supcon") names the
// run in messages and checkpoints (a checkpoint of another recipe is refused on resume).
// test_set feeds the kNN monitor only and may be empty.
ContrastiveTrainingResult train_contrastive(nn::Module& encoder, nn::Module& head, const data::ImageDataset& train_set,
                                            const data::ImageDataset& test_set,
                                            const ContrastiveTrainingConfig& config, const std::string& recipe,
                                            const ContrastiveLossFunction& loss);

}  // namespace visrep::recipes
