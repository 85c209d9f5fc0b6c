// MNIST-format datasets (the IDX files of LeCun et al.; Fashion-MNIST uses the same
// format), gzip-compressed or raw. Fashion-MNIST is visrep's embedded default: Debian's
// dataset-fashion-mnist package installs it under /usr/share/datasets/fashion-mnist.
#pragma once

#include <string>

#include "engine/data/dataset.h"

namespace visrep::data {

inline constexpr const char* kFashionMnistRoot = "/usr/share/datasets/fashion-mnist";

// uint8 (N, rows, cols, 1) from an idx3-ubyte file (magic 0x00000803).
Tensor read_idx_images(const std::string& path);
// int64 (N) from an idx1-ubyte file (magic 0x00000801).
Tensor read_idx_labels(const std::string& path);
// Both throw visrep::Error naming the file when it is missing or not a regular file, has
// the wrong magic number or an implausible image size, ends before or goes on after the
// data its header announces, or is a gzip stream that is cut or fails its CRC check. The
// header's counts are checked against the bytes the file can hold before anything is
// allocated for them: a raw file's size; a gzip file's trailer (ISIZE, the uncompressed
// size mod 2^32) and deflate's 1032:1 bound. A gzip file is one stream, as gzip(1) writes;
// several concatenated streams are refused (the trailer records only the last).

// The train (60000) or test (10000) split of Fashion-MNIST / MNIST from the four standard
// file names under `root` (with or without .gz), with the class names of `fashion`.
ImageDataset load_mnist(const std::string& root, bool train, bool fashion = true);

}  // namespace visrep::data
