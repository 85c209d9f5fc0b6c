// visrep-augment-preview: what the model sees. Writes a PNG grid, one row per dataset image:
// the image itself (centre square), then K augmented views of it from a preset (simclr,
// supcon, bit, eval), each captioned with its parameters (crop box, flip, jitter order and
// factors, grayscale, blur sigma, solarize). The title line holds the preset's settings,
// seed and epoch, and the default file name the preset, size, views and seed.
//
//   visrep-augment-preview                                   # Fashion-MNIST, simclr
//   visrep-augment-preview --data ~/cifar-10-batches-bin --preset supcon
//   visrep-augment-preview --data photos/ --load-size 256 --size 224 --views 4
//
// The views are drawn exactly as the data loader draws them (Philox keyed by seed, epoch,
// dataset index and view), so `--seed S --epoch E` shows what training with that seed saw
// in that epoch. They are shown before the normalisation (values in [0, 1]).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

// stb_easy_font defines every function static; not all of them are used here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb/stb_easy_font.h>
#pragma GCC diagnostic pop
#include <stb/stb_image_write.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/data/augment.h"
#include "engine/data/cifar.h"
#include "engine/data/image_folder.h"
#include "engine/data/mnist.h"
#include "engine/ops.h"
#include "engine/util/atomic_file.h"

namespace {

using namespace visrep;
namespace fs = std::filesystem;

// ---- datasets ---------------------------------------------------------------------------------

bool has_file(const fs::path& folder, const std::string& name) {
  return fs::exists(folder / name) || fs::exists(folder / (name + ".gz"));
}

// "auto" looks at what the folder holds: MNIST idx files, CIFAR batches, else class folders.
std::string detect_format(const std::string& root) {
  const fs::path folder(root);
  if (has_file(folder, "train-images-idx3-ubyte") || has_file(folder, "t10k-images-idx3-ubyte")) return "mnist";
  if (fs::exists(folder / "data_batch_1.bin") || fs::exists(folder / "cifar-10-batches-bin")) return "cifar10";
  if (fs::exists(folder / "train.bin") || fs::exists(folder / "cifar-100-binary")) return "cifar100";
  return "folder";
}

data::ImageDataset load_dataset(const std::string& root, std::string format, int64_t load_size, bool skip_bad_files) {
  VISREP_CHECK(fs::is_directory(root), "--data '{}' does not exist or is not a folder", root);
  if (format == "auto") format = detect_format(root);
  if (format == "mnist") return data::load_mnist(root, true, true);
  if (format == "cifar10") return data::load_cifar10(root, true);
  if (format == "cifar100") return data::load_cifar100(root, true);
  data::ImageFolderOptions options;
  options.size = load_size;
  options.skip_bad_files = skip_bad_files;
  return data::load_image_folder(root, options);
}

// `count` samples chosen by a seeded shuffle, one per class first so the grid shows variety.
std::vector<int64_t> pick_samples(const data::ImageDataset& dataset, int64_t count, uint64_t seed) {
  Generator generator(seed);
  const std::vector<int64_t> order = permutation(dataset.size(), generator).to_vector<int64_t>();
  const std::vector<int64_t> labels = dataset.labels.to_vector<int64_t>();
  std::vector<int64_t> chosen, rest;
  std::vector<int64_t> seen_labels;
  for (int64_t index : order) {
    const int64_t label = labels[static_cast<size_t>(index)];
    const bool new_label = std::find(seen_labels.begin(), seen_labels.end(), label) == seen_labels.end();
    if (new_label && static_cast<int64_t>(chosen.size()) < count) {
      seen_labels.push_back(label);
      chosen.push_back(index);
    } else if (static_cast<int64_t>(rest.size()) < count) {
      rest.push_back(index);
    }
  }
  for (size_t i = 0; i < rest.size() && static_cast<int64_t>(chosen.size()) < count; ++i) chosen.push_back(rest[i]);
  return chosen;
}

// ---- the picture --------------------------------------------------------------------------------

using Color = std::array<unsigned char, 3>;

// An RGB raster with stb_easy_font text (printable ASCII).
class Canvas {
 public:
  Canvas(int width, int height) : width_(width), height_(height), pixels_(static_cast<size_t>(width) * height * 3, 255) {}

  void set(int x, int y, Color color) {
    if (x < 0 || y < 0 || x >= width_ || y >= height_) return;
    std::copy(color.begin(), color.end(), pixels_.begin() + (static_cast<size_t>(y) * width_ + x) * 3);
  }

  // stb_easy_font emits axis-aligned quads (4 vertices of x, y, z, rgba each).
  void text(int x, int y, std::string value, Color color) {
    for (char& c : value) c = c < 32 || c > 126 ? '?' : c;
    std::vector<char> buffer(value.size() * 300 + 64);
    const int quads = stb_easy_font_print(0, 0, value.data(), nullptr, buffer.data(), static_cast<int>(buffer.size()));
    struct Vertex {
      float x, y, z;
      unsigned char rgba[4];
    };
    const auto* vertices = reinterpret_cast<const Vertex*>(buffer.data());
    for (int q = 0; q < quads; ++q) {
      const Vertex* v = vertices + 4 * q;
      for (int yy = static_cast<int>(v[0].y); yy < static_cast<int>(v[2].y); ++yy)
        for (int xx = static_cast<int>(v[0].x); xx < static_cast<int>(v[2].x); ++xx) set(x + xx, y + yy, color);
    }
  }
  static int text_width(std::string value) { return stb_easy_font_width(value.data()); }

  // A float32 (C, H, W) image in [0, 1], each pixel drawn as a scale x scale square.
  void image(int x, int y, const float* chw, int64_t channels, int64_t height, int64_t width, int scale) {
    for (int64_t row = 0; row < height * scale; ++row) {
      for (int64_t column = 0; column < width * scale; ++column) {
        const int64_t pixel = (row / scale) * width + column / scale;
        Color color;
        for (int c = 0; c < 3; ++c) {
          const float value = chw[(channels == 3 ? c : 0) * height * width + pixel];
          color[static_cast<size_t>(c)] = static_cast<unsigned char>(std::clamp(value, 0.0f, 1.0f) * 255.0f + 0.5f);
        }
        set(x + static_cast<int>(column), y + static_cast<int>(row), color);
      }
    }
  }

  std::string encode_png() const {
    std::string bytes;
    const int ok = stbi_write_png_to_func(
        [](void* context, void* data, int size) { static_cast<std::string*>(context)->append(static_cast<char*>(data), size); },
        &bytes, width_, height_, 3, pixels_.data(), width_ * 3);
    VISREP_CHECK(ok != 0 && !bytes.empty(), "PNG encoding of a {}x{} image failed", width_, height_);
    return bytes;
  }

 private:
  int width_, height_;
  std::vector<unsigned char> pixels_;
};

// `text` cut into lines of at most `max_chars`, at spaces where possible.
std::vector<std::string> wrap(const std::string& text, size_t max_chars) {
  std::vector<std::string> lines;
  std::string line;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(' ', start);
    if (end == std::string::npos) end = text.size();
    const std::string word = text.substr(start, end - start);
    if (!line.empty() && line.size() + 1 + word.size() > max_chars) {
      lines.push_back(line);
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word;
    start = end + 1;
  }
  if (!line.empty()) lines.push_back(line);
  return lines;
}

// A view's caption, one line per part of describe(params): "crop ...", "bcsh ...", "gray", ...
std::vector<std::string> caption_lines(const data::AugmentParams& params) {
  std::vector<std::string> lines;
  const std::string text = data::describe(params);
  for (size_t start = 0; start <= text.size();) {
    size_t end = text.find(" | ", start);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 3;
  }
  return lines;
}

constexpr int kLineHeight = 11;  // stb_easy_font's glyphs are ~7 px high
constexpr int kCharWidth = 6;    // and up to ~6 px wide
constexpr int kMargin = 10;
constexpr int kCaptionLines = 5;  // crop, jitter, gray, blur, solarize
constexpr Color kInk = {30, 30, 30};
constexpr Color kDim = {110, 110, 110};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Write a PNG grid of augmented views (N images x K views) for a dataset and an augmentation preset"};
  std::string data_root = data::kFashionMnistRoot;
  std::string format = "auto";
  std::string preset = "simclr";
  std::string output;
  std::string device = "cpu";
  int64_t size = 0, load_size = 256, images = 6, views = 4;
  uint64_t seed = 0, epoch = 0;
  int min_tile = 160;
  bool skip_bad_files = false;
  app.add_option("--data", data_root,
                 "Dataset folder: MNIST-format idx files, CIFAR-10/100 binary batches, or an image folder "
                 "(root/<class>/<images>)")
      ->capture_default_str();
  app.add_option("--format", format, "auto (guess from the folder's files), mnist, cifar10, cifar100 or folder")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "mnist", "cifar10", "cifar100", "folder"}));
  app.add_option("--preset", preset, "Augmentation preset")
      ->capture_default_str()
      ->check(CLI::IsMember(data::augment_preset_names()));
  app.add_option("--size", size, "Output side in pixels (0: the dataset's side up to 64 px, else 224)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1024}));
  app.add_option("--load-size", load_size, "Image folders: the central square of each image, resized to this at load")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{8}, int64_t{4096}));
  app.add_option("--images", images, "Rows: dataset images (a seeded pick, one per class first)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{64}));
  app.add_option("--views", views, "Columns: augmented views per image")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{16}));
  app.add_option("--seed", seed, "Seed of the pick and of the augmentation (as the training recipes use it)")
      ->capture_default_str();
  app.add_option("--epoch", epoch, "Epoch whose views to show")->capture_default_str();
  app.add_option("--min-tile", min_tile, "Small images are enlarged (nearest neighbour) to at least this many pixels")
      ->capture_default_str()
      ->check(CLI::Range(16, 1024));
  app.add_option("--device", device, "Run the augmentation on cpu or cuda[:N] (the pictures agree within 1/255)")
      ->capture_default_str()
      ->check([](const std::string& text) {  // refused with the flag's name, like the other flags
        try {
          Device::parse(text);
          return std::string();
        } catch (const Error& error) {
          return std::string(error.what());
        }
      });
  app.add_flag("--skip-bad-files", skip_bad_files, "Image folders: skip files that cannot be decoded, with a warning");
  app.add_option("--output,-o", output,
                 "PNG file to write (default: augment-<dataset>-<preset>-<size>px-<views>views-seed<seed>.png)");
  CLI11_PARSE(app, argc, argv);

  try {
    const Device run_on = Device::parse(device);
    check_device_usable(run_on, "--device");
    const data::ImageDataset dataset = load_dataset(data_root, format, load_size, skip_bad_files);
    const int64_t side = std::min(dataset.height(), dataset.width());
    if (size == 0) size = side <= 64 ? side : 224;
    data::AugmentConfig config = data::augment_preset(preset, size);
    // Shown before the normalisation: the pixels in [0, 1].
    const std::string normalisation = config.mean.empty() ? "none" : "[-1, 1]";
    config.mean.clear();
    config.std.clear();

    const std::vector<int64_t> samples = pick_samples(dataset, images, seed);
    images = static_cast<int64_t>(samples.size());
    const data::ImageDataset chosen = data::subset(dataset, from_vector(samples));
    const std::vector<data::AugmentParams> params = data::draw_batch_params(
        config, dataset.height(), dataset.width(), seed, epoch, samples, static_cast<int>(views));
    const Tensor augmented = data::augment_images(chosen.images.to(run_on), params, config).to(Device::cpu());
    // The images themselves: their central square at the output size.
    data::AugmentConfig whole = data::augment_preset("eval", size);
    whole.crop_fraction = 1.0;
    const Tensor originals = data::augment_batch(chosen.images, samples, whole, 0, 0, 1);

    // Layout: a title block, then rows of tiles with caption lines under each.
    const int scale = static_cast<int>(std::max<int64_t>(1, (min_tile + size - 1) / size));
    const int tile = static_cast<int>(size) * scale;
    const int columns = static_cast<int>(views) + 1;
    const int width = kMargin + columns * (tile + kMargin);
    const size_t title_chars = static_cast<size_t>((width - 2 * kMargin) / kCharWidth);
    std::string dataset_name = fs::path(data_root).filename().string();
    if (dataset_name.empty()) dataset_name = fs::path(data_root).parent_path().filename().string();
    std::vector<std::string> title = wrap(
        fmt::format("{} ({} images of {}x{}x{}) | {} | seed {}, epoch {}, device {} | normalisation {} (not shown)",
                    dataset_name, dataset.size(), dataset.height(), dataset.width(), dataset.channels(),
                    data::describe(config), seed, epoch, run_on.str(), normalisation),
        title_chars);
    const int title_height = kMargin + static_cast<int>(title.size()) * kLineHeight + kMargin;
    const int row_height = tile + 4 + kCaptionLines * kLineHeight + kMargin;
    const int height = title_height + static_cast<int>(images) * row_height;
    Canvas canvas(width, height);
    for (size_t i = 0; i < title.size(); ++i) canvas.text(kMargin, kMargin + static_cast<int>(i) * kLineHeight, title[i], kInk);

    const int64_t channels = augmented.size(1), plane = channels * size * size;
    const std::vector<float> view_pixels = augmented.to_vector<float>(), original_pixels = originals.to_vector<float>();
    const std::vector<int64_t> labels = chosen.labels.to_vector<int64_t>();
    const size_t caption_chars = static_cast<size_t>(tile / kCharWidth);
    for (int64_t row = 0; row < images; ++row) {
      const int y = title_height + static_cast<int>(row) * row_height;
      canvas.image(kMargin, y, original_pixels.data() + row * plane, channels, size, size, scale);
      const int64_t label = labels[static_cast<size_t>(row)];
      const std::string class_name = label < static_cast<int64_t>(dataset.class_names.size())
                                         ? dataset.class_names[static_cast<size_t>(label)]
                                         : std::to_string(label);
      canvas.text(kMargin, y + tile + 4, fmt::format("#{}", samples[static_cast<size_t>(row)]), kInk);
      canvas.text(kMargin, y + tile + 4 + kLineHeight, class_name.substr(0, caption_chars), kDim);
      for (int64_t view = 0; view < views; ++view) {
        const int64_t output_index = view * images + row;  // view-major, as the loader's batches
        const int x = kMargin + static_cast<int>(view + 1) * (tile + kMargin);
        canvas.image(x, y, view_pixels.data() + output_index * plane, channels, size, size, scale);
        const std::vector<std::string> lines = caption_lines(params[static_cast<size_t>(output_index)]);
        for (size_t i = 0; i < lines.size() && i < static_cast<size_t>(kCaptionLines); ++i) {
          canvas.text(x, y + tile + 4 + static_cast<int>(i) * kLineHeight, lines[i].substr(0, caption_chars),
                      i == 0 ? kInk : kDim);
        }
      }
    }

    if (output.empty()) {
      output = fmt::format("augment-{}-{}-{}px-{}views-seed{}.png", dataset_name, preset, size, views, seed);
    }
    util::write_file_atomically(output, canvas.encode_png());
    fmt::print("wrote {} ({}x{} px): {} images x {} views, {}\n", output, width, height, images, views,
               data::describe(config));
    return EXIT_SUCCESS;
  } catch (const std::exception& error) {
    fmt::print(stderr, "error: {}\n", error.what());
    return EXIT_FAILURE;
  }
}
