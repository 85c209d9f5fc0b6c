#include "engine/data/mnist.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include "engine/error.h"

namespace visrep::data {
namespace {

// gzread reads gzip and plain files alike.
class GzipReader {
 public:
  explicit GzipReader(const std::string& path) : path_(path), file_(gzopen(path.c_str(), "rb")) {
    VISREP_CHECK(file_ != nullptr, "cannot open '{}': {}", path, std::strerror(errno));
  }
  ~GzipReader() {
    if (file_ != nullptr) gzclose(file_);
  }
  GzipReader(const GzipReader&) = delete;
  GzipReader& operator=(const GzipReader&) = delete;

  void read(void* destination, size_t bytes, const char* what) {
    size_t done = 0;
    while (done < bytes) {
      const unsigned chunk = static_cast<unsigned>(std::min<size_t>(bytes - done, 1u << 30));
      const int got = gzread(file_, static_cast<char*>(destination) + done, chunk);
      if (got <= 0) {
        int code = 0;
        const char* message = gzerror(file_, &code);
        VISREP_FAIL("'{}' is truncated or corrupt while reading {}: got {} of {} bytes ({})", path_, what, done, bytes,
                    code != Z_OK ? message : "end of file");
      }
      done += static_cast<size_t>(got);
    }
  }

  // After the last byte the header announced: the file must end here. For gzip this is
  // also where zlib checks the trailer (CRC-32 and length), so a stream that is corrupt or
  // cut in its last bytes is caught too.
  void expect_end(const char* what) {
    char extra = 0;
    const int got = gzread(file_, &extra, 1);
    if (got <= 0) {
      // At the end gzread returns 0 and leaves Z_BUF_ERROR when the gzip stream stopped
      // before its trailer, -1 on a CRC or length mismatch (zlib.h, gzread).
      int code = 0;
      const char* message = gzerror(file_, &code);
      if (got == 0 && code == Z_OK) return;
      VISREP_FAIL("'{}' is truncated or corrupt after {}: {}", path_, what, message);
    }
    VISREP_FAIL("'{}' has more data after {} than its header announces", path_, what);
  }

  uint32_t read_big_endian_u32(const char* what) {
    unsigned char bytes[4];
    read(bytes, 4, what);
    return (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) | (uint32_t{bytes[2]} << 8) | uint32_t{bytes[3]};
  }

 private:
  std::string path_;
  gzFile file_;
};

std::string find_file(const std::string& root, const std::string& name) {
  for (const std::string& candidate : {root + "/" + name + ".gz", root + "/" + name}) {
    if (std::filesystem::exists(candidate)) return candidate;
  }
  VISREP_FAIL("'{0}' not found under '{1}' (looked for {0}.gz and {0}); install Debian's dataset-fashion-mnist or "
              "pass the folder holding the MNIST-format files",
              name, root);
}

}  // namespace

Tensor read_idx_images(const std::string& path) {
  GzipReader reader(path);
  const uint32_t magic = reader.read_big_endian_u32("the magic number");
  VISREP_CHECK(magic == 0x00000803, "'{}' is not an idx3 image file: magic 0x{:08x}, expected 0x00000803", path, magic);
  const uint32_t count = reader.read_big_endian_u32("the image count");
  const uint32_t rows = reader.read_big_endian_u32("the row count");
  const uint32_t cols = reader.read_big_endian_u32("the column count");
  VISREP_CHECK(rows > 0 && cols > 0 && rows <= 4096 && cols <= 4096, "'{}': implausible image size {}x{}", path, rows,
               cols);
  Tensor images = empty({count, rows, cols, 1}, kUInt8);
  reader.read(images.data<uint8_t>(), static_cast<size_t>(count) * rows * cols, "the pixels");
  reader.expect_end("the pixels");
  return images;
}

Tensor read_idx_labels(const std::string& path) {
  GzipReader reader(path);
  const uint32_t magic = reader.read_big_endian_u32("the magic number");
  VISREP_CHECK(magic == 0x00000801, "'{}' is not an idx1 label file: magic 0x{:08x}, expected 0x00000801", path, magic);
  const uint32_t count = reader.read_big_endian_u32("the label count");
  std::vector<uint8_t> raw(count);
  reader.read(raw.data(), raw.size(), "the labels");
  reader.expect_end("the labels");
  Tensor labels = empty({count}, kInt64);
  int64_t* out = labels.data<int64_t>();
  for (uint32_t i = 0; i < count; ++i) out[i] = raw[i];
  return labels;
}

ImageDataset load_mnist(const std::string& root, bool train, bool fashion) {
  const std::string prefix = train ? "train" : "t10k";
  const std::string images_path = find_file(root, prefix + "-images-idx3-ubyte");
  const std::string labels_path = find_file(root, prefix + "-labels-idx1-ubyte");
  ImageDataset dataset;
  dataset.images = read_idx_images(images_path);
  dataset.labels = read_idx_labels(labels_path);
  VISREP_CHECK(dataset.images.size(0) == dataset.labels.size(0), "'{}' holds {} images but '{}' holds {} labels",
               images_path, dataset.images.size(0), labels_path, dataset.labels.size(0));
  if (fashion) {
    dataset.class_names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                           "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  } else {
    for (int digit = 0; digit < 10; ++digit) dataset.class_names.push_back(std::to_string(digit));
  }
  const int64_t* labels = dataset.labels.data<int64_t>();
  for (int64_t i = 0; i < dataset.size(); ++i) {
    VISREP_CHECK(labels[i] >= 0 && labels[i] < 10, "'{}': label {} at index {} is not a class 0..9", labels_path,
                 labels[i], i);
  }
  return dataset;
}

}  // namespace visrep::data
