#include "recipes/evaluation.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "engine/data/loader.h"
#include "engine/ops.h"
#include "engine/optim/learning_rate_schedule.h"
#include "engine/optim/sgd.h"
#include "recipes/data_parallel.h"

namespace visrep::recipes {
namespace {

// ---- argument checks ----------------------------------------------------------------------------

void check_features(const char* function, const char* what, const Tensor& features) {
  VISREP_CHECK(features.defined(), "{}: {} is undefined", function, what);
  VISREP_CHECK(features.dim() == 2, "{}: {} must be 2-D (samples, dimensions), got {}", function, what,
               features.description());
  VISREP_CHECK(is_floating(features.dtype()), "{}: {} must be floating point, got {}", function, what,
               features.description());
  VISREP_CHECK(features.size(0) >= 1 && features.size(1) >= 1, "{}: {} is empty ({})", function, what,
               features.description());
}

// Returns the labels on the host, checked against the features' row count and the class count.
std::vector<int64_t> checked_labels(const char* function, const char* what, const Tensor& labels, int64_t rows,
                                    int64_t classes) {
  VISREP_CHECK(labels.defined(), "{}: {} is undefined", function, what);
  VISREP_CHECK(labels.dtype() == kInt64 && labels.dim() == 1, "{}: {} must be int64 of shape ({}), got {}", function,
               what, rows, labels.description());
  VISREP_CHECK(labels.size(0) == rows, "{}: {} has {} entries but its features have {} rows", function, what,
               labels.size(0), rows);
  std::vector<int64_t> values = labels.to_vector<int64_t>();
  for (size_t i = 0; i < values.size(); ++i) {
    VISREP_CHECK(values[i] >= 0 && values[i] < classes, "{}: {}[{}] = {} is outside [0, {})", function, what, i,
                 values[i], classes);
  }
  return values;
}

// float32 unless already float64 (bfloat16/float16 features are widened).
Tensor as_float(const Tensor& x) { return x.dtype() == kFloat64 ? x : x.to(kFloat32); }

// Rows scaled to unit L2 norm, max(||x||, 1e-12) in the denominator as
// torch.nn.functional.normalize, so an all-zero row stays zero (similarity 0 to everything).
// Non-finite features would make every comparison meaningless: rejected, naming the row.
Tensor l2_normalize_rows(const char* function, const char* what, const Tensor& x) {
  Tensor norms = sqrt(sum(mul(x, x), {1}, /*keepdim=*/true));
  const std::vector<double> host_norms = norms.to_vector<double>();
  for (size_t i = 0; i < host_norms.size(); ++i) {
    VISREP_CHECK(std::isfinite(host_norms[i]), "{}: {} row {} contains NaN or Inf", function, what, i);
  }
  return div(x, clamp_min(norms, 1e-12));
}

// ---- kNN vote over one block of similarities (host) ---------------------------------------------

// A neighbour candidate: (similarity, training index). `better` is the total order of the
// selection: higher similarity first, then lower index (the documented tie rule).
template <class T>
using Candidate = std::pair<T, int64_t>;

template <class T>
bool better(const Candidate<T>& a, const Candidate<T>& b) {
  return a.first > b.first || (a.first == b.first && a.second < b.second);
}

// similarities: (rows, n) row-major. For every row: the k best candidates by a size-k heap
// whose front is the worst kept (one comparison rejects most of the n columns, O(n + k log k
// log n) per row), then the exp(sim / T) vote. The weights are computed as
// exp((sim - sim_max) / T): the same ratios, so the same prediction, without overflow for
// small temperatures.
template <class T>
void knn_vote_block(const T* similarities, int64_t rows, int64_t n, int64_t k, const std::vector<int64_t>& labels,
                    int64_t classes, double temperature, int64_t* predictions) {
  const auto worse_on_top = [](const Candidate<T>& a, const Candidate<T>& b) { return better(a, b); };
#pragma omp parallel
  {
    std::vector<Candidate<T>> heap;
    heap.reserve(static_cast<size_t>(k));
    std::vector<double> scores(static_cast<size_t>(classes));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const T* row = similarities + r * n;
      heap.clear();
      for (int64_t j = 0; j < n; ++j) {
        const Candidate<T> candidate{row[j], j};
        if (static_cast<int64_t>(heap.size()) < k) {
          heap.push_back(candidate);
          std::push_heap(heap.begin(), heap.end(), worse_on_top);
        } else if (better(candidate, heap.front())) {
          std::pop_heap(heap.begin(), heap.end(), worse_on_top);
          heap.back() = candidate;
          std::push_heap(heap.begin(), heap.end(), worse_on_top);
        }
      }
      double best_similarity = -INFINITY;
      for (const auto& c : heap) best_similarity = std::max(best_similarity, static_cast<double>(c.first));
      std::fill(scores.begin(), scores.end(), 0.0);
      for (const auto& c : heap) {
        scores[static_cast<size_t>(labels[static_cast<size_t>(c.second)])] +=
            std::exp((static_cast<double>(c.first) - best_similarity) / temperature);
      }
      int64_t predicted = 0;  // strict > keeps the lowest class index on a tie
      for (int64_t c = 1; c < classes; ++c) {
        if (scores[static_cast<size_t>(c)] > scores[static_cast<size_t>(predicted)]) predicted = c;
      }
      predictions[r] = predicted;
    }
  }
}

// Top-1 accuracy of a linear classifier over features in blocks, without a graph.
double linear_accuracy(const Tensor& features, const Tensor& labels, const Tensor& weight, const Tensor& bias,
                       int64_t batch_size) {
  NoGradGuard no_grad;
  const int64_t n = features.size(0);
  Tensor correct = zeros({}, TensorOptions(kInt64, features.device()));
  for (int64_t start = 0; start < n; start += batch_size) {
    const int64_t length = std::min(batch_size, n - start);
    Tensor predicted = argmax(linear(features.narrow(0, start, length), weight, bias), 1);
    correct = add(correct, sum(eq(predicted, labels.narrow(0, start, length))));
  }
  return correct.item() / static_cast<double>(n);
}

}  // namespace

// A note on the top-k: the engine has no top-k op. The similarity block is computed on the
// features' device (the O(M N D) part) and the selection on the host (O(M N)); on a GPU that
// copies 4 M N bytes in all (Fashion-MNIST: 10k x 60k -> 2.4 GB, well under a second over
// PCIe), which is fine for an evaluation that runs once per epoch. A CUDA top-k kernel would
// remove the copy; it needs a CPU twin and a parity case, and is left until it pays.
Tensor knn_classify(const Tensor& train_features, const Tensor& train_labels, const Tensor& query_features,
                    int64_t classes, const KnnOptions& options) {
  constexpr const char* kFunction = "knn_classify";
  check_features(kFunction, "train_features", train_features);
  check_features(kFunction, "query_features", query_features);
  VISREP_CHECK(train_features.size(1) == query_features.size(1),
               "knn_classify: train_features have {} dimensions but query_features have {}", train_features.size(1),
               query_features.size(1));
  VISREP_CHECK(train_features.device() == query_features.device(),
               "knn_classify: train_features are on {} but query_features are on {}", train_features.device().str(),
               query_features.device().str());
  VISREP_CHECK(classes >= 1, "knn_classify: classes must be >= 1, got {}", classes);
  VISREP_CHECK(options.k >= 1, "knn_classify: k must be >= 1, got {}", options.k);
  VISREP_CHECK(options.temperature > 0 && std::isfinite(options.temperature),
               "knn_classify: temperature must be positive and finite, got {}", options.temperature);
  VISREP_CHECK(options.query_batch_size >= 1, "knn_classify: query_batch_size must be >= 1, got {}",
               options.query_batch_size);
  const int64_t n = train_features.size(0);
  const int64_t m = query_features.size(0);
  const std::vector<int64_t> labels = checked_labels(kFunction, "train_labels", train_labels, n, classes);
  const int64_t k = std::min(options.k, n);

  NoGradGuard no_grad;
  // One dtype for both operands of the matmul: float64 only when both are.
  const bool double_precision = train_features.dtype() == kFloat64 && query_features.dtype() == kFloat64;
  const DType dtype = double_precision ? kFloat64 : kFloat32;
  const Tensor bank = l2_normalize_rows(kFunction, "train_features", train_features.to(dtype));
  const Tensor queries = l2_normalize_rows(kFunction, "query_features", query_features.to(dtype));
  const Tensor bank_transposed = bank.t();  // (D, N) view: BLAS reads it as a transpose

  Tensor predictions = empty({m}, kInt64);
  int64_t* out = predictions.data<int64_t>();
  for (int64_t start = 0; start < m; start += options.query_batch_size) {
    const int64_t rows = std::min(options.query_batch_size, m - start);
    const Tensor similarities = matmul(queries.narrow(0, start, rows), bank_transposed).cpu().contiguous();
    if (double_precision) {
      knn_vote_block(similarities.data<double>(), rows, n, k, labels, classes, options.temperature, out + start);
    } else {
      knn_vote_block(similarities.data<float>(), rows, n, k, labels, classes, options.temperature, out + start);
    }
  }
  return predictions;
}

double knn_accuracy(const Tensor& train_features, const Tensor& train_labels, const Tensor& query_features,
                    const Tensor& query_labels, int64_t classes, const KnnOptions& options,
                    distributed::Collectives* ranks) {
  const DataParallel parallel(ranks);
  if (!parallel.several()) {
    const Tensor predictions = knn_classify(train_features, train_labels, query_features, classes, options);
    const std::vector<int64_t> expected =
        checked_labels("knn_accuracy", "query_labels", query_labels, query_features.size(0), classes);
    const std::vector<int64_t> got = predictions.to_vector<int64_t>();
    int64_t correct = 0;
    for (size_t i = 0; i < got.size(); ++i) correct += got[i] == expected[i] ? 1 : 0;
    return static_cast<double>(correct) / static_cast<double>(got.size());
  }
  // This rank's share of the queries; the ranks' counts add up.
  const int64_t queries = query_features.size(0);
  VISREP_CHECK(queries >= 1, "knn_accuracy: no queries");
  const auto [begin, end] = parallel.local_range(queries);
  double correct = 0;
  if (end > begin) {
    const Tensor share = query_features.narrow(0, begin, end - begin);
    correct = knn_accuracy(train_features, train_labels, share, query_labels.narrow(0, begin, end - begin), classes,
                           options) *
              static_cast<double>(end - begin);
  }
  return std::round(parallel.sum(correct)) / static_cast<double>(queries);
}

Tensor raw_pixel_features(const Tensor& images) {
  VISREP_CHECK(images.defined(), "raw_pixel_features: images are undefined");
  VISREP_CHECK(images.dim() >= 2 && images.size(0) >= 1,
               "raw_pixel_features: images must be (N, ...) with N >= 1, got {}", images.description());
  NoGradGuard no_grad;
  Tensor flat = images.reshape({images.size(0), -1}).to(kFloat32);
  return images.dtype() == kUInt8 ? div(flat, 255.0) : flat;
}

Tensor mean_centred_pixel_features(const Tensor& images) {
  NoGradGuard no_grad;
  const Tensor pixels = raw_pixel_features(images);
  return sub(pixels, mean(pixels, {1}, /*keepdim=*/true));
}

LinearEvalResult linear_eval(const Tensor& train_features, const Tensor& train_labels, const Tensor& test_features,
                             const Tensor& test_labels, int64_t classes, const LinearEvalOptions& options) {
  constexpr const char* kFunction = "linear_eval";
  check_features(kFunction, "train_features", train_features);
  check_features(kFunction, "test_features", test_features);
  VISREP_CHECK(train_features.size(1) == test_features.size(1),
               "linear_eval: train_features have {} dimensions but test_features have {}", train_features.size(1),
               test_features.size(1));
  const Device device = train_features.device();
  for (const auto& [what, tensor] : {std::pair{"test_features", test_features}, std::pair{"train_labels", train_labels},
                                     std::pair{"test_labels", test_labels}}) {
    VISREP_CHECK(!tensor.defined() || tensor.device() == device, "linear_eval: {} are on {} but train_features on {}",
                 what, tensor.device().str(), device.str());
  }
  VISREP_CHECK(classes >= 2, "linear_eval: classes must be >= 2, got {}", classes);
  VISREP_CHECK(options.epochs >= 1, "linear_eval: epochs must be >= 1, got {}", options.epochs);
  VISREP_CHECK(options.batch_size >= 1, "linear_eval: batch_size must be >= 1, got {}", options.batch_size);
  VISREP_CHECK(options.learning_rate > 0 && std::isfinite(options.learning_rate),
               "linear_eval: learning_rate must be positive and finite, got {}", options.learning_rate);
  checked_labels(kFunction, "train_labels", train_labels, train_features.size(0), classes);
  checked_labels(kFunction, "test_labels", test_labels, test_features.size(0), classes);

  LinearEvalResult result;
  Tensor train_x = as_float(train_features).detach();
  Tensor test_x = as_float(test_features).to(train_x.dtype()).detach();
  if (options.standardize) {
    // Constant dimensions (std 0) are only centred: dividing by a clamped tiny std would blow
    // up any test feature that differs from the training constant.
    NoGradGuard no_grad;
    result.feature_mean = mean(train_x, {0});
    Tensor std = sqrt(var(train_x, {0}, /*correction=*/0));
    result.feature_std = where(gt(std, 1e-8), std, ones_like(std));
    train_x = div(sub(train_x, result.feature_mean), result.feature_std);
    test_x = div(sub(test_x, result.feature_mean), result.feature_std);
  }

  const int64_t n = train_x.size(0);
  const int64_t dimensions = train_x.size(1);
  const TensorOptions parameter_options(train_x.dtype(), device, /*requires_grad=*/true);
  Tensor weight = zeros({classes, dimensions}, parameter_options);
  Tensor bias = zeros({classes}, parameter_options);
  optim::Sgd optimizer(
      {{"weight", {weight},
        {.learning_rate = options.learning_rate, .momentum = options.momentum, .weight_decay = options.weight_decay}},
       {"bias", {bias}, {.learning_rate = options.learning_rate, .momentum = options.momentum}}});

  const int64_t steps_per_epoch = (n + options.batch_size - 1) / options.batch_size;
  const optim::WarmupCosineSchedule schedule(options.learning_rate, 0, options.epochs * steps_per_epoch);
  Generator generator(options.seed);
  int64_t step = 0;
  for (int64_t epoch = 0; epoch < options.epochs; ++epoch) {
    const Tensor order = permutation(n, device, generator);
    Tensor loss_sum = zeros({}, TensorOptions(train_x.dtype(), device));  // summed on the device: one sync per epoch
    for (int64_t start = 0; start < n; start += options.batch_size) {
      const int64_t length = std::min(options.batch_size, n - start);
      const Tensor indices = order.narrow(0, start, length);
      Tensor loss = cross_entropy(linear(index_select(train_x, 0, indices), weight, bias),
                                  index_select(train_labels, 0, indices));
      optimizer.zero_grad();
      loss.backward();
      optimizer.set_learning_rate(schedule.at(step++));
      optimizer.step();
      loss_sum = add(loss_sum, mul(loss.detach(), static_cast<double>(length)));
    }
    result.epoch_losses.push_back(loss_sum.item() / static_cast<double>(n));
  }

  result.weight = weight.detach();
  result.bias = bias.detach();
  result.train_accuracy = linear_accuracy(train_x, train_labels, result.weight, result.bias, 4096);
  result.test_accuracy = linear_accuracy(test_x, test_labels, result.weight, result.bias, 4096);
  return result;
}

// ---- an encoder's features ----------------------------------------------------------------------

data::AugmentConfig evaluation_transform(const data::AugmentConfig& training, int64_t size) {
  VISREP_CHECK(size >= 0, "evaluation_transform: size must be >= 0 (0: the training size), got {}", size);
  data::AugmentConfig transform = data::augment_preset("eval", training.height);
  transform.width = training.width;
  if (size > 0) transform.height = transform.width = size;
  transform.mean = training.mean;
  transform.std = training.std;
  return transform;
}

Tensor encode_dataset(nn::Module& encoder, const data::ImageDataset& dataset, const data::AugmentConfig& transform,
                      Device device, int64_t batch_size, distributed::Collectives* ranks) {
  VISREP_CHECK(dataset.size() > 0, "encode_dataset: the dataset is empty");
  VISREP_CHECK(batch_size >= 1, "encode_dataset: batch_size must be >= 1, got {}", batch_size);
  const DataParallel parallel(ranks);
  if (parallel.several() && dataset.size() >= parallel.size()) {
    // This rank's share, encoded here; every rank's, gathered.
    const auto [begin, end] = parallel.local_range(dataset.size());
    const data::ImageDataset share =
        data::subset(dataset, arange(static_cast<double>(begin), static_cast<double>(end), 1.0, kInt64));
    return parallel.gather_shares(encode_dataset(encoder, share, transform, device, batch_size), dataset.size());
  }
  NoGradGuard no_grad;
  const bool was_training = encoder.is_training();
  encoder.eval();
  // Images already at the output size need no resampling: scaling and normalising is all the
  // "eval" transform does to them (and it is much cheaper than running the pipeline).
  const bool same_size = dataset.height() == transform.height && dataset.width() == transform.width &&
                         transform.crop == data::CropMode::Center && transform.crop_fraction == 1.0;
  data::LoaderConfig batches{.batch_size = batch_size, .shuffle = false, .drop_last = false, .device = device};
  if (same_size) {
    batches.mean = transform.mean;
    batches.std = transform.std;
  } else {
    batches.augment = transform;  // nothing random in it: every key gives the same view
  }
  data::DataLoader loader(dataset, batches);
  loader.start_epoch(0);
  std::vector<Tensor> features;
  while (const std::optional<data::Batch> batch = loader.next()) features.push_back(encoder(batch->images));
  encoder.train(was_training);
  return features.size() == 1 ? features[0] : concat(features, 0);
}

double knn_monitor_accuracy(nn::Module& encoder, const data::ImageDataset& train_set,
                            const data::ImageDataset& test_set, const data::AugmentConfig& transform, Device device,
                            const KnnOptions& options, distributed::Collectives* ranks, SplitFeatures* features) {
  const Tensor memory_bank = encode_dataset(encoder, train_set, transform, device, 256, ranks);
  const Tensor queries = encode_dataset(encoder, test_set, transform, device, 256, ranks);
  if (features) *features = {.train = memory_bank, .test = queries};
  return knn_accuracy(memory_bank, train_set.labels, queries, test_set.labels,
                      std::max(train_set.class_count(), test_set.class_count()), options, ranks);
}

LinearEvalResult linear_eval_of_encoder(nn::Module& encoder, const data::ImageDataset& train_set,
                                        const data::ImageDataset& test_set, const data::AugmentConfig& transform,
                                        Device device, const LinearEvalOptions& options) {
  const Tensor train_features = encode_dataset(encoder, train_set, transform, device);
  const Tensor test_features = encode_dataset(encoder, test_set, transform, device);
  return linear_eval(train_features, train_set.labels.to(device), test_features, test_set.labels.to(device),
                     std::max(train_set.class_count(), test_set.class_count()), options);
}

FrozenEncoderEvaluation evaluate_frozen_encoder(nn::Module& encoder, const data::ImageDataset& train_set,
                                                const data::ImageDataset& test_set,
                                                const data::AugmentConfig& transform, Device device,
                                                const LinearEvalOptions& linear, distributed::Collectives* ranks,
                                                const SplitFeatures& computed) {
  SplitFeatures features = computed;
  if (!features.train.defined()) {
    features = {.train = encode_dataset(encoder, train_set, transform, device, 256, ranks),
                .test = encode_dataset(encoder, test_set, transform, device, 256, ranks)};
  }
  VISREP_CHECK(features.test.defined() && features.train.dim() == 2 && features.test.dim() == 2 &&
                   features.train.size(0) == train_set.size() && features.test.size(0) == test_set.size(),
               "evaluate_frozen_encoder: features computed for other datasets: {} and {} for {} training and {} "
               "test images",
               shape_string(features.train.shape()),
               features.test.defined() ? shape_string(features.test.shape()) : std::string("none"), train_set.size(),
               test_set.size());
  const Tensor& train_features = features.train;
  const Tensor& test_features = features.test;
  const int64_t classes = std::max(train_set.class_count(), test_set.class_count());
  FrozenEncoderEvaluation evaluation;
  evaluation.knn_accuracy =
      knn_accuracy(train_features, train_set.labels, test_features, test_set.labels, classes, {}, ranks);
  if (linear.epochs > 0) {
    evaluation.linear_accuracy = linear_eval(train_features, train_set.labels.to(device), test_features,
                                             test_set.labels.to(device), classes, linear)
                                     .test_accuracy;
  }
  return evaluation;
}

}  // namespace visrep::recipes
