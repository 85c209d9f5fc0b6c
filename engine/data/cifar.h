// CIFAR-10 and CIFAR-100 in their "binary version" (Krizhevsky, "Learning Multiple Layers
// of Features from Tiny Images", 2009; https://www.cs.toronto.edu/~kriz/cifar.html), which
// users download themselves:
//   cifar-10-batches-bin/  data_batch_1.bin .. data_batch_5.bin, test_batch.bin, batches.meta.txt
//   cifar-100-binary/      train.bin, test.bin, fine_label_names.txt, coarse_label_names.txt
// A file is a sequence of records: the label byte (CIFAR-100: the coarse then the fine label
// byte), then 3072 pixel bytes, the 32x32 red plane, then green, then blue, rows in order.
#pragma once

#include <string>

#include "engine/data/dataset.h"

namespace visrep::data {

enum class CifarFormat {
  Cifar10,        // 1 label byte, 10 classes
  Cifar100Fine,   // 2 label bytes, the fine label (100 classes)
  Cifar100Coarse  // 2 label bytes, the coarse label (20 superclasses)
};

// One batch file as uint8 (N, 32, 32, 3) images and int64 labels (class_names empty).
// Throws visrep::Error naming the file when it cannot be read or is not a regular file, is
// empty, is cut inside a record, or holds a label outside the format's classes.
ImageDataset read_cifar_batch(const std::string& path, CifarFormat format);

// The train (50000) or test (10000) split from `root`: the folder that holds the batch files
// or its parent (holding cifar-10-batches-bin / cifar-100-binary). Class names come from the
// label-name files when present, else the standard lists (CIFAR-10) or the class numbers.
ImageDataset load_cifar10(const std::string& root, bool train);
ImageDataset load_cifar100(const std::string& root, bool train, bool coarse_labels = false);

}  // namespace visrep::data
