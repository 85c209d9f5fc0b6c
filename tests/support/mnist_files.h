// MNIST-format (IDX) files written by tests, so the reader and the apps can be checked on
// small datasets whose every byte the test chose. The format (LeCun et al.): a big-endian
// uint32 magic (0x00000803 images, 0x00000801 labels), big-endian uint32 sizes, then the
// uint8 pixels or labels in row-major order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/data/dataset.h"

namespace visrep::testing {

// An idx3-ubyte file of `count` images of rows x cols pixels.
std::string idx_images_bytes(uint32_t count, uint32_t rows, uint32_t cols, const std::vector<uint8_t>& pixels,
                             uint32_t magic = 0x00000803);
// An idx1-ubyte file of labels.
std::string idx_labels_bytes(const std::vector<uint8_t>& labels, uint32_t magic = 0x00000801);

// Writes `bytes` as a plain file, or gzip-compressed through zlib's gzwrite.
void write_file(const std::string& path, const std::string& bytes, bool gzip = false);

// The four standard file names (train-images-idx3-ubyte, ...) under `root`, from a uint8
// (N, H, W, 1) dataset with labels 0..255; `gzip` adds .gz and compresses.
void write_mnist_split(const std::string& root, bool train, const data::ImageDataset& dataset, bool gzip = false);

}  // namespace visrep::testing
