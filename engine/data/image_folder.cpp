#include "engine/data/image_folder.h"

#include <stb/stb_image_resize.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <thread>

#include "engine/data/image_decode.h"
#include "engine/error.h"

namespace visrep::data {
namespace {

namespace fs = std::filesystem;

struct ImageFile {
  std::string path;
  int64_t label = 0;
};

// One decoded image (or why it could not be).
struct Decoded {
  std::vector<uint8_t> pixels;  // height x width x channels
  int64_t height = 0, width = 0;
  std::string error;
};

bool hidden(const fs::path& path) { return path.filename().string().starts_with("."); }

std::vector<fs::path> sorted_entries(const fs::path& folder) {
  std::vector<fs::path> entries;
  std::error_code error;
  for (fs::directory_iterator it(folder, error), end; !error && it != end; it.increment(error)) {
    if (!hidden(it->path())) entries.push_back(it->path());
  }
  VISREP_CHECK(!error, "cannot list '{}': {}", folder.string(), error.message());
  std::sort(entries.begin(), entries.end());
  return entries;
}

Decoded decode(const std::string& path, const ImageFolderOptions& options) {
  Decoded result;
  std::error_code error;
  const uintmax_t file_size = fs::file_size(path, error);
  if (error) {
    result.error = fmt::format("cannot read its size: {}", error.message());
    return result;
  }
  // stb_image takes the length as an int; the check is made before anything is read.
  if (file_size > static_cast<uintmax_t>(std::numeric_limits<int>::max())) {
    result.error = fmt::format("the file has {} bytes, more than the 2^31 - 1 stb_image reads", file_size);
    return result;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    result.error = fmt::format("cannot open: {}", std::strerror(errno));
    return result;
  }
  std::string bytes(static_cast<size_t>(file_size), '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (static_cast<uintmax_t>(in.gcount()) != file_size) {
    result.error = fmt::format("read {} of its {} bytes", in.gcount(), file_size);
    return result;
  }
  // Every check of the file's declared size and structure happens in decode_image, before
  // its pixels are allocated.
  DecodedImage image = decode_image(bytes, options.channels, options.max_pixels);
  const int channels = options.channels;
  if (options.size <= 0) {
    result.height = image.height;
    result.width = image.width;
    result.pixels = std::move(image.pixels);
    return result;
  }
  // The central square, resized to size x size (stb_image_resize's default filters:
  // Mitchell when shrinking, Catmull-Rom when enlarging).
  const auto width = static_cast<int>(image.width), height = static_cast<int>(image.height);
  const int side = std::min(width, height);
  const int top = (height - side) / 2, left = (width - side) / 2;
  const auto size = static_cast<int>(options.size);
  result.height = result.width = size;
  result.pixels.resize(static_cast<size_t>(size) * size * channels);
  const uint8_t* square = image.pixels.data() + (static_cast<size_t>(top) * width + left) * channels;
  if (!stbir_resize_uint8(square, side, side, width * channels, result.pixels.data(), size, size, size * channels,
                          channels)) {
    result.error = "resizing failed";
  }
  return result;
}

}  // namespace

ImageDataset load_image_folder(const std::string& root, const ImageFolderOptions& options, ImageFolderReport* report) {
  VISREP_CHECK(options.channels == 1 || options.channels == 3, "load_image_folder: channels must be 1 or 3, got {}",
               options.channels);
  VISREP_CHECK(options.size >= 0 && options.size <= 16384, "load_image_folder: size {} out of range", options.size);
  VISREP_CHECK(options.max_pixels >= 1, "load_image_folder: max_pixels must be positive, got {}", options.max_pixels);
  VISREP_CHECK(fs::is_directory(root), "image folder '{}' does not exist or is not a folder", root);

  ImageDataset dataset;
  std::vector<ImageFile> files;
  std::vector<std::string> empty_classes;
  for (const fs::path& entry : sorted_entries(root)) {
    if (!fs::is_directory(entry)) continue;
    const auto label = static_cast<int64_t>(dataset.class_names.size());
    dataset.class_names.push_back(entry.filename().string());
    bool any = false;
    for (const fs::path& file : sorted_entries(entry)) {
      if (!fs::is_regular_file(file)) continue;
      files.push_back({file.string(), label});
      any = true;
    }
    if (!any) {
      VISREP_CHECK(options.skip_bad_files, "class folder '{}' holds no image files (remove it, or skip bad files)",
                   entry.string());
      empty_classes.push_back(entry.string());
    }
  }
  VISREP_CHECK(!dataset.class_names.empty(), "image folder '{}' has no class folders: expected {}/<class>/<images>",
               root, root);

  // Decode on several threads; each file has its own slot, so the result is in file order.
  std::vector<Decoded> decoded(files.size());
  const unsigned hardware = std::max(1u, std::thread::hardware_concurrency());
  const auto thread_count = static_cast<size_t>(std::clamp<int64_t>(
      options.threads > 0 ? options.threads : hardware, 1, std::max<int64_t>(1, static_cast<int64_t>(files.size()))));
  std::atomic<size_t> next{0};
  {
    std::vector<std::jthread> threads;
    for (size_t t = 0; t < thread_count; ++t) {
      threads.emplace_back([&] {
        for (size_t i = next++; i < files.size(); i = next++) {
          try {
            decoded[i] = decode(files[i].path, options);
          } catch (const std::exception& error) {
            decoded[i].error = error.what();
          }
        }
      });
    }
  }

  // Every kept image must have the size of the first one.
  ImageFolderReport local;
  std::vector<size_t> kept;
  std::vector<int64_t> per_class(dataset.class_names.size(), 0);
  for (size_t i = 0; i < files.size(); ++i) {
    Decoded& image = decoded[i];
    if (image.error.empty() && !kept.empty()) {
      const Decoded& first = decoded[kept.front()];
      if (image.height != first.height || image.width != first.width) {
        image.error = fmt::format("its size {}x{} differs from {}x{} of '{}' (pass a size to resize every image)",
                                  image.width, image.height, first.width, first.height, files[kept.front()].path);
      }
    }
    if (!image.error.empty()) {
      VISREP_CHECK(options.skip_bad_files, "cannot load image '{}': {}", files[i].path, image.error);
      std::fprintf(stderr, "warning: skipping '%s': %s\n", files[i].path.c_str(), image.error.c_str());
      local.skipped_files.push_back(files[i].path + ": " + image.error);
      continue;
    }
    kept.push_back(i);
    ++per_class[static_cast<size_t>(files[i].label)];
  }
  for (size_t c = 0; c < per_class.size(); ++c) {
    const std::string folder = (fs::path(root) / dataset.class_names[c]).string();
    if (per_class[c] == 0 && std::find(empty_classes.begin(), empty_classes.end(), folder) == empty_classes.end()) {
      VISREP_CHECK(options.skip_bad_files, "class folder '{}' holds no loadable image", folder);
      empty_classes.push_back(folder);
    }
  }
  for (const std::string& folder : empty_classes) std::fprintf(stderr, "warning: class folder '%s' has no images\n", folder.c_str());
  VISREP_CHECK(!kept.empty(), "image folder '{}': none of its {} files could be loaded", root, files.size());
  if (!local.skipped_files.empty()) {
    std::fprintf(stderr, "warning: skipped %zu of %zu files under '%s'\n", local.skipped_files.size(), files.size(),
                 root.c_str());
  }

  const Decoded& first = decoded[kept.front()];
  const auto count = static_cast<int64_t>(kept.size());
  dataset.images = empty({count, first.height, first.width, options.channels}, kUInt8);
  dataset.labels = empty({count}, kInt64);
  const size_t image_bytes = first.pixels.size();
  for (int64_t n = 0; n < count; ++n) {
    const size_t i = kept[static_cast<size_t>(n)];
    std::memcpy(dataset.images.data<uint8_t>() + static_cast<size_t>(n) * image_bytes, decoded[i].pixels.data(),
                image_bytes);
    dataset.labels.data<int64_t>()[n] = files[i].label;
  }
  local.loaded = count;
  local.skipped = static_cast<int64_t>(local.skipped_files.size());
  local.empty_classes = empty_classes;
  if (report != nullptr) *report = std::move(local);
  return dataset;
}

}  // namespace visrep::data
