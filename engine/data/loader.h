// The data loader: turns an in-memory ImageDataset into batches, in a seeded order per
// epoch, prepared ahead of time on background worker threads.
//
//   DataLoader loader(train_set, {.batch_size = 512, .seed = 1, .device = Device::cuda(),
//                                 .augment = augment_preset("simclr", 32), .views = 2});
//   for (int64_t epoch = 0; epoch < epochs; ++epoch) {
//     loader.start_epoch(epoch);
//     while (std::optional<Batch> batch = loader.next()) { ... batch->images ... }
//   }
//
// Order: epoch e visits the samples in the permutation drawn from Philox stream e of the
// seed (the same as the classifier recipe's shuffle), so a run can resume at any epoch and
// batch (start_epoch(e, b)) and see exactly the batches it would have seen.
//
// Threads: `workers` threads claim batch numbers in order and prepare them; at most
// `prefetch` batches are prepared ahead of the one the caller is consuming, and next()
// hands them out in order. Without augmentation a batch is the gathered uint8 images. With
// augmentation on the CPU (device cpu) the workers also run the augmentation, reading the
// dataset's images in place. On a GPU (device cuda) the workers gather each batch's uint8
// images, labels and augmentation parameters into pinned host memory; next() queues their
// upload (asynchronous, on the device's stream) and the augmentation kernels, so the host
// never waits for the GPU and the images cross the bus once, as uint8.
//
// An exception on a worker (a bad parameter, a failing callback, running out of memory)
// is rethrown by the next() that would have returned its batch. The destructor stops the
// workers (each finishes the batch it is on) and joins them.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "engine/data/augment.h"
#include "engine/data/dataset.h"

namespace visrep::data {

struct Batch {
  // Augmented: float32 (views * B, C, height, width), view-major (the first B rows are every
  // sample's first view). Without augmentation: uint8 (B, H, W, C).
  Tensor images;
  Tensor labels;                 // int64 (B), on the batch's device
  std::vector<int64_t> indices;  // the dataset indices of the B samples
  int64_t epoch = 0;
  int64_t index = 0;  // the batch's number within its epoch
};

struct LoaderConfig {
  int64_t batch_size = 256;
  bool shuffle = true;
  bool drop_last = true;  // leave out a last batch smaller than batch_size
  uint64_t seed = 0;      // of the order and of the augmentation parameters
  int workers = 0;        // preparing threads; 0: one per core
  int prefetch = 0;       // batches prepared ahead; 0: two per worker
  Device device = Device::cpu();
  std::optional<AugmentConfig> augment;  // none: batches hold the uint8 images
  int views = 1;                         // augmented views per sample (2 for the contrastive recipes)
  // Runs on the worker thread for each prepared batch (on the GPU path before the upload,
  // with only indices, epoch and index set), e.g. for extra checks or statistics. Its
  // exceptions reach next().
  std::function<void(const Batch&)> on_worker;
};

class DataLoader {
 public:
  // The dataset's images must be uint8 (N, H, W, C) on the CPU; the loader keeps a handle.
  DataLoader(ImageDataset dataset, LoaderConfig config);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  const LoaderConfig& config() const { return config_; }
  const ImageDataset& dataset() const { return dataset_; }
  int64_t batches_per_epoch() const;
  // The order in which epoch `epoch` visits the samples.
  std::vector<int64_t> epoch_order(int64_t epoch) const;

  // Starts preparing epoch `epoch` from batch `first_batch` (0, or where a resumed run
  // stopped); batches still being prepared for an earlier epoch are dropped.
  void start_epoch(int64_t epoch, int64_t first_batch = 0);
  // The epoch's next batch, or nullopt after its last one.
  std::optional<Batch> next();

 private:
  struct Plan {
    int64_t epoch = 0;
    std::vector<int64_t> order;
    int64_t batches = 0;
    uint64_t generation = 0;
  };
  // A batch as a worker leaves it for next().
  struct Prepared {
    Batch batch;                        // CPU path: complete
    std::vector<AugmentParams> params;  // GPU path: the views' parameters (sources are batch positions)
    int staging = -1;                   // GPU path: the pinned buffer holding images, labels and params
    std::exception_ptr error;
  };
  // Pinned host memory for one batch on its way to the GPU.
  struct Staging {
    void* memory = nullptr;
    void* uploaded = nullptr;  // a cudaEvent_t recorded after the upload was queued; reuse waits for it
    bool pending = false;
  };

  void work(int worker);
  Prepared prepare(const Plan& plan, int64_t batch_index);
  Batch finish(Prepared prepared);
  int acquire_staging();
  void release_staging(int slot);

  ImageDataset dataset_;
  LoaderConfig config_;
  kernels::AugmentGeometry geometry_{};  // of the whole dataset as the source batch
  bool gpu_path_ = false;

  std::mutex mutex_;
  std::condition_variable work_available_;  // workers wait for a batch to claim
  std::condition_variable batch_ready_;     // next() waits for its batch
  std::condition_variable staging_free_;
  bool stopping_ = false;
  uint64_t generation_ = 0;  // bumped by start_epoch; stale results are dropped
  std::shared_ptr<const Plan> plan_;
  int64_t next_to_claim_ = 0;
  int64_t next_to_deliver_ = 0;
  std::map<int64_t, Prepared> ready_;
  std::vector<Staging> staging_;
  std::vector<int> free_staging_;
  std::vector<std::thread> threads_;
};

}  // namespace visrep::data
