// Supervised training of an image classifier with cross-entropy: the smallest complete
// recipe (data -> model -> loss -> SGD with momentum -> evaluation -> checkpoint), and the
// cross-entropy baseline the contrastive recipes are compared with.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/data/augment.h"
#include "engine/data/dataset.h"
#include "engine/distributed/collectives.h"
#include "engine/nn/module.h"

namespace visrep::recipes {

struct ClassifierConfig {
  int64_t epochs = 2;
  int64_t batch_size = 128;
  double learning_rate = 0.05;  // peak, after a linear warmup of one tenth of an epoch
  double momentum = 0.9;
  double weight_decay = 5e-4;   // on conv and linear weights only (not biases, not norms)
  double label_smoothing = 0.0;
  uint64_t seed = 0;
  Device device = Device::cpu();
  std::vector<float> mean;      // per-channel input normalisation (of unaugmented batches)
  std::vector<float> std;
  // Training-time augmentation, one view per image (its own mean/std normalise the view);
  // none: the plain normalised images. Evaluation never augments.
  std::optional<data::AugmentConfig> augment;
  std::string run_directory;    // metrics.jsonl, model.safetensors, loss.png; empty: write nothing
  bool show_progress = true;
  // Data-parallel training (recipes/data_parallel.h): the job's ranks (not owned); null: one
  // process. batch_size stays the global batch, each rank training on batch_size / P of it.
  distributed::Collectives* ranks = nullptr;
  // With several ranks, batch norm over the global batch (SyncBatchNorm) instead of over each
  // rank's slice. Off by default, as in supervised data-parallel training (PyTorch's
  // DistributedDataParallel, Goyal et al. 2017's per-worker batch norm): then the statistics
  // are those of batch_size / P images, and a run of P ranks is not the one-rank run.
  bool sync_batch_norm = false;
};

struct EpochSummary {
  int64_t epoch = 0;  // 1-based
  double train_loss = 0.0;
  double train_accuracy = 0.0;
  double test_accuracy = 0.0;
  double images_per_second = 0.0;
};

struct ClassifierResult {
  std::vector<EpochSummary> epochs;
  std::vector<double> step_losses;  // every optimizer step, in order
};

ClassifierResult train_classifier(nn::Module& model, const data::ImageDataset& train_set,
                                  const data::ImageDataset& test_set, const ClassifierConfig& config);

// Top-1 accuracy in [0, 1], in evaluation mode without recording a graph; with config.ranks,
// each rank counts its share of the dataset and the ranks add up their counts.
double evaluate_accuracy(nn::Module& model, const data::ImageDataset& dataset, const ClassifierConfig& config);

}  // namespace visrep::recipes
