// What the .npy and safetensors readers share: a read-only file whose every read is
// bounds-checked, shape arithmetic that cannot overflow, and the float16 -> float32
// conversion (visrep has no float16 dtype, so float16 arrays are widened on load).
//
// The files come from anywhere, so nothing here trusts a size or an offset it read: every
// failure throws visrep::Error naming the reader ("load_npy"), the file and the problem.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "engine/shape.h"

namespace visrep::io {

// Both formats store little-endian numbers, and the readers copy them straight into tensor
// memory; a big-endian host would need a byte swap on every path.
static_assert(std::endian::native == std::endian::little, "visrep's file formats assume a little-endian host");

class InputFile {
 public:
  // Opens a regular file for reading; throws "<reader>: cannot open '<path>': <reason>".
  InputFile(const std::string& path, std::string_view reader);
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // Reads exactly `count` bytes starting at `offset` into `destination`. `what` names the
  // part being read ("the header", "tensor 'conv1.weight'") for the error message when the
  // file ends early or the read fails.
  void read_at(uint64_t offset, void* destination, size_t count, std::string_view what) const;

  // Throws visrep::Error "<reader>: '<path>': <message>".
  [[noreturn]] void fail(std::string_view message) const;

 private:
  std::string path_;
  std::string reader_;
  int descriptor_ = -1;
  uint64_t size_ = 0;
};

// numel(shape) * element_size in bytes, or an error (naming the file through `file` and the
// array through `what`) when a size is negative, the rank exceeds kMaxDims or the product
// overflows int64: a corrupt header must not turn into a wrapped-around allocation size.
uint64_t checked_byte_count(const Shape& shape, size_t element_size, const InputFile& file, std::string_view what);

// IEEE 754 binary16 -> binary32, exact for every input: normal and subnormal numbers,
// signed zeros, infinities, and NaN with its payload and sign kept.
float float16_to_float32(uint16_t half);

}  // namespace visrep::io
