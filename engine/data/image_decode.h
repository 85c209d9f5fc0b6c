// One image file's bytes -> uint8 pixels (height x width x channels), with stb_image 2.27
// (Debian's libstb) doing the decoding and everything a file declares checked first, so
// that a hostile or broken file costs neither a giant allocation nor garbage pixels:
//
//   - the declared size (stbi_info, which reads only the header) must be at least 1x1 and
//     at most `max_pixels`, and not more than the file's bytes can encode: raw BMP, TGA,
//     PNM, PSD and HDR data must be in the file whole (stb fills a cut file with zeros and
//     reports success); a PNG's rows must fit deflate's 1032:1 expansion of its data; a
//     JPEG needs at least one bit per 8x8 block, a GIF one 12-bit code per 4096 pixels;
//   - the structure of compressed files must be complete: a JPEG must reach its
//     end-of-image marker, a PNG its IEND chunk, a GIF the end of its first image, an HDR
//     image's run-length scanlines must be whole (stb decodes a cut JPEG or GIF
//     "successfully", the missing part grey or black, and loops forever on a cut HDR);
//   - what stb_image 2.27 itself would overflow on is refused first: a JPEG Huffman table
//     of more than 256 codes (it writes past its table; fixed in stb 2.28);
//   - 16-bit files are decoded as 16 bits and rounded to 8 (stbi_load_16): PNG and PSD by
//     stb, binary PGM/PPM (P5/P6) here, scaled by their maxval, since stb 2.27 reads 16-bit
//     PNM data out of bounds when the channel count changes, ignores maxval and keeps the
//     big-endian samples unswapped.
//
// Limits (documented, not detected): a truncated run-length TGA and a truncated PIC decode
// with their missing pixels set to zero, as stb makes them (their size is still bounded);
// stb_image's own arithmetic on corrupt entropy-coded data gives wrong pixels, not errors.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace visrep::data {

struct DecodedImage {
  std::vector<uint8_t> pixels;  // height x width x channels, row-major
  int64_t height = 0;
  int64_t width = 0;
  int channels = 0;
};

// The default bound on an image's declared pixels: 2^26 (67 million, 8192 x 8192), so one
// image costs at most ~200 MB of RGB while decoding; photographs up to ~60 megapixels pass.
inline constexpr int64_t kDefaultMaxImagePixels = int64_t{1} << 26;

// Decodes `bytes` (a whole file) into `channels` (1: grayscale, 3: RGB; other channel
// counts are converted as stb converts them: gray -> RGB by copying, RGB -> gray by
// stb's luma weights, alpha dropped). Throws visrep::Error saying what is wrong ("the JPEG
// ends before its end-of-image marker (truncated)"); the caller adds the file's name.
DecodedImage decode_image(std::string_view bytes, int channels, int64_t max_pixels = kDefaultMaxImagePixels);

}  // namespace visrep::data
