// The data layer: the MNIST-format (IDX) reader on small files written here, raw and
// gzip-compressed, and every bad file it must reject with a message naming the file; the
// synthetic dataset (shapes, balance, seeds, separability); subset and to_float_nchw.
#include <catch2/catch.hpp>

#include <cstddef>
#include <string>
#include <vector>

#include "engine/data/dataset.h"
#include "engine/data/mnist.h"
#include "engine/data/synthetic.h"
#include "engine/ops.h"
#include "tests/support/files.h"
#include "tests/support/mnist_files.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;
using Catch::Contains;

namespace {

// Fresh random bytes (pixels, or labels when high is 10).
std::vector<uint8_t> random_bytes(int64_t count, int64_t high, Generator& generator) {
  return randint(0, high, {count}, kUInt8, generator).to_vector<uint8_t>();
}

// A random seed for the synthetic dataset, drawn from the test's own generator.
uint64_t random_seed(Generator& generator) {
  return static_cast<uint64_t>(randint(0, int64_t{1} << 31, {1}, kInt64, generator).item<int64_t>());
}

// The dataset's images as float64 vectors, one per sample.
std::vector<std::vector<double>> image_vectors(const data::ImageDataset& dataset) {
  const std::vector<double> all = dataset.images.to_vector<double>();
  const size_t per_image = all.size() / static_cast<size_t>(dataset.size());
  std::vector<std::vector<double>> images;
  for (size_t i = 0; i < static_cast<size_t>(dataset.size()); ++i) {
    images.emplace_back(all.begin() + static_cast<std::ptrdiff_t>(i * per_image),
                        all.begin() + static_cast<std::ptrdiff_t>((i + 1) * per_image));
  }
  return images;
}

double squared_distance(const std::vector<double>& a, const std::vector<double>& b) {
  double total = 0;
  for (size_t i = 0; i < a.size(); ++i) total += (a[i] - b[i]) * (a[i] - b[i]);
  return total;
}

}  // namespace

// ---- MNIST-format files -------------------------------------------------------------------------

TEST_CASE("idx images and labels raw and gzip", "[unit]") {
  // 5 images of 3 rows x 4 columns: rows != columns, so swapping them shows.
  Generator generator = generator_for("idx images and labels raw and gzip");
  const uint32_t count = 5, rows = 3, cols = 4;
  const std::vector<uint8_t> pixels = random_bytes(count * rows * cols, 256, generator);
  const std::vector<uint8_t> labels = random_bytes(count, 10, generator);
  TemporaryDirectory directory;
  for (bool gzip : {false, true}) {
    INFO("gzip " << gzip);
    const std::string images_path = directory.file(gzip ? "images.gz" : "images");
    const std::string labels_path = directory.file(gzip ? "labels.gz" : "labels");
    write_file(images_path, idx_images_bytes(count, rows, cols, pixels), gzip);
    write_file(labels_path, idx_labels_bytes(labels), gzip);
    if (gzip) REQUIRE(read_bytes(images_path).substr(0, 2) == "\x1f\x8b");  // really compressed

    const Tensor images = data::read_idx_images(images_path);
    REQUIRE(images.dtype() == kUInt8);
    REQUIRE(images.shape() == Shape{count, rows, cols, 1});
    // Row-major: pixel (n, r, c) is byte (n * rows + r) * cols + c of the data.
    REQUIRE(images.to_vector<uint8_t>() == pixels);

    const Tensor loaded_labels = data::read_idx_labels(labels_path);
    REQUIRE(loaded_labels.dtype() == kInt64);
    REQUIRE(loaded_labels.shape() == Shape{count});
    const std::vector<int64_t> label_values = loaded_labels.to_vector<int64_t>();
    for (uint32_t n = 0; n < count; ++n) REQUIRE(label_values[n] == labels[n]);
  }
}

TEST_CASE("load_mnist finds train and test files", "[unit]") {
  // The train split gzip-compressed, the test split raw: load_mnist accepts both names.
  Generator generator = generator_for("load_mnist finds train and test files");
  TemporaryDirectory directory;
  const uint32_t rows = 6, cols = 5;
  const std::vector<uint8_t> train_pixels = random_bytes(7 * rows * cols, 256, generator);
  const std::vector<uint8_t> train_labels = random_bytes(7, 10, generator);
  const std::vector<uint8_t> test_pixels = random_bytes(3 * rows * cols, 256, generator);
  const std::vector<uint8_t> test_labels = random_bytes(3, 10, generator);
  write_file(directory.file("train-images-idx3-ubyte.gz"), idx_images_bytes(7, rows, cols, train_pixels), true);
  write_file(directory.file("train-labels-idx1-ubyte.gz"), idx_labels_bytes(train_labels), true);
  write_file(directory.file("t10k-images-idx3-ubyte"), idx_images_bytes(3, rows, cols, test_pixels));
  write_file(directory.file("t10k-labels-idx1-ubyte"), idx_labels_bytes(test_labels));

  const data::ImageDataset train = data::load_mnist(directory.path().string(), true);
  REQUIRE(train.images.shape() == Shape{7, rows, cols, 1});
  REQUIRE(train.images.to_vector<uint8_t>() == train_pixels);
  REQUIRE(train.labels.to_vector<int64_t>() == std::vector<int64_t>(train_labels.begin(), train_labels.end()));
  REQUIRE(train.class_count() == 10);
  CHECK(train.class_names.front() == "T-shirt/top");  // Fashion-MNIST's classes by default
  CHECK(train.class_names.back() == "Ankle boot");

  const data::ImageDataset test = data::load_mnist(directory.path().string(), false, false);
  REQUIRE(test.size() == 3);
  REQUIRE(test.height() == rows);
  REQUIRE(test.width() == cols);
  REQUIRE(test.channels() == 1);
  REQUIRE(test.images.to_vector<uint8_t>() == test_pixels);
  REQUIRE(test.labels.to_vector<int64_t>() == std::vector<int64_t>(test_labels.begin(), test_labels.end()));
  REQUIRE(test.class_names == std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"});
}

TEST_CASE("idx bad magic", "[unit]") {
  // A label file read as images and the other way round: the magic tells them apart.
  Generator generator = generator_for("idx bad magic");
  TemporaryDirectory directory;
  const std::string images_path = directory.file("images");
  const std::string labels_path = directory.file("labels");
  write_file(images_path, idx_images_bytes(2, 4, 4, random_bytes(32, 256, generator)));
  write_file(labels_path, idx_labels_bytes(random_bytes(2, 10, generator)));
  REQUIRE_THROWS_AS(data::read_idx_images(labels_path), Error);
  REQUIRE_THROWS_WITH(data::read_idx_images(labels_path), Contains(labels_path) && Contains("magic"));
  REQUIRE_THROWS_WITH(data::read_idx_labels(images_path), Contains(images_path) && Contains("magic"));
  // Zero rows: a corrupt header, not an empty image.
  const std::string flat_path = directory.file("flat");
  write_file(flat_path, idx_images_bytes(2, 0, 4, {}));
  REQUIRE_THROWS_WITH(data::read_idx_images(flat_path), Contains(flat_path) && Contains("implausible image size 0x4"));
}

TEST_CASE("idx truncated pixels and labels", "[unit]") {
  Generator generator = generator_for("idx truncated pixels and labels");
  TemporaryDirectory directory;
  // The header promises 3 images of 4x4 = 48 bytes; one byte is missing.
  const std::string whole = idx_images_bytes(3, 4, 4, random_bytes(48, 256, generator));
  for (bool gzip : {false, true}) {
    INFO("gzip " << gzip);
    const std::string path = directory.file(gzip ? "short.gz" : "short");
    write_file(path, whole.substr(0, whole.size() - 1), gzip);
    REQUIRE_THROWS_AS(data::read_idx_images(path), Error);
    REQUIRE_THROWS_WITH(data::read_idx_images(path), Contains(path) && Contains("truncated") && Contains("47 of 48"));
  }
  // A header cut inside the row count.
  const std::string header_path = directory.file("header");
  write_file(header_path, whole.substr(0, 10));
  REQUIRE_THROWS_WITH(data::read_idx_images(header_path), Contains(header_path) && Contains("row count"));
  const std::string labels_path = directory.file("labels");
  const std::string labels = idx_labels_bytes(random_bytes(9, 10, generator));
  write_file(labels_path, labels.substr(0, labels.size() - 4));
  REQUIRE_THROWS_WITH(data::read_idx_labels(labels_path), Contains(labels_path) && Contains("5 of 9"));
}

TEST_CASE("idx truncated gzip stream", "[unit]") {
  // A gzip file cut in the middle of its compressed data (random pixels do not compress,
  // so half the file is well inside the pixels): zlib reports the broken stream.
  Generator generator = generator_for("idx truncated gzip stream");
  TemporaryDirectory directory;
  const std::string whole_path = directory.file("whole.gz");
  write_file(whole_path, idx_images_bytes(10, 8, 8, random_bytes(640, 256, generator)), true);
  const std::string compressed = read_bytes(whole_path);
  REQUIRE(compressed.size() > 600);
  const std::string path = directory.file("cut.gz");
  write_bytes(path, compressed.substr(0, compressed.size() / 2));
  REQUIRE_THROWS_AS(data::read_idx_images(path), Error);
  REQUIRE_THROWS_WITH(data::read_idx_images(path), Contains(path) && Contains("truncated or corrupt"));
  // Cut inside the last 8 bytes (the CRC-32 and the length): every pixel decompresses, but
  // the stream cannot be verified, so the file is still refused.
  write_bytes(path, compressed.substr(0, compressed.size() - 4));
  REQUIRE_THROWS_WITH(data::read_idx_images(path), Contains(path) && Contains("truncated or corrupt"));
  // A flipped bit in the stored CRC-32: the data decompresses but does not match it.
  std::string bad_crc = compressed;
  bad_crc[bad_crc.size() - 8] = static_cast<char>(bad_crc[bad_crc.size() - 8] ^ 0x01);
  write_bytes(path, bad_crc);
  REQUIRE_THROWS_WITH(data::read_idx_images(path), Contains(path) && Contains("corrupt"));
  REQUIRE(data::read_idx_images(whole_path).shape() == Shape{10, 8, 8, 1});  // the uncut file reads
}

TEST_CASE("idx data after the announced count", "[unit]") {
  // A header that announces fewer images or labels than the file holds is corrupt.
  Generator generator = generator_for("idx data after the announced count");
  TemporaryDirectory directory;
  for (bool gzip : {false, true}) {
    INFO("gzip " << gzip);
    const std::string images_path = directory.file(gzip ? "images.gz" : "images");
    write_file(images_path, idx_images_bytes(2, 3, 3, random_bytes(19, 256, generator)), gzip);
    REQUIRE_THROWS_WITH(data::read_idx_images(images_path), Contains(images_path) && Contains("more data"));
    const std::string labels_path = directory.file(gzip ? "labels.gz" : "labels");
    std::string labels = idx_labels_bytes(random_bytes(4, 10, generator));
    labels[7] = 3;  // the count byte: 3 of the 4 labels
    write_file(labels_path, labels, gzip);
    REQUIRE_THROWS_WITH(data::read_idx_labels(labels_path), Contains(labels_path) && Contains("more data"));
  }
}

TEST_CASE("mnist missing file", "[unit]") {
  TemporaryDirectory directory;
  const std::string root = directory.path().string();
  REQUIRE_THROWS_AS(data::load_mnist(root, true), Error);
  REQUIRE_THROWS_WITH(data::load_mnist(root, true), Contains(root) && Contains("train-images-idx3-ubyte"));
  REQUIRE_THROWS_WITH(data::load_mnist(root, false), Contains(root) && Contains("t10k-images-idx3-ubyte"));
  // Images present, labels missing: the message names the labels file.
  Generator generator = generator_for("mnist missing file");
  write_file(directory.file("t10k-images-idx3-ubyte"), idx_images_bytes(1, 2, 2, random_bytes(4, 256, generator)));
  REQUIRE_THROWS_WITH(data::load_mnist(root, false), Contains(root) && Contains("t10k-labels-idx1-ubyte"));
  const std::string missing = directory.file("no-such-file");
  REQUIRE_THROWS_WITH(data::read_idx_labels(missing), Contains(missing) && Contains("cannot open"));
}

TEST_CASE("mnist label out of range", "[unit]") {
  Generator generator = generator_for("mnist label out of range");
  TemporaryDirectory directory;
  std::vector<uint8_t> labels = random_bytes(6, 10, generator);
  labels[4] = 10;
  write_file(directory.file("train-images-idx3-ubyte"), idx_images_bytes(6, 2, 3, random_bytes(36, 256, generator)));
  write_file(directory.file("train-labels-idx1-ubyte"), idx_labels_bytes(labels));
  const std::string labels_path = directory.file("train-labels-idx1-ubyte");
  REQUIRE_THROWS_AS(data::load_mnist(directory.path().string(), true), Error);
  REQUIRE_THROWS_WITH(data::load_mnist(directory.path().string(), true),
                      Contains(labels_path) && Contains("label 10 at index 4"));
}

TEST_CASE("mnist images and labels count mismatch", "[unit]") {
  Generator generator = generator_for("mnist images and labels count mismatch");
  TemporaryDirectory directory;
  write_file(directory.file("train-images-idx3-ubyte"), idx_images_bytes(6, 2, 3, random_bytes(36, 256, generator)));
  write_file(directory.file("train-labels-idx1-ubyte"), idx_labels_bytes(random_bytes(5, 10, generator)));
  REQUIRE_THROWS_AS(data::load_mnist(directory.path().string(), true), Error);
  REQUIRE_THROWS_WITH(data::load_mnist(directory.path().string(), true),
                      Contains(directory.file("train-images-idx3-ubyte")) && Contains("6 images") &&
                          Contains(directory.file("train-labels-idx1-ubyte")) && Contains("5 labels"));
}

// ---- synthetic data ------------------------------------------------------------------------------

TEST_CASE("synthetic dataset shapes and label balance", "[unit]") {
  Generator generator = generator_for("synthetic dataset shapes and label balance");
  const data::SyntheticConfig config{
      .count = 42, .classes = 4, .height = 5, .width = 7, .channels = 3, .seed = random_seed(generator)};
  const data::ImageDataset dataset = data::make_synthetic_dataset(config);
  REQUIRE(dataset.images.dtype() == kUInt8);
  REQUIRE(dataset.images.shape() == Shape{42, 5, 7, 3});
  REQUIRE(dataset.labels.dtype() == kInt64);
  REQUIRE(dataset.labels.shape() == Shape{42});
  REQUIRE(dataset.class_count() == 4);
  // 42 = 4 * 10 + 2: every class 10 or 11 times, never more apart than one.
  std::vector<int64_t> per_class(4, 0);
  for (int64_t label : dataset.labels.to_vector<int64_t>()) {
    REQUIRE(label >= 0);
    REQUIRE(label < 4);
    ++per_class[static_cast<size_t>(label)];
  }
  CHECK(per_class == std::vector<int64_t>{11, 11, 10, 10});
  // Not a constant image: the noise and the prototypes spread the pixel values.
  const Tensor pixels = dataset.images.to(kFloat64);
  CHECK(max(pixels).item() - min(pixels).item() > 100);

  REQUIRE_THROWS_AS(data::make_synthetic_dataset({.count = 0}), Error);
  REQUIRE_THROWS_WITH(data::make_synthetic_dataset({.noise = -1.0}), Contains("noise"));
}

TEST_CASE("synthetic dataset seeds", "[unit]") {
  Generator generator = generator_for("synthetic dataset seeds");
  const uint64_t seed = random_seed(generator);
  const data::SyntheticConfig config{.count = 24, .classes = 3, .height = 6, .width = 6, .seed = seed};
  data::SyntheticConfig other = config;
  other.seed = seed + 1;
  const data::ImageDataset a = data::make_synthetic_dataset(config);
  const data::ImageDataset b = data::make_synthetic_dataset(config);
  const data::ImageDataset c = data::make_synthetic_dataset(other);
  REQUIRE(tensor_bytes(a.images) == tensor_bytes(b.images));
  REQUIRE(a.labels.to_vector<int64_t>() == b.labels.to_vector<int64_t>());
  // Another seed: other prototypes and noise; most of the 864 pixels differ.
  const std::vector<uint8_t> first = a.images.to_vector<uint8_t>(), third = c.images.to_vector<uint8_t>();
  int64_t differing = 0;
  for (size_t i = 0; i < first.size(); ++i) differing += first[i] != third[i];
  CHECK(differing > static_cast<int64_t>(first.size()) / 2);
}

TEST_CASE("synthetic classes are separable", "[unit]") {
  // Every sample is nearer the mean of its own class than the mean of any other class:
  // what "prototype plus noise" promises, and what lets a small convnet learn it.
  Generator generator = generator_for("synthetic classes are separable");
  const data::ImageDataset dataset = data::make_synthetic_dataset(
      {.count = 120, .classes = 5, .height = 12, .width = 12, .channels = 1, .seed = random_seed(generator)});
  const std::vector<std::vector<double>> images = image_vectors(dataset);
  const std::vector<int64_t> labels = dataset.labels.to_vector<int64_t>();
  std::vector<std::vector<double>> means(5, std::vector<double>(images[0].size(), 0.0));
  std::vector<int64_t> counts(5, 0);
  for (size_t i = 0; i < images.size(); ++i) {
    ++counts[static_cast<size_t>(labels[i])];
    for (size_t p = 0; p < images[i].size(); ++p) means[static_cast<size_t>(labels[i])][p] += images[i][p];
  }
  for (size_t c = 0; c < means.size(); ++c)
    for (double& value : means[c]) value /= static_cast<double>(counts[c]);
  for (size_t i = 0; i < images.size(); ++i) {
    const auto own = static_cast<size_t>(labels[i]);
    const double own_distance = squared_distance(images[i], means[own]);
    for (size_t c = 0; c < means.size(); ++c) {
      if (c == own) continue;
      INFO("sample " << i << " of class " << own << " against class " << c);
      CHECK(own_distance < squared_distance(images[i], means[c]));
    }
  }
}

// ---- subset and to_float_nchw ----------------------------------------------------------------------

TEST_CASE("subset picks rows", "[unit]") {
  Generator generator = generator_for("subset picks rows");
  const data::ImageDataset dataset = data::make_synthetic_dataset(
      {.count = 20, .classes = 4, .height = 3, .width = 2, .channels = 2, .seed = random_seed(generator)});
  const std::vector<int64_t> rows = {17, 0, 5, 5, 19};  // out of order, one twice
  const data::ImageDataset picked = data::subset(dataset, from_vector(rows));
  REQUIRE(picked.size() == 5);
  REQUIRE(picked.images.shape() == Shape{5, 3, 2, 2});
  REQUIRE(picked.class_names == dataset.class_names);
  const std::vector<int64_t> all_labels = dataset.labels.to_vector<int64_t>();
  const std::vector<int64_t> picked_labels = picked.labels.to_vector<int64_t>();
  for (size_t i = 0; i < rows.size(); ++i) {
    INFO("row " << rows[i]);
    REQUIRE(picked_labels[i] == all_labels[static_cast<size_t>(rows[i])]);
    REQUIRE(tensor_bytes(picked.images.select(0, static_cast<int64_t>(i))) ==
            tensor_bytes(dataset.images.select(0, rows[i])));
  }
}

TEST_CASE("to_float_nchw values and normalisation", "[unit]") {
  Generator generator = generator_for("to_float_nchw values and normalisation");
  const int64_t n = 2, h = 3, w = 4, c = 3;
  const Tensor images = randint(0, 256, {n, h, w, c}, kUInt8, generator);
  const std::vector<uint8_t> bytes = images.to_vector<uint8_t>();
  auto pixel = [&](int64_t i, int64_t y, int64_t x, int64_t channel) {
    return static_cast<double>(bytes[static_cast<size_t>(((i * h + y) * w + x) * c + channel)]);
  };
  const std::vector<float> mean = {0.25f, 0.5f, 0.75f}, std = {0.5f, 0.25f, 2.0f};
  const Tensor scaled = data::to_float_nchw(images);
  const Tensor normalised = data::to_float_nchw(images, mean, std);
  for (const Tensor& out : {scaled, normalised}) {
    REQUIRE(out.dtype() == kFloat32);
    REQUIRE(out.shape() == Shape{n, c, h, w});
  }
  const std::vector<double> s = scaled.to_vector<double>(), z = normalised.to_vector<double>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t channel = 0; channel < c; ++channel)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x) {
          const size_t flat = static_cast<size_t>(((i * c + channel) * h + y) * w + x);
          const double unit = pixel(i, y, x, channel) / 255.0;
          REQUIRE(s[flat] == Approx(unit).margin(1e-7));
          REQUIRE(z[flat] == Approx((unit - mean[channel]) / std[channel]).margin(1e-6));
        }
}

TEST_CASE("to_float_nchw bad input", "[unit]") {
  Generator generator = generator_for("to_float_nchw bad input");
  const Tensor images = randint(0, 256, {2, 3, 3, 2}, kUInt8, generator);
  REQUIRE_THROWS_WITH(data::to_float_nchw(images.select(0, 0)), Contains("to_float_nchw") && Contains("[3, 3, 2]"));
  REQUIRE_THROWS_WITH(data::to_float_nchw(images.to(kFloat32)), Contains("to_float_nchw") && Contains("float32"));
  REQUIRE_THROWS_WITH(data::to_float_nchw(images, {0.5f}, {0.5f}), Contains("1 means") && Contains("2 channels"));
  REQUIRE_THROWS_WITH(data::to_float_nchw(images, {0.5f, 0.5f}, {0.5f}), Contains("2 means") && Contains("1 stds"));
}
