#include "engine/data/cifar.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "engine/error.h"
#include "engine/ops.h"

namespace visrep::data {
namespace {

constexpr int64_t kSide = 32;
constexpr int64_t kPlane = kSide * kSide;
constexpr int64_t kPixelBytes = 3 * kPlane;

// The whole file, read in one go into a buffer of the file's size. Only regular files: a
// FIFO or a device such as /dev/zero has no size and would be read forever.
std::vector<char> read_whole_file(const std::string& path) {
  std::error_code error;
  const std::filesystem::file_status status = std::filesystem::status(path, error);
  VISREP_CHECK(std::filesystem::exists(status), "cannot open '{}': no such file", path);
  VISREP_CHECK(std::filesystem::is_regular_file(status), "cannot open '{}': not a regular file", path);
  const uintmax_t size = std::filesystem::file_size(path, error);
  VISREP_CHECK(!error, "cannot read the size of '{}': {}", path, error.message());
  std::ifstream in(path, std::ios::binary);
  VISREP_CHECK(in.good(), "cannot open '{}': {}", path, std::strerror(errno));
  std::vector<char> bytes(static_cast<size_t>(size));
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  VISREP_CHECK(static_cast<uintmax_t>(in.gcount()) == size, "error reading '{}': got {} of its {} bytes", path,
               in.gcount(), size);
  return bytes;
}

// Non-empty lines of a label-name file; empty when the file does not exist, or is not a
// regular file of at most 64 KB (100 class names take about 1 KB; the callers then fall back
// to the standard names, as for a file with the wrong number of lines).
std::vector<std::string> read_names(const std::filesystem::path& path) {
  constexpr uintmax_t kMaxBytes = 64 * 1024;
  std::vector<std::string> names;
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error) || std::filesystem::file_size(path, error) > kMaxBytes || error) {
    return names;
  }
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  return names;
}

// The folder holding `first_file`: root itself or root/<subfolder>.
std::filesystem::path find_folder(const std::string& root, const std::string& subfolder, const std::string& first_file,
                                  const char* what) {
  const std::filesystem::path base(root);
  for (const std::filesystem::path& candidate : {base, base / subfolder}) {
    if (std::filesystem::exists(candidate / first_file)) return candidate;
  }
  VISREP_FAIL("'{}' not found under '{}' or '{}': download the {} binary version from "
              "https://www.cs.toronto.edu/~kriz/cifar.html and pass the folder it unpacks to",
              first_file, base.string(), (base / subfolder).string(), what);
}

ImageDataset concatenate(const std::vector<ImageDataset>& parts) {
  std::vector<Tensor> images, labels;
  for (const ImageDataset& part : parts) {
    images.push_back(part.images);
    labels.push_back(part.labels);
  }
  return {concat(images, 0), concat(labels, 0), {}};
}

std::vector<std::string> numbered_classes(int count) {
  std::vector<std::string> names;
  for (int i = 0; i < count; ++i) names.push_back(std::to_string(i));
  return names;
}

}  // namespace

ImageDataset read_cifar_batch(const std::string& path, CifarFormat format) {
  const int64_t label_bytes = format == CifarFormat::Cifar10 ? 1 : 2;
  const int64_t classes = format == CifarFormat::Cifar10 ? 10 : format == CifarFormat::Cifar100Fine ? 100 : 20;
  const int64_t record = label_bytes + kPixelBytes;
  const std::vector<char> bytes = read_whole_file(path);
  const auto size = static_cast<int64_t>(bytes.size());
  VISREP_CHECK(size > 0, "'{}' is empty: not a CIFAR batch", path);
  VISREP_CHECK(size % record == 0,
               "'{}' is truncated or not a {} batch: {} bytes is not a whole number of {}-byte records ({} records "
               "and {} bytes over)",
               path, format == CifarFormat::Cifar10 ? "CIFAR-10" : "CIFAR-100", size, record, size / record,
               size % record);
  const int64_t count = size / record;
  ImageDataset dataset;
  dataset.images = empty({count, kSide, kSide, 3}, kUInt8);
  dataset.labels = empty({count}, kInt64);
  uint8_t* images = dataset.images.data<uint8_t>();
  int64_t* labels = dataset.labels.data<int64_t>();
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  for (int64_t n = 0; n < count; ++n) {
    const uint8_t* entry = data + n * record;
    // CIFAR-100 records hold <coarse label><fine label>.
    const int64_t label = format == CifarFormat::Cifar100Fine ? entry[1] : entry[0];
    VISREP_CHECK(label < classes, "'{}': record {} has label {}, outside the {} classes of the format", path, n, label,
                 classes);
    labels[n] = label;
    const uint8_t* planes = entry + label_bytes;
    uint8_t* image = images + n * kPixelBytes;
    for (int64_t i = 0; i < kPlane; ++i) {
      for (int64_t c = 0; c < 3; ++c) image[i * 3 + c] = planes[c * kPlane + i];
    }
  }
  return dataset;
}

ImageDataset load_cifar10(const std::string& root, bool train) {
  const std::filesystem::path folder = find_folder(root, "cifar-10-batches-bin", train ? "data_batch_1.bin" : "test_batch.bin", "CIFAR-10");
  std::vector<ImageDataset> parts;
  if (train) {
    for (int batch = 1; batch <= 5; ++batch) {
      parts.push_back(read_cifar_batch((folder / ("data_batch_" + std::to_string(batch) + ".bin")).string(),
                                       CifarFormat::Cifar10));
    }
  } else {
    parts.push_back(read_cifar_batch((folder / "test_batch.bin").string(), CifarFormat::Cifar10));
  }
  ImageDataset dataset = parts.size() == 1 ? parts[0] : concatenate(parts);
  dataset.class_names = read_names(folder / "batches.meta.txt");
  if (dataset.class_names.size() != 10) {
    dataset.class_names = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
  }
  return dataset;
}

ImageDataset load_cifar100(const std::string& root, bool train, bool coarse_labels) {
  const std::string file = train ? "train.bin" : "test.bin";
  const std::filesystem::path folder = find_folder(root, "cifar-100-binary", file, "CIFAR-100");
  ImageDataset dataset = read_cifar_batch((folder / file).string(),
                                          coarse_labels ? CifarFormat::Cifar100Coarse : CifarFormat::Cifar100Fine);
  const int classes = coarse_labels ? 20 : 100;
  dataset.class_names = read_names(folder / (coarse_labels ? "coarse_label_names.txt" : "fine_label_names.txt"));
  if (static_cast<int>(dataset.class_names.size()) != classes) dataset.class_names = numbered_classes(classes);
  return dataset;
}

}  // namespace visrep::data
