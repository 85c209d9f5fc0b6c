// SimCLR (Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual
// Representations", https://arxiv.org/abs/2002.05709), following google-research/simclr:
// two augmented views of each image go through the encoder f (a ResNet, models/resnet.h)
// and the projection head g (models/heads.h ProjectionHead); the NT-Xent loss
// (engine/ops/contrastive.h, simclr's objective.py add_contrastive_loss) pulls each image's
// two projections together and pushes them from the other 2B - 2 in the batch. After
// training, g is thrown away and f's features are evaluated (kNN, linear probe).
//
//   models::ResNet encoder({.depth = 18, .stem = models::ResNetStem::Cifar, .in_channels = 1});
//   models::ProjectionHead head(encoder.feature_dim(), 0, 128, 2);
//   recipes::SimclrConfig config;            // simclr's run.py defaults
//   config.epochs = 20; config.batch_size = 256; config.run_directory = "runs/simclr";
//   recipes::SimclrResult result = recipes::train_simclr(encoder, head, train, test, config);
//
// The loop, its files, resume and stopping are recipes/contrastive_training.h's.
#pragma once

#include <optional>

#include "recipes/contrastive_training.h"

namespace visrep::recipes {

// ContrastiveTrainingConfig's defaults are simclr run.py's: batch 512, learning rate 0.3 x
// B / 256, 10 warmup epochs then cosine, weight decay 1e-6, LARS (momentum 0.9, eeta 0.001),
// the "simclr" augmentation preset.
struct SimclrConfig : ContrastiveTrainingConfig {
  // NT-Xent's tau. Unset: 0.5 for images of 32 px or less (simclr's README CIFAR-10 command,
  // --temperature=0.5) and 0.1 otherwise (run.py's default, the paper's ImageNet setting).
  std::optional<double> temperature;
};

// The temperature a run uses: config.temperature, or the default for this image size.
double simclr_temperature(const SimclrConfig& config, int64_t image_size);

using SimclrResult = ContrastiveTrainingResult;

// Trains encoder + projection head with NT-Xent on train_set (labels unused); test_set feeds
// the kNN monitor only and may be empty. Throws visrep::Error for a bad config, a checkpoint
// that does not fit, or a loss that is no longer finite.
SimclrResult train_simclr(nn::Module& encoder, nn::Module& projection_head, const data::ImageDataset& train_set,
                          const data::ImageDataset& test_set, const SimclrConfig& config);

}  // namespace visrep::recipes
