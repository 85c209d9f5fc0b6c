// Image decoding with the checks of image_decode.h. The format structures are the
// specifications' (JPEG: ITU T.81 annex B; PNG: RFC 2083 / ISO 15948; GIF89a; BMP:
// BITMAPINFOHEADER; TGA: Truevision TGA 2.0; PSD: Adobe's file format specification;
// PNM: netpbm's pgm(5) and ppm(5)); only what the checks need is parsed.
#include "engine/data/image_decode.h"

#include <fmt/format.h>
#include <stb/stb_image.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "engine/error.h"
#include "engine/io/binary_reader.h"

namespace visrep::data {
namespace {

// Deflate expands by at most 1032:1 (RFC 1951: a 258-byte match costs at least two bits).
constexpr uint64_t kMaxDeflateRatio = 1032;

// The file's bytes with bounds-checked big- and little-endian reads; `has` says whether a
// range exists, and the readers are only called on ranges that do.
class FileBytes {
 public:
  explicit FileBytes(std::string_view bytes) : bytes_(bytes) {}
  uint64_t size() const { return bytes_.size(); }
  bool has(uint64_t offset, uint64_t count) const { return offset <= size() && count <= size() - offset; }
  bool starts_with(std::string_view prefix) const { return bytes_.starts_with(prefix); }
  uint32_t u8(uint64_t offset) const { return static_cast<unsigned char>(bytes_[offset]); }
  uint32_t be16(uint64_t offset) const { return u8(offset) << 8 | u8(offset + 1); }
  uint32_t be32(uint64_t offset) const { return be16(offset) << 16 | be16(offset + 2); }
  uint32_t le16(uint64_t offset) const { return u8(offset) | u8(offset + 1) << 8; }
  uint32_t le32(uint64_t offset) const { return le16(offset) | le16(offset + 2) << 16; }

 private:
  std::string_view bytes_;
};

enum class Format { Jpeg, Png, Bmp, Gif, Psd, Pic, Pnm, Hdr, Tga };

// Where a JPEG's start-of-image marker ends: stb_image reads it as a marker, so fill bytes
// (0xFF) may come before 0xD8. 0 when the file does not start with one.
uint64_t jpeg_start(const FileBytes& file) {
  uint64_t position = 0;
  while (file.has(position, 1) && file.u8(position) == 0xff) ++position;
  return position > 0 && file.has(position, 1) && file.u8(position) == 0xd8 ? position + 1 : 0;
}

// The format stb_image will take the file for: its tests in its order (stbi__load_main),
// each reduced to the signature it checks first. TGA has none and comes last.
Format detect_format(const FileBytes& file) {
  if (jpeg_start(file) > 0) return Format::Jpeg;
  if (file.starts_with("\x89PNG\r\n\x1a\n")) return Format::Png;
  if (file.starts_with("BM") && file.has(14, 4)) {
    const uint32_t header_size = file.le32(14);
    if (header_size == 12 || header_size == 40 || header_size == 56 || header_size == 108 || header_size == 124) {
      return Format::Bmp;
    }
  }
  if (file.starts_with("GIF87a") || file.starts_with("GIF89a")) return Format::Gif;
  if (file.starts_with("8BPS")) return Format::Psd;
  if (file.starts_with("\x53\x80\xf6\x34") && file.has(88, 4) && file.u8(88) == 'P') return Format::Pic;
  if (file.starts_with("P5") || file.starts_with("P6")) return Format::Pnm;
  if (file.starts_with("#?RADIANCE\n") || file.starts_with("#?RGBE\n")) return Format::Hdr;
  return Format::Tga;
}

// "needs N bytes, the file holds M": a file cut short, which stb would decode with zeros.
[[noreturn]] void truncated(std::string_view format, uint64_t needed, uint64_t held) {
  VISREP_FAIL(
      "the {} is truncated: its header implies {} bytes but the file holds {} (stb_image would fill the "
      "missing pixels with zeros)",
      format, needed, held);
}

void require_bytes(const FileBytes& file, std::string_view format, uint64_t needed) {
  if (needed > file.size()) truncated(format, needed, file.size());
}

// ---- compressed formats: complete structure, and a declared size the bytes can encode ------

// A DHT segment's tables (T.81 B.2.4.2), read as stb_image reads them: while the segment
// length has bytes left, a class/destination byte, 16 code counts, then that many symbol
// values. A table has at most 256 symbols; stb_image 2.27 does not check the counts' sum
// and writes past its 257-entry size table for more (fixed in 2.28), so more are refused.
void check_jpeg_huffman_tables(const FileBytes& file, uint64_t position, int64_t remaining) {
  while (remaining > 0) {
    uint64_t codes = 0;
    for (uint64_t i = 1; i <= 16; ++i) codes += file.has(position + i, 1) ? file.u8(position + i) : 0;
    if (codes > 256) VISREP_FAIL("the JPEG has a Huffman table of {} codes; a table holds at most 256", codes);
    position += 17 + codes;
    remaining -= static_cast<int64_t>(17 + codes);
  }
}

// Walks the marker segments (T.81 B.1.1.2) and the entropy-coded data after each SOS to the
// end-of-image marker, as stb_image's parser steps through them (it skips bytes that are not
// a marker where one is due): a stream that runs out first is cut, a Huffman table stb would
// overflow is refused.
void check_jpeg(const FileBytes& file) {
  const auto cut = [] {
    VISREP_FAIL(
        "the JPEG ends before its end-of-image marker (truncated: stb_image would decode the missing part "
        "as grey)");
  };
  uint64_t position = jpeg_start(file);
  while (true) {
    if (!file.has(position, 1)) cut();
    if (file.u8(position) != 0xff) {  // not a marker: stb_image steps over it
      ++position;
      continue;
    }
    while (file.has(position, 1) && file.u8(position) == 0xff) ++position;  // fill bytes
    if (!file.has(position, 1)) cut();
    const uint32_t marker = file.u8(position++);
    if (marker == 0xd9) return;                                                            // EOI
    if (marker == 0x00 || marker == 0x01 || (marker >= 0xd0 && marker <= 0xd8)) continue;  // no length
    if (!file.has(position, 2)) cut();
    const uint32_t length = file.be16(position);
    if (length < 2) VISREP_FAIL("the JPEG is corrupt: a marker segment has length {}", length);
    if (marker == 0xc4) check_jpeg_huffman_tables(file, position + 2, static_cast<int64_t>(length) - 2);
    if (!file.has(position, length)) cut();
    position += length;
    if (marker != 0xda) continue;
    // Entropy-coded data: 0xFF is followed by 0x00 (a stuffed byte) or a restart marker
    // inside it; any other marker ends it.
    while (true) {
      if (!file.has(position, 2)) cut();
      if (file.u8(position) != 0xff) {
        ++position;
        continue;
      }
      const uint32_t next = file.u8(position + 1);
      if (next == 0x00 || (next >= 0xd0 && next <= 0xd7)) {
        position += 2;
      } else if (next == 0xff) {
        ++position;
      } else {
        break;
      }
    }
  }
}

// Walks the chunks (length, type, data, CRC) to IEND and bounds the image's filtered rows by
// deflate's expansion of the IDAT bytes.
void check_png(const FileBytes& file) {
  uint64_t position = 8;
  uint64_t idat_bytes = 0;
  while (true) {
    if (!file.has(position, 8)) VISREP_FAIL("the PNG ends before its IEND chunk (truncated)");
    const uint64_t length = file.be32(position);
    const bool is_idat = file.be32(position + 4) == 0x49444154;  // "IDAT"
    const bool is_iend = file.be32(position + 4) == 0x49454e44;  // "IEND"
    if (length > 0x7fffffff) VISREP_FAIL("the PNG has a chunk of {} bytes, more than 2^31 - 1", length);
    if (!file.has(position + 8, length + 4)) {
      VISREP_FAIL("the PNG ends inside a chunk: it needs {} bytes, the file holds {} (truncated)",
                  position + 12 + length, file.size());
    }
    if (is_idat) idat_bytes += length;
    position += 12 + length;
    if (is_iend) break;
  }
  // IHDR (the first chunk, 13 bytes at offset 16): bit depth and colour type give the bits
  // per pixel; every row has a filter byte.
  if (!file.has(16, 13) || file.be32(12) != 0x49484452) return;  // no IHDR first: stb refuses it
  const uint64_t width = file.be32(16), height = file.be32(20);
  const uint32_t depth = file.u8(24);
  const uint32_t colour_type = file.u8(25);
  const int samples = colour_type == 0 ? 1 : colour_type == 2 ? 3 : colour_type == 3 ? 1 : colour_type == 4 ? 2 : 4;
  if (width > (uint64_t{1} << 24) || height > (uint64_t{1} << 24)) return;  // stb refuses these
  const uint64_t row_bytes = 1 + (width * depth * samples + 7) / 8;
  const uint64_t raw_bytes = row_bytes * height;
  if (raw_bytes > idat_bytes * kMaxDeflateRatio + 1024) {
    VISREP_FAIL(
        "the PNG declares {}x{} pixels ({} bytes of rows), more than its {} bytes of IDAT data can inflate "
        "to (deflate expands at most {}:1)",
        width, height, raw_bytes, idat_bytes, kMaxDeflateRatio);
  }
}

// Walks the blocks to the end of the first image's data (stb decodes the first frame).
void check_gif(const FileBytes& file) {
  const auto cut = [] { VISREP_FAIL("the GIF ends inside its first image (truncated)"); };
  const auto skip_sub_blocks = [&](uint64_t& position) {
    while (true) {
      if (!file.has(position, 1)) cut();
      const uint32_t length = file.u8(position++);
      if (length == 0) return;
      position += length;
    }
  };
  if (!file.has(0, 13)) cut();
  uint64_t position = 13;
  const uint32_t screen_flags = file.u8(10);
  if (screen_flags & 0x80) position += 3 * (uint64_t{2} << (screen_flags & 7));  // global colour table
  while (true) {
    if (!file.has(position, 1)) cut();
    const uint32_t block = file.u8(position++);
    if (block == 0x21) {  // extension: label, then sub-blocks
      ++position;
      skip_sub_blocks(position);
    } else if (block == 0x2c) {  // image descriptor: 9 bytes, a local colour table, the LZW data
      if (!file.has(position, 9)) cut();
      const uint32_t image_flags = file.u8(position + 8);
      position += 9;
      if (image_flags & 0x80) position += 3 * (uint64_t{2} << (image_flags & 7));
      ++position;  // LZW minimum code size
      skip_sub_blocks(position);
      return;
    } else {
      return;  // the trailer or something stb will judge
    }
  }
}

// Radiance HDR (Greg Ward's RGBE, as stb_image reads it): text lines up to an empty one, a
// resolution line "-Y <height> +X <width>", then scanlines of 4-byte RGBE pixels, flat or,
// for widths 8 to 32767, run-length encoded per component (a "2 2 <width>" header, then
// runs: a count above 128 repeats one value, a count up to 128 copies that many). stb_image
// 2.27 loops forever when a run-length scanline ends with the file (its byte reader then
// returns zeros, counts of 0), so every scanline must be in the file whole.
void check_hdr(const FileBytes& file, std::string_view bytes) {
  uint64_t position = 0;
  const auto line = [&] {
    const uint64_t start = position;
    while (position < file.size() && bytes[position] != '\n') ++position;
    const std::string_view text = bytes.substr(start, position - start);
    if (position < file.size()) ++position;
    return text;
  };
  line();  // "#?RADIANCE" or "#?RGBE"
  while (!line().empty()) {
  }
  const std::string resolution(line());
  const char* cursor = resolution.c_str();
  if (std::strncmp(cursor, "-Y ", 3) != 0) return;  // stb refuses other layouts
  char* end = nullptr;
  const long height = std::strtol(cursor + 3, &end, 10);
  cursor = end;
  while (*cursor == ' ') ++cursor;
  if (std::strncmp(cursor, "+X ", 3) != 0) return;
  const long width = std::strtol(cursor + 3, nullptr, 10);
  if (width <= 0 || height <= 0 || width > (1 << 24) || height > (1 << 24)) return;  // stb refuses these
  const uint64_t pixels = static_cast<uint64_t>(width) * static_cast<uint64_t>(height);
  const auto flat_from = [&](uint64_t offset, uint64_t flat_pixels) {
    require_bytes(file, "HDR image", offset + 4 * flat_pixels);
  };
  if (width < 8 || width >= 32768) return flat_from(position, pixels);
  const auto cut = [] { VISREP_FAIL("the HDR image ends inside a run-length scanline (truncated)"); };
  for (long row = 0; row < height; ++row) {
    if (!file.has(position, 4)) cut();
    if (file.u8(position) != 2 || file.u8(position + 1) != 2 || (file.u8(position + 2) & 0x80) != 0) {
      // Not run-length encoded: stb reads the rest of the image flat from here.
      return flat_from(position, pixels - static_cast<uint64_t>(row) * static_cast<uint64_t>(width));
    }
    if (file.be16(position + 2) != static_cast<uint32_t>(width)) return;  // stb refuses the scanline
    position += 4;
    for (int component = 0; component < 4; ++component) {
      for (long filled = 0; filled < width;) {
        if (!file.has(position, 1)) cut();
        const uint32_t code = file.u8(position++);
        const bool run = code > 128;
        const uint32_t count = run ? code - 128 : code;
        if (count > static_cast<uint32_t>(width - filled)) return;  // stb refuses the run
        const uint64_t data_bytes = run ? 1 : count;                // the repeated value, or the copied ones
        if (!file.has(position, data_bytes)) cut();
        position += data_bytes;
        filled += count;
      }
    }
  }
}

// ---- uncompressed formats: the pixel data the header implies must be in the file ------------

void check_bmp(const FileBytes& file) {
  const uint64_t data_offset = file.le32(10);
  const uint32_t header_size = file.le32(14);
  uint64_t width = 0, height = 0, bits = 0, compression = 0;
  if (header_size == 12) {  // BITMAPCOREHEADER
    if (!file.has(14, 12)) truncated("BMP", 26, file.size());
    width = file.le16(18);
    height = file.le16(20);
    bits = file.le16(24);
  } else {
    if (!file.has(14, 40)) truncated("BMP", 54, file.size());
    width = static_cast<uint64_t>(std::abs(static_cast<int64_t>(static_cast<int32_t>(file.le32(18)))));
    height = static_cast<uint64_t>(std::abs(static_cast<int64_t>(static_cast<int32_t>(file.le32(22)))));
    bits = file.le16(28);
    compression = file.le32(30);
  }
  // BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS: rows of pixels padded to 4 bytes. The RLE
  // modes (1, 2) are compressed and not checked.
  if (compression != 0 && compression != 3 && compression != 6) return;
  if (bits == 0 || bits > 32) return;
  const uint64_t row_bytes = (width * bits + 31) / 32 * 4;
  require_bytes(file, "BMP", data_offset + row_bytes * height);
}

void check_tga(const FileBytes& file) {
  if (!file.has(0, 18)) truncated("TGA", 18, file.size());
  const uint64_t width = file.le16(12), height = file.le16(14);
  const uint64_t id_length = file.u8(0);
  const uint32_t colour_map_type = file.u8(1);
  const uint32_t image_type = file.u8(2);
  const uint64_t colour_map_length = file.le16(5);
  const uint64_t colour_map_bits = file.u8(7);
  const uint64_t pixel_bytes = (file.u8(16) + 7) / 8;
  const uint64_t pixels = width * height;
  const uint64_t data_offset =
      18 + id_length + (colour_map_type == 1 ? colour_map_length * ((colour_map_bits + 7) / 8) : 0);
  if (image_type >= 1 && image_type <= 3) {
    require_bytes(file, "TGA", data_offset + pixels * pixel_bytes);
  } else if (image_type >= 9 && image_type <= 11) {
    // Run-length packets: a header byte and at least one pixel byte for at most 128 pixels.
    if (pixels > 64 * file.size()) {
      VISREP_FAIL(
          "the run-length TGA declares {}x{} pixels, more than its {} bytes can encode (128 pixels per "
          "two-byte packet at most)",
          width, height, file.size());
    }
  }
}

void check_psd(const FileBytes& file) {
  if (!file.has(0, 26)) truncated("PSD", 26, file.size());
  const uint64_t channels = file.be16(12);
  const uint64_t height = file.be32(14);
  const uint64_t width = file.be32(18);
  const uint64_t sample_bytes = file.be16(22) / 8;
  // Three length-prefixed sections (colour mode data, image resources, layers and masks).
  uint64_t position = 26;
  for (int section = 0; section < 3; ++section) {
    if (!file.has(position, 4)) truncated("PSD", position + 4, file.size());
    position += 4 + uint64_t{file.be32(position)};
  }
  if (!file.has(position, 2)) truncated("PSD", position + 2, file.size());
  const uint32_t compression = file.be16(position);
  position += 2;
  const uint64_t rows = channels * height;
  if (compression == 0) {
    require_bytes(file, "PSD", position + rows * width * sample_bytes);
  } else if (compression == 1) {
    // A table of every row's packed byte count, then the PackBits rows.
    require_bytes(file, "PSD", position + 2 * rows);
    uint64_t packed = 0;
    for (uint64_t row = 0; row < rows; ++row) packed += file.be16(position + 2 * row);
    require_bytes(file, "PSD", position + 2 * rows + packed);
  }
}

// The checks of the file's structure after stb_image recognised its format (the JPEG's
// comes before: see decode_image).
void check_structure(Format format, const FileBytes& file, std::string_view bytes) {
  switch (format) {
    case Format::Png: check_png(file); break;
    case Format::Gif: check_gif(file); break;
    case Format::Bmp: check_bmp(file); break;
    case Format::Tga: check_tga(file); break;
    case Format::Psd: check_psd(file); break;
    case Format::Hdr: check_hdr(file, bytes); break;
    case Format::Jpeg:
    case Format::Pic:
    case Format::Pnm: break;
  }
}

// The pixels a file of `format` and this size can encode at the very most, for the formats
// whose structure checks do not bound them already:
//   JPEG: every 8x8 block of the first component costs at least one bit in its DC scan
//         (Huffman codes are at least one bit long): 512 pixels per byte;
//   GIF:  an LZW code of at most 12 bits stands for at most 4096 pixels.
void check_declared_pixels(Format format, const FileBytes& file, int64_t pixels) {
  uint64_t per_byte = 0;
  std::string_view what;
  switch (format) {
    case Format::Jpeg: per_byte = 512, what = "at least one bit per 8x8 block"; break;
    case Format::Gif: per_byte = 4096 * 8 / 12, what = "at most 4096 pixels per 12-bit LZW code"; break;
    default: return;
  }
  if (static_cast<uint64_t>(pixels) / per_byte > file.size()) {
    VISREP_FAIL("the {} declares {} pixels, more than its {} bytes can encode ({})",
                format == Format::Jpeg ? "JPEG" : "GIF", pixels, file.size(), what);
  }
}

// ---- binary PGM / PPM (P5 / P6), decoded here -----------------------------------------------

// The header "P5 <width> <height> <maxval>" (whitespace or # comments between the fields),
// then one whitespace byte, then the samples: 1 byte each below maxval 256, else 2 bytes
// big-endian; every sample in [0, maxval].
DecodedImage decode_pnm(const FileBytes& file, std::string_view bytes, int channels, int64_t max_pixels) {
  uint64_t position = 2;
  const auto field = [&](const char* name) {
    while (true) {
      while (position < file.size() &&
             std::string_view(" \t\r\n\v\f").find(bytes[position]) != std::string_view::npos) {
        ++position;
      }
      if (position < file.size() && bytes[position] == '#') {
        while (position < file.size() && bytes[position] != '\n' && bytes[position] != '\r') ++position;
        continue;
      }
      break;
    }
    int64_t value = 0;
    int digits = 0;
    while (position < file.size() && bytes[position] >= '0' && bytes[position] <= '9') {
      if (++digits > 9) VISREP_FAIL("the PNM header's {} has more than 9 digits", name);
      value = value * 10 + (bytes[position++] - '0');
    }
    if (digits == 0) VISREP_FAIL("the PNM header has no {} (malformed or truncated header)", name);
    return value;
  };
  const int64_t width = field("width");
  const int64_t height = field("height");
  const int64_t maxval = field("maxval");
  if (width == 0 || height == 0) VISREP_FAIL("the PNM is {}x{} pixels: an image needs at least 1x1", width, height);
  if (maxval < 1 || maxval > 65535) VISREP_FAIL("the PNM's maxval is {}, not 1 to 65535", maxval);
  if (width * height > max_pixels) {
    VISREP_FAIL("the PNM declares {}x{} pixels, more than the {} an image may have", width, height, max_pixels);
  }
  if (position >= file.size()) truncated("PNM", position + 1, file.size());
  ++position;  // the single whitespace byte before the samples
  const int file_channels = bytes[1] == '6' ? 3 : 1;
  const int sample_bytes = maxval > 255 ? 2 : 1;
  const uint64_t samples = static_cast<uint64_t>(width * height) * file_channels;
  require_bytes(file, "PNM", position + samples * sample_bytes);

  // Every sample scaled from [0, maxval] to [0, 255], rounding to nearest.
  std::vector<uint8_t> values(samples);
  for (uint64_t i = 0; i < samples; ++i) {
    const uint64_t at = position + i * sample_bytes;
    const int64_t sample = std::min<int64_t>(sample_bytes == 2 ? file.be16(at) : file.u8(at), maxval);
    values[i] = static_cast<uint8_t>((sample * 255 + maxval / 2) / maxval);
  }
  DecodedImage image;
  image.height = height;
  image.width = width;
  image.channels = file_channels;
  image.pixels = std::move(values);
  return image;
}

// ---- channels -------------------------------------------------------------------------------

// `from` (1 gray, 2 gray + alpha, 3 RGB, 4 RGBA) to `to` (1 or 3), as stb_image converts:
// alpha is dropped, gray copied into R, G and B, RGB made gray by stb's integer luma
// (77 R + 150 G + 29 B) / 256 (stbi__compute_y).
std::vector<uint8_t> convert_channels(const uint8_t* pixels, int64_t count, int from, int to) {
  std::vector<uint8_t> out(static_cast<size_t>(count) * to);
  for (int64_t i = 0; i < count; ++i) {
    const uint8_t* in = pixels + i * from;
    uint8_t* target = out.data() + i * to;
    if (from <= 2) {
      std::fill(target, target + to, in[0]);
    } else if (to == 3) {
      std::copy(in, in + 3, target);
    } else {
      target[0] = static_cast<uint8_t>((in[0] * 77 + in[1] * 150 + in[2] * 29) >> 8);
    }
  }
  return out;
}

// stb_image's failure reason; some quote the file's bytes (a PNG chunk's type), hence printable.
std::string stb_reason() {
  const char* reason = stbi_failure_reason();
  return reason != nullptr ? io::printable(reason) : "unknown format";
}

}  // namespace

DecodedImage decode_image(std::string_view bytes, int channels, int64_t max_pixels) {
  VISREP_CHECK(channels == 1 || channels == 3, "decode_image: channels must be 1 or 3, got {}", channels);
  if (bytes.empty()) VISREP_FAIL("empty file");
  if (bytes.size() > static_cast<size_t>(INT_MAX)) {
    VISREP_FAIL("the file has {} bytes, more than the 2^31 - 1 stb_image reads", bytes.size());
  }
  const FileBytes file(bytes);
  const Format format = detect_format(file);
  DecodedImage image;
  if (format == Format::Pnm) {
    image = decode_pnm(file, bytes, channels, max_pixels);
  } else {
    // A JPEG's structure before stb_image parses anything: even stbi_info reads its Huffman
    // tables. Then the declared size from the header alone, then the other formats'
    // structure (now that stb has recognised the format), before anything is allocated.
    if (format == Format::Jpeg) check_jpeg(file);
    const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
    const int length = static_cast<int>(bytes.size());
    int width = 0, height = 0, file_channels = 0;
    if (stbi_info_from_memory(data, length, &width, &height, &file_channels) == 0) {
      VISREP_FAIL("not a readable image ({})", stb_reason());
    }
    if (width <= 0 || height <= 0) {
      VISREP_FAIL("the image is {}x{} pixels: an image needs at least 1x1", width, height);
    }
    const int64_t pixels = int64_t{width} * height;
    if (pixels > max_pixels) {
      VISREP_FAIL("the image declares {}x{} pixels, more than the {} an image may have", width, height, max_pixels);
    }
    check_declared_pixels(format, file, pixels);
    check_structure(format, file, bytes);

    int decoded_width = 0, decoded_height = 0;
    if (stbi_is_16_bit_from_memory(data, length)) {
      // 16 bits per sample, in the file's own channels (no stb conversion), rounded to 8 bits.
      std::unique_ptr<stbi_us, void (*)(void*)> decoded(
          stbi_load_16_from_memory(data, length, &decoded_width, &decoded_height, &file_channels, 0), stbi_image_free);
      if (decoded == nullptr) VISREP_FAIL("not a readable image ({})", stb_reason());
      if (decoded_width != width || decoded_height != height) {
        VISREP_FAIL("the image decodes as {}x{} pixels but its header says {}x{}", decoded_width, decoded_height, width,
                    height);
      }
      image.pixels.resize(static_cast<size_t>(pixels) * file_channels);
      for (size_t i = 0; i < image.pixels.size(); ++i) {
        image.pixels[i] = static_cast<uint8_t>((uint32_t{decoded.get()[i]} * 255 + 32767) / 65535);
      }
      image.channels = file_channels;
    } else {
      std::unique_ptr<stbi_uc, void (*)(void*)> decoded(
          stbi_load_from_memory(data, length, &decoded_width, &decoded_height, &file_channels, channels),
          stbi_image_free);
      if (decoded == nullptr) VISREP_FAIL("not a readable image ({})", stb_reason());
      if (decoded_width != width || decoded_height != height) {
        VISREP_FAIL("the image decodes as {}x{} pixels but its header says {}x{}", decoded_width, decoded_height, width,
                    height);
      }
      image.pixels.assign(decoded.get(), decoded.get() + static_cast<size_t>(pixels) * channels);
      image.channels = channels;
    }
    image.height = height;
    image.width = width;
  }
  if (image.channels < 1 || image.channels > 4) {
    VISREP_FAIL("the image has {} channels; visrep reads 1 to 4", image.channels);
  }
  if (image.channels != channels) {
    image.pixels = convert_channels(image.pixels.data(), image.height * image.width, image.channels, channels);
    image.channels = channels;
  }
  return image;
}

}  // namespace visrep::data
