#include "engine/data/dataset.h"

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/indexing.h"

namespace visrep::data {

ImageDataset subset(const ImageDataset& dataset, const Tensor& indices) {
  return {index_select(dataset.images, 0, indices), index_select(dataset.labels, 0, indices), dataset.class_names};
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
