// Batches: which samples of a dataset a step trains on, and how their uint8 images become
// the network's float32 input on the training device. The recipes build every batch here
// (train_classifier, train_bit, and the evaluations' encode_dataset); the contrastive recipes'
// data::DataLoader builds the same batches on worker threads, ahead of the step: for the same
// samples, keys and augmentation its batches are make_batch's, bit for bit (a unit test
// checks it). That loader hands out whole epochs in order, which BiT's passes laid end to end
// (recipes/bit.h) are not.
//
// Reproducibility: a batch is a function of its samples, their keys and the seed. Each view
// of sample i is augmented with the parameters drawn for (seed, epoch, i, view)
// (data::draw_augment_params): no random state lives anywhere else, so a resumed run sees the
// batches an uninterrupted one would have.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "engine/data/augment.h"
#include "engine/data/dataset.h"
#include "engine/data/loader.h"  // data::Batch

namespace visrep::recipes {

// Sample `index` of a dataset, augmented as in `epoch` (the key of its random views: the epoch
// of an epoch-based recipe, BiT's pass over the training set).
struct BatchSample {
  int64_t index = 0;
  int64_t epoch = 0;
};

// How the images become input.
struct BatchTransform {
  // `views` augmented views of every sample (view-major: the first B rows are every sample's
  // first view), the parameters keyed by `seed`. None: each image once, scaled to [0, 1],
  // then (x - mean) / std per channel (data::to_float_nchw).
  std::optional<data::AugmentConfig> augment;
  uint64_t seed = 0;
  int views = 1;
  std::vector<float> mean;  // without augment only: the augmentation normalises by its own
  std::vector<float> std;
};

// The batch of `samples`: images float32 (views * B, C, H, W) and labels int64 (B) on
// `device`, indices the samples' dataset indices. The uint8 images cross to the device once,
// and the augmentation (or the scaling) runs there. No graph is recorded.
data::Batch make_batch(const data::ImageDataset& dataset, const std::vector<BatchSample>& samples,
                       const BatchTransform& transform, Device device);

// The order in which epoch `epoch` visits a dataset of `size` samples: the permutation drawn
// from Philox stream `epoch` of `seed`, the same as data::DataLoader::epoch_order. So an epoch
// (or a pass) can be resumed at any batch.
std::vector<int64_t> epoch_order(int64_t size, uint64_t seed, int64_t epoch);

// Batch `batch` of an epoch visited in `order` (full batches of `batch_size`), keyed by `epoch`.
std::vector<BatchSample> epoch_batch(const std::vector<int64_t>& order, int64_t epoch, int64_t batch,
                                     int64_t batch_size);

// Samples first, first + 1, ... up to (not including) `end`, in order: an evaluation's batch.
std::vector<BatchSample> consecutive_samples(int64_t first, int64_t end);

}  // namespace visrep::recipes
