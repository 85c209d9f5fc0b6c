// The datasets the recipe binaries accept, found by what a folder holds, so that one --data
// flag serves them all:
//   - the four MNIST-format files (train-images-idx3-ubyte[.gz] ...): Fashion-MNIST, the
//     embedded default (Debian's dataset-fashion-mnist), or MNIST with digits = true;
//   - CIFAR-10 (data_batch_1.bin ... test_batch.bin) or CIFAR-100 (train.bin, test.bin),
//     the folder or its parent;
//   - an image folder: root/train/<class>/* and root/test/<class>/* when both exist, else
//     root/<class>/* split into train and test (a seeded 10% test share).
#pragma once

#include <string>

#include "engine/data/dataset.h"

namespace visrep::recipes {

struct DatasetOptions {
  bool digits = false;               // MNIST-format: the class names of MNIST digits
  bool cifar100_coarse = false;      // CIFAR-100: the 20 superclasses instead of the 100 classes
  int64_t image_size = 0;            // image folders: resize the central square (0: keep, sizes must agree)
  bool skip_bad_files = false;       // image folders: skip undecodable files with a warning
  double folder_test_fraction = 0.1; // image folders without train/ and test/
  uint64_t seed = 0;                 // of that split
  int64_t train_limit = 0;           // > 0: only the first N training images
  int64_t test_limit = 0;            // > 0: only the first N test images
};

struct DatasetPair {
  std::string name;  // "fashion-mnist", "mnist", "cifar10", "cifar100", "image folder"
  data::ImageDataset train;
  data::ImageDataset test;
};

// Throws visrep::Error naming the folder when it holds none of the formats, and the file
// when one is unreadable.
DatasetPair load_dataset(const std::string& root, const DatasetOptions& options = {});

// One line: "<name> at <root>: 60000 train / 10000 test images of 28x28x1, 10 classes".
std::string describe(const DatasetPair& dataset, const std::string& root);

}  // namespace visrep::recipes
