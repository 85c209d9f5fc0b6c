#include "engine/data/loader.h"

#include <algorithm>
#include <cstring>

#include "engine/dispatch.h"
#include "engine/error.h"
#include "engine/random.h"

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

}  // namespace

DataLoader::DataLoader(ImageDataset dataset, LoaderConfig config) : dataset_(std::move(dataset)), config_(std::move(config)) {
  VISREP_CHECK(dataset_.images.defined() && dataset_.images.dim() == 4 && dataset_.images.dtype() == kUInt8,
               "DataLoader: expected uint8 (N, H, W, C) images");
  VISREP_CHECK(dataset_.images.device().is_cpu() && dataset_.labels.device().is_cpu(),
               "DataLoader: the dataset must be on the cpu (batches go to config.device)");
  VISREP_CHECK(dataset_.labels.dtype() == kInt64 && dataset_.labels.dim() == 1 && dataset_.labels.size(0) == dataset_.size(),
               "DataLoader: expected {} int64 labels, got {}", dataset_.size(), dataset_.labels.description());
  VISREP_CHECK(config_.batch_size >= 1, "DataLoader: batch_size must be >= 1, got {}", config_.batch_size);
  VISREP_CHECK(config_.views >= 1 && config_.views < 256, "DataLoader: views must be 1..255, got {}", config_.views);
  VISREP_CHECK(config_.workers >= 0 && config_.prefetch >= 0, "DataLoader: workers and prefetch must be >= 0");
  VISREP_CHECK(dataset_.size() <= INT32_MAX, "DataLoader: {} samples is more than the loader indexes", dataset_.size());
  VISREP_CHECK(batches_per_epoch() >= 1, "DataLoader: {} samples make no full batch of {} (drop_last)", dataset_.size(),
               config_.batch_size);
  check_device_usable(config_.device, "DataLoader device");
  dataset_.images = dataset_.images.contiguous();
  dataset_.labels = dataset_.labels.contiguous();
  if (config_.augment) geometry_ = augment_geometry(*config_.augment, dataset_.images, 0);
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

std::vector<int64_t> DataLoader::epoch_order(int64_t epoch) const {
  VISREP_CHECK(epoch >= 0, "DataLoader: negative epoch {}", epoch);
  if (!config_.shuffle) {
    std::vector<int64_t> order(static_cast<size_t>(dataset_.size()));
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
    return order;
  }
  Generator generator(config_.seed);
  generator.set_state(config_.seed, static_cast<uint64_t>(epoch));
  return permutation(dataset_.size(), generator).to_vector<int64_t>();
}

void DataLoader::start_epoch(int64_t epoch, int64_t first_batch) {
  auto plan = std::make_shared<Plan>();
  plan->epoch = epoch;
  plan->order = epoch_order(epoch);
  plan->batches = batches_per_epoch();
  VISREP_CHECK(first_batch >= 0 && first_batch <= plan->batches, "DataLoader: epoch {} has {} batches, cannot start at {}",
               epoch, plan->batches, first_batch);
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
#if VISREP_WITH_CUDA
  if (gpu_path_) cudaSetDevice(config_.device.index);  // the events and pinned buffers belong to this device
#endif
  while (true) {
    std::shared_ptr<const Plan> plan;
    int64_t index = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      work_available_.wait(lock, [&] {
        return stopping_ || (plan_ && next_to_claim_ < plan_->batches && next_to_claim_ < next_to_deliver_ + config_.prefetch);
      });
      if (stopping_) return;
      plan = plan_;
      index = next_to_claim_++;
    }
    Prepared prepared;
    try {
      prepared = prepare(*plan, index);
    } catch (...) {
      prepared.error = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (plan->generation != generation_ || stopping_) {
      if (prepared.staging >= 0) free_staging_.push_back(prepared.staging);  // an abandoned epoch
      staging_free_.notify_one();
      continue;
    }
    ready_.emplace(index, std::move(prepared));
    batch_ready_.notify_all();
  }
}

DataLoader::Prepared DataLoader::prepare(const Plan& plan, int64_t index) {
  Prepared prepared;
  Batch& batch = prepared.batch;
  batch.epoch = plan.epoch;
  batch.index = index;
  const int64_t first = index * config_.batch_size;
  const int64_t count = std::min(config_.batch_size, dataset_.size() - first);
  batch.indices.assign(plan.order.begin() + first, plan.order.begin() + first + count);
  const int64_t image_bytes = dataset_.height() * dataset_.width() * dataset_.channels();
  const uint8_t* images = dataset_.images.data<uint8_t>();
  const int64_t* labels = dataset_.labels.data<int64_t>();

  if (gpu_path_) {
    const int slot = acquire_staging();
    try {
      auto* memory = static_cast<uint8_t*>(staging_[static_cast<size_t>(slot)].memory);
      const StagingLayout layout = staging_layout(count, image_bytes, config_.views);
      auto* staged_labels = reinterpret_cast<int64_t*>(memory + layout.labels);
      for (int64_t i = 0; i < count; ++i) {
        const int64_t sample = batch.indices[static_cast<size_t>(i)];
        std::memcpy(memory + i * image_bytes, images + sample * image_bytes, static_cast<size_t>(image_bytes));
        staged_labels[i] = labels[sample];
      }
      if (config_.augment) {
        prepared.params = draw_batch_params(*config_.augment, dataset_.height(), dataset_.width(), config_.seed,
                                            static_cast<uint64_t>(plan.epoch), batch.indices, config_.views);
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

  batch.labels = empty({count}, kInt64);
  for (int64_t i = 0; i < count; ++i) batch.labels.data<int64_t>()[i] = labels[batch.indices[static_cast<size_t>(i)]];
  if (config_.augment) {
    // The augmentation reads the dataset in place: each view's source is its dataset index.
    std::vector<AugmentParams> params = draw_batch_params(*config_.augment, dataset_.height(), dataset_.width(),
                                                          config_.seed, static_cast<uint64_t>(plan.epoch),
                                                          batch.indices, config_.views);
    for (AugmentParams& p : params) p.source = static_cast<int32_t>(batch.indices[static_cast<size_t>(p.source)]);
    kernels::AugmentGeometry g = geometry_;
    g.views = static_cast<int64_t>(params.size());
    batch.images = empty({g.views, g.channels, g.out_height, g.out_width}, kFloat32);
    kernels::cpu::augment_views(g, params.data(), 0, g.views, images, batch.images.data<float>());
  } else {
    batch.images = empty({count, dataset_.height(), dataset_.width(), dataset_.channels()}, kUInt8);
    for (int64_t i = 0; i < count; ++i) {
      std::memcpy(batch.images.data<uint8_t>() + i * image_bytes, images + batch.indices[static_cast<size_t>(i)] * image_bytes,
                  static_cast<size_t>(image_bytes));
    }
  }
  if (config_.on_worker) config_.on_worker(batch);
  return prepared;
}

std::optional<Batch> DataLoader::next() {
  Prepared prepared;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    VISREP_CHECK(plan_ != nullptr, "DataLoader: call start_epoch before next");
    if (next_to_deliver_ >= plan_->batches) return std::nullopt;
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

Batch DataLoader::finish(Prepared prepared) {
  Batch batch = std::move(prepared.batch);
  if (!gpu_path_) return batch;
#if VISREP_WITH_CUDA
  const auto count = static_cast<int64_t>(batch.indices.size());
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
  batch.images = config_.augment ? augment_images(images, params, prepared.params, *config_.augment) : images;
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
