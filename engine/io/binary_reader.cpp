#include "engine/io/binary_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "engine/error.h"
#include "kernels/strided_layout.h"

namespace visrep::io {

InputFile::InputFile(const std::string& path, std::string_view reader) : path_(path), reader_(reader) {
  descriptor_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  VISREP_CHECK(descriptor_ >= 0, "{}: cannot open '{}': {}", reader_, path_, std::strerror(errno));
  struct stat status {};
  if (::fstat(descriptor_, &status) != 0) fail(fmt::format("cannot stat the file: {}", std::strerror(errno)));
  // A directory opens fine on Linux and only fails at the first read, with a vaguer message.
  if (!S_ISREG(status.st_mode)) fail("not a regular file");
  size_ = static_cast<uint64_t>(status.st_size);
}

InputFile::~InputFile() {
  if (descriptor_ >= 0) ::close(descriptor_);
}

void ByteSource::fail(std::string_view message) const { VISREP_FAIL("{}: {}", error_prefix(), message); }

std::string InputFile::error_prefix() const { return fmt::format("{}: '{}'", reader_, path_); }

void InputFile::read_at(uint64_t offset, void* destination, size_t count, std::string_view what) const {
  if (offset > size_ || count > size_ - offset) {
    fail(fmt::format("the file ends before {}: it needs bytes [{}, {}) but the file has {} bytes", what, offset,
                     offset + count, size_));
  }
  auto* cursor = static_cast<char*>(destination);
  while (count > 0) {
    const ssize_t got = ::pread(descriptor_, cursor, count, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) fail(fmt::format("reading {} failed: {}", what, std::strerror(errno)));
    if (got == 0) fail(fmt::format("the file ended while reading {} (was it truncated while open?)", what));
    cursor += got;
    offset += static_cast<uint64_t>(got);
    count -= static_cast<size_t>(got);
  }
}

void MemoryBytes::read_at(uint64_t offset, void* destination, size_t count, std::string_view what) const {
  if (offset > bytes_.size() || count > bytes_.size() - offset) {
    fail(fmt::format("the data ends before {}: it needs bytes [{}, {}) but holds {} bytes", what, offset,
                     offset + count, bytes_.size()));
  }
  if (count > 0) std::memcpy(destination, bytes_.data() + offset, count);
}

uint64_t checked_byte_count(const Shape& shape, size_t element_size, const ByteSource& source, std::string_view what) {
  if (shape.size() > static_cast<size_t>(kernels::kMaxDims)) {
    source.fail(fmt::format("{} has {} dimensions; visrep supports at most {}", what, shape.size(), kernels::kMaxDims));
  }
  constexpr uint64_t kLimit = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  uint64_t bytes = element_size;  // of the non-zero sizes: bounds every stride too
  bool empty = false;
  for (int64_t size : shape) {
    if (size < 0) source.fail(fmt::format("{} has a negative size in shape {}", what, shape_string(shape)));
    if (size == 0) {
      empty = true;
      continue;
    }
    const auto extent = static_cast<uint64_t>(size);
    if (bytes > kLimit / extent) {
      source.fail(fmt::format("{} has shape {}, whose byte count overflows int64 (counting only its non-zero sizes, "
                              "which its strides multiply too)",
                              what, shape_string(shape)));
    }
    bytes *= extent;
  }
  return empty ? 0 : bytes;
}

std::string printable(std::string_view text, size_t limit) {
  std::string shown;
  for (const char character : text.substr(0, std::min(text.size(), limit))) {
    const auto byte = static_cast<unsigned char>(character);
    if (byte >= 0x20 && byte < 0x7f && byte != '\\') {
      shown += character;
    } else {
      shown += fmt::format("\\x{:02x}", byte);
    }
  }
  if (text.size() > limit) shown += fmt::format("...({} bytes)", text.size());
  return shown;
}

float float16_to_float32(uint16_t half) {
  // binary16: 1 sign bit, 5 exponent bits (bias 15), 10 mantissa bits (IEEE 754-2008, 3.6).
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t exponent = (half >> 10) & 0x1fu;
  const uint32_t mantissa = half & 0x3ffu;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);  // infinity, or NaN keeping its payload
  } else if (exponent != 0) {
    bits = sign | ((exponent + (127 - 15)) << 23) | (mantissa << 13);  // re-bias the exponent
  } else {
    // Zero or subnormal: mantissa * 2^-24, which float32 holds exactly as a normal number.
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

}  // namespace visrep::io
