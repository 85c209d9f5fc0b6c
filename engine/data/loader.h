// The data loader: the one place where samples of an in-memory ImageDataset become the
// network's input. Every batch a recipe trains or evaluates on comes from here (the
// contrastive recipes' and the classifier's epochs, BiT's passes laid end to end, the
// evaluations' passes over a dataset), prepared ahead of time on background worker threads.
//
//   DataLoader loader(train_set, {.batch_size = 512, .seed = 1, .device = Device::cuda(),
//                                 .augment = augment_preset("simclr", 32), .views = 2});
//   for (int64_t epoch = 1; epoch <= epochs; ++epoch) {
//     loader.start_epoch(epoch);
//     while (std::optional<Batch> batch = loader.next()) { ... batch->images ... }
//   }
//
// A batch is a list of samples (BatchSample: a dataset index and the epoch its views are
// keyed by). Its images are the network's input on config.device: with `augment`, `views`
// augmented float32 views of every sample, view v of sample i drawn for (seed, its epoch, i,
// v) (draw_augment_params); without, each image once, scaled to [0, 1], then (x - mean) / std
// per channel (to_float_nchw). So a batch is a function of its samples and the seed: no
// random state lives anywhere else, and a resumed run sees the batches an uninterrupted one
// would have.
//
// Which samples, in which order:
//   start_epoch(e, b)  epoch e: the samples in epoch_order(size, seed, e) (dataset.h), or in
//                      the dataset's order without shuffle, batch_size at a time, all keyed by
//                      e; from batch b on (0, or where a resumed run stopped).
//   start(sampler, b)  any sequence of batches, e.g. batches_over_passes (below) for BiT,
//                      whose training set can be smaller than one batch.
//
// Threads: `workers` threads claim batch numbers in order and prepare them; at most
// `prefetch` batches are prepared ahead of the one the caller is consuming, and next()
// hands them out in order. A worker gathers the batch's uint8 images and labels, draws its
// augmentation parameters, and on the CPU (device cpu) makes the input itself, with the same
// kernels as everywhere (OpenMP parallel regions run on the worker's one thread: the workers
// are the parallelism). On a GPU (device cuda) the workers gather into pinned host memory;
// next() queues the upload (asynchronous, on the device's stream) and the augmentation
// kernels, so the host never waits for the GPU and the images cross the bus once, as uint8.
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
#include <string_view>
#include <thread>
#include <vector>

#include "engine/data/augment.h"
#include "engine/data/dataset.h"

namespace visrep::data {

struct Batch {
  // Augmented: float32 (views * B, C, height, width), view-major (the first B rows are every
  // sample's first view). Without augmentation: float32 (B, C, H, W).
  Tensor images;
  Tensor labels;                     // int64 (B), on the batch's device
  std::vector<BatchSample> samples;  // the B samples (this part's): dataset indices and the epochs their views are keyed by
  int64_t index = 0;                 // the batch's number within its epoch (or its sampler's sequence)

  std::vector<int64_t> indices() const;  // the samples' dataset indices
};

// A sequence of batches for DataLoader::start: `batches` of them, batch b holding samples(b)
// (1 to batch_size samples). The loader calls samples() with its lock held, for b in
// increasing order, so it may cache what it computes (a pass's order) without a lock of its own.
struct BatchSampler {
  int64_t batches = 0;
  std::function<std::vector<BatchSample>(int64_t batch)> samples;
};

// `batches` full batches of batch_size from reshuffled passes over a dataset of `size`
// samples laid end to end: pass p visits it in epoch_order(size, seed, p) and keys its samples
// by p, so a batch can end one pass and begin the next (or hold several, when the dataset is
// smaller than a batch). Batch b is a function of (size, seed, batch_size, b).
BatchSampler batches_over_passes(int64_t size, uint64_t seed, int64_t batch_size, int64_t batches);

struct LoaderConfig {
  int64_t batch_size = 256;  // start_epoch's batches; the most a sampler's batch may hold
  bool shuffle = true;       // start_epoch: epoch_order(size, seed, epoch); false: the dataset's order
  bool drop_last = true;     // start_epoch: leave out a last batch smaller than batch_size
  uint64_t seed = 0;         // of the order and of the augmentation parameters
  int workers = 0;           // preparing threads; 0: one per core
  int prefetch = 0;          // batches prepared ahead; 0: two per worker
  Device device = Device::cpu();
  std::optional<AugmentConfig> augment;  // none: each image once, scaled and normalised by mean and std
  int views = 1;                         // augmented views per sample (2 for the contrastive recipes)
  std::vector<float> mean;               // without augment: per channel (empty: 0); an augmentation has its own
  std::vector<float> std;                // without augment: per channel (empty: 1)
  // Part `part` of `parts` of every batch: of the n samples the batch (start_epoch's, or the
  // sampler's) holds, only [part * n / parts, (part + 1) * n / parts) are built, with their
  // own keys. Data-parallel training's rank r of P ranks (recipes/data_parallel.h): the
  // ranks build disjoint slices of one global batch, batch_size staying the global batch.
  int part = 0;
  int parts = 1;
  // Runs on the worker thread for each prepared batch (on the GPU path before the upload,
  // with only samples and index set), e.g. for extra checks or statistics. Its exceptions
  // reach next().
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

  // Starts preparing epoch `epoch` from batch `first_batch` (0, or where a resumed run
  // stopped); batches still being prepared for an earlier start are dropped.
  void start_epoch(int64_t epoch, int64_t first_batch = 0);
  // The same for the batches of `sampler`, from its batch `first_batch` on.
  void start(BatchSampler sampler, int64_t first_batch = 0);
  // The next batch, or nullopt after the last one.
  std::optional<Batch> next();
  // The next batch where the caller counts on one (a training loop of a known number of
  // steps): running out is an error naming `who`.
  Batch next_required(std::string_view who);

 private:
  struct Plan {
    BatchSampler sampler;
    uint64_t generation = 0;
  };
  // A batch as a worker leaves it for next().
  struct Prepared {
    Batch batch;                        // CPU path: complete
    std::vector<AugmentParams> params;  // the views' parameters (sources are batch positions)
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
  Prepared prepare(std::vector<BatchSample> samples, int64_t index);
  void gather(const std::vector<BatchSample>& samples, uint8_t* images, int64_t* labels) const;
  Tensor to_input(const Tensor& images, const Tensor& device_params, const std::vector<AugmentParams>& params) const;
  Batch finish(Prepared prepared);
  int acquire_staging();
  void release_staging(int slot);

  ImageDataset dataset_;
  LoaderConfig config_;
  bool gpu_path_ = false;

  std::mutex mutex_;
  std::condition_variable work_available_;  // workers wait for a batch to claim
  std::condition_variable batch_ready_;     // next() waits for its batch
  std::condition_variable staging_free_;
  bool stopping_ = false;
  uint64_t generation_ = 0;  // bumped by start; stale results are dropped
  std::shared_ptr<const Plan> plan_;
  int64_t next_to_claim_ = 0;
  int64_t next_to_deliver_ = 0;
  std::map<int64_t, Prepared> ready_;
  std::vector<Staging> staging_;
  std::vector<int> free_staging_;
  std::vector<std::thread> threads_;
};

}  // namespace visrep::data
