#include "engine/data/synthetic.h"

#include "engine/autograd.h"
#include "engine/ops.h"

namespace visrep::data {

ImageDataset make_synthetic_dataset(const SyntheticConfig& config) {
  VISREP_CHECK(config.count > 0 && config.classes > 0 && config.height > 0 && config.width > 0 && config.channels > 0,
               "make_synthetic_dataset: count, classes and image sizes must be positive");
  VISREP_CHECK(config.noise >= 0, "make_synthetic_dataset: noise must be >= 0, got {}", config.noise);
  NoGradGuard no_grad;
  Generator generator(config.seed);
  const Shape image_shape = {config.height, config.width, config.channels};
  Shape prototype_shape = {config.classes};
  prototype_shape.insert(prototype_shape.end(), image_shape.begin(), image_shape.end());
  // Prototypes in [0.2, 0.8] so the noise rarely clips.
  Tensor prototypes = uniform(prototype_shape, 0.2, 0.8, kFloat32, generator);

  std::vector<int64_t> label_values(static_cast<size_t>(config.count));
  for (int64_t i = 0; i < config.count; ++i) label_values[i] = i % config.classes;
  Tensor labels = from_vector(label_values);
  Shape batch_shape = {config.count};
  batch_shape.insert(batch_shape.end(), image_shape.begin(), image_shape.end());
  Tensor noise = normal(batch_shape, 0.0, config.noise, kFloat32, generator);
  Tensor images = add(index_select(prototypes, 0, labels), noise);
  images = clamp(mul(images, 255.0), 0.0, 255.0).to(kUInt8);

  ImageDataset dataset{images, labels, {}};
  for (int64_t c = 0; c < config.classes; ++c) dataset.class_names.push_back("class " + std::to_string(c));
  return dataset;
}

}  // namespace visrep::data
