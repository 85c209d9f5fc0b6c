// Users' own images: root/<class name>/<image files> (JPEG, PNG, BMP, GIF, TGA, PSD, HDR,
// PIC, PNM: what stb_image decodes, checked first as image_decode.h says), classes sorted
// by folder name (label i is the i-th name), files sorted by name within a class. Every
// image is decoded at load, on several threads, into one in-memory ImageDataset, so all
// images must end up one size: pass `size` to resize each image's central square (its
// shorter side) to size x size, or give images that already share a size.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/data/dataset.h"
#include "engine/data/image_decode.h"

namespace visrep::data {

struct ImageFolderOptions {
  int64_t size = 0;  // > 0: the central square of each image, resized to size x size; 0: keep sizes (all equal)
  int channels = 3;  // 3: RGB (grayscale files are expanded); 1: grayscale (colour files are converted)
  // false: the first file that cannot be decoded (or an empty class folder) is an error
  // naming it; true: such files are skipped with a warning on stderr and counted.
  bool skip_bad_files = false;
  int threads = 0;  // decoding threads; 0: one per core
  // The most pixels a file may declare, checked before it is decoded (engine/data/image_decode.h).
  int64_t max_pixels = kDefaultMaxImagePixels;
};

struct ImageFolderReport {
  int64_t loaded = 0;
  int64_t skipped = 0;                     // files that could not be decoded (skip_bad_files)
  std::vector<std::string> skipped_files;  // "path: reason"
  std::vector<std::string> empty_classes;  // class folders without a usable image (skip_bad_files)
};

// Every non-hidden regular file inside a class folder counts as an image (a file that is
// not one is a bad file); files directly under root are ignored. Throws visrep::Error
// naming the root when it has no class folders, and naming the file or folder otherwise.
ImageDataset load_image_folder(const std::string& root, const ImageFolderOptions& options = {},
                               ImageFolderReport* report = nullptr);

}  // namespace visrep::data
