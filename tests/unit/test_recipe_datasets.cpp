// recipes/datasets.h: one --data folder, the format found from what it holds (MNIST-format
// files, CIFAR-10 / CIFAR-100 binary batches, an image folder with or without train/ and
// test/), limits applied, and a folder holding none of them named in the error. Also the
// encoder form of SmallConvNet (classes = 0) that the recipe binaries train on the CPU.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <stb/stb_image_write.h>

#include <filesystem>
#include <string>
#include <vector>

#include "engine/data/synthetic.h"
#include "engine/ops.h"
#include "models/small_convnet.h"
#include "recipes/datasets.h"
#include "tests/support/files.h"
#include "tests/support/mnist_files.h"

using namespace visrep;
using namespace visrep::testing;
using Catch::Contains;
namespace fs = std::filesystem;

namespace {

// n CIFAR records with labels 0, 1, 2, ... and constant pixels.
std::string cifar_records(int n, int label_bytes) {
  std::string bytes;
  for (int i = 0; i < n; ++i) {
    for (int b = 0; b < label_bytes; ++b) bytes.push_back(static_cast<char>(i % 10));
    bytes.append(3072, static_cast<char>(i));
  }
  return bytes;
}

void write_gray_png(const fs::path& path, uint8_t value) {
  fs::create_directories(path.parent_path());
  const std::vector<uint8_t> pixels(8 * 8, value);
  REQUIRE(stbi_write_png(path.string().c_str(), 8, 8, 1, pixels.data(), 8) != 0);
}

}  // namespace

TEST_CASE("load_dataset finds MNIST-format files and applies the limits", "[unit]") {
  TemporaryDirectory directory;
  const data::ImageDataset all = data::make_synthetic_dataset({.count = 17, .height = 28, .width = 28});
  write_mnist_split(directory.path().string(), true, data::subset(all, arange(0.0, 12.0, 1.0, kInt64)));
  write_mnist_split(directory.path().string(), false, data::subset(all, arange(12.0, 17.0, 1.0, kInt64)), true);
  recipes::DatasetOptions options;
  options.train_limit = 7;
  const recipes::DatasetPair pair = recipes::load_dataset(directory.path().string(), options);
  REQUIRE(pair.name == "fashion-mnist");
  REQUIRE(pair.train.size() == 7);
  REQUIRE(pair.test.size() == 5);
  REQUIRE(pair.train.channels() == 1);
  REQUIRE_THAT(recipes::describe(pair, "x"), Contains("7 train / 5 test images of 28x28x1"));
  options.digits = true;
  REQUIRE(recipes::load_dataset(directory.path().string(), options).name == "mnist");
}

TEST_CASE("load_dataset finds CIFAR-10 and CIFAR-100 in the folder or its parent", "[unit]") {
  TemporaryDirectory directory;
  const fs::path cifar10 = directory.path() / "c10" / "cifar-10-batches-bin";
  fs::create_directories(cifar10);
  for (int b = 1; b <= 5; ++b) write_bytes((cifar10 / fmt::format("data_batch_{}.bin", b)).string(), cifar_records(2, 1));
  write_bytes((cifar10 / "test_batch.bin").string(), cifar_records(3, 1));
  for (const fs::path& root : {cifar10, cifar10.parent_path()}) {
    const recipes::DatasetPair pair = recipes::load_dataset(root.string());
    REQUIRE(pair.name == "cifar10");
    REQUIRE(pair.train.size() == 10);
    REQUIRE(pair.test.size() == 3);
  }
  const fs::path cifar100 = directory.path() / "c100" / "cifar-100-binary";
  fs::create_directories(cifar100);
  write_bytes((cifar100 / "train.bin").string(), cifar_records(4, 2));
  write_bytes((cifar100 / "test.bin").string(), cifar_records(2, 2));
  const recipes::DatasetPair pair = recipes::load_dataset(cifar100.parent_path().string());
  REQUIRE(pair.name == "cifar100");
  REQUIRE(pair.train.size() == 4);
  REQUIRE(pair.train.channels() == 3);
}

TEST_CASE("load_dataset reads image folders, split by train/test or by a seeded share", "[unit]") {
  TemporaryDirectory directory;
  const fs::path split = directory.path() / "split";
  for (const char* part : {"train", "test"}) {
    for (const char* label : {"cat", "dog"}) write_gray_png(split / part / label / "a.png", 10);
  }
  write_gray_png(split / "train" / "cat" / "b.png", 20);
  recipes::DatasetPair pair = recipes::load_dataset(split.string());
  REQUIRE(pair.name == "image folder");
  REQUIRE(pair.train.size() == 3);
  REQUIRE(pair.test.size() == 2);
  REQUIRE(pair.train.class_names == std::vector<std::string>{"cat", "dog"});

  const fs::path flat = directory.path() / "flat";
  for (int i = 0; i < 10; ++i) write_gray_png(flat / (i % 2 ? "a" : "b") / fmt::format("{}.png", i), uint8_t(i));
  recipes::DatasetOptions options;
  options.folder_test_fraction = 0.3;
  pair = recipes::load_dataset(flat.string(), options);
  REQUIRE(pair.train.size() == 7);
  REQUIRE(pair.test.size() == 3);

  // Different class folders under train/ and test/ are refused by name.
  write_gray_png(split / "test" / "bird" / "a.png", 5);
  REQUIRE_THROWS_WITH(recipes::load_dataset(split.string()), Contains("class folders") && Contains("test"));
}

TEST_CASE("load_dataset names a folder it cannot use", "[unit]") {
  TemporaryDirectory directory;
  REQUIRE_THROWS_WITH(recipes::load_dataset((directory.path() / "missing").string()),
                      Contains("--data") && Contains("missing") && Contains("not a folder"));
  // An empty folder is no image folder either: the reader names it.
  REQUIRE_THROWS_WITH(recipes::load_dataset(directory.path().string()), Contains(directory.path().string()));
}

TEST_CASE("SmallConvNet with classes = 0 is an encoder of 4 x width features", "[unit]") {
  models::SmallConvNet encoder({.in_channels = 1, .classes = 0, .width = 4});
  REQUIRE(encoder.feature_dim() == 16);
  REQUIRE(encoder.classifier == nullptr);
  Generator generator(3);
  const Tensor features = encoder.forward(randn({2, 1, 16, 16}, kFloat32, generator));
  REQUIRE(features.shape() == Shape{2, 16});
  REQUIRE_THROWS_WITH(models::SmallConvNet({.classes = -1}), Contains("classes"));
}
