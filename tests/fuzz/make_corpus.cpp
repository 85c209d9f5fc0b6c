// Writes the fuzz targets' seed corpus: a few small valid files per reader, covering its
// variants (dtypes, versions, compression, bit depths), from which libFuzzer's mutations
// start. Run by hand after a reader learns a new variant:
//   build/fuzz/make_corpus tests/fuzz/corpus
// Files come from visrep's own writers where it has them (safetensors, .npy, .npz, ResNetV2
// weights), from stb_image_write (PNG, JPEG, BMP, TGA, HDR), and otherwise from the
// formats' specifications by hand (tests/support/crafted_files.h: 16-bit and palette PNG,
// PGM/PPM, PSD, GIF, deflated zip members, IDX, CIFAR).
#include <stb/stb_image_write.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "engine/io/npy.h"
#include "engine/io/npz.h"
#include "engine/io/safetensors.h"
#include "engine/ops.h"
#include "models/bit_weights.h"
#include "tests/support/crafted_files.h"

namespace {

using namespace visrep;
using namespace visrep::testing;
namespace fs = std::filesystem;

fs::path corpus_root;

void write(const std::string& reader, const std::string& name, const std::string& bytes) {
  const fs::path path = corpus_root / reader / name;
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
  std::printf("%6zu bytes  %s\n", bytes.size(), path.c_str());
}

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// What a writer that takes a path produces, as bytes.
std::string via_file(const std::function<void(const std::string&)>& writer) {
  const fs::path path = fs::temp_directory_path() / "visrep-make-corpus.tmp";
  writer(path.string());
  std::string bytes = read(path);
  fs::remove(path);
  return bytes;
}

// ---- tensors ----------------------------------------------------------------------------------

void tensors() {
  const Tensor matrix = arange(6).to(kFloat32).reshape({2, 3});
  write("safetensors", "float32_2x3.safetensors", via_file([&](const std::string& path) {
          io::save_safetensors(path, {{"w", matrix}}, {{"format", "pt"}});
        }));
  write("safetensors", "mixed.safetensors", via_file([&](const std::string& path) {
          io::save_safetensors(path, {{"a.f64", arange(3).to(kFloat64)},
                                      {"b.i64", arange(2)},
                                      {"c.i32", arange(4).to(kInt32).reshape({2, 2})},
                                      {"d.u8", arange(5).to(kUInt8)},
                                      {"e.bf16", arange(2).to(kBFloat16)},
                                      {"f.empty", zeros({0, 3})},
                                      {"g.scalar", scalar_tensor(2.5)}});
        }));
  // The dtypes visrep reads but does not write.
  write("safetensors", "f16_bool.safetensors",
        safetensors_bytes(R"({"__metadata__":{"format":"pt"},"half":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},)"
                          R"("flag":{"dtype":"BOOL","shape":[3],"data_offsets":[4,7]}})",
                          std::string("\x00\x3c\x00\xc0\x01\x00\x02", 7)));

  write("npy", "float32_2x3.npy", io::npy_bytes(matrix, "corpus"));
  write("npy", "int64.npy", io::npy_bytes(arange(4), "corpus"));
  write("npy", "uint8_scalar.npy", io::npy_bytes(scalar_tensor(7.0).to(kUInt8), "corpus"));
  write("npy", "float64_empty.npy", io::npy_bytes(zeros({0, 2}, kFloat64), "corpus"));
  // What other writers produce: big-endian, Fortran order, float16, bool, versions 2.0 and
  // 3.0 (4-byte header length).
  write("npy", "big_endian_int32.npy",
        npy_bytes_by_hand(1, "{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }",
                          big_endian32(1) + big_endian32(2)));
  write("npy", "fortran_float32.npy",
        npy_bytes_by_hand(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", byte_pattern(16)));
  write("npy", "float16.npy",
        npy_bytes_by_hand(1, "{'descr': '<f2', 'fortran_order': False, 'shape': (3,), }",
                          std::string("\x00\x3c\x00\xc0\x00\x7c", 6)));
  write("npy", "bool.npy",
        npy_bytes_by_hand(1, "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }",
                          std::string("\x01\x00\x02", 3)));
  write("npy", "version2.npy",
        npy_bytes_by_hand(2, "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", std::string(8, '\x05')));
  write(
      "npy", "version3.npy",
      npy_bytes_by_hand(3, "{\"descr\": \"<f8\", \"fortran_order\": False, \"shape\": (), }", std::string(8, '\x3f')));

  write("npz", "stored.npz", via_file([&](const std::string& path) {
          io::save_npz(path, {{"a", matrix}, {"nested/b", arange(3)}});
        }));
  write("npz", "empty.npz", via_file([&](const std::string& path) { io::save_npz(path, {}); }));
  const std::string member = io::npy_bytes(arange(64).to(kFloat32), "corpus");
  write("npz", "deflated.npz",
        zip_bytes({{.name = "w.npy",
                    .data = deflate_raw(member),
                    .method = 8,
                    .unpacked_size = static_cast<int64_t>(member.size()),
                    .crc = static_cast<int64_t>(crc32_of(member))}}));
}

// ---- datasets ---------------------------------------------------------------------------------

void datasets() {
  const std::string images =
      big_endian32(0x803) + big_endian32(2) + big_endian32(3) + big_endian32(4) + byte_pattern(24);
  const std::string labels = big_endian32(0x801) + big_endian32(3) + std::string("\x01\x07\x03", 3);
  write("idx", "images-idx3-ubyte", images);
  write("idx", "images-idx3-ubyte.gz", gzip_bytes(images));
  write("idx", "labels-idx1-ubyte", labels);
  write("idx", "labels-idx1-ubyte.gz", gzip_bytes(labels));

  // One record each: <label> (CIFAR-100: <coarse><fine>), then the 3072 plane bytes.
  write("cifar", "cifar10_one_record.bin", std::string(1, '\x03') + byte_pattern(3072));
  write("cifar", "cifar100_one_record.bin", std::string("\x02\x2a", 2) + byte_pattern(3072, 5));
}

// ---- images -----------------------------------------------------------------------------------

std::string stb_written(const std::function<int(stbi_write_func*, void*)>& writer) {
  std::string bytes;
  const auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), static_cast<size_t>(size));
  };
  if (writer(append, &bytes) == 0) throw std::runtime_error("stb_image_write failed");
  return bytes;
}

void images() {
  const std::string rgb = byte_pattern(4 * 3 * 3), rgba = byte_pattern(4 * 3 * 4), gray = byte_pattern(8 * 8);
  const std::string colour = byte_pattern(16 * 8 * 3, 3);
  write("image", "rgb.png", stb_written([&](stbi_write_func* f, void* c) {
          return stbi_write_png_to_func(f, c, 4, 3, 3, rgb.data(), 12);
        }));
  write("image", "rgba.png", stb_written([&](stbi_write_func* f, void* c) {
          return stbi_write_png_to_func(f, c, 4, 3, 4, rgba.data(), 16);
        }));
  write("image", "gray16.png", png_bytes(3, 2, 16, 0, png_rows(2, 6)));
  write("image", "rgb16.png", png_bytes(2, 2, 16, 2, png_rows(2, 12)));
  write("image", "palette.png",
        png_bytes(4, 2, 2, 3, png_rows(2, 1), std::string("\x00\x00\x00\xff\x00\x00\x00\xff\x00\x00\x00\xff", 12)));
  write("image", "gray.jpg", stb_written([&](stbi_write_func* f, void* c) {
          return stbi_write_jpg_to_func(f, c, 8, 8, 1, gray.data(), 90);
        }));
  write("image", "colour.jpg", stb_written([&](stbi_write_func* f, void* c) {
          return stbi_write_jpg_to_func(f, c, 16, 8, 3, colour.data(), 50);
        }));
  write("image", "rgb.bmp",
        stb_written([&](stbi_write_func* f, void* c) { return stbi_write_bmp_to_func(f, c, 4, 3, 3, rgb.data()); }));
  write("image", "palette.bmp", bmp_palette_bytes(5, 3));
  stbi_write_tga_with_rle = 1;
  write("image", "run_length.tga",
        stb_written([&](stbi_write_func* f, void* c) { return stbi_write_tga_to_func(f, c, 4, 3, 3, rgb.data()); }));
  stbi_write_tga_with_rle = 0;
  write("image", "raw.tga",
        stb_written([&](stbi_write_func* f, void* c) { return stbi_write_tga_to_func(f, c, 4, 3, 4, rgba.data()); }));
  std::vector<float> radiance(8 * 2 * 3);
  for (size_t i = 0; i < radiance.size(); ++i) radiance[i] = 0.05f * static_cast<float>(i);
  write("image", "run_length.hdr", stb_written([&](stbi_write_func* f, void* c) {
          return stbi_write_hdr_to_func(f, c, 8, 2, 3, radiance.data());
        }));
  write("image", "gray8.pgm", "P5\n3 2\n255\n" + byte_pattern(6));
  write("image", "rgb8.ppm", "P6 2 2 255\n" + byte_pattern(12));
  write("image", "gray16.pgm", "P5\n# a comment\n2 2\n65535\n" + byte_pattern(8));
  write("image", "rgb10bit.ppm", "P6\n1 2\n1023\n" + byte_pattern(12, 3));
  write("image", "raw8.psd", psd_bytes(3, 2, 8, false));
  write("image", "packbits16.psd", psd_bytes(2, 2, 16, true));
  write("image", "palette.gif", gif_bytes(3, 2));
}

// ---- BiT weights --------------------------------------------------------------------------------

void bit_weights() {
  // The smallest ResNetV2: one unit per stage, base width 1, one input channel, 2 classes.
  manual_seed(3);
  models::ResNetV2 model(models::ResNetV2Config{.depth = 0,
                                                .classes = 2,
                                                .in_channels = 1,
                                                .gn_groups = 1,
                                                .base_width = 1,
                                                .units_per_stage = {1, 1, 1, 1},
                                                .zero_head = false});
  const auto state = model.state_dict();
  io::TensorMap official;  // the official layout: HWIO kernels
  for (const models::BitWeightName& name : models::bit_weight_names(model, true)) {
    const Tensor& value = state.at(name.timm_name);
    official[name.npz_name] = name.is_kernel ? value.permute({2, 3, 1, 0}).contiguous() : value.clone();
  }
  write("bit_weights", "official_tiny.npz", via_file([&](const std::string& path) { io::save_npz(path, official); }));
  write("bit_weights", "timm_tiny.safetensors",
        via_file([&](const std::string& path) { models::save_resnet_v2_safetensors(model, path); }));
}

void app_configs() {
  write("app_config", "flags.toml",
        "# visrep flags\ndata = \"/tmp/data\"\nepochs = 3\nlr = 0.5\nlr-scaling = \"sqrt\"\ndigits = true\n"
        "schedule = [100, 200]\n");
  write("app_config", "flags.ini", "[default]\nepochs=2\ntrain-limit=10\ndevice=cpu\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus folder, e.g. tests/fuzz/corpus>\n", argv[0]);
    return 2;
  }
  corpus_root = argv[1];
  tensors();
  datasets();
  images();
  bit_weights();
  app_configs();
  return 0;
}
