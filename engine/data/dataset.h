// An in-memory labelled image dataset: uint8 images in HWC layout and int64 labels, the
// form every loader in visrep produces (Fashion-MNIST here; CIFAR and image folders join
// it in the data issue).
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
  int64_t class_count() const { return static_cast<int64_t>(class_names.size()); }
};

// The rows `indices` (int64, 1-D) of a dataset, as a new dataset.
ImageDataset subset(const ImageDataset& dataset, const Tensor& indices);

// Images as float32 (N, C, H, W) scaled to [0, 1], then (x - mean) / std per channel.
Tensor to_float_nchw(const Tensor& images_nhwc, const std::vector<float>& mean = {},
                     const std::vector<float>& std = {});

}  // namespace visrep::data
