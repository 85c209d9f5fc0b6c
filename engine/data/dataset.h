// An in-memory labelled image dataset: uint8 images in HWC layout and int64 labels, the
// form every reader in visrep produces (mnist.h, cifar.h, image_folder.h, synthetic.h) and
// the data loader (loader.h) batches.
#pragma once

#include <string>
#include <vector>

#include "engine/tensor.h"

namespace visrep::data {

struct ImageDataset {
  Tensor images;  // uint8 (N, H, W, C)
  Tensor labels;  // int64 (N)
  std::vector<std::string> class_names;

  int64_t size() const { return images.defined() ? images.size(0) : 0; }
  int64_t height() const { return images.size(1); }
  int64_t width() const { return images.size(2); }
  int64_t channels() const { return images.size(3); }
  // The number of classes a model of this dataset needs: its class names, or 1 + the largest
  // label when it has none (0 for an empty dataset).
  int64_t class_count() const;
};

// The order in which epoch `epoch` visits a dataset of `size` samples: the permutation drawn
// from Philox stream `epoch` of `seed` (so any epoch, and any batch of it, can be drawn again
// without the ones before: a resumed run's order). The data loader's shuffled epochs and BiT's
// passes follow it, the seeded splits below use epoch 0's.
std::vector<int64_t> epoch_order(int64_t size, uint64_t seed, int64_t epoch);

// The rows `indices` (int64, 1-D) of a dataset, as a new dataset.
ImageDataset subset(const ImageDataset& dataset, const Tensor& indices);

// Grayscale (1-channel) images repeated into 3 identical channels, for models and
// augmentations that expect RGB; a 3-channel dataset is returned as it is.
ImageDataset to_rgb(const ImageDataset& dataset);

// A seeded random split into two disjoint parts that together hold every sample once:
// `validation` gets round(validation_fraction * N) samples, `train` the rest, each in the
// dataset's order. The same seed gives the same split.
struct DatasetSplit {
  ImageDataset train;
  ImageDataset validation;
};
DatasetSplit split_train_validation(const ImageDataset& dataset, double validation_fraction, uint64_t seed);

// A seeded few-shot subset: `per_class` samples of every class, in the dataset's order.
// Throws naming the class when it has fewer samples than that.
ImageDataset few_shot_subset(const ImageDataset& dataset, int64_t per_class, uint64_t seed);

// Images as float32 (N, C, H, W) scaled to [0, 1], then (x - mean) / std per channel.
Tensor to_float_nchw(const Tensor& images_nhwc, const std::vector<float>& mean = {},
                     const std::vector<float>& std = {});

}  // namespace visrep::data
