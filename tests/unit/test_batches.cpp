// The recipes' batches (recipes/batches.h): make_batch builds exactly the batches the data
// loader builds on its worker threads (the same samples, keys and augmentation give the same
// bytes), epoch_order is the loader's order, an unaugmented batch is the scaled images, each
// sample's views are keyed by its own epoch, and an empty batch is refused.
#include <catch2/catch.hpp>

#include "engine/data/loader.h"
#include "engine/data/synthetic.h"
#include "engine/ops.h"
#include "recipes/batches.h"
#include "tests/support/files.h"

using namespace visrep;
using Catch::Contains;

namespace {

data::ImageDataset rgb_dataset() {
  return data::make_synthetic_dataset({.count = 40, .classes = 5, .height = 12, .width = 10, .channels = 3, .seed = 8});
}

}  // namespace

TEST_CASE("batches: make_batch builds the data loader's batches, bit for bit", "[unit]") {
  const data::ImageDataset dataset = rgb_dataset();
  // SimCLR's views with every random part on: crops, flips, colour jitter, grey, blur.
  data::AugmentConfig augment = data::simclr_augment(12, 1.0, true);
  data::DataLoader loader(dataset, {.batch_size = 8, .seed = 5, .workers = 1, .augment = augment, .views = 2});
  const recipes::BatchTransform transform{.augment = augment, .seed = 5, .views = 2};
  for (int64_t epoch : {0, 3}) {
    REQUIRE(recipes::epoch_order(dataset.size(), 5, epoch) == loader.epoch_order(epoch));
    loader.start_epoch(epoch, 2);
    const std::optional<data::Batch> expected = loader.next();
    REQUIRE(expected.has_value());
    std::vector<recipes::BatchSample> samples;
    for (int64_t index : expected->indices) samples.push_back({.index = index, .epoch = epoch});
    const data::Batch batch = recipes::make_batch(dataset, samples, transform, Device::cpu());
    INFO("epoch " << epoch);
    REQUIRE(batch.indices == expected->indices);
    testing::require_identical(batch.labels, expected->labels);
    REQUIRE(batch.images.shape() == Shape{16, 3, 12, 12});  // 2 views of 8, square crops
    testing::require_identical(batch.images, expected->images);
  }
  // The check can fail: other keys give other views.
  std::vector<recipes::BatchSample> samples;
  for (int64_t index : loader.epoch_order(3)) samples.push_back({.index = index, .epoch = 4});
  samples.resize(8);
  loader.start_epoch(3);
  REQUIRE(testing::tensor_bytes(recipes::make_batch(dataset, samples, transform, Device::cpu()).images) !=
          testing::tensor_bytes(loader.next()->images));
}

TEST_CASE("batches: without augmentation a batch is the images scaled and normalised", "[unit]") {
  const data::ImageDataset dataset = rgb_dataset();
  const std::vector<float> mean = {0.5f, 0.4f, 0.3f}, std = {0.2f, 0.25f, 0.3f};
  const data::Batch batch = recipes::make_batch(dataset, {{.index = 7}, {.index = 2}, {.index = 7}},
                                                {.mean = mean, .std = std}, Device::cpu());
  const Tensor rows = from_vector(std::vector<int64_t>{7, 2, 7}, {3});
  testing::require_identical(batch.images, data::to_float_nchw(index_select(dataset.images, 0, rows), mean, std));
  testing::require_identical(batch.labels, index_select(dataset.labels, 0, rows));
  REQUIRE(batch.indices == std::vector<int64_t>{7, 2, 7});
}

TEST_CASE("batches: each sample's views are keyed by its own epoch", "[unit]") {
  // BiT's batches span passes over the training set: samples of one batch carry different keys.
  const data::ImageDataset dataset = rgb_dataset();
  const recipes::BatchTransform transform{.augment = data::augment_preset("bit", 12), .seed = 1};
  const data::Batch mixed = recipes::make_batch(dataset, {{.index = 3, .epoch = 0}, {.index = 9, .epoch = 1}},
                                                transform, Device::cpu());
  const data::Batch first = recipes::make_batch(dataset, {{.index = 3, .epoch = 0}}, transform, Device::cpu());
  const data::Batch second = recipes::make_batch(dataset, {{.index = 9, .epoch = 1}}, transform, Device::cpu());
  testing::require_identical(mixed.images.narrow(0, 0, 1).contiguous(), first.images);
  testing::require_identical(mixed.images.narrow(0, 1, 1).contiguous(), second.images);
}

TEST_CASE("batches: an empty batch is refused", "[unit]") {
  const data::ImageDataset dataset = rgb_dataset();
  REQUIRE_THROWS_WITH(recipes::make_batch(dataset, {}, {}, Device::cpu()), Contains("make_batch: no samples"));
  REQUIRE_THROWS_WITH(recipes::epoch_order(0, 1, 0), Contains("epoch_order"));
}
