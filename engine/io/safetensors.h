// Tensors and state dicts as safetensors files (https://github.com/huggingface/safetensors,
// "Format" in its README), which Python's safetensors, PyTorch and timm open directly:
//
//   N: uint64 little-endian | N bytes of UTF-8 JSON header | byte buffer
//
// The header maps each tensor name to {"dtype": "F32", "shape": [2, 3], "data_offsets":
// [begin, end]} (offsets into the byte buffer), plus an optional "__metadata__" object of
// string -> string. Tensors are stored row-major and little-endian.
//
// dtypes: F32, F64, BF16, I32, I64 and U8 map one to one onto visrep's; F16 is read as
// float32 and BOOL as uint8 (0/1). Anything else is rejected with the tensor's name.
#pragma once

#include <map>
#include <string>

#include "engine/tensor.h"

namespace visrep::io {

// Name -> tensor, in name order: a state dict, or any set of named arrays.
using TensorMap = std::map<std::string, Tensor>;

struct SafetensorsContents {
  TensorMap tensors;
  std::map<std::string, std::string> metadata;  // the "__metadata__" entry, empty when absent
};

// Writes `tensors` (any device, any layout: each is copied to a contiguous CPU tensor
// first) and `metadata` atomically (util::write_file_atomically). The layout matches the
// Python library's: header padded with spaces to a multiple of 8 bytes, tensors ordered by
// decreasing element size and then by name, so every tensor is aligned to its element size.
void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Reads every tensor (as contiguous CPU tensors) and the metadata. The whole header is
// validated before any data is read, as strictly as the Python library does: a short
// file, an absurd header length, invalid JSON, JSON nested deeper than a header needs, a
// duplicate name, a missing or malformed field, an unknown dtype, a shape whose byte count
// (or strides) overflow, a byte range that does not match the shape, lies outside the
// buffer, overlaps another tensor or leaves part of the buffer unused all throw a
// visrep::Error naming the file, the tensor and the numbers involved (names and values
// from the file cut to a short excerpt, io::printable). Parsing is linear in the header's
// size: 100,000 entries take a fraction of a second.
SafetensorsContents load_safetensors(const std::string& path);

}  // namespace visrep::io
