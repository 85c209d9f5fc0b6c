// Supervised Contrastive Learning (Khosla et al. 2020, https://arxiv.org/abs/2004.11362),
// following HobbitLong/SupContrast, in its three parts:
//   stage 1  train_supcon: encoder + SupCon head (models/heads.h SupConHead) on two views of
//            each image with the SupCon loss on the labels (losses.py SupConLoss, contrast
//            mode 'all'): every other view of the same class is a positive (main_supcon.py);
//   stage 2  linear_eval_of_encoder (recipes/evaluation.h): a linear classifier on
//            the frozen encoder's features (main_linear.py), here on precomputed features;
//   baseline train_cross_entropy_baseline: the same encoder + a linear layer trained end to
//            end with cross-entropy (main_ce.py), for the comparison the paper makes.
#pragma once

#include "engine/ops/contrastive.h"
#include "models/heads.h"
#include "recipes/classifier.h"
#include "recipes/contrastive_training.h"

namespace visrep::recipes {

// SupContrast's settings (main_supcon.py and its README's CIFAR command
// `--batch_size 1024 --learning_rate 0.5 --temp 0.1 --cosine`): SGD with momentum 0.9 and
// weight decay 1e-4 on every parameter, cosine decay with a 10-epoch warmup (used there for
// batches over 256), the "supcon" augmentation (crop area 0.2..1, jitter 0.4/0.4/0.4/0.1).
// SupContrast does not scale the rate with the batch; here its 0.5 at batch 1024 is written
// as 0.125 x B / 256 so that a smaller batch gets a proportionally smaller rate.
struct SupconConfig : ContrastiveTrainingConfig {
  SupconConfig();
  double temperature = 0.1;        // tau (the README's --temp 0.1)
  double base_temperature = 0.07;  // SupConLoss's base_temperature: the loss is scaled by tau / base_tau
  ContrastMode contrast_mode = ContrastMode::All;
};

using SupconResult = ContrastiveTrainingResult;

// Stage 1: trains encoder + head with the SupCon loss on train_set's labels (one per image,
// shared by its two views). test_set feeds the kNN monitor only and may be empty.
SupconResult train_supcon(nn::Module& encoder, nn::Module& head, const data::ImageDataset& train_set,
                          const data::ImageDataset& test_set, const SupconConfig& config);

// The cross-entropy baseline's settings for a SupCon run, so both get the same budget: the
// same epochs, batch size, seed, device and input normalisation; SGD with momentum 0.9 and
// weight decay 1e-4, learning rate 0.2 x B / 256 (main_ce.py's README: 0.8 at batch 1024).
// The training views are main_ce.py's: SupCon's random resized crop and flip, without the
// colour jitter. No run folder: set one if wanted.
ClassifierConfig cross_entropy_baseline_config(const SupconConfig& config, const data::ImageDataset& train_set);

// The baseline: train_classifier on the encoder + linear classifier (models/heads.h
// EncoderClassifier, SupContrast resnet_big.py SupCEResNet).
ClassifierResult train_cross_entropy_baseline(models::EncoderClassifier& model, const data::ImageDataset& train_set,
                                              const data::ImageDataset& test_set, const ClassifierConfig& config);

}  // namespace visrep::recipes
