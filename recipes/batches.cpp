#include "recipes/batches.h"

#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "engine/random.h"

namespace visrep::recipes {

data::Batch make_batch(const data::ImageDataset& dataset, const std::vector<BatchSample>& samples,
                       const BatchTransform& transform, Device device) {
  VISREP_CHECK(!samples.empty(), "make_batch: no samples");
  VISREP_CHECK(transform.views >= 1, "make_batch: views must be >= 1, got {}", transform.views);
  NoGradGuard no_grad;
  data::Batch batch;
  for (const BatchSample& sample : samples) batch.indices.push_back(sample.index);
  const auto count = static_cast<int64_t>(samples.size());
  const Tensor rows = from_vector(batch.indices, {count});
  batch.labels = index_select(dataset.labels, 0, rows).to(device);
  const Tensor images = index_select(dataset.images, 0, rows).to(device);
  if (!transform.augment) {
    batch.images = data::to_float_nchw(images, transform.mean, transform.std);
    return batch;
  }
  // View-major, as data::draw_batch_params: entry v * B + i is view v of sample i, made from
  // row i of `images`.
  std::vector<data::AugmentParams> params;
  params.reserve(static_cast<size_t>(count * transform.views));
  for (int view = 0; view < transform.views; ++view) {
    for (int64_t i = 0; i < count; ++i) {
      const BatchSample& sample = samples[static_cast<size_t>(i)];
      data::AugmentParams p =
          data::draw_augment_params(*transform.augment, dataset.height(), dataset.width(), transform.seed,
                                    static_cast<uint64_t>(sample.epoch), sample.index, view);
      p.source = static_cast<int32_t>(i);
      params.push_back(p);
    }
  }
  batch.images = data::augment_images(images, params, *transform.augment);
  return batch;
}

std::vector<int64_t> epoch_order(int64_t size, uint64_t seed, int64_t epoch) {
  VISREP_CHECK(size >= 1 && epoch >= 0, "epoch_order: needs size >= 1 and epoch >= 0, got {} and {}", size, epoch);
  Generator generator(seed);
  generator.set_state(seed, static_cast<uint64_t>(epoch));
  return permutation(size, generator).to_vector<int64_t>();
}

std::vector<BatchSample> epoch_batch(const std::vector<int64_t>& order, int64_t epoch, int64_t batch,
                                     int64_t batch_size) {
  VISREP_CHECK(batch >= 0 && batch_size >= 1 && (batch + 1) * batch_size <= static_cast<int64_t>(order.size()),
               "epoch_batch: batch {} of {} does not fit an epoch of {} samples", batch, batch_size, order.size());
  std::vector<BatchSample> samples;
  samples.reserve(static_cast<size_t>(batch_size));
  for (int64_t i = batch * batch_size; i < (batch + 1) * batch_size; ++i) {
    samples.push_back({.index = order[static_cast<size_t>(i)], .epoch = epoch});
  }
  return samples;
}

std::vector<BatchSample> consecutive_samples(int64_t first, int64_t end) {
  std::vector<BatchSample> samples;
  for (int64_t index = first; index < end; ++index) samples.push_back({.index = index});
  return samples;
}

}  // namespace visrep::recipes
