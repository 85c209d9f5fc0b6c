// Files built byte by byte, for the readers' regression tests and the fuzz targets' seed
// corpus (tests/fuzz/make_corpus.cpp): each builder follows its format's specification and
// lets a test set any field to a value no real writer would produce. No Catch2 here, so
// that the fuzz build (clang, no test framework) compiles it too.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace visrep::testing {

std::string big_endian16(uint32_t value);
std::string big_endian32(uint32_t value);
std::string little_endian16(uint32_t value);
std::string little_endian32(uint32_t value);
std::string little_endian64(uint64_t value);

// CRC-32 (ISO 3309, as zip and PNG use it).
uint32_t crc32_of(const std::string& bytes);

// `count` bytes that are not constant (so that a mix-up of offsets shows).
std::string byte_pattern(size_t count, int step = 37);

// `bytes` as one gzip stream (RFC 1952), as gzip(1) writes it.
std::string gzip_bytes(const std::string& bytes);

// safetensors: the 8-byte header length, the header text padded to 8 bytes, the data.
std::string safetensors_bytes(const std::string& header_json, const std::string& data);

// .npy version `major` (1: 2-byte header length; 2, 3: 4 bytes) with this header dict text,
// padded so that the data starts at a multiple of 64.
std::string npy_bytes_by_hand(int major, const std::string& header, const std::string& data);

// A zip archive (APPNOTE 6.3): each member's local header and data, then the central
// directory. Sizes, CRC and method are the member's own unless overridden, and the
// central entry may point at another member's local header (overlapping members).
struct ZipMember {
  std::string name;
  std::string data;            // as stored in the archive (already compressed if method != 0)
  uint16_t method = 0;         // 0 stored, 8 deflate, 12 bzip2, ...
  int64_t unpacked_size = -1;  // -1: data.size() (right for stored members)
  int64_t packed_size = -1;    // -1: data.size()
  int64_t crc = -1;            // -1: crc32_of(data) (right for stored members)
  int same_data_as = -1;       // >= 0: the central entry points at that member's local header
};
std::string zip_bytes(const std::vector<ZipMember>& members);
// `bytes` deflated raw (RFC 1951), as a zip member's data with method 8.
std::string deflate_raw(const std::string& bytes);

// A PNG (RFC 2083) of `rows` (each led by its filter byte), any bit depth and colour type.
// Without IEND when `complete` is false.
std::string png_bytes(uint32_t width, uint32_t height, int depth, int colour_type, const std::string& rows,
                      const std::string& palette = "", bool complete = true);
// Rows of `row_bytes` pattern bytes, each led by filter byte 0.
std::string png_rows(uint32_t height, size_t row_bytes);

// A GIF89a of width x height pixels from a 4-colour palette (3-bit LZW codes).
std::string gif_bytes(uint32_t width, uint32_t height);

// An uncompressed 8-bit palette BMP (BITMAPINFOHEADER, 4 colours).
std::string bmp_palette_bytes(uint32_t width, uint32_t height);

// A PSD of 3 channels (RGB), `depth` 8 or 16 bits, raw or PackBits rows.
std::string psd_bytes(uint32_t width, uint32_t height, int depth, bool run_length);

}  // namespace visrep::testing
