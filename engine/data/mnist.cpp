#include "engine/data/mnist.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
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

// What the file can hold, known before anything is read: the header's counts are checked
// against it, so no allocation follows from a size field alone.
//   raw files: exactly the file's size;
//   gzip files (RFC 1952): the trailer's ISIZE, the uncompressed size mod 2^32, and at most
//   what deflate can expand the file to (1032:1, RFC 1951: a 258-byte match costs at least
//   two bits). One gzip stream is expected, as gzip(1) and the MNIST distribution write; a
//   file of several concatenated streams records only the last one's size and is refused.
struct StoredSize {
  bool gzip = false;
  uint64_t file_bytes = 0;
  uint32_t trailer_size = 0;  // gzip: ISIZE
};

StoredSize stored_size(const std::string& path) {
  std::error_code error;
  const std::filesystem::file_status status = std::filesystem::status(path, error);
  VISREP_CHECK(std::filesystem::exists(status), "cannot open '{}': no such file", path);
  VISREP_CHECK(std::filesystem::is_regular_file(status), "cannot open '{}': not a regular file", path);
  StoredSize stored;
  stored.file_bytes = std::filesystem::file_size(path, error);
  VISREP_CHECK(!error, "cannot read the size of '{}': {}", path, error.message());
  std::ifstream in(path, std::ios::binary);
  VISREP_CHECK(in.good(), "cannot open '{}': {}", path, std::strerror(errno));
  unsigned char magic[2] = {0, 0};
  in.read(reinterpret_cast<char*>(magic), 2);
  stored.gzip = in.gcount() == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
  if (stored.gzip) {
    // 10-byte header + data + CRC-32 + ISIZE; a shorter file is cut (check_announced_size).
    if (stored.file_bytes < 18) return stored;
    unsigned char trailer[4] = {0, 0, 0, 0};
    in.seekg(static_cast<std::streamoff>(stored.file_bytes - 4));
    in.read(reinterpret_cast<char*>(trailer), 4);
    VISREP_CHECK(in.gcount() == 4, "'{}' is truncated or corrupt: cannot read its gzip trailer", path);
    stored.trailer_size = uint32_t{trailer[0]} | (uint32_t{trailer[1]} << 8) | (uint32_t{trailer[2]} << 16) |
                          (uint32_t{trailer[3]} << 24);
  }
  return stored;
}

// Checks that the file holds exactly `header_bytes` + `data_bytes` uncompressed bytes, the
// `data_bytes` being `what` ("pixel bytes (3 images of 28x28)"), before they are allocated.
void check_announced_size(const std::string& path, const StoredSize& stored, uint64_t header_bytes,
                          uint64_t data_bytes, const std::string& what) {
  const uint64_t total = header_bytes + data_bytes;
  if (!stored.gzip) {
    VISREP_CHECK(total <= stored.file_bytes, "'{}' is truncated: it holds {} of {} {}", path,
                 stored.file_bytes - header_bytes, data_bytes, what);
    VISREP_CHECK(total == stored.file_bytes, "'{}' has more data after the {} than its header announces ({} bytes "
                 "more)", path, what, stored.file_bytes - total);
    return;
  }
  // zlib hands out what a cut stream decompresses to, so a header may have been read from
  // a file too short for the gzip trailer: such a file is cut, whatever it announces.
  VISREP_CHECK(stored.file_bytes >= 18,
               "'{}' is truncated or corrupt: {} bytes cannot hold a gzip header and trailer (18 bytes)", path,
               stored.file_bytes);
  constexpr uint64_t kMaxDeflateRatio = 1032;
  VISREP_CHECK(total <= stored.file_bytes * kMaxDeflateRatio + 1024,
               "'{}' is corrupt: its header announces {} {}, more than a {}-byte gzip file can hold (deflate expands "
               "at most {}:1)",
               path, data_bytes, what, stored.file_bytes, kMaxDeflateRatio);
  const uint64_t trailer = stored.trailer_size;
  if (total < (uint64_t{1} << 32) && trailer < total && trailer >= header_bytes) {
    VISREP_FAIL("'{}' is truncated or corrupt: its gzip trailer records {} bytes uncompressed, so it holds {} of {} {}",
                path, trailer, trailer - header_bytes, data_bytes, what);
  }
  if (total < (uint64_t{1} << 32) && trailer > total) {
    // A longer stream, or a cut one whose last four bytes are not a trailer at all.
    VISREP_FAIL("'{}' is truncated or corrupt, or has more data after the {} than its header announces: its gzip "
                "trailer records {} bytes uncompressed, the header {}",
                path, what, trailer, total);
  }
  VISREP_CHECK(total % (uint64_t{1} << 32) == trailer,
               "'{}' is truncated or corrupt: its gzip trailer records {} bytes uncompressed (mod 2^32) but the header "
               "announces {} ({} {}); a file of several gzip streams is not read either",
               path, trailer, total, data_bytes, what);
}

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
  const StoredSize stored = stored_size(path);
  GzipReader reader(path);
  const uint32_t magic = reader.read_big_endian_u32("the magic number");
  VISREP_CHECK(magic == 0x00000803, "'{}' is not an idx3 image file: magic 0x{:08x}, expected 0x00000803", path, magic);
  const uint32_t count = reader.read_big_endian_u32("the image count");
  const uint32_t rows = reader.read_big_endian_u32("the row count");
  const uint32_t cols = reader.read_big_endian_u32("the column count");
  VISREP_CHECK(rows > 0 && cols > 0 && rows <= 4096 && cols <= 4096, "'{}': implausible image size {}x{}", path, rows,
               cols);
  // At most 2^32 x 2^12 x 2^12 = 2^56 bytes: no overflow.
  const uint64_t pixel_bytes = uint64_t{count} * rows * cols;
  check_announced_size(path, stored, 16, pixel_bytes,
                       fmt::format("pixel bytes ({} images of {}x{})", count, rows, cols));
  Tensor images = empty({count, rows, cols, 1}, kUInt8);
  reader.read(images.data<uint8_t>(), static_cast<size_t>(pixel_bytes), "the pixels");
  reader.expect_end("the pixels");
  return images;
}

Tensor read_idx_labels(const std::string& path) {
  const StoredSize stored = stored_size(path);
  GzipReader reader(path);
  const uint32_t magic = reader.read_big_endian_u32("the magic number");
  VISREP_CHECK(magic == 0x00000801, "'{}' is not an idx1 label file: magic 0x{:08x}, expected 0x00000801", path, magic);
  const uint32_t count = reader.read_big_endian_u32("the label count");
  check_announced_size(path, stored, 8, count, "labels");
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
