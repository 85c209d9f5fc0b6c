#include "recipes/datasets.h"

#include <filesystem>

#include <fmt/format.h>

#include "engine/data/cifar.h"
#include "engine/data/image_folder.h"
#include "engine/data/mnist.h"
#include "engine/error.h"
#include "engine/ops.h"

namespace visrep::recipes {

namespace fs = std::filesystem;

namespace {

bool has_file(const fs::path& folder, const std::string& name) {
  return fs::is_regular_file(folder / name) || fs::is_regular_file(folder / (name + ".gz"));
}

// The folder among root and its known subfolders that holds `marker`, or empty.
fs::path folder_with(const fs::path& root, const std::string& marker, const std::string& subfolder) {
  if (fs::is_regular_file(root / marker)) return root;
  if (fs::is_regular_file(root / subfolder / marker)) return root / subfolder;
  return {};
}

data::ImageDataset first(const data::ImageDataset& dataset, int64_t limit) {
  if (limit <= 0 || limit >= dataset.size()) return dataset;
  return data::subset(dataset, arange(limit));
}

}  // namespace

DatasetPair load_dataset(const std::string& root_text, const DatasetOptions& options) {
  const fs::path root(root_text);
  VISREP_CHECK(fs::is_directory(root), "--data: '{}' is not a folder (expected MNIST-format files, CIFAR-10/100 "
               "binary batches or an image folder)", root_text);
  DatasetPair pair;
  if (has_file(root, "train-images-idx3-ubyte")) {
    pair.name = options.digits ? "mnist" : "fashion-mnist";
    pair.train = data::load_mnist(root_text, true, !options.digits);
    pair.test = data::load_mnist(root_text, false, !options.digits);
  } else if (fs::path cifar10 = folder_with(root, "data_batch_1.bin", "cifar-10-batches-bin"); !cifar10.empty()) {
    pair.name = "cifar10";
    pair.train = data::load_cifar10(cifar10.string(), true);
    pair.test = data::load_cifar10(cifar10.string(), false);
  } else if (fs::path cifar100 = folder_with(root, "train.bin", "cifar-100-binary"); !cifar100.empty()) {
    pair.name = "cifar100";
    pair.train = data::load_cifar100(cifar100.string(), true, options.cifar100_coarse);
    pair.test = data::load_cifar100(cifar100.string(), false, options.cifar100_coarse);
  } else {
    pair.name = "image folder";
    const data::ImageFolderOptions folder{.size = options.image_size, .skip_bad_files = options.skip_bad_files};
    if (fs::is_directory(root / "train") && fs::is_directory(root / "test")) {
      pair.train = data::load_image_folder((root / "train").string(), folder);
      pair.test = data::load_image_folder((root / "test").string(), folder);
      VISREP_CHECK(pair.train.class_names == pair.test.class_names,
                   "--data: the class folders of '{}' and '{}' differ", (root / "train").string(),
                   (root / "test").string());
    } else {
      data::DatasetSplit split = data::split_train_validation(data::load_image_folder(root_text, folder),
                                                              options.folder_test_fraction, options.seed);
      pair.train = std::move(split.train);
      pair.test = std::move(split.validation);
    }
  }
  pair.train = first(pair.train, options.train_limit);
  pair.test = first(pair.test, options.test_limit);
  VISREP_CHECK(pair.train.size() >= 2, "--data: '{}' has {} training image(s); at least 2 are needed", root_text,
               pair.train.size());
  return pair;
}

std::string describe(const DatasetPair& dataset, const std::string& root) {
  return fmt::format("{} at {}: {} train / {} test images of {}x{}x{}, {} classes", dataset.name, root,
                     dataset.train.size(), dataset.test.size(), dataset.train.height(), dataset.train.width(),
                     dataset.train.channels(), dataset.train.class_count());
}

}  // namespace visrep::recipes
