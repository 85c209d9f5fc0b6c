// The dataset readers on files written here: CIFAR-10/100 binary batches (and truncated or
// mislabelled ones), image folders of PNG and JPEG files written with stb (classes sorted,
// grayscale expanded, resized, bad files refused by name or skipped with a count), and the
// seeded train/validation split and few-shot subsets.
#include <catch2/catch.hpp>

#include <stb/stb_image_write.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "engine/data/cifar.h"
#include "engine/data/dataset.h"
#include "engine/data/image_folder.h"
#include "engine/ops.h"
#include "tests/support/files.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::data;
using namespace visrep::testing;
using Catch::Contains;

namespace {

std::vector<uint8_t> random_bytes(int64_t count, Generator& generator) {
  return randint(0, 256, {count}, kUInt8, generator).to_vector<uint8_t>();
}

// A CIFAR batch file: each record is its label byte(s) and 3072 pixel bytes (R, G, B planes).
std::string cifar_bytes(const std::vector<std::vector<uint8_t>>& labels, const std::vector<uint8_t>& planes) {
  std::string bytes;
  for (size_t n = 0; n < labels.size(); ++n) {
    for (uint8_t label : labels[n]) bytes.push_back(static_cast<char>(label));
    bytes.append(reinterpret_cast<const char*>(planes.data()) + n * 3072, 3072);
  }
  return bytes;
}

void write_png(const std::string& path, int width, int height, int channels, const std::vector<uint8_t>& pixels) {
  REQUIRE(stbi_write_png(path.c_str(), width, height, channels, pixels.data(), width * channels) != 0);
}

}  // namespace

// ---- CIFAR --------------------------------------------------------------------------------------

TEST_CASE("cifar-10 batch: planes become HWC pixels", "[unit]") {
  Generator generator = generator_for("cifar-10 batch");
  const std::vector<uint8_t> planes = random_bytes(3 * 3072, generator);
  TemporaryDirectory directory;
  const std::string path = directory.file("data_batch_1.bin");
  write_bytes(path, cifar_bytes({{3}, {0}, {9}}, planes));
  const ImageDataset batch = read_cifar_batch(path, CifarFormat::Cifar10);
  REQUIRE(batch.images.shape() == Shape{3, 32, 32, 3});
  REQUIRE(batch.labels.to_vector<int64_t>() == std::vector<int64_t>{3, 0, 9});
  const std::vector<uint8_t> pixels = batch.images.to_vector<uint8_t>();
  for (int64_t n = 0; n < 3; ++n)
    for (int64_t i = 0; i < 1024; ++i)
      for (int64_t c = 0; c < 3; ++c) REQUIRE(pixels[(n * 1024 + i) * 3 + c] == planes[n * 3072 + c * 1024 + i]);
}

TEST_CASE("cifar-10 and cifar-100 folders", "[unit]") {
  Generator generator = generator_for("cifar folders");
  TemporaryDirectory directory;
  const auto folder10 = directory.path() / "cifar-10-batches-bin";
  std::filesystem::create_directories(folder10);
  for (int b = 1; b <= 5; ++b) {
    write_bytes((folder10 / ("data_batch_" + std::to_string(b) + ".bin")).string(),
                cifar_bytes({{static_cast<uint8_t>(b)}, {static_cast<uint8_t>(b + 1)}}, random_bytes(2 * 3072, generator)));
  }
  write_bytes((folder10 / "test_batch.bin").string(), cifar_bytes({{7}}, random_bytes(3072, generator)));
  // The parent folder or the batch folder itself; class names from the standard list.
  const ImageDataset train = load_cifar10(directory.path().string(), true);
  REQUIRE(train.size() == 10);
  REQUIRE(train.labels.to_vector<int64_t>() == std::vector<int64_t>{1, 2, 2, 3, 3, 4, 4, 5, 5, 6});
  REQUIRE(train.class_names.front() == "airplane");
  const ImageDataset test = load_cifar10(folder10.string(), false);
  REQUIRE(test.size() == 1);
  REQUIRE(test.class_names.size() == 10);

  const auto folder100 = directory.path() / "cifar-100-binary";
  std::filesystem::create_directories(folder100);
  write_bytes((folder100 / "train.bin").string(), cifar_bytes({{4, 99}, {19, 0}}, random_bytes(2 * 3072, generator)));
  std::string names;
  for (int i = 0; i < 100; ++i) names += "fine" + std::to_string(i) + "\n";
  write_bytes((folder100 / "fine_label_names.txt").string(), names);
  const ImageDataset fine = load_cifar100(directory.path().string(), true);
  REQUIRE(fine.labels.to_vector<int64_t>() == std::vector<int64_t>{99, 0});
  REQUIRE(fine.class_names[99] == "fine99");
  const ImageDataset coarse = load_cifar100(directory.path().string(), true, true);
  REQUIRE(coarse.labels.to_vector<int64_t>() == std::vector<int64_t>{4, 19});
  REQUIRE(coarse.class_names.size() == 20);  // no coarse names file: the numbers
  REQUIRE_THROWS_WITH(load_cifar100(directory.path().string(), false), Contains("test.bin") && Contains("cifar-100-binary"));
}

TEST_CASE("cifar bad files", "[unit]") {
  Generator generator = generator_for("cifar bad files");
  const std::string whole = cifar_bytes({{1}, {2}}, random_bytes(2 * 3072, generator));
  require_rejected([](const std::string& path) { return read_cifar_batch(path, CifarFormat::Cifar10); }, "cut.bin",
                   whole.substr(0, whole.size() - 100), "truncated");
  require_rejected([](const std::string& path) { return read_cifar_batch(path, CifarFormat::Cifar10); }, "empty.bin",
                   "", "empty");
  // A CIFAR-10 file read as CIFAR-100 (3073-byte records in 3074-byte steps) does not divide.
  require_rejected([](const std::string& path) { return read_cifar_batch(path, CifarFormat::Cifar100Fine); },
                   "ten.bin", whole, "not a whole number of 3074-byte records");
  require_rejected([](const std::string& path) { return read_cifar_batch(path, CifarFormat::Cifar10); }, "label.bin",
                   cifar_bytes({{1}, {10}}, random_bytes(2 * 3072, generator)), "record 1 has label 10");
  TemporaryDirectory directory;
  REQUIRE_THROWS_WITH(read_cifar_batch(directory.file("missing.bin"), CifarFormat::Cifar10),
                      Contains("missing.bin") && Contains("cannot open"));
  REQUIRE_THROWS_WITH(load_cifar10(directory.path().string(), true), Contains("data_batch_1.bin"));
}

// ---- image folders ------------------------------------------------------------------------------

TEST_CASE("image folder: classes sorted, png and jpeg, grayscale expanded", "[unit]") {
  Generator generator = generator_for("image folder basic");
  TemporaryDirectory directory;
  const auto root = directory.path();
  for (const char* name : {"zebra", "ant", "moose"}) std::filesystem::create_directories(root / name);
  const std::vector<uint8_t> rgb = random_bytes(6 * 4 * 3, generator), gray = random_bytes(6 * 4, generator);
  write_png((root / "zebra" / "b.png").string(), 6, 4, 3, rgb);
  write_png((root / "zebra" / "a.png").string(), 6, 4, 1, gray);
  write_png((root / "ant" / "x.png").string(), 6, 4, 3, rgb);
  REQUIRE(stbi_write_jpg((root / "moose" / "m.jpg").string().c_str(), 6, 4, 3, rgb.data(), 95) != 0);
  write_bytes((root / "notes.txt").string(), "files directly under the root are ignored");

  ImageFolderReport report;
  const ImageDataset dataset = load_image_folder(root.string(), {}, &report);
  REQUIRE(dataset.class_names == std::vector<std::string>{"ant", "moose", "zebra"});
  REQUIRE(dataset.images.shape() == Shape{4, 4, 6, 3});
  REQUIRE(dataset.labels.to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 2});
  REQUIRE(report.loaded == 4);
  REQUIRE(report.skipped == 0);
  const std::vector<uint8_t> pixels = dataset.images.to_vector<uint8_t>();
  // ant/x.png exactly; zebra/a.png (grayscale) repeated into 3 channels, before zebra/b.png.
  REQUIRE(std::vector<uint8_t>(pixels.begin(), pixels.begin() + 72) == rgb);
  for (int64_t i = 0; i < 24; ++i)
    for (int64_t c = 0; c < 3; ++c) REQUIRE(pixels[2 * 72 + i * 3 + c] == gray[i]);
  REQUIRE(std::vector<uint8_t>(pixels.begin() + 3 * 72, pixels.end()) == rgb);

  // As grayscale, and resized: the central 4x4 square to 8x8.
  const ImageDataset small = load_image_folder(root.string(), {.size = 8, .channels = 1});
  REQUIRE(small.images.shape() == Shape{4, 8, 8, 1});
}

TEST_CASE("image folder: bad files are named, or skipped and counted", "[unit]") {
  Generator generator = generator_for("image folder bad files");
  TemporaryDirectory directory;
  const auto root = directory.path();
  for (const char* name : {"cat", "dog"}) std::filesystem::create_directories(root / name);
  const std::vector<uint8_t> rgb = random_bytes(8 * 8 * 3, generator);
  write_png((root / "cat" / "good.png").string(), 8, 8, 3, rgb);
  write_png((root / "dog" / "good.png").string(), 8, 8, 3, rgb);
  const std::string jpeg_path = (root / "dog" / "corrupt.jpg").string();
  REQUIRE(stbi_write_jpg(jpeg_path.c_str(), 8, 8, 3, rgb.data(), 90) != 0);
  std::string jpeg = read_bytes(jpeg_path);
  write_bytes(jpeg_path, jpeg.substr(0, 30));  // cut inside the headers
  const std::string text_path = (root / "cat" / "readme.png").string();
  write_bytes(text_path, "this is not an image");

  // The first bad file in sorted order is named.
  REQUIRE_THROWS_AS(load_image_folder(root.string()), Error);
  REQUIRE_THROWS_WITH(load_image_folder(root.string()), Contains(text_path) && Contains("not a readable image"));
  std::filesystem::remove(text_path);
  REQUIRE_THROWS_WITH(load_image_folder(root.string()), Contains(jpeg_path));

  // Skipping: a warning, a count, and the good files.
  write_bytes(text_path, "this is not an image");
  ImageFolderReport report;
  const ImageDataset dataset = load_image_folder(root.string(), {.skip_bad_files = true}, &report);
  REQUIRE(dataset.size() == 2);
  REQUIRE(report.skipped == 2);
  REQUIRE(report.skipped_files.size() == 2);

  // An image of another size is a bad file too (without a resize size).
  std::filesystem::remove(text_path);
  std::filesystem::remove(jpeg_path);
  write_png((root / "dog" / "wide.png").string(), 9, 8, 3, random_bytes(9 * 8 * 3, generator));
  REQUIRE_THROWS_WITH(load_image_folder(root.string()), Contains("wide.png") && Contains("9x8 differs from 8x8"));
  REQUIRE(load_image_folder(root.string(), {.size = 8}).size() == 3);

  // An empty class folder.
  std::filesystem::create_directories(root / "empty");
  REQUIRE_THROWS_WITH(load_image_folder(root.string(), {.size = 8}), Contains((root / "empty").string()) && Contains("no image"));
  ImageFolderReport empty_report;
  const ImageDataset kept = load_image_folder(root.string(), {.size = 8, .skip_bad_files = true}, &empty_report);
  REQUIRE(kept.class_names == std::vector<std::string>{"cat", "dog", "empty"});  // labels stay aligned with the folders
  REQUIRE(empty_report.empty_classes.size() == 1);

  // No class folders at all, or no folder.
  TemporaryDirectory flat;
  write_png(flat.file("lonely.png"), 8, 8, 3, rgb);
  REQUIRE_THROWS_WITH(load_image_folder(flat.path().string()), Contains("no class folders"));
  REQUIRE_THROWS_WITH(load_image_folder(flat.file("nowhere")), Contains("nowhere") && Contains("does not exist"));
}

// ---- splits and few-shot subsets ----------------------------------------------------------------

TEST_CASE("train/validation split and few-shot subsets", "[unit]") {
  Generator generator = generator_for("splits and few-shot");
  const int64_t count = 60;
  std::vector<int64_t> labels(count);
  for (int64_t i = 0; i < count; ++i) labels[i] = (i * 7) % 4;  // 15 per class
  ImageDataset dataset{randint(0, 256, {count, 2, 2, 1}, kUInt8, generator), from_vector(labels), {"a", "b", "c", "d"}};
  // Tag every image with its index so the subsets can be traced back.
  for (int64_t i = 0; i < count; ++i) dataset.images.data<uint8_t>()[i * 4] = static_cast<uint8_t>(i);
  auto indices_of = [](const ImageDataset& part) {
    std::vector<int64_t> indices;
    const std::vector<uint8_t> pixels = part.images.to_vector<uint8_t>();
    for (int64_t i = 0; i < part.size(); ++i) indices.push_back(pixels[static_cast<size_t>(i * 4)]);
    return indices;
  };

  const DatasetSplit split = split_train_validation(dataset, 0.25, 3);
  REQUIRE(split.validation.size() == 15);
  REQUIRE(split.train.size() == 45);
  std::vector<int64_t> all = indices_of(split.train), validation = indices_of(split.validation);
  REQUIRE(std::is_sorted(all.begin(), all.end()));
  all.insert(all.end(), validation.begin(), validation.end());
  std::sort(all.begin(), all.end());
  for (int64_t i = 0; i < count; ++i) REQUIRE(all[static_cast<size_t>(i)] == i);  // disjoint and complete
  REQUIRE(indices_of(split_train_validation(dataset, 0.25, 3).validation) == validation);  // seeded
  REQUIRE(indices_of(split_train_validation(dataset, 0.25, 4).validation) != validation);
  REQUIRE(split_train_validation(dataset, 0.0, 3).train.size() == count);
  REQUIRE_THROWS_WITH(split_train_validation(dataset, 1.5, 3), Contains("validation_fraction"));

  const ImageDataset few = few_shot_subset(dataset, 5, 1);
  REQUIRE(few.size() == 20);
  std::vector<int64_t> per_class(4, 0);
  for (int64_t label : few.labels.to_vector<int64_t>()) ++per_class[static_cast<size_t>(label)];
  REQUIRE(per_class == std::vector<int64_t>{5, 5, 5, 5});
  const std::vector<int64_t> few_indices = indices_of(few), few_labels = few.labels.to_vector<int64_t>();
  REQUIRE(std::is_sorted(few_indices.begin(), few_indices.end()));
  for (size_t i = 0; i < few_indices.size(); ++i) REQUIRE(few_labels[i] == labels[static_cast<size_t>(few_indices[i])]);
  REQUIRE(indices_of(few_shot_subset(dataset, 5, 1)) == indices_of(few));
  REQUIRE(indices_of(few_shot_subset(dataset, 5, 2)) != indices_of(few));
  REQUIRE_THROWS_WITH(few_shot_subset(dataset, 16, 1), Contains("class 0 ('a') has 15 samples") && Contains("16"));
}
