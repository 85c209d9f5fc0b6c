// The evaluation recipes on frozen features: the weighted kNN classifier on cases worked
// out by hand and against a brute-force reference, its tie rules and bad input; the linear
// probe on a linearly separable set; raw-pixel kNN on a tiny synthetic image set and the
// mean-centred pixels on one worked out by hand.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/data/augment.h"
#include "engine/data/synthetic.h"
#include "engine/device.h"
#include "engine/ops.h"
#include "recipes/evaluation.h"
#include "tests/support/test_data.h"

using namespace visrep;
using Catch::Matchers::Contains;

namespace {

Tensor features(const std::vector<double>& values, int64_t dimensions, DType dtype = kFloat32) {
  return from_vector(values, {static_cast<int64_t>(values.size()) / dimensions, dimensions}).to(dtype);
}

Tensor labels(const std::vector<int64_t>& values) { return from_vector(values); }

std::vector<int64_t> predict(const Tensor& train, const Tensor& train_labels, const Tensor& queries, int64_t classes,
                             const recipes::KnnOptions& options) {
  return recipes::knn_classify(train, train_labels, queries, classes, options).to_vector<int64_t>();
}

// InstDisc's weighted kNN written out the slow way: cosine similarity in double, a full
// sort by (similarity desc, index asc), exp(sim / T) votes, lowest class on a tie.
std::vector<int64_t> brute_force_knn(const Tensor& train, const std::vector<int64_t>& train_labels,
                                     const Tensor& queries, int64_t classes, int64_t k, double temperature) {
  const int64_t n = train.size(0), m = queries.size(0), d = train.size(1);
  const std::vector<double> x = train.to_vector<double>(), q = queries.to_vector<double>();
  auto norm = [&](const std::vector<double>& v, int64_t row) {
    double s = 0;
    for (int64_t j = 0; j < d; ++j) s += v[row * d + j] * v[row * d + j];
    return std::sqrt(s);
  };
  std::vector<int64_t> out;
  for (int64_t i = 0; i < m; ++i) {
    std::vector<std::pair<double, int64_t>> sims;
    for (int64_t r = 0; r < n; ++r) {
      double dot = 0;
      for (int64_t j = 0; j < d; ++j) dot += q[i * d + j] * x[r * d + j];
      sims.emplace_back(dot / (norm(q, i) * norm(x, r)), r);
    }
    std::sort(sims.begin(), sims.end(), [](const auto& a, const auto& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    });
    std::vector<double> scores(classes, 0.0);
    for (int64_t j = 0; j < std::min(k, n); ++j) {
      scores[train_labels[sims[j].second]] += std::exp(sims[j].first / temperature);
    }
    out.push_back(std::max_element(scores.begin(), scores.end()) - scores.begin());  // first maximum
  }
  return out;
}

}  // namespace

TEST_CASE("knn on two clusters by hand", "[unit]") {
  // Class 0 points near the x axis, class 1 near the y axis.
  const Tensor train = features({1.0, 0.0, 1.0, 0.1, 0.9, -0.1, 0.0, 1.0, 0.1, 1.0, -0.1, 0.9}, 2);
  const Tensor train_labels = labels({0, 0, 0, 1, 1, 1});
  const Tensor queries = features({2.0, 0.1, 0.05, 3.0, -0.2, 1.0}, 2);
  for (int64_t k : {1, 3, 6}) {
    INFO("k " << k);
    REQUIRE(predict(train, train_labels, queries, 2, {.k = k}) == std::vector<int64_t>{0, 1, 1});
  }
}

TEST_CASE("knn weights neighbours by exp(similarity / temperature)", "[unit]") {
  // Query (1, 0). Neighbours by cosine similarity: a (1, 0) class 1 at 1.0; b (0.8, 0.6) and
  // c (0.8, -0.6) class 0 at 0.8 each; d (-1, 0) class 1 at -1, outside k = 3.
  const Tensor train = features({1.0, 0.0, 0.8, 0.6, 0.8, -0.6, -1.0, 0.0}, 2);
  const Tensor train_labels = labels({1, 0, 0, 1});
  const Tensor query = features({1.0, 0.0}, 2);
  // T = 0.1: class 1 gets e^10 = 22026, class 0 gets 2 e^8 = 5962 -> the single closer neighbour wins.
  REQUIRE(predict(train, train_labels, query, 2, {.k = 3, .temperature = 0.1}) == std::vector<int64_t>{1});
  // T = 10: class 1 gets e^0.1 = 1.105, class 0 gets 2 e^0.08 = 2.167 -> the majority wins.
  REQUIRE(predict(train, train_labels, query, 2, {.k = 3, .temperature = 10.0}) == std::vector<int64_t>{0});
  // k = 4 adds d (class 1) at e^(-1/T): tiny at T = 0.1, so still class 1.
  REQUIRE(predict(train, train_labels, query, 2, {.k = 4, .temperature = 0.1}) == std::vector<int64_t>{1});
  // Scaling a feature does not change a cosine similarity.
  const Tensor scaled = features({5.0, 0.0, 0.08, 0.06, 8.0, -6.0, -0.5, 0.0}, 2);
  REQUIRE(predict(scaled, train_labels, query, 2, {.k = 3, .temperature = 0.1}) == std::vector<int64_t>{1});
}

TEST_CASE("knn tie rules: lower training index, then lower class", "[unit]") {
  // b (0.8, 0.6) class 1 and c (0.8, -0.6) class 0 are exactly as similar to (1, 0).
  const Tensor train = features({0.8, 0.6, 0.8, -0.6}, 2);
  const Tensor query = features({1.0, 0.0}, 2);
  // k = 1: the tie at the k-th place goes to the lower training index (b, class 1).
  REQUIRE(predict(train, labels({1, 0}), query, 2, {.k = 1}) == std::vector<int64_t>{1});
  REQUIRE(predict(train, labels({0, 1}), query, 2, {.k = 1}) == std::vector<int64_t>{0});
  // k = 2: one equal vote each, the class tie goes to the lower class index.
  REQUIRE(predict(train, labels({1, 0}), query, 3, {.k = 2}) == std::vector<int64_t>{0});
  REQUIRE(predict(train, labels({2, 1}), query, 3, {.k = 2}) == std::vector<int64_t>{1});
}

TEST_CASE("knn matches a brute-force reference in every query batching", "[unit]") {
  Generator generator = testing::generator_for("knn brute force");
  const int64_t n = 120, m = 37, d = 6, classes = 5;
  const Tensor train = testing::random_normal({n, d}, generator);
  const Tensor queries = testing::random_normal({m, d}, generator);
  const Tensor train_labels = randint(0, classes, {n}, kInt64, generator);
  const std::vector<int64_t> label_values = train_labels.to_vector<int64_t>();
  for (int64_t k : {1, 10, 200}) {
    const std::vector<int64_t> expected = brute_force_knn(train, label_values, queries, classes, k, 0.1);
    for (int64_t batch : {1, 7, 1000}) {
      INFO("k " << k << " query batch " << batch);
      REQUIRE(predict(train, train_labels, queries, classes, {.k = k, .query_batch_size = batch}) == expected);
    }
  }
  // float32 features agree too (no near-ties in random data at this size).
  const std::vector<int64_t> expected = brute_force_knn(train, label_values, queries, classes, 10, 0.1);
  REQUIRE(predict(train.to(kFloat32), train_labels, queries.to(kFloat32), classes, {.k = 10}) == expected);
}

TEST_CASE("knn clamps k to the training set size", "[unit]") {
  const Tensor train = features({1.0, 0.0, 0.0, 1.0, 1.0, 0.2}, 2);
  const Tensor train_labels = labels({0, 1, 0});
  const Tensor queries = features({1.0, 0.1, 0.1, 1.0}, 2);
  REQUIRE(predict(train, train_labels, queries, 2, {.k = 200}) == predict(train, train_labels, queries, 2, {.k = 3}));
}

TEST_CASE("knn accuracy counts correct predictions", "[unit]") {
  const Tensor train = features({1.0, 0.0, 0.0, 1.0}, 2);
  const Tensor train_labels = labels({0, 1});
  const Tensor queries = features({1.0, 0.1, 0.1, 1.0, 0.9, 0.0, 0.0, 2.0}, 2);
  REQUIRE(recipes::knn_accuracy(train, train_labels, queries, labels({0, 1, 1, 1}), 2, {.k = 1}) == 0.75);
}

TEST_CASE("knn rejects bad input, naming it", "[unit]") {
  const Tensor train = features({1.0, 0.0, 0.0, 1.0, 1.0, 1.0}, 2);
  const Tensor train_labels = labels({0, 1, 1});
  const Tensor queries = features({1.0, 0.0}, 2);
  auto knn = [&](const Tensor& t, const Tensor& l, const Tensor& q, int64_t classes, recipes::KnnOptions o = {}) {
    return recipes::knn_classify(t, l, q, classes, o);
  };
  REQUIRE_THROWS_WITH(knn(train, train_labels, features({1.0, 0.0, 0.0}, 3), 2),
                      Contains("train_features have 2 dimensions but query_features have 3"));
  REQUIRE_THROWS_WITH(knn(train, labels({0, 1}), queries, 2),
                      Contains("train_labels has 2 entries") && Contains("3 rows"));
  REQUIRE_THROWS_WITH(knn(train, labels({0, 1, 2}), queries, 2), Contains("train_labels[2] = 2 is outside [0, 2)"));
  REQUIRE_THROWS_WITH(knn(train, train_labels.to(kFloat32), queries, 2), Contains("train_labels must be int64"));
  REQUIRE_THROWS_WITH(knn(from_vector(std::vector<float>{1, 2, 3}), train_labels, queries, 2),
                      Contains("train_features must be 2-D"));
  REQUIRE_THROWS_WITH(knn(train, train_labels, labels({1, 2}).reshape({1, 2}), 2),
                      Contains("query_features must be floating point"));
  REQUIRE_THROWS_WITH(knn(train, train_labels, queries, 2, {.k = 0}), Contains("k must be >= 1"));
  REQUIRE_THROWS_WITH(knn(train, train_labels, queries, 2, {.temperature = 0.0}), Contains("temperature"));
  REQUIRE_THROWS_WITH(knn(train, train_labels, queries, 0), Contains("classes must be >= 1"));
  REQUIRE_THROWS_WITH(knn(train, train_labels, features({1.0, std::nan("")}, 2), 2),
                      Contains("query_features row 0 contains NaN or Inf"));
}

TEST_CASE("raw-pixel knn separates a tiny synthetic image set", "[unit]") {
  const data::ImageDataset dataset =
      data::make_synthetic_dataset({.count = 160, .classes = 4, .height = 8, .width = 8, .seed = 3});
  const Tensor pixels = recipes::raw_pixel_features(dataset.images);
  REQUIRE(pixels.shape() == Shape{160, 64});
  REQUIRE(pixels.dtype() == kFloat32);
  REQUIRE(max(pixels).item() <= 1.0);
  // The first 120 images are the memory bank, the last 40 the queries.
  const double accuracy = recipes::knn_accuracy(pixels.narrow(0, 0, 120), dataset.labels.narrow(0, 0, 120),
                                                pixels.narrow(0, 120, 40), dataset.labels.narrow(0, 120, 40), 4,
                                                {.k = 20});
  REQUIRE(accuracy >= 0.95);
}

TEST_CASE("mean-centred pixels subtract each image's own mean and change the kNN answer", "[unit]") {
  // Three 2x2 uint8 images: class 0 is bright at pixel 0, class 1 at pixel 3; the query is
  // class 1's pattern on a bright background. Worked out by hand:
  //   plain cosine: q = (10, 10, 10, 11) against (2, 1, 1, 1) gives 51 / (20.52 x 2.646) = 0.94,
  //   against (0, 0, 0, 1) 11 / 20.52 = 0.54, so the nearest neighbour is class 0 (wrong);
  //   centred: q - 10.25 = (-1, -1, -1, 3) / 4 is exactly (0, 0, 0, 1) - 0.25, cosine 1, and
  //   (2, 1, 1, 1) - 1.25 = (3, -1, -1, -1) / 4 has cosine -1/3: class 1 (right).
  const Tensor images = from_vector(std::vector<double>{2, 1, 1, 1, 0, 0, 0, 1, 10, 10, 10, 11}, {3, 1, 2, 2}).to(kUInt8);
  const Tensor centred = recipes::mean_centred_pixel_features(images);
  REQUIRE(centred.shape() == Shape{3, 4});
  REQUIRE(centred.dtype() == kFloat32);
  const std::vector<double> expected = {0.75, -0.25, -0.25, -0.25, -0.25, -0.25, -0.25, 0.75, -0.25, -0.25, -0.25, 0.75};
  const std::vector<float> got = centred.to_vector<float>();
  for (size_t i = 0; i < expected.size(); ++i) {
    INFO("element " << i);
    REQUIRE(got[i] == Approx(expected[i] / 255.0).margin(1e-7));
  }
  const Tensor train_labels = labels({0, 1}), query_labels = labels({1});
  const Tensor plain = recipes::raw_pixel_features(images);
  REQUIRE(recipes::knn_accuracy(plain.narrow(0, 0, 2), train_labels, plain.narrow(0, 2, 1), query_labels, 2,
                                {.k = 1}) == 0.0);
  REQUIRE(recipes::knn_accuracy(centred.narrow(0, 0, 2), train_labels, centred.narrow(0, 2, 1), query_labels, 2,
                                {.k = 1}) == 1.0);
}

namespace {

// Three Gaussian blobs in 8 dimensions, centres 4 apart along three axes, std 0.3, with an
// offset and scale that standardizing removes: linearly separable with a wide margin.
void make_blobs(int64_t count, Generator& generator, Tensor& x, Tensor& y) {
  y = randint(0, 3, {count}, kInt64, generator);
  Tensor centres = zeros({3, 8}, kFloat32);
  centres.select(0, 0).select(0, 0).fill_(4.0);
  centres.select(0, 1).select(0, 1).fill_(4.0);
  centres.select(0, 2).select(0, 2).fill_(4.0);
  x = add(mul(add(index_select(centres, 0, y), testing::random_normal({count, 8}, generator, kFloat32) * 0.3), 10.0),
          5.0);
}

}  // namespace

TEST_CASE("evaluation_transform keeps the training size's crop and resizes to the size asked", "[unit]") {
  data::AugmentConfig small_views = data::augment_preset("simclr", 28);
  small_views.mean = {0.25f};
  small_views.std = {0.5f};
  // The training size: the eval preset's whole image at 32 px and below, its normalisation.
  const data::AugmentConfig same = recipes::evaluation_transform(small_views);
  CHECK(same.height == 28);
  CHECK(same.width == 28);
  CHECK(same.crop == data::CropMode::Center);
  CHECK(same.crop_fraction == 1.0);
  CHECK(same.flip_probability == 0.0);
  CHECK(same.jitter_probability == 0.0);
  CHECK(same.mean == std::vector<float>{0.25f});
  CHECK(same.std == std::vector<float>{0.5f});
  // Upsampled to 42 px: still the whole image (the crop follows the training size, not the
  // output size, where the eval preset alone would take its 87.5% crop).
  const data::AugmentConfig larger = recipes::evaluation_transform(small_views, 42);
  CHECK(larger.height == 42);
  CHECK(larger.width == 42);
  CHECK(larger.crop_fraction == 1.0);
  CHECK(data::augment_preset("eval", 42).crop_fraction == 0.875);
  CHECK(larger.mean == same.mean);
  // Views above 32 px keep the 87.5% central crop at any evaluation size.
  CHECK(recipes::evaluation_transform(data::augment_preset("simclr", 64), 96).crop_fraction == 0.875);
  CHECK(recipes::evaluation_transform(data::augment_preset("simclr", 64), 96).height == 96);
  REQUIRE_THROWS_WITH(recipes::evaluation_transform(small_views, -1), Contains("size must be >= 0"));
}

TEST_CASE("linear eval separates a linearly separable set", "[unit]") {
  Generator generator = testing::generator_for("linear eval blobs");
  Tensor train_x, train_y, test_x, test_y;
  make_blobs(300, generator, train_x, train_y);
  make_blobs(90, generator, test_x, test_y);
  for (bool standardize : {true, false}) {
    INFO("standardize " << standardize);
    const recipes::LinearEvalResult result = recipes::linear_eval(
        train_x, train_y, test_x, test_y, 3,
        {.epochs = 10, .batch_size = 32, .learning_rate = standardize ? 0.1 : 0.001, .standardize = standardize,
         .seed = 1});
    REQUIRE(result.epoch_losses.size() == 10);
    CHECK(result.epoch_losses.back() < result.epoch_losses.front());
    CHECK(result.train_accuracy >= 0.99);
    CHECK(result.test_accuracy >= 0.97);
    REQUIRE(result.weight.shape() == Shape{3, 8});
    REQUIRE(result.bias.shape() == Shape{3});
    REQUIRE(result.feature_mean.defined() == standardize);
  }
  // The same seed gives the same run; zero-initialised weights leave nothing else to chance.
  const recipes::LinearEvalOptions options{.epochs = 2, .batch_size = 50, .seed = 7};
  const auto a = recipes::linear_eval(train_x, train_y, test_x, test_y, 3, options);
  const auto b = recipes::linear_eval(train_x, train_y, test_x, test_y, 3, options);
  REQUIRE(a.epoch_losses == b.epoch_losses);
  REQUIRE(a.weight.to_vector<double>() == b.weight.to_vector<double>());
}

TEST_CASE("linear eval standardizing leaves constant dimensions finite", "[unit]") {
  Generator generator = testing::generator_for("linear eval constant");
  Tensor x, y;
  make_blobs(60, generator, x, y);
  x.select(1, 7).fill_(2.0);  // a dead feature
  Tensor test_x = x.clone();
  test_x.select(1, 7).fill_(3.0);  // ... that differs at test time
  const auto result = recipes::linear_eval(x, y, test_x, y, 3, {.epochs = 3, .batch_size = 16});
  REQUIRE(result.feature_std.to_vector<double>()[7] == 1.0);
  REQUIRE(result.test_accuracy >= 0.95);
}

TEST_CASE("linear eval rejects bad input, naming it", "[unit]") {
  const Tensor x = features({1.0, 0.0, 0.0, 1.0}, 2);
  const Tensor y = labels({0, 1});
  REQUIRE_THROWS_WITH(recipes::linear_eval(x, y, features({1.0, 0.0, 0.0}, 3), labels({0}), 2),
                      Contains("train_features have 2 dimensions but test_features have 3"));
  REQUIRE_THROWS_WITH(recipes::linear_eval(x, labels({0, 5}), x, y, 2), Contains("train_labels[1] = 5"));
  REQUIRE_THROWS_WITH(recipes::linear_eval(x, y, x, labels({0}), 2), Contains("test_labels has 1 entries"));
  REQUIRE_THROWS_WITH(recipes::linear_eval(x, y, x, y, 1), Contains("classes must be >= 2"));
  REQUIRE_THROWS_WITH(recipes::linear_eval(x, y, x, y, 2, {.epochs = 0}), Contains("epochs must be >= 1"));
  REQUIRE_THROWS_WITH(recipes::linear_eval(x, y, x, y, 2, {.batch_size = 0}), Contains("batch_size must be >= 1"));
  REQUIRE_THROWS_WITH(recipes::linear_eval(x, y, x, y, 2, {.learning_rate = -1}), Contains("learning_rate"));
}

TEST_CASE("knn and linear eval agree on cuda", "[unit]") {
  if (!cuda_available()) {
    SUCCEED("no GPU: the CUDA half of this check is skipped");
    return;
  }
  Generator generator = testing::generator_for("evaluation cuda");
  Tensor train_x, train_y, test_x, test_y;
  make_blobs(200, generator, train_x, train_y);
  make_blobs(50, generator, test_x, test_y);
  const Device cuda = Device::cuda();
  REQUIRE(predict(train_x.to(cuda), train_y.to(cuda), test_x.to(cuda), 3, {.k = 20}) ==
          predict(train_x, train_y, test_x, 3, {.k = 20}));
  const recipes::LinearEvalOptions options{.epochs = 3, .batch_size = 32};
  const auto on_cpu = recipes::linear_eval(train_x, train_y, test_x, test_y, 3, options);
  const auto on_cuda =
      recipes::linear_eval(train_x.to(cuda), train_y.to(cuda), test_x.to(cuda), test_y.to(cuda), 3, options);
  for (size_t i = 0; i < on_cpu.epoch_losses.size(); ++i) {
    REQUIRE(on_cuda.epoch_losses[i] == Approx(on_cpu.epoch_losses[i]).epsilon(1e-4));
  }
  REQUIRE(on_cuda.test_accuracy == on_cpu.test_accuracy);
  REQUIRE_THROWS_WITH(recipes::knn_classify(train_x.to(cuda), train_y, test_x, 3), Contains("are on"));
}
