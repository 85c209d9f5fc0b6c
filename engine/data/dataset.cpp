#include "engine/data/dataset.h"

#include <algorithm>
#include <cmath>

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/indexing.h"
#include "engine/ops/reduction.h"
#include "engine/random.h"

namespace visrep::data {

int64_t ImageDataset::class_count() const {
  if (!class_names.empty()) return static_cast<int64_t>(class_names.size());
  return size() > 0 ? max(labels).item<int64_t>() + 1 : 0;
}

std::vector<int64_t> epoch_order(int64_t size, uint64_t seed, int64_t epoch) {
  VISREP_CHECK(size >= 0 && epoch >= 0, "epoch_order: needs size >= 0 and epoch >= 0, got {} and {}", size, epoch);
  Generator generator(seed);
  generator.set_state(seed, static_cast<uint64_t>(epoch));
  return permutation(size, generator).to_vector<int64_t>();
}

ImageDataset subset(const ImageDataset& dataset, const Tensor& indices) {
  return {index_select(dataset.images, 0, indices), index_select(dataset.labels, 0, indices), dataset.class_names};
}

ImageDataset to_rgb(const ImageDataset& dataset) {
  VISREP_CHECK(dataset.images.defined() && dataset.images.dim() == 4, "to_rgb: expected (N, H, W, C) images");
  if (dataset.channels() == 3) return dataset;
  VISREP_CHECK(dataset.channels() == 1, "to_rgb: expected 1 or 3 channels, got {}", dataset.channels());
  ImageDataset rgb = dataset;
  rgb.images = dataset.images.expand({dataset.size(), dataset.height(), dataset.width(), 3}).contiguous();
  return rgb;
}

namespace {

ImageDataset sorted_subset(const ImageDataset& dataset, std::vector<int64_t> indices) {
  std::sort(indices.begin(), indices.end());
  return subset(dataset, from_vector(indices));
}

}  // namespace

DatasetSplit split_train_validation(const ImageDataset& dataset, double validation_fraction, uint64_t seed) {
  VISREP_CHECK(validation_fraction >= 0 && validation_fraction <= 1,
               "split_train_validation: validation_fraction must be in [0, 1], got {}", validation_fraction);
  const std::vector<int64_t> order = epoch_order(dataset.size(), seed, 0);
  const auto validation_count =
      static_cast<int64_t>(std::llround(validation_fraction * static_cast<double>(dataset.size())));
  const auto middle = order.begin() + validation_count;
  return {sorted_subset(dataset, std::vector<int64_t>(middle, order.end())),
          sorted_subset(dataset, std::vector<int64_t>(order.begin(), middle))};
}

ImageDataset few_shot_subset(const ImageDataset& dataset, int64_t per_class, uint64_t seed) {
  VISREP_CHECK(per_class >= 1, "few_shot_subset: per_class must be >= 1, got {}", per_class);
  const std::vector<int64_t> labels = dataset.labels.to_vector<int64_t>();
  // Every label counts, so a label beyond the class names is reported rather than overrun.
  int64_t classes = dataset.class_count();
  for (int64_t label : labels) classes = std::max(classes, label + 1);
  std::vector<int64_t> taken(static_cast<size_t>(classes), 0), chosen;
  for (int64_t index : epoch_order(dataset.size(), seed, 0)) {
    int64_t& count = taken[static_cast<size_t>(labels[static_cast<size_t>(index)])];
    if (count < per_class) {
      ++count;
      chosen.push_back(index);
    }
  }
  for (int64_t c = 0; c < classes; ++c) {
    const std::string name = c < static_cast<int64_t>(dataset.class_names.size())
                                 ? dataset.class_names[static_cast<size_t>(c)]
                                 : std::to_string(c);
    VISREP_CHECK(taken[static_cast<size_t>(c)] == per_class,
                 "few_shot_subset: class {} ('{}') has {} samples, fewer than the {} asked for", c, name,
                 taken[static_cast<size_t>(c)], per_class);
  }
  return sorted_subset(dataset, chosen);
}

Tensor to_float_nchw(const Tensor& images_nhwc, const std::vector<float>& mean, const std::vector<float>& std) {
  VISREP_CHECK(images_nhwc.dim() == 4 && images_nhwc.dtype() == kUInt8,
               "to_float_nchw: expected uint8 (N, H, W, C) images, got {}", images_nhwc.description());
  const int64_t channels = images_nhwc.size(3);
  VISREP_CHECK(mean.size() == std.size() && (mean.empty() || static_cast<int64_t>(mean.size()) == channels),
               "to_float_nchw: {} means and {} stds for {} channels", mean.size(), std.size(), channels);
  NoGradGuard no_grad;
  Tensor x = div(images_nhwc.permute({0, 3, 1, 2}).to(kFloat32), 255.0);
  if (mean.empty()) return x.contiguous();
  Tensor mean_tensor = from_vector(mean, {1, channels, 1, 1}).to(x.device());
  Tensor std_tensor = from_vector(std, {1, channels, 1, 1}).to(x.device());
  return div(sub(x, mean_tensor), std_tensor);
}

}  // namespace visrep::data
