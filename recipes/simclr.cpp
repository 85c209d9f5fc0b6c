#include "recipes/simclr.h"

#include <cmath>

#include "engine/ops.h"

namespace visrep::recipes {

double simclr_temperature(const SimclrConfig& config, int64_t image_size) {
  if (config.temperature) return *config.temperature;
  return image_size <= 32 ? 0.5 : 0.1;
}

SimclrResult train_simclr(nn::Module& encoder, nn::Module& projection_head, const data::ImageDataset& train_set,
                          const data::ImageDataset& test_set, const SimclrConfig& config) {
  check_config(config, train_set, "simclr");
  const double temperature = simclr_temperature(config, resolve_augment(config, train_set).height);
  VISREP_CHECK(std::isfinite(temperature) && temperature > 0, "simclr: temperature must be positive, got {}",
               temperature);
  // Each image is its own class: the positive of row i is row i + B (or i - B), every other
  // row is a negative (simclr objective.py); on several ranks every rank's rows are
  // negatives too (its tpu_cross_replica_concat).
  const ContrastiveLossFunction loss = [temperature](const Tensor& embeddings, const Tensor& /*labels*/,
                                                     distributed::Collectives* ranks) {
    return ranks != nullptr ? nt_xent_loss(embeddings, temperature, *ranks) : nt_xent_loss(embeddings, temperature);
  };
  return train_contrastive(encoder, projection_head, train_set, test_set, config, "simclr", loss);
}

}  // namespace visrep::recipes
