#include "recipes/supcon.h"

#include <cmath>

#include "engine/ops.h"

namespace visrep::recipes {

SupconConfig::SupconConfig() {
  epochs = 1000;                 // main_supcon.py --epochs
  batch_size = 1024;             // the README's CIFAR command
  base_learning_rate = 0.125;    // 0.5 at batch 1024, see the header
  learning_rate_scaling = optim::LearningRateScaling::Linear;
  warmup_epochs = 10.0;          // main_supcon.py: warm_epochs = 10 when batch_size > 256
  weight_decay = 1e-4;
  momentum = 0.9;
  optimizer = ContrastiveOptimizer::Sgd;
  augment_preset = "supcon";
}

SupconResult train_supcon(nn::Module& encoder, nn::Module& head, const data::ImageDataset& train_set,
                          const data::ImageDataset& test_set, const SupconConfig& config) {
  check_config(config, train_set, "supcon");
  VISREP_CHECK(std::isfinite(config.temperature) && config.temperature > 0,
               "supcon: temperature must be positive, got {}", config.temperature);
  VISREP_CHECK(std::isfinite(config.base_temperature) && config.base_temperature > 0,
               "supcon: base_temperature must be positive, got {}", config.base_temperature);
  VISREP_CHECK(train_set.labels.defined() && train_set.labels.size(0) == train_set.size(),
               "supcon: the training set needs one label per image");
  // The batch's labels are per image; supcon_loss shares them between the two views, which
  // is SupContrast's labels.repeat for the 2B rows of torch.cat(torch.unbind(features, 1)).
  // On several ranks the positives and negatives come from every rank (the labels gathered).
  const ContrastiveLossFunction loss = [&config](const Tensor& embeddings, const Tensor& labels,
                                                 distributed::Collectives* ranks) {
    if (ranks != nullptr) {
      return supcon_loss(embeddings, labels, config.temperature, config.base_temperature, config.contrast_mode,
                         *ranks);
    }
    return supcon_loss(embeddings, labels, config.temperature, config.base_temperature, config.contrast_mode);
  };
  return train_contrastive(encoder, head, train_set, test_set, config, "supcon", loss);
}

ClassifierConfig cross_entropy_baseline_config(const SupconConfig& config, const data::ImageDataset& train_set) {
  ClassifierConfig baseline;
  baseline.epochs = config.epochs;
  baseline.batch_size = config.batch_size;
  baseline.learning_rate = 0.2 * static_cast<double>(config.batch_size) / 256.0;
  baseline.momentum = 0.9;
  baseline.weight_decay = 1e-4;
  baseline.seed = config.seed;
  baseline.device = config.device;
  const data::AugmentConfig augment = resolve_augment(config, train_set);
  baseline.mean = augment.mean;
  baseline.std = augment.std;
  // main_ce.py's training transform: RandomResizedCrop(scale = (0.2, 1)) and a horizontal
  // flip, no colour jitter; the same crops as SupCon's views, so only the loss differs.
  data::AugmentConfig crop_and_flip = augment;
  crop_and_flip.preset = "supcon-ce";
  crop_and_flip.jitter_probability = 0.0;
  crop_and_flip.grayscale_probability = 0.0;
  crop_and_flip.blur_probability = 0.0;
  crop_and_flip.solarize_probability = 0.0;
  baseline.augment = crop_and_flip;
  baseline.show_progress = config.show_progress;
  // On the same ranks, with batch norm as SupCon's stage 1 has it: only the loss differs.
  baseline.ranks = config.ranks;
  baseline.sync_batch_norm = config.sync_batch_norm;
  return baseline;
}

ClassifierResult train_cross_entropy_baseline(models::EncoderClassifier& model, const data::ImageDataset& train_set,
                                              const data::ImageDataset& test_set, const ClassifierConfig& config) {
  return train_classifier(model, train_set, test_set, config);
}

}  // namespace visrep::recipes
