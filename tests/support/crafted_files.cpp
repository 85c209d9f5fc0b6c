#include "tests/support/crafted_files.h"

#include <zlib.h>

#include <stdexcept>

namespace visrep::testing {
namespace {

// zlib's deflate of `bytes` with `window_bits` (-15: raw deflate, 31: a gzip stream).
std::string deflate_with(const std::string& bytes, int window_bits) {
  z_stream stream{};
  if (deflateInit2(&stream, 9, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("deflateInit2 failed");
  }
  std::string out(deflateBound(&stream, bytes.size()), '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  stream.avail_in = static_cast<uInt>(bytes.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  const int status = deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  if (status != Z_STREAM_END) throw std::runtime_error("deflate failed");
  return out;
}

}  // namespace

uint32_t crc32_of(const std::string& bytes) {
  return static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())));
}

std::string big_endian16(uint32_t value) { return {static_cast<char>(value >> 8), static_cast<char>(value)}; }
std::string big_endian32(uint32_t value) { return big_endian16(value >> 16) + big_endian16(value & 0xffff); }
std::string little_endian16(uint32_t value) { return {static_cast<char>(value), static_cast<char>(value >> 8)}; }
std::string little_endian32(uint32_t value) { return little_endian16(value & 0xffff) + little_endian16(value >> 16); }
std::string little_endian64(uint64_t value) {
  return little_endian32(static_cast<uint32_t>(value)) + little_endian32(static_cast<uint32_t>(value >> 32));
}

std::string byte_pattern(size_t count, int step) {
  std::string bytes(count, '\0');
  for (size_t i = 0; i < count; ++i) bytes[i] = static_cast<char>((i * static_cast<size_t>(step) + 11) & 0xff);
  return bytes;
}

std::string gzip_bytes(const std::string& bytes) { return deflate_with(bytes, 31); }
std::string deflate_raw(const std::string& bytes) { return deflate_with(bytes, -15); }

std::string safetensors_bytes(const std::string& header_json, const std::string& data) {
  std::string header = header_json;
  header.append((8 - header.size() % 8) % 8, ' ');
  return little_endian64(header.size()) + header + data;
}

std::string npy_bytes_by_hand(int major, const std::string& header, const std::string& data) {
  const size_t preamble = 8 + (major == 1 ? 2 : 4);
  std::string padded = header;
  padded.append((64 - (preamble + padded.size() + 1) % 64) % 64, ' ');
  padded += '\n';
  const auto length = static_cast<uint32_t>(padded.size());
  return std::string("\x93NUMPY", 6) + static_cast<char>(major) + '\0' +
         (major == 1 ? little_endian16(length) : little_endian32(length)) + padded + data;
}

std::string zip_bytes(const std::vector<ZipMember>& members) {
  struct Entry {
    uint32_t offset, crc, packed, unpacked;
    uint16_t method;
  };
  std::string local, central;
  std::vector<Entry> entries;
  const std::string dos_time_and_date = little_endian16(0) + little_endian16(0x21);  // 1980-01-01 00:00
  for (const ZipMember& member : members) {
    if (member.same_data_as >= 0) {
      entries.push_back(entries.at(static_cast<size_t>(member.same_data_as)));
      continue;
    }
    Entry entry{static_cast<uint32_t>(local.size()),
                member.crc >= 0 ? static_cast<uint32_t>(member.crc) : crc32_of(member.data),
                static_cast<uint32_t>(member.packed_size >= 0 ? member.packed_size : member.data.size()),
                static_cast<uint32_t>(member.unpacked_size >= 0 ? member.unpacked_size : member.data.size()),
                member.method};
    entries.push_back(entry);
    local += little_endian32(0x04034b50) + little_endian16(20) + little_endian16(0) + little_endian16(entry.method) +
             dos_time_and_date + little_endian32(entry.crc) + little_endian32(entry.packed) +
             little_endian32(entry.unpacked) + little_endian16(static_cast<uint32_t>(member.name.size())) +
             little_endian16(0) + member.name + member.data;
  }
  for (size_t i = 0; i < members.size(); ++i) {
    const Entry& entry = entries[i];
    const std::string& name = members[i].name;
    central += little_endian32(0x02014b50) + little_endian16(20) + little_endian16(20) + little_endian16(0) +
               little_endian16(entry.method) + dos_time_and_date + little_endian32(entry.crc) +
               little_endian32(entry.packed) + little_endian32(entry.unpacked) +
               little_endian16(static_cast<uint32_t>(name.size())) + little_endian16(0) + little_endian16(0) +
               little_endian16(0) + little_endian16(0) + little_endian32(0) + little_endian32(entry.offset) + name;
  }
  const auto count = static_cast<uint32_t>(members.size());
  return local + central + little_endian32(0x06054b50) + little_endian16(0) + little_endian16(0) +
         little_endian16(count) + little_endian16(count) + little_endian32(static_cast<uint32_t>(central.size())) +
         little_endian32(static_cast<uint32_t>(local.size())) + little_endian16(0);
}

std::string png_bytes(uint32_t width, uint32_t height, int depth, int colour_type, const std::string& rows,
                      const std::string& palette, bool complete) {
  const auto chunk = [](const std::string& type, const std::string& data) {
    return big_endian32(static_cast<uint32_t>(data.size())) + type + data + big_endian32(crc32_of(type + data));
  };
  const std::string header = big_endian32(width) + big_endian32(height) + static_cast<char>(depth) +
                             static_cast<char>(colour_type) + std::string(3, '\0');
  std::string bytes = std::string("\x89PNG\r\n\x1a\n") + chunk("IHDR", header);
  if (!palette.empty()) bytes += chunk("PLTE", palette);
  bytes += chunk("IDAT", deflate_with(rows, 15));
  return complete ? bytes + chunk("IEND", "") : bytes;
}

std::string png_rows(uint32_t height, size_t row_bytes) {
  std::string rows;
  for (uint32_t y = 0; y < height; ++y) rows += '\0' + byte_pattern(row_bytes, 13 + static_cast<int>(y));
  return rows;
}

std::string gif_bytes(uint32_t width, uint32_t height) {
  std::string bytes = std::string("GIF89a") + little_endian16(width) + little_endian16(height);
  bytes += "\x91";  // a global colour table of 4 entries
  bytes += std::string("\0\0", 2);
  bytes += std::string("\x00\x00\x00\xff\x00\x00\x00\xff\x00\xff\xff\xff", 12);
  bytes +=
      std::string("\x2c") + little_endian16(0) + little_endian16(0) + little_endian16(width) + little_endian16(height);
  bytes += '\0';    // no local colour table
  bytes += '\x02';  // LZW minimum code size 2: codes 0-3 are pixels, 4 clears, 5 ends
  // A clear code before every two pixels keeps every code 3 bits wide.
  std::vector<int> codes;
  for (uint32_t i = 0; i < width * height; ++i) {
    if (i % 2 == 0) codes.push_back(4);
    codes.push_back(static_cast<int>(i % 4));
  }
  codes.push_back(5);
  std::string data;
  uint32_t buffer = 0;
  int bits = 0;
  for (const int code : codes) {  // packed least significant bit first
    buffer |= static_cast<uint32_t>(code) << bits;
    bits += 3;
    for (; bits >= 8; bits -= 8, buffer >>= 8) data += static_cast<char>(buffer & 0xff);
  }
  if (bits > 0) data += static_cast<char>(buffer & 0xff);
  return bytes + static_cast<char>(data.size()) + data + '\0' + "\x3b";
}

std::string bmp_palette_bytes(uint32_t width, uint32_t height) {
  const uint32_t row = (width + 3) / 4 * 4;
  const uint32_t offset = 14 + 40 + 4 * 4;
  std::string bytes =
      std::string("BM") + little_endian32(offset + row * height) + little_endian32(0) + little_endian32(offset);
  bytes += little_endian32(40) + little_endian32(width) + little_endian32(height) + little_endian16(1) +
           little_endian16(8) + little_endian32(0) + little_endian32(row * height) + little_endian32(2835) +
           little_endian32(2835) + little_endian32(4) + little_endian32(0);
  bytes += std::string("\x00\x00\x00\x00\xff\x00\x00\x00\x00\xff\x00\x00\x00\x00\xff\x00", 16);
  for (uint32_t y = 0; y < height; ++y) {
    std::string line(row, '\0');
    for (uint32_t x = 0; x < width; ++x) line[x] = static_cast<char>((x + y) % 4);
    bytes += line;
  }
  return bytes;
}

std::string psd_bytes(uint32_t width, uint32_t height, int depth, bool run_length) {
  // Header: signature, version 1, 6 reserved bytes, channels, height, width, depth, mode 3 (RGB);
  // then empty colour mode data, image resources and layer sections; then the compression.
  std::string bytes = std::string("8BPS") + big_endian16(1) + std::string(6, '\0') + big_endian16(3) +
                      big_endian32(height) + big_endian32(width) + big_endian16(static_cast<uint32_t>(depth)) +
                      big_endian16(3) + big_endian32(0) + big_endian32(0) + big_endian32(0) +
                      big_endian16(run_length ? 1 : 0);
  const size_t row_bytes = width * static_cast<size_t>(depth / 8);
  if (!run_length) return bytes + byte_pattern(3 * height * row_bytes);
  // Every row's byte count, then the rows, each one literal PackBits packet (count n - 1, n bytes).
  std::string rows;
  for (uint32_t row = 0; row < 3 * height; ++row) {
    bytes += big_endian16(static_cast<uint32_t>(1 + row_bytes));
    rows += static_cast<char>(row_bytes - 1) + byte_pattern(row_bytes, 7 + static_cast<int>(row));
  }
  return bytes + rows;
}

}  // namespace visrep::testing
