// The data loader (engine/data/loader.h), the one builder of batches: every sample once per
// epoch, drop_last, the same batches for the same seed and epoch (and from a resumed
// position), unaugmented batches the images scaled and normalised, augmented batches equal to
// running the augmentation directly with each sample's own key, BiT's batches over passes laid
// end to end, bad batches and settings refused by name, a worker's exception reaching next(),
// and worker threads that shut down cleanly whenever the loader is destroyed.
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
      for (const BatchSample& sample : batch.samples) REQUIRE(sample.epoch == 2);
      const int64_t expected_size = (!drop_last && b == 4) ? 3 : 5;
      REQUIRE(static_cast<int64_t>(batch.samples.size()) == expected_size);
      REQUIRE(batch.images.shape() == Shape{expected_size, 3, 12, 10});  // no augmentation: float32 NCHW
      // Images and labels are those of the batch's dataset indices.
      const std::vector<int64_t> indices = batch.indices();
      const Tensor rows = from_vector(indices);
      testing::require_identical(batch.images, to_float_nchw(index_select(dataset.images, 0, rows)));
      REQUIRE(batch.labels.to_vector<int64_t>() == index_select(dataset.labels, 0, rows).to_vector<int64_t>());
      seen.insert(seen.end(), indices.begin(), indices.end());
    }
    // The batches follow the epoch's order; without drop_last they cover every sample once.
    const std::vector<int64_t> order = epoch_order(dataset.size(), 9, 2);
    REQUIRE(std::equal(seen.begin(), seen.end(), order.begin()));
    std::sort(seen.begin(), seen.end());
    REQUIRE(std::adjacent_find(seen.begin(), seen.end()) == seen.end());
    REQUIRE(static_cast<int64_t>(seen.size()) == (drop_last ? 20 : 23));
  }
  // Without shuffling, the dataset's order.
  DataLoader plain(dataset, {.batch_size = 10, .shuffle = false, .workers = 1});
  REQUIRE(whole_epoch(plain, 0)[1].samples.front().index == 10);
  DataLoader too_big(dataset, {.batch_size = 24, .workers = 1});
  REQUIRE_THROWS_WITH(too_big.start_epoch(0), Contains("23 samples make no full batch of 24"));
  REQUIRE_THROWS_WITH(plain.start_epoch(-1), Contains("negative epoch"));
  REQUIRE_THROWS_WITH(plain.start_epoch(0, 3), Contains("epoch 0 has 2 batches, cannot start at 3"));
  REQUIRE_THROWS_WITH(epoch_order(5, 1, -1), Contains("epoch_order"));
}

TEST_CASE("loader: without augmentation a batch is the images scaled and normalised", "[unit]") {
  const ImageDataset dataset = small_dataset(40);
  const std::vector<float> mean = {0.5f, 0.4f, 0.3f}, std = {0.2f, 0.25f, 0.3f};
  DataLoader loader(dataset, {.batch_size = 3, .workers = 2, .mean = mean, .std = std});
  loader.start({.batches = 1, .samples = [](int64_t) {
                  return std::vector<BatchSample>{{.index = 7}, {.index = 2}, {.index = 7}};
                }});
  const Batch batch = loader.next_required("test");
  const Tensor rows = from_vector(std::vector<int64_t>{7, 2, 7}, {3});
  testing::require_identical(batch.images, to_float_nchw(index_select(dataset.images, 0, rows), mean, std));
  testing::require_identical(batch.labels, index_select(dataset.labels, 0, rows));
  REQUIRE(batch.indices() == std::vector<int64_t>{7, 2, 7});
  REQUIRE_FALSE(loader.next());
  REQUIRE_THROWS_WITH(loader.next_required("test"),
                      Contains("test: the data loader has no batch 1: its sequence has 1"));
}

TEST_CASE("loader: deterministic per seed and epoch, resumable", "[unit]") {
  const ImageDataset dataset = small_dataset(40);
  LoaderConfig config{.batch_size = 8, .seed = 21, .workers = 2, .augment = augment_preset("simclr", 16), .views = 2};
  DataLoader a(dataset, config), b(dataset, config);
  const std::vector<Batch> first = whole_epoch(a, 1), again = whole_epoch(b, 1);
  REQUIRE(first.size() == 5);
  for (size_t i = 0; i < first.size(); ++i) {
    REQUIRE(first[i].indices() == again[i].indices());
    REQUIRE(testing::tensor_bytes(first[i].images) == testing::tensor_bytes(again[i].images));
  }
  // Another epoch: another order and other views.
  const std::vector<Batch> other = whole_epoch(a, 2);
  REQUIRE(other[0].indices() != first[0].indices());
  // Resuming epoch 1 at batch 3 gives batches 3 and 4 as before.
  const std::vector<Batch> resumed = whole_epoch(b, 1, 3);
  REQUIRE(resumed.size() == 2);
  REQUIRE(resumed[0].index == 3);
  REQUIRE(testing::tensor_bytes(resumed[1].images) == testing::tensor_bytes(first[4].images));
  // A different seed: a different order.
  config.seed = 22;
  DataLoader c(dataset, config);
  REQUIRE(whole_epoch(c, 1)[0].indices() != first[0].indices());
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
    const Tensor images = index_select(dataset.images, 0, from_vector(batch.indices()));
    const Tensor expected = augment_batch(images, batch.indices(), augment, 5, 3, 2);
    REQUIRE(testing::tensor_bytes(batch.images) == testing::tensor_bytes(expected));
  }
}

TEST_CASE("loader: each sample's views are keyed by its own epoch", "[unit]") {
  // BiT's batches span passes over the training set: samples of one batch carry different keys.
  const ImageDataset dataset = small_dataset(40);
  const AugmentConfig augment = augment_preset("bit", 12);
  DataLoader loader(dataset, {.batch_size = 2, .seed = 1, .workers = 2, .augment = augment});
  const auto batch_of = [&](std::vector<BatchSample> samples) {
    loader.start({.batches = 1, .samples = [samples](int64_t) { return samples; }});
    return loader.next_required("test").images;
  };
  const Tensor mixed = batch_of({{.index = 3, .epoch = 0}, {.index = 9, .epoch = 1}});
  testing::require_identical(mixed.narrow(0, 0, 1).contiguous(), batch_of({{.index = 3, .epoch = 0}}));
  testing::require_identical(mixed.narrow(0, 1, 1).contiguous(), batch_of({{.index = 9, .epoch = 1}}));
  // The check can fail: another key gives another view.
  REQUIRE(testing::tensor_bytes(batch_of({{.index = 3, .epoch = 1}})) !=
          testing::tensor_bytes(mixed.narrow(0, 0, 1).contiguous()));
  // And the views are the augmentation of the gathered images with the samples' own keys.
  std::vector<AugmentParams> params = {draw_augment_params(augment, 12, 10, 1, 0, 3, 0),
                                       draw_augment_params(augment, 12, 10, 1, 1, 9, 0)};
  params[1].source = 1;
  const Tensor images = index_select(dataset.images, 0, from_vector(std::vector<int64_t>{3, 9}));
  testing::require_identical(mixed, augment_images(images, params, augment));
}

TEST_CASE("loader: batches over passes laid end to end (BiT)", "[unit]") {
  const ImageDataset dataset = small_dataset(10);
  // 7 batches of 4 from passes over 10 samples: batch 2 ends pass 0 and begins pass 1.
  const BatchSampler sampler = batches_over_passes(10, 3, 4, 7);
  REQUIRE(sampler.batches == 7);
  DataLoader loader(dataset, {.batch_size = 4, .seed = 3, .workers = 2, .augment = augment_preset("bit", 8)});
  loader.start(sampler);
  std::vector<Batch> batches;
  while (std::optional<Batch> batch = loader.next()) batches.push_back(std::move(*batch));
  REQUIRE(batches.size() == 7);
  std::vector<BatchSample> laid_out;
  for (const Batch& batch : batches) laid_out.insert(laid_out.end(), batch.samples.begin(), batch.samples.end());
  for (size_t position = 0; position < laid_out.size(); ++position) {
    const int64_t pass = static_cast<int64_t>(position) / 10;
    INFO("position " << position);
    REQUIRE(laid_out[position].epoch == pass);
    REQUIRE(laid_out[position].index == epoch_order(10, 3, pass)[position % 10]);
  }
  REQUIRE(batches[2].samples.front().epoch == 0);
  REQUIRE(batches[2].samples.back().epoch == 1);
  // Resuming at batch 5 gives batches 5 and 6 as before (a fresh copy of the sampler).
  loader.start(batches_over_passes(10, 3, 4, 7), 5);
  testing::require_identical(loader.next_required("test").images, batches[5].images);
  testing::require_identical(loader.next_required("test").images, batches[6].images);
  REQUIRE_FALSE(loader.next());
  // A dataset smaller than a batch: one batch holds several passes.
  const std::vector<BatchSample> three_passes = batches_over_passes(3, 0, 8, 1).samples(0);
  REQUIRE(three_passes.size() == 8);
  REQUIRE(three_passes.back().epoch == 2);
  REQUIRE_THROWS_WITH(batches_over_passes(0, 0, 8, 1), Contains("batches_over_passes: needs size >= 1"));
}

TEST_CASE("loader: bad batches and settings are refused by name", "[unit]") {
  const ImageDataset dataset = small_dataset(20);
  DataLoader loader(dataset, {.batch_size = 4, .workers = 1});
  const auto first_batch_of = [&](std::vector<BatchSample> samples) {
    loader.start({.batches = 1, .samples = [samples](int64_t) { return samples; }});
    return loader.next();
  };
  REQUIRE_THROWS_WITH(first_batch_of({}), Contains("batch 0 holds 0 samples; a batch holds 1 to batch_size = 4"));
  REQUIRE_THROWS_WITH(first_batch_of(std::vector<BatchSample>(5)), Contains("batch 0 holds 5 samples"));
  REQUIRE_THROWS_WITH(first_batch_of({{.index = 20}}), Contains("batch 0 asks for sample 20 of a dataset of 20"));
  loader.start({.batches = 1, .samples = [](int64_t) -> std::vector<BatchSample> {
                  throw std::runtime_error("the sampler failed");
                }});
  REQUIRE_THROWS_WITH(loader.next(), Contains("the sampler failed"));
  REQUIRE_THROWS_WITH(loader.start({.batches = 2}),
                      Contains("a sampler needs batches >= 0 (got 2) and a samples function"));
  REQUIRE_THROWS_WITH(loader.start(batches_over_passes(20, 0, 4, 2), 3),
                      Contains("the sampler has 2 batches, cannot start at 3"));

  REQUIRE_THROWS_WITH(DataLoader(dataset, {.views = 2}), Contains("2 views need an augmentation"));
  REQUIRE_THROWS_WITH(DataLoader(dataset, {.augment = augment_preset("simclr", 8), .mean = {0.5f}}),
                      Contains("mean and std normalise unaugmented batches"));
  REQUIRE_THROWS_WITH(DataLoader(subset(dataset, from_vector(std::vector<int64_t>{})), {}),
                      Contains("the dataset is empty"));
  AugmentConfig bad = augment_preset("simclr", 8);
  bad.flip_probability = 2;
  REQUIRE_THROWS_WITH(DataLoader(dataset, {.augment = bad}), Contains("flip_probability"));
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
      REQUIRE(restarted.next()->samples.front().epoch == 5);
    }
  }
  REQUIRE(prepared > 0);
  DataLoader unstarted(dataset, {.batch_size = 4, .workers = 1});
  REQUIRE_THROWS_WITH(unstarted.next(), Contains("start_epoch"));
}
