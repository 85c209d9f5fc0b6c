// The data loader (engine/data/loader.h): every sample once per epoch, drop_last, the same
// batches for the same seed and epoch (and from a resumed position), augmented batches equal
// to running the augmentation directly, a worker's exception reaching next(), and worker
// threads that shut down cleanly whenever the loader is destroyed.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <vector>

#include "engine/data/loader.h"
#include "engine/data/synthetic.h"
#include "engine/ops.h"
#include "tests/support/files.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::data;
using Catch::Contains;

namespace {

ImageDataset small_dataset(int64_t count, int64_t channels = 3) {
  return make_synthetic_dataset({.count = count, .classes = 5, .height = 12, .width = 10, .channels = channels, .seed = 4});
}

std::vector<Batch> whole_epoch(DataLoader& loader, int64_t epoch, int64_t first_batch = 0) {
  loader.start_epoch(epoch, first_batch);
  std::vector<Batch> batches;
  while (std::optional<Batch> batch = loader.next()) batches.push_back(std::move(*batch));
  return batches;
}

}  // namespace

TEST_CASE("loader: every sample once per epoch, drop_last", "[unit]") {
  const ImageDataset dataset = small_dataset(23);
  for (bool drop_last : {true, false}) {
    INFO("drop_last " << drop_last);
    DataLoader loader(dataset, {.batch_size = 5, .drop_last = drop_last, .seed = 9, .workers = 3, .prefetch = 2});
    REQUIRE(loader.batches_per_epoch() == (drop_last ? 4 : 5));
    const std::vector<Batch> batches = whole_epoch(loader, 2);
    REQUIRE(static_cast<int64_t>(batches.size()) == loader.batches_per_epoch());
    std::vector<int64_t> seen;
    for (size_t b = 0; b < batches.size(); ++b) {
      const Batch& batch = batches[b];
      REQUIRE(batch.index == static_cast<int64_t>(b));
      REQUIRE(batch.epoch == 2);
      const int64_t expected_size = (!drop_last && b == 4) ? 3 : 5;
      REQUIRE(static_cast<int64_t>(batch.indices.size()) == expected_size);
      REQUIRE(batch.images.shape() == Shape{expected_size, 12, 10, 3});  // no augmentation: uint8 NHWC
      // Images and labels are those of the batch's dataset indices.
      REQUIRE(testing::tensor_bytes(batch.images) ==
              testing::tensor_bytes(index_select(dataset.images, 0, from_vector(batch.indices))));
      REQUIRE(batch.labels.to_vector<int64_t>() == index_select(dataset.labels, 0, from_vector(batch.indices)).to_vector<int64_t>());
      seen.insert(seen.end(), batch.indices.begin(), batch.indices.end());
    }
    // The batches follow the epoch's order; without drop_last they cover every sample once.
    const std::vector<int64_t> order = loader.epoch_order(2);
    REQUIRE(std::equal(seen.begin(), seen.end(), order.begin()));
    std::sort(seen.begin(), seen.end());
    REQUIRE(std::adjacent_find(seen.begin(), seen.end()) == seen.end());
    REQUIRE(static_cast<int64_t>(seen.size()) == (drop_last ? 20 : 23));
  }
  // Without shuffling, the dataset's order.
  DataLoader plain(dataset, {.batch_size = 10, .shuffle = false, .workers = 1});
  REQUIRE(whole_epoch(plain, 0)[1].indices.front() == 10);
  REQUIRE_THROWS_WITH(DataLoader(dataset, {.batch_size = 24}), Contains("no full batch"));
  REQUIRE_THROWS_WITH(plain.epoch_order(-1), Contains("negative epoch"));
}

TEST_CASE("loader: deterministic per seed and epoch, resumable", "[unit]") {
  const ImageDataset dataset = small_dataset(40);
  LoaderConfig config{.batch_size = 8, .seed = 21, .workers = 2, .augment = augment_preset("simclr", 16), .views = 2};
  DataLoader a(dataset, config), b(dataset, config);
  const std::vector<Batch> first = whole_epoch(a, 1), again = whole_epoch(b, 1);
  REQUIRE(first.size() == 5);
  for (size_t i = 0; i < first.size(); ++i) {
    REQUIRE(first[i].indices == again[i].indices);
    REQUIRE(testing::tensor_bytes(first[i].images) == testing::tensor_bytes(again[i].images));
  }
  // Another epoch: another order and other views.
  const std::vector<Batch> other = whole_epoch(a, 2);
  REQUIRE(other[0].indices != first[0].indices);
  // Resuming epoch 1 at batch 3 gives batches 3 and 4 as before.
  const std::vector<Batch> resumed = whole_epoch(b, 1, 3);
  REQUIRE(resumed.size() == 2);
  REQUIRE(resumed[0].index == 3);
  REQUIRE(testing::tensor_bytes(resumed[1].images) == testing::tensor_bytes(first[4].images));
  // A different seed: a different order.
  config.seed = 22;
  DataLoader c(dataset, config);
  REQUIRE(whole_epoch(c, 1)[0].indices != first[0].indices);
}

TEST_CASE("loader: augmented batches are the augmentation of their samples", "[unit]") {
  const ImageDataset dataset = small_dataset(30, 1);
  AugmentConfig augment = augment_preset("simclr", 14);
  augment.mean = {0.5f};
  augment.std = {0.25f};
  DataLoader loader(dataset, {.batch_size = 7, .seed = 5, .workers = 2, .augment = augment, .views = 2});
  const std::vector<Batch> batches = whole_epoch(loader, 3);
  REQUIRE(batches.size() == 4);
  for (const Batch& batch : batches) {
    REQUIRE(batch.images.shape() == Shape{14, 1, 14, 14});  // view-major: 7 first views, then 7 second views
    const Tensor images = index_select(dataset.images, 0, from_vector(batch.indices));
    const Tensor expected = augment_batch(images, batch.indices, augment, 5, 3, 2);
    REQUIRE(testing::tensor_bytes(batch.images) == testing::tensor_bytes(expected));
  }
}

TEST_CASE("loader: a worker's exception reaches next()", "[unit]") {
  const ImageDataset dataset = small_dataset(30);
  LoaderConfig config{.batch_size = 5, .workers = 3, .prefetch = 4};
  config.on_worker = [](const Batch& batch) {
    if (batch.index == 2) throw std::runtime_error("decoding failed in batch 2");
  };
  DataLoader loader(dataset, config);
  loader.start_epoch(0);
  REQUIRE(loader.next()->index == 0);
  REQUIRE(loader.next()->index == 1);
  REQUIRE_THROWS_WITH(loader.next(), Contains("decoding failed in batch 2"));
  REQUIRE(loader.next()->index == 3);  // the loader goes on
  // A fresh epoch starts over cleanly.
  loader.start_epoch(1);
  REQUIRE(loader.next()->index == 0);
}

TEST_CASE("loader: workers shut down cleanly", "[unit]") {
  const ImageDataset dataset = small_dataset(64);
  std::atomic<int> prepared{0};
  for (int round = 0; round < 5; ++round) {
    LoaderConfig config{.batch_size = 4, .workers = 4, .prefetch = 3, .augment = augment_preset("supcon", 8), .views = 2};
    config.on_worker = [&](const Batch&) { ++prepared; };
    {
      DataLoader never_started(dataset, config);  // workers wait for an epoch; destroyed at once
    }
    {
      DataLoader loader(dataset, config);
      loader.start_epoch(0);
      REQUIRE(loader.next().has_value());  // the others are in flight or waiting when it dies
    }
    {
      DataLoader restarted(dataset, config);
      restarted.start_epoch(0);
      restarted.start_epoch(5);  // abandons epoch 0's batches
      REQUIRE(restarted.next()->epoch == 5);
    }
  }
  REQUIRE(prepared > 0);
  DataLoader unstarted(dataset, {.batch_size = 4, .workers = 1});
  REQUIRE_THROWS_WITH(unstarted.next(), Contains("start_epoch"));
}
