// What the .npy, .npz and safetensors readers share: read-only bytes (a file, or a buffer
// such as a member unpacked from an .npz archive) whose every read is bounds-checked,
// shape arithmetic that cannot overflow, and the float16 -> float32 conversion (visrep has
// no float16 dtype, so float16 arrays are widened on load).
//
// The files come from anywhere, so nothing here trusts a size or an offset it read: every
// failure throws visrep::Error naming the reader ("load_npy"), the file and the problem.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "engine/shape.h"

namespace visrep::io {

// Both formats store little-endian numbers, and the readers copy them straight into tensor
// memory; a big-endian host would need a byte swap on every path.
static_assert(std::endian::native == std::endian::little, "visrep's file formats assume a little-endian host");

// Bytes a parser reads at offsets it found in the data itself, so every read is checked.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual uint64_t size() const = 0;
  // Reads exactly `count` bytes starting at `offset` into `destination`. `what` names the
  // part being read ("the header", "tensor 'conv1.weight'") for the error message when the
  // bytes end early or the read fails.
  virtual void read_at(uint64_t offset, void* destination, size_t count, std::string_view what) const = 0;
  // Throws visrep::Error "<error_prefix()>: <message>".
  [[noreturn]] void fail(std::string_view message) const;

 protected:
  // What opens every error message: the reader and the source ("load_npy: 'a.npy'").
  virtual std::string error_prefix() const = 0;
};

class InputFile : public ByteSource {
 public:
  // Opens a regular file for reading; throws "<reader>: cannot open '<path>': <reason>".
  InputFile(const std::string& path, std::string_view reader);
  ~InputFile() override;
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  uint64_t size() const override { return size_; }
  const std::string& path() const { return path_; }

  void read_at(uint64_t offset, void* destination, size_t count, std::string_view what) const override;

 protected:
  std::string error_prefix() const override;  // "<reader>: '<path>'"

 private:
  std::string path_;
  std::string reader_;
  int descriptor_ = -1;
  uint64_t size_ = 0;
};

// Bytes already in memory, e.g. one member of an .npz archive. The bytes are not copied:
// they must outlive this object.
class MemoryBytes : public ByteSource {
 public:
  // `context` opens every error message, e.g. "load_npz: 'weights.npz': member 'w'".
  MemoryBytes(std::string_view bytes, std::string context) : bytes_(bytes), context_(std::move(context)) {}

  uint64_t size() const override { return bytes_.size(); }
  void read_at(uint64_t offset, void* destination, size_t count, std::string_view what) const override;

 protected:
  std::string error_prefix() const override { return context_; }

 private:
  std::string_view bytes_;
  std::string context_;
};

// numel(shape) * element_size in bytes, or an error (naming the file through `source` and
// the array through `what`) when a size is negative, the rank exceeds kMaxDims or the
// product of the non-zero sizes times element_size overflows int64. Zero sizes are left out
// of the overflow check on purpose: a shape (0, 2^62, 2^62) holds no bytes, but its strides
// (2^124, 2^62, 1) would still wrap around, and so would every index computed from them.
// A corrupt header must not turn into a wrapped-around allocation or stride.
uint64_t checked_byte_count(const Shape& shape, size_t element_size, const ByteSource& source, std::string_view what);

// Text read from a file as it may appear in an error message: bytes outside printable ASCII
// escaped as \xNN (no terminal control sequences, no broken UTF-8 from a cut), and at most
// `limit` bytes of it, a longer text cut with "...(N bytes)". Every reader echoes names,
// keys and header text through this, so a 100 MB name makes a short message.
std::string printable(std::string_view text, size_t limit = 80);

// IEEE 754 binary16 -> binary32, exact for every input: normal and subnormal numbers,
// signed zeros, infinities, and NaN with its payload and sign kept.
float float16_to_float32(uint16_t half);

}  // namespace visrep::io
