// A synthetic image dataset for tests and benchmarks: each class has its own random
// prototype image and every sample is its class prototype plus independent noise, so the
// classes are separable (a small convnet should reach near 100% accuracy) and nothing has
// to be downloaded.
#pragma once

#include <cstdint>

#include "engine/data/dataset.h"

namespace visrep::data {

struct SyntheticConfig {
  int64_t count = 512;
  int64_t classes = 4;
  int64_t height = 16;
  int64_t width = 16;
  int64_t channels = 1;
  double noise = 0.15;  // std of the per-pixel noise, in units of the [0, 1] pixel range
  uint64_t seed = 0;
};

// Labels cycle 0, 1, ..., classes-1 so every class is equally represented.
ImageDataset make_synthetic_dataset(const SyntheticConfig& config);

}  // namespace visrep::data
