#include "engine/data/loader.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "engine/dispatch.h"
#include "engine/error.h"

#if VISREP_WITH_CUDA
#include <cuda_runtime_api.h>

#include "kernels/cuda/runtime.h"
#endif

namespace visrep::data {
namespace {

constexpr size_t kAlignment = 256;

size_t aligned(size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

// Where the parts of a batch sit in its pinned staging buffer.
struct StagingLayout {
  size_t images = 0, labels = 0, params = 0, total = 0;
};

StagingLayout staging_layout(int64_t batch, int64_t image_bytes, int views) {
  StagingLayout layout;
  layout.labels = aligned(static_cast<size_t>(batch * image_bytes));
  layout.params = layout.labels + aligned(static_cast<size_t>(batch) * sizeof(int64_t));
  layout.total = layout.params + static_cast<size_t>(batch * views) * sizeof(AugmentParams);
  return layout;
}

// Epoch `epoch` visiting the samples in `order`, batch_size at a time (the last batch smaller
// unless drop_last leaves it out), every sample keyed by the epoch.
BatchSampler epoch_batches(std::vector<int64_t> order, int64_t epoch, int64_t batch_size, bool drop_last) {
  const auto size = static_cast<int64_t>(order.size());
  auto shared_order = std::make_shared<const std::vector<int64_t>>(std::move(order));
  return {.batches = drop_last ? size / batch_size : (size + batch_size - 1) / batch_size,
          .samples = [shared_order, epoch, batch_size, size](int64_t batch) {
            std::vector<BatchSample> samples;
            for (int64_t i = batch * batch_size; i < std::min((batch + 1) * batch_size, size); ++i) {
              samples.push_back({.index = (*shared_order)[static_cast<size_t>(i)], .epoch = epoch});
            }
            return samples;
          }};
}

// Samples [part * n / parts, (part + 1) * n / parts) of a batch of n (LoaderConfig::part).
std::vector<BatchSample> part_of(const std::vector<BatchSample>& samples, int part, int parts) {
  const auto n = static_cast<int64_t>(samples.size());
  const int64_t begin = part * n / parts, end = (part + 1) * n / parts;
  VISREP_CHECK(end > begin, "DataLoader: part {} of a batch of {} samples split {} ways is empty", part, n, parts);
  return {samples.begin() + begin, samples.begin() + end};
}

}  // namespace

std::vector<int64_t> Batch::indices() const {
  std::vector<int64_t> indices;
  indices.reserve(samples.size());
  for (const BatchSample& sample : samples) indices.push_back(sample.index);
  return indices;
}

BatchSampler batches_over_passes(int64_t size, uint64_t seed, int64_t batch_size, int64_t batches) {
  VISREP_CHECK(size >= 1 && batch_size >= 1 && batches >= 0,
               "batches_over_passes: needs size >= 1, batch_size >= 1 and batches >= 0, got {}, {} and {}", size,
               batch_size, batches);
  // Each copy of the sampler caches the order of the pass it last read: called for increasing
  // batches, it draws every pass's permutation once.
  return {.batches = batches,
          .samples = [size, seed, batch_size, cached_pass = int64_t{-1},
                      order = std::vector<int64_t>()](int64_t batch) mutable {
            std::vector<BatchSample> samples;
            samples.reserve(static_cast<size_t>(batch_size));
            for (int64_t position = batch * batch_size; position < (batch + 1) * batch_size; ++position) {
              const int64_t pass = position / size;
              if (pass != cached_pass) {
                order = epoch_order(size, seed, pass);
                cached_pass = pass;
              }
              samples.push_back({.index = order[static_cast<size_t>(position % size)], .epoch = pass});
            }
            return samples;
          }};
}

DataLoader::DataLoader(ImageDataset dataset, LoaderConfig config) : dataset_(std::move(dataset)), config_(std::move(config)) {
  VISREP_CHECK(dataset_.images.defined() && dataset_.images.dim() == 4 && dataset_.images.dtype() == kUInt8,
               "DataLoader: expected uint8 (N, H, W, C) images");
  VISREP_CHECK(dataset_.images.device().is_cpu() && dataset_.labels.device().is_cpu(),
               "DataLoader: the dataset must be on the cpu (batches go to config.device)");
  VISREP_CHECK(dataset_.labels.dtype() == kInt64 && dataset_.labels.dim() == 1 && dataset_.labels.size(0) == dataset_.size(),
               "DataLoader: expected {} int64 labels, got {}", dataset_.size(), dataset_.labels.description());
  VISREP_CHECK(dataset_.size() >= 1, "DataLoader: the dataset is empty");
  VISREP_CHECK(config_.batch_size >= 1, "DataLoader: batch_size must be >= 1, got {}", config_.batch_size);
  VISREP_CHECK(config_.views >= 1 && config_.views < 256, "DataLoader: views must be 1..255, got {}", config_.views);
  VISREP_CHECK(config_.augment || config_.views == 1,
               "DataLoader: {} views need an augmentation (config.augment); without one a batch holds each image once",
               config_.views);
  VISREP_CHECK(!config_.augment || (config_.mean.empty() && config_.std.empty()),
               "DataLoader: mean and std normalise unaugmented batches; an augmentation normalises by its own "
               "(AugmentConfig::mean and std)");
  VISREP_CHECK(config_.workers >= 0 && config_.prefetch >= 0, "DataLoader: workers and prefetch must be >= 0");
  VISREP_CHECK(config_.parts >= 1 && config_.part >= 0 && config_.part < config_.parts,
               "DataLoader: part {} of {} parts: needs parts >= 1 and 0 <= part < parts", config_.part, config_.parts);
  VISREP_CHECK(dataset_.size() <= INT32_MAX, "DataLoader: {} samples is more than the loader indexes", dataset_.size());
  check_device_usable(config_.device, "DataLoader device");
  dataset_.images = dataset_.images.contiguous();
  dataset_.labels = dataset_.labels.contiguous();
  // Bad augmentation settings are reported here rather than by the first batch.
  if (config_.augment) augment_geometry(*config_.augment, dataset_.images, 0);
  gpu_path_ = config_.device.is_cuda();

  const int workers = config_.workers > 0 ? config_.workers : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (config_.prefetch == 0) config_.prefetch = 2 * workers;
  config_.workers = workers;

#if VISREP_WITH_CUDA
  if (gpu_path_) {
    // One buffer per batch that can be in flight: prepared ahead, plus the one being uploaded.
    const int64_t image_bytes = dataset_.height() * dataset_.width() * dataset_.channels();
    const size_t bytes = staging_layout(config_.batch_size, image_bytes, config_.views).total;
    VISREP_ON_CUDA("DataLoader", {
      VISREP_CUDA_CHECK(cudaSetDevice(config_.device.index));
      for (int i = 0; i < config_.prefetch + 1; ++i) {
        Staging staging;
        staging.memory = kernels::cuda::pinned_allocate(bytes);
        cudaEvent_t event = nullptr;
        VISREP_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
        staging.uploaded = event;
        staging_.push_back(staging);
        free_staging_.push_back(i);
      }
    });
  }
#endif
  for (int i = 0; i < workers; ++i) threads_.emplace_back([this, i] { work(i); });
}

DataLoader::~DataLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  work_available_.notify_all();
  staging_free_.notify_all();
  for (std::thread& thread : threads_) thread.join();
#if VISREP_WITH_CUDA
  for (Staging& staging : staging_) {
    // Queued uploads may still read the buffer.
    if (staging.pending) cudaEventSynchronize(static_cast<cudaEvent_t>(staging.uploaded));
    cudaEventDestroy(static_cast<cudaEvent_t>(staging.uploaded));
    kernels::cuda::pinned_free(staging.memory);
  }
#endif
}

int64_t DataLoader::batches_per_epoch() const {
  const int64_t n = dataset_.size(), b = config_.batch_size;
  return config_.drop_last ? n / b : (n + b - 1) / b;
}

void DataLoader::start_epoch(int64_t epoch, int64_t first_batch) {
  VISREP_CHECK(epoch >= 0, "DataLoader: negative epoch {}", epoch);
  VISREP_CHECK(batches_per_epoch() >= 1, "DataLoader: {} samples make no full batch of {} (drop_last)", dataset_.size(),
               config_.batch_size);
  VISREP_CHECK(first_batch >= 0 && first_batch <= batches_per_epoch(),
               "DataLoader: epoch {} has {} batches, cannot start at {}", epoch, batches_per_epoch(), first_batch);
  std::vector<int64_t> order;
  if (config_.shuffle) {
    order = epoch_order(dataset_.size(), config_.seed, epoch);
  } else {
    order.resize(static_cast<size_t>(dataset_.size()));
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  }
  start(epoch_batches(std::move(order), epoch, config_.batch_size, config_.drop_last), first_batch);
}

void DataLoader::start(BatchSampler sampler, int64_t first_batch) {
  VISREP_CHECK(sampler.batches >= 0 && (sampler.batches == 0 || sampler.samples),
               "DataLoader: a sampler needs batches >= 0 (got {}) and a samples function", sampler.batches);
  VISREP_CHECK(first_batch >= 0 && first_batch <= sampler.batches,
               "DataLoader: the sampler has {} batches, cannot start at {}", sampler.batches, first_batch);
  auto plan = std::make_shared<Plan>();
  plan->sampler = std::move(sampler);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    plan->generation = ++generation_;
    plan_ = plan;
    next_to_claim_ = next_to_deliver_ = first_batch;
    for (auto& [index, prepared] : ready_) {
      if (prepared.staging >= 0) free_staging_.push_back(prepared.staging);
    }
    ready_.clear();
  }
  work_available_.notify_all();
  staging_free_.notify_all();
}

void DataLoader::work(int worker) {
  // The workers are the loader's parallelism: the kernels' OpenMP regions run on each worker's
  // own thread (nthreads-var is per thread) rather than each starting a team of every core.
  omp_set_num_threads(1);
#if VISREP_WITH_CUDA
  if (gpu_path_) cudaSetDevice(config_.device.index);  // the events and pinned buffers belong to this device
#endif
  while (true) {
    std::shared_ptr<const Plan> plan;
    int64_t index = 0;
    std::vector<BatchSample> samples;
    Prepared prepared;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      work_available_.wait(lock, [&] {
        return stopping_ || (plan_ && next_to_claim_ < plan_->sampler.batches &&
                             next_to_claim_ < next_to_deliver_ + config_.prefetch);
      });
      if (stopping_) return;
      plan = plan_;
      index = next_to_claim_++;
      try {
        samples = plan->sampler.samples(index);  // under the lock, in increasing order (BatchSampler)
        if (config_.parts > 1) samples = part_of(samples, config_.part, config_.parts);
      } catch (...) {
        prepared.error = std::current_exception();
      }
    }
    if (!prepared.error) {
      try {
        prepared = prepare(std::move(samples), index);
      } catch (...) {
        prepared.error = std::current_exception();
      }
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (plan->generation != generation_ || stopping_) {
      if (prepared.staging >= 0) free_staging_.push_back(prepared.staging);  // an abandoned start
      staging_free_.notify_one();
      continue;
    }
    ready_.emplace(index, std::move(prepared));
    batch_ready_.notify_all();
  }
}

DataLoader::Prepared DataLoader::prepare(std::vector<BatchSample> samples, int64_t index) {
  Prepared prepared;
  Batch& batch = prepared.batch;
  batch.index = index;
  batch.samples = std::move(samples);
  const auto count = static_cast<int64_t>(batch.samples.size());
  VISREP_CHECK(count >= 1 && count <= config_.batch_size,
               "DataLoader: batch {} holds {} samples; a batch holds 1 to batch_size = {}", index, count,
               config_.batch_size);
  for (const BatchSample& sample : batch.samples) {
    VISREP_CHECK(sample.index >= 0 && sample.index < dataset_.size(),
                 "DataLoader: batch {} asks for sample {} of a dataset of {}", index, sample.index, dataset_.size());
  }
  if (config_.augment) {
    prepared.params = draw_batch_params(*config_.augment, dataset_.height(), dataset_.width(), config_.seed,
                                        batch.samples, config_.views);
  }

  if (!gpu_path_) {
    Tensor images = empty({count, dataset_.height(), dataset_.width(), dataset_.channels()}, kUInt8);
    batch.labels = empty({count}, kInt64);
    gather(batch.samples, images.data<uint8_t>(), batch.labels.data<int64_t>());
    batch.images = to_input(images, Tensor(), prepared.params);
    if (config_.on_worker) config_.on_worker(batch);
    return prepared;
  }

  // The GPU path: into a pinned staging buffer, which next() uploads.
  const int slot = acquire_staging();
  try {
    auto* memory = static_cast<uint8_t*>(staging_[static_cast<size_t>(slot)].memory);
    const int64_t image_bytes = dataset_.height() * dataset_.width() * dataset_.channels();
    const StagingLayout layout = staging_layout(count, image_bytes, config_.views);
    gather(batch.samples, memory, reinterpret_cast<int64_t*>(memory + layout.labels));
    if (!prepared.params.empty()) {
      std::memcpy(memory + layout.params, prepared.params.data(), prepared.params.size() * sizeof(AugmentParams));
    }
    if (config_.on_worker) config_.on_worker(batch);
  } catch (...) {
    release_staging(slot);
    throw;
  }
  prepared.staging = slot;
  return prepared;
}

void DataLoader::gather(const std::vector<BatchSample>& samples, uint8_t* images, int64_t* labels) const {
  const int64_t image_bytes = dataset_.height() * dataset_.width() * dataset_.channels();
  const uint8_t* dataset_images = dataset_.images.data<uint8_t>();
  const int64_t* dataset_labels = dataset_.labels.data<int64_t>();
  for (size_t i = 0; i < samples.size(); ++i) {
    const int64_t sample = samples[i].index;
    std::memcpy(images + static_cast<int64_t>(i) * image_bytes, dataset_images + sample * image_bytes,
                static_cast<size_t>(image_bytes));
    labels[i] = dataset_labels[sample];
  }
}

Tensor DataLoader::to_input(const Tensor& images, const Tensor& device_params,
                            const std::vector<AugmentParams>& params) const {
  if (config_.augment) return augment_images(images, device_params, params, *config_.augment);
  return to_float_nchw(images, config_.mean, config_.std);
}

std::optional<Batch> DataLoader::next() {
  Prepared prepared;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    VISREP_CHECK(plan_ != nullptr, "DataLoader: call start_epoch (or start) before next");
    if (next_to_deliver_ >= plan_->sampler.batches) return std::nullopt;
    batch_ready_.wait(lock, [&] { return ready_.count(next_to_deliver_) > 0; });
    auto it = ready_.find(next_to_deliver_);
    prepared = std::move(it->second);
    ready_.erase(it);
    ++next_to_deliver_;
  }
  work_available_.notify_all();
  if (prepared.error) {
    if (prepared.staging >= 0) release_staging(prepared.staging);
    std::rethrow_exception(prepared.error);
  }
  return finish(std::move(prepared));
}

Batch DataLoader::next_required(std::string_view who) {
  std::optional<Batch> batch = next();
  VISREP_CHECK(batch.has_value(), "{}: the data loader has no batch {}: its sequence has {} batches", who,
               next_to_deliver_, plan_->sampler.batches);
  return std::move(*batch);
}

Batch DataLoader::finish(Prepared prepared) {
  Batch batch = std::move(prepared.batch);
  if (!gpu_path_) return batch;
#if VISREP_WITH_CUDA
  const auto count = static_cast<int64_t>(batch.samples.size());
  const int64_t image_bytes = dataset_.height() * dataset_.width() * dataset_.channels();
  const StagingLayout layout = staging_layout(count, image_bytes, config_.views);
  Staging& staging = staging_[static_cast<size_t>(prepared.staging)];
  const auto* memory = static_cast<const uint8_t*>(staging.memory);
  const TensorOptions on_device(kUInt8, config_.device);
  Tensor images = empty({count, dataset_.height(), dataset_.width(), dataset_.channels()}, on_device);
  batch.labels = empty({count}, on_device.with_dtype(kInt64));
  Tensor params;
  const size_t param_bytes = prepared.params.size() * sizeof(AugmentParams);
  if (param_bytes > 0) params = empty({static_cast<int64_t>(param_bytes)}, on_device);
  try {
    VISREP_ON_CUDA("DataLoader upload", {
      cudaStream_t stream = cuda_stream(images);
      VISREP_CUDA_CHECK(cudaMemcpyAsync(images.raw_data(), memory, static_cast<size_t>(count * image_bytes),
                                        cudaMemcpyHostToDevice, stream));
      VISREP_CUDA_CHECK(cudaMemcpyAsync(batch.labels.raw_data(), memory + layout.labels,
                                        static_cast<size_t>(count) * sizeof(int64_t), cudaMemcpyHostToDevice, stream));
      if (param_bytes > 0) {
        VISREP_CUDA_CHECK(cudaMemcpyAsync(params.raw_data(), memory + layout.params, param_bytes,
                                          cudaMemcpyHostToDevice, stream));
      }
      VISREP_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(staging.uploaded), stream));
      staging.pending = true;
    });
  } catch (...) {
    release_staging(prepared.staging);
    throw;
  }
  release_staging(prepared.staging);
  batch.images = to_input(images, params, prepared.params);
#endif
  return batch;
}

int DataLoader::acquire_staging() {
  int slot = -1;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    staging_free_.wait(lock, [&] { return stopping_ || !free_staging_.empty(); });
    VISREP_CHECK(!stopping_, "DataLoader: stopped");
    slot = free_staging_.back();
    free_staging_.pop_back();
  }
#if VISREP_WITH_CUDA
  Staging& staging = staging_[static_cast<size_t>(slot)];
  if (staging.pending) {
    // The upload queued from this buffer must have finished reading it.
    VISREP_ON_CUDA("DataLoader", VISREP_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(staging.uploaded))));
    staging.pending = false;
  }
#endif
  return slot;
}

void DataLoader::release_staging(int slot) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    free_staging_.push_back(slot);
  }
  staging_free_.notify_one();
}

}  // namespace visrep::data
