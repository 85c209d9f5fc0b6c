// Evaluating a representation on frozen, precomputed features: the weighted kNN classifier
// every self-supervised paper monitors, and the linear probe ("linear evaluation").
//
// Features are plain (N, D) float tensors on the CPU or a GPU, computed once per encoder
// (encode_dataset, at the end of this file, is the one place that runs an encoder over a
// dataset); the kNN and linear parts know nothing about images, augmentation or models.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "engine/data/augment.h"
#include "engine/data/dataset.h"
#include "engine/distributed/collectives.h"
#include "engine/nn/module.h"
#include "engine/tensor.h"

namespace visrep::recipes {

// ---- k nearest neighbours ---------------------------------------------------------------------
//
// The weighted kNN of Wu et al. 2018, "Unsupervised Feature Learning via Non-Parametric
// Instance Discrimination" (InstDisc, https://arxiv.org/abs/1805.01978), in the form lightly
// (lightly/utils/benchmarking knn_predict) and solo-learn (WeightedKNNClassifier) report:
//   - train and query features are L2-normalised, similarity = cosine = dot product;
//   - each query takes its k most similar training samples;
//   - neighbour j votes for its label with weight exp(sim_j / temperature);
//   - the prediction is the class with the largest summed weight.
// Defaults k = 200, temperature = 0.1 are InstDisc's and lightly's.
//
// Ties, so results are deterministic on every device: among equally similar neighbours at
// the k-th place the lower training index wins; among classes with equal summed weight the
// lower class index wins.
struct KnnOptions {
  int64_t k = 200;             // more than N training samples: clamped to N (as solo-learn does)
  double temperature = 0.1;
  int64_t query_batch_size = 256;  // queries per similarity block: memory O(query_batch_size x N)
};

// train_features (N, D) float, train_labels (N) int64 in [0, classes), query_features (M, D)
// float on the same device as train_features. Returns the predicted class of every query,
// int64 (M) on the CPU.
//
// The similarity block is a matmul on the features' device; the top-k selection and the
// vote run on the host (a size-k heap per query, rows in parallel with OpenMP), so a GPU
// run copies each (query_batch_size, N) block to the host once. There is no device top-k
// op in the engine yet; this is the simple correct path, see the note in evaluation.cpp.
Tensor knn_classify(const Tensor& train_features, const Tensor& train_labels, const Tensor& query_features,
                    int64_t classes, const KnnOptions& options = {});

// Top-1 accuracy in [0, 1] of knn_classify's predictions against query_labels (M) int64.
// With the ranks of a job (every rank holding all the features), each rank classifies its
// share of the queries and the ranks add up their counts: the same accuracy, 1 / P of the work.
double knn_accuracy(const Tensor& train_features, const Tensor& train_labels, const Tensor& query_features,
                    const Tensor& query_labels, int64_t classes, const KnnOptions& options = {},
                    distributed::Collectives* ranks = nullptr);

// Raw pixels as features, the baseline an encoder must beat under the same kNN protocol:
// images of any shape (N, ...) flattened to (N, prod(...)) float32, uint8 scaled to [0, 1].
Tensor raw_pixel_features(const Tensor& images);

// The stronger pixel baseline: raw_pixel_features with each image's own mean subtracted
// (row i minus the mean of row i), so the cosine compares patterns rather than overall
// brightness. On Fashion-MNIST a bright garment and a dark one of the same shape are far
// apart under the plain cosine of non-negative pixels and close after the centring.
Tensor mean_centred_pixel_features(const Tensor& images);

// ---- linear evaluation ------------------------------------------------------------------------
//
// A linear classifier (y = x W^T + b) trained with cross-entropy and SGD with momentum on
// frozen features, with a cosine-decayed learning rate and no warmup: SimCLR's README linear
// eval (google-research/simclr: --train_mode=finetune --fine_tune_after_block=4
// --zero_init_logits_layer=True --optimizer=momentum --learning_rate=0.1 --weight_decay=0
// --warmup_epochs=0, 90-100 epochs). As there, W and b start at zero; the problem is convex,
// so this costs nothing and the run depends only on the shuffle's seed.
struct LinearEvalOptions {
  int64_t epochs = 100;
  int64_t batch_size = 256;
  double learning_rate = 0.1;   // peak, decayed with a cosine to 0 over all steps (no warmup)
  double momentum = 0.9;
  double weight_decay = 0.0;    // on W only
  bool standardize = true;      // per-dimension (x - mean) / std with the training set's statistics
  uint64_t seed = 0;            // the epoch shuffles
};

struct LinearEvalResult {
  double train_accuracy = 0.0;  // top-1 in [0, 1], after training, on the whole training set
  double test_accuracy = 0.0;
  std::vector<double> epoch_losses;  // mean training loss of every epoch
  Tensor weight;  // (classes, D) and (classes): the trained classifier, on the features' device,
  Tensor bias;    // applied to standardized features when standardize is on
  Tensor feature_mean;  // (D) training-set statistics used for standardizing (undefined when off)
  Tensor feature_std;
};

// train_features (N, D) / train_labels (N) int64 and test_features (M, D) / test_labels (M),
// all on one device. Labels must lie in [0, classes).
LinearEvalResult linear_eval(const Tensor& train_features, const Tensor& train_labels, const Tensor& test_features,
                             const Tensor& test_labels, int64_t classes, const LinearEvalOptions& options = {});

// ---- an encoder's features ----------------------------------------------------------------------

// The augmentation-free transform for evaluation that matches `training`: its normalisation
// and the central crop the "eval" preset takes at the training size (the whole image up to
// 32 px, 87.5% above), resized to `size` x `size` (0: the training size). A size above the
// training size counters the train-test resolution discrepancy (Touvron et al. 2019, "Fixing
// the train-test resolution discrepancy"): random-resized crops show objects larger in
// training than the whole image shows them at the same size.
data::AugmentConfig evaluation_transform(const data::AugmentConfig& training, int64_t size = 0);

// The encoder's features (or a classifier's logits) of every image of `dataset`, in order:
// (N, D) float32 on `device`, computed in evaluation mode without a graph, `batch_size` images
// at a time (from a data::DataLoader); the encoder's mode is restored afterwards. With the
// ranks of a job, each rank encodes its share of the images (DataParallel::local_range) and
// every rank gets all N rows, gathered: the evaluation takes all the ranks, in 1 / P of the
// time, and none waits for another that evaluates alone.
Tensor encode_dataset(nn::Module& encoder, const data::ImageDataset& dataset, const data::AugmentConfig& transform,
                      Device device, int64_t batch_size = 256, distributed::Collectives* ranks = nullptr);

// An encoder's features of a training set and a test set through one transform
// (encode_dataset), e.g. the contrastive recipes' kNN monitor's after the last epoch.
struct SplitFeatures {
  Tensor train;  // (N, D), or undefined: not computed
  Tensor test;   // (M, D)
};

// kNN top-1 accuracy of `encoder`'s features: train_set as the memory bank, test_set as the
// queries; `features` gets the features it computed when not null.
double knn_monitor_accuracy(nn::Module& encoder, const data::ImageDataset& train_set,
                            const data::ImageDataset& test_set, const data::AugmentConfig& transform, Device device,
                            const KnnOptions& options = {}, distributed::Collectives* ranks = nullptr,
                            SplitFeatures* features = nullptr);

// Linear evaluation of a frozen encoder: the features of train_set and test_set through
// `transform`, then linear_eval on them. SupContrast main_linear.py and simclr's linear eval,
// minus the training augmentation (which would need the encoder in every epoch).
LinearEvalResult linear_eval_of_encoder(nn::Module& encoder, const data::ImageDataset& train_set,
                                        const data::ImageDataset& test_set, const data::AugmentConfig& transform,
                                        Device device, const LinearEvalOptions& options = {});

// What the recipe binaries report at the end: the encoder's frozen features of each split,
// computed once through `transform`, under both protocols above: weighted kNN (k = 200,
// T = 0.1, cosine) and, when linear.epochs > 0, a linear classifier. With the ranks of a job
// the features and the kNN are shared out (encode_dataset, knn_accuracy) and every rank
// trains the same linear classifier on the gathered features (the same result everywhere).
// `computed`, when defined, are these features already (the kNN monitor's of the last epoch
// through the same transform: at 42 px, encoding both splits of Fashion-MNIST again would
// cost the main job 45 s); their row counts are checked against the datasets.
struct FrozenEncoderEvaluation {
  double knn_accuracy = 0.0;
  std::optional<double> linear_accuracy;
};
FrozenEncoderEvaluation evaluate_frozen_encoder(nn::Module& encoder, const data::ImageDataset& train_set,
                                                const data::ImageDataset& test_set,
                                                const data::AugmentConfig& transform, Device device,
                                                const LinearEvalOptions& linear,
                                                distributed::Collectives* ranks = nullptr,
                                                const SplitFeatures& computed = {});

}  // namespace visrep::recipes
