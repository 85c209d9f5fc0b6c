#include "tests/support/mnist_files.h"

#include <catch2/catch.hpp>
#include <zlib.h>

#include <fstream>

namespace visrep::testing {
namespace {

void append_big_endian(std::string& bytes, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) bytes += static_cast<char>((value >> shift) & 0xff);
}

}  // namespace

std::string idx_images_bytes(uint32_t count, uint32_t rows, uint32_t cols, const std::vector<uint8_t>& pixels,
                             uint32_t magic) {
  std::string bytes;
  for (uint32_t value : {magic, count, rows, cols}) append_big_endian(bytes, value);
  bytes.append(pixels.begin(), pixels.end());
  return bytes;
}

std::string idx_labels_bytes(const std::vector<uint8_t>& labels, uint32_t magic) {
  std::string bytes;
  append_big_endian(bytes, magic);
  append_big_endian(bytes, static_cast<uint32_t>(labels.size()));
  bytes.append(labels.begin(), labels.end());
  return bytes;
}

void write_file(const std::string& path, const std::string& bytes, bool gzip) {
  if (!gzip) {
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    REQUIRE(out.good());
    return;
  }
  gzFile file = gzopen(path.c_str(), "wb");
  REQUIRE(file != nullptr);
  const int written = bytes.empty() ? 0 : gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size()));
  const int closed = gzclose(file);
  REQUIRE(written == static_cast<int>(bytes.size()));
  REQUIRE(closed == Z_OK);
}

void write_mnist_split(const std::string& root, bool train, const data::ImageDataset& dataset, bool gzip) {
  REQUIRE(dataset.images.dtype() == kUInt8);
  REQUIRE(dataset.channels() == 1);
  const std::string prefix = root + "/" + (train ? "train" : "t10k");
  const std::string suffix = gzip ? ".gz" : "";
  const auto count = static_cast<uint32_t>(dataset.size());
  write_file(prefix + "-images-idx3-ubyte" + suffix,
             idx_images_bytes(count, static_cast<uint32_t>(dataset.height()), static_cast<uint32_t>(dataset.width()),
                              dataset.images.contiguous().to_vector<uint8_t>()),
             gzip);
  std::vector<uint8_t> labels;
  for (int64_t label : dataset.labels.to_vector<int64_t>()) labels.push_back(static_cast<uint8_t>(label));
  write_file(prefix + "-labels-idx1-ubyte" + suffix, idx_labels_bytes(labels), gzip);
}

}  // namespace visrep::testing
