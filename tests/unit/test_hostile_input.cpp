// Hostile input, one crafted file per class of defect a corruption fuzz of the readers found:
// each must end in a visrep::Error that names the file and the problem, promptly, without a
// crash, a hang, a giant allocation or a silent wrong result. The fuzz targets (tests/fuzz)
// look for new ones; these keep the old ones fixed.
#include <stb/stb_image_write.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "engine/data/cifar.h"
#include "engine/data/image_decode.h"
#include "engine/data/image_folder.h"
#include "engine/data/mnist.h"
#include "engine/io/npy.h"
#include "engine/io/npz.h"
#include "engine/io/safetensors.h"
#include "engine/nn/layers.h"
#include "engine/ops.h"
#include "engine/util/atomic_file.h"
#include "models/bit_weights.h"
#include "tests/support/crafted_files.h"
#include "tests/support/files.h"

using namespace visrep;
using namespace visrep::testing;
using Catch::Contains;

namespace {

// Throws unless `load(path)` of a file holding `bytes` fails with a visrep::Error whose
// message names the file, contains `problem` and is short (a value echoed whole would not be).
template <class Load>
void require_refused(Load load, const std::string& file_name, const std::string& bytes, const std::string& problem) {
  require_rejected(load, file_name, bytes, problem);
  TemporaryDirectory directory;
  write_bytes(directory.file(file_name), bytes);
  try {
    load(directory.file(file_name));
  } catch (const Error& error) {
    CHECK(std::string(error.what()).size() < 1000);
  }
}

std::string decode_error(const std::string& bytes, int channels = 3) {
  try {
    data::decode_image(bytes, channels);
  } catch (const Error& error) {
    return error.what();
  }
  return "decoded";
}

std::string stb_written(const std::function<int(stbi_write_func*, void*)>& writer) {
  std::string bytes;
  const auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), static_cast<size_t>(size));
  };
  REQUIRE(writer(append, &bytes) != 0);
  return bytes;
}

std::string jpeg_bytes(int width, int height) {
  const std::string pixels = byte_pattern(static_cast<size_t>(width * height * 3), 7);
  return stb_written(
      [&](stbi_write_func* f, void* c) { return stbi_write_jpg_to_func(f, c, width, height, 3, pixels.data(), 90); });
}

size_t find_marker(const std::string& jpeg, char marker) {
  const size_t at = jpeg.find(std::string("\xff") + marker);
  REQUIRE(at != std::string::npos);
  return at;
}

}  // namespace

// ---- safetensors --------------------------------------------------------------------------------

TEST_CASE("hostile safetensors: deep nesting, many entries, long values, overflowing shapes", "[unit][hostile]") {
  const auto load = [](const std::string& path) { return io::load_safetensors(path); };
  SECTION("a shape nested 100,000 deep is refused without formatting it (it overflowed the stack)") {
    const std::string nested = std::string(100000, '[') + std::string(100000, ']');
    require_refused(load, "deep.safetensors",
                    safetensors_bytes(R"({"w":{"dtype":"F32","shape":)" + nested + R"(,"data_offsets":[0,0]}})", ""),
                    "nests deeper than 8 levels");
    require_refused(load, "deep_offsets.safetensors",
                    safetensors_bytes(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":)" + nested + "}}", ""),
                    "nests deeper than 8 levels");
  }
  SECTION("100,000 entries load (a parse callback made this quadratic: minutes); duplicates are still found") {
    std::string header = "{";
    for (int i = 0; i < 100000; ++i) {
      header += fmt::format(R"({}"t{}":{{"dtype":"F32","shape":[0],"data_offsets":[0,0]}})", i ? "," : "", i);
    }
    TemporaryDirectory directory;
    write_bytes(directory.file("many.safetensors"), safetensors_bytes(header + "}", ""));
    REQUIRE(io::load_safetensors(directory.file("many.safetensors")).tensors.size() == 100000);
    require_refused(load, "twice.safetensors",
                    safetensors_bytes(header + R"(,"t7":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}})", ""),
                    "names 't7' twice");
  }
  SECTION("long and binary values are echoed cut and escaped") {
    const std::string name(100000, 'n');
    require_refused(load, "long.safetensors",
                    safetensors_bytes(R"({")" + name + R"(":{"dtype":"X9","shape":[],"data_offsets":[0,0]}})", ""),
                    "(100000 bytes)");
    require_refused(load, "escape.safetensors",
                    safetensors_bytes(R"({"w\u001b[31m":{"dtype":"X9","shape":[],"data_offsets":[0,0]}})", ""),
                    "w\\x1b[31m");
    require_refused(load, "unterminated.safetensors", safetensors_bytes(R"({"w": ")" + std::string(1 << 20, 'x'), ""),
                    "not valid JSON");
  }
  SECTION("shape (0, 2^62, 2^62) holds no bytes but its strides overflow: refused, not loaded") {
    require_refused(
        load, "strides.safetensors",
        safetensors_bytes(
            R"({"w":{"dtype":"F32","shape":[0,4611686018427387904,4611686018427387904],"data_offsets":[0,0]}})", ""),
        "overflows");
  }
}

TEST_CASE("hostile npy: shape (0, 2^62, 2^62)", "[unit][hostile]") {
  require_refused([](const std::string& path) { return io::load_npy(path); }, "strides.npy",
                  npy_bytes_by_hand(1,
                                    "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4611686018427387904, "
                                    "4611686018427387904), }",
                                    ""),
                  "overflows");
  // An empty array with sizes that fit still loads.
  TemporaryDirectory directory;
  write_bytes(directory.file("empty.npy"),
              npy_bytes_by_hand(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 1099511627776), }", ""));
  REQUIRE(io::load_npy(directory.file("empty.npy")).shape() == Shape{0, int64_t{1} << 40});
}

// ---- npz ----------------------------------------------------------------------------------------

TEST_CASE("hostile npz: methods, sizes, duplicates and overlaps are named before anything is unpacked",
          "[unit][hostile]") {
  const auto load = [](const std::string& path) { return io::load_npz(path); };
  const std::string member = io::npy_bytes(arange(4).to(kFloat32), "member");
  SECTION("a bzip2 member declaring 4 GB (np.savez never writes bzip2)") {
    require_refused(
        load, "bzip2.npz",
        zip_bytes(
            {{.name = "w.npy", .data = std::string(273, 'B'), .method = 12, .unpacked_size = 0xfffffff0, .crc = 0}}),
        "member 'w.npy': is compressed with bzip2");
  }
  SECTION("a deflated member declaring more than deflate can expand to") {
    require_refused(load, "ratio.npz",
                    zip_bytes({{.name = "w.npy",
                                .data = deflate_raw(member),
                                .method = 8,
                                .unpacked_size = 0x7fffffff,
                                .crc = crc32_of(member)}}),
                    "more than deflate can produce");
  }
  SECTION("a duplicated member names the member, not libzip's \"File already exists\"") {
    require_refused(load, "twice.npz",
                    zip_bytes({{.name = "w.npy", .data = member}, {.name = "w.npy", .data = member}}),
                    "member 'w.npy': appears twice");
  }
  SECTION("a 0xFFFFFFFF size field is a corrupt field, not libzip's \"No such file\"") {
    require_refused(load, "size.npz", zip_bytes({{.name = "w.npy", .data = member, .unpacked_size = 0xffffffff}}),
                    "size or offset field is invalid");
  }
  SECTION("members sharing their bytes (a zip bomb) add up to more than the file") {
    require_refused(load, "overlap.npz",
                    zip_bytes({{.name = "a.npy", .data = member},
                               {.name = "b.npy", .same_data_as = 0},
                               {.name = "c.npy", .same_data_as = 0}}),
                    "add up to more than");
  }
  SECTION("a stored member whose sizes disagree") {
    require_refused(load, "stored.npz", zip_bytes({{.name = "w.npy", .data = member, .unpacked_size = 4096}}),
                    "claims 4096 bytes unpacked");
  }
}

// ---- MNIST-format (IDX) files -------------------------------------------------------------------

TEST_CASE("hostile idx: counts are checked against the file before allocating", "[unit][hostile]") {
  const auto labels = [](const std::string& path) { return data::read_idx_labels(path); };
  const auto images = [](const std::string& path) { return data::read_idx_images(path); };
  // 4.3 GB of labels from an 8-byte file, and 2^32 - 1 images of 4096 x 4096 (2^56 bytes).
  require_refused(labels, "labels", big_endian32(0x801) + big_endian32(0xffffffff),
                  "truncated: it holds 0 of 4294967295 labels");
  const std::string header = big_endian32(0x803) + big_endian32(0xffffffff) + big_endian32(4096) + big_endian32(4096);
  require_refused(images, "images", header, "holds 0 of 72057594021150720 pixel bytes");
  require_refused(images, "images.gz", gzip_bytes(header), "more than a");
  require_refused(labels, "labels.gz", gzip_bytes(big_endian32(0x801) + big_endian32(0xffffffff)), "more than a");
  // 17 bytes of gzip, too short for a trailer, whose cut stream still gives a header of
  // 8.6 GB of pixels (the fuzz target found it: zlib hands out what a cut stream holds).
  require_refused(images, "short.gz",
                  std::string("\x1f\x8b\x08\x00\x00\x00\x00\x00\x01\xf7\x63\x60\xe0\x60\x66\x40\xc2", 17),
                  "cannot hold a gzip header and trailer");
  // A gzip trailer that records another length than the header announces.
  std::string cut = gzip_bytes(big_endian32(0x801) + big_endian32(100000) + byte_pattern(100000));
  cut.replace(cut.size() - 4, 4, little_endian32(500));
  require_refused(labels, "cut.gz", cut, "gzip trailer records 500 bytes");
}

TEST_CASE("hostile dataset files that are not regular files", "[unit][hostile]") {
  TemporaryDirectory directory;
  const std::string fifo = directory.file("data_batch_1.bin");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);  // reading one would block for ever
  REQUIRE_THROWS_WITH(data::read_cifar_batch(fifo, data::CifarFormat::Cifar10),
                      Contains(fifo) && Contains("not a regular file"));
  REQUIRE_THROWS_WITH(data::read_idx_labels(fifo), Contains(fifo) && Contains("not a regular file"));
  REQUIRE_THROWS_WITH(io::load_npz(fifo), Contains(fifo) && Contains("not a regular file"));
}

// ---- images -------------------------------------------------------------------------------------

TEST_CASE("hostile images: declared sizes are bounded before decoding", "[unit][hostile]") {
  // The three bytes "P5\n" decoded as 0x0 and aborted in the resize; "P5 0 0 255" likewise.
  CHECK_THAT(decode_error("P5\n"), Contains("no width"));
  CHECK_THAT(decode_error("P5 0 0 255\n"), Contains("0x0 pixels"));
  // A 700-byte JPEG declaring 60000 x 60000 (it cost 1 GB and seconds before failing).
  std::string jpeg = jpeg_bytes(8, 8);
  const size_t frame = find_marker(jpeg, '\xc0');  // SOF0: length, precision, height, width
  std::string huge = jpeg;
  huge.replace(frame + 5, 4, big_endian16(60000) + big_endian16(60000));
  CHECK_THAT(decode_error(huge), Contains("more than the 67108864 an image may have"));
  // Under the cap, but more than the file's bytes can encode.
  huge.replace(frame + 5, 4, big_endian16(4000) + big_endian16(4000));
  CHECK_THAT(decode_error(huge), Contains("more than its") && Contains("bytes can encode"));
  // A PNG declaring 4000 x 4000 with 20-odd bytes of IDAT.
  CHECK_THAT(decode_error(png_bytes(4000, 4000, 8, 0, png_rows(1, 4))), Contains("IDAT data can inflate to"));
  // A GIF whose logical screen is 8000 x 8000 (stb allocates ~9 bytes per screen pixel).
  std::string gif = gif_bytes(3, 2);
  gif.replace(6, 4, little_endian16(8000) + little_endian16(8000));
  CHECK_THAT(decode_error(gif), Contains("the GIF declares 64000000 pixels"));
  // ImageFolderOptions::max_pixels lowers the bound.
  CHECK_THROWS_WITH(data::decode_image(bmp_palette_bytes(10, 10), 3, 50), Contains("more than the 50"));
  CHECK(data::decode_image(bmp_palette_bytes(10, 10), 3, 100).pixels.size() == 300);
}

TEST_CASE("hostile images: truncated files are refused, not padded", "[unit][hostile]") {
  const std::string rgb = byte_pattern(4 * 3 * 3);
  const std::string bmp =
      stb_written([&](stbi_write_func* f, void* c) { return stbi_write_bmp_to_func(f, c, 4, 3, 3, rgb.data()); });
  const int rle = stbi_write_tga_with_rle;
  stbi_write_tga_with_rle = 0;
  const std::string tga =
      stb_written([&](stbi_write_func* f, void* c) { return stbi_write_tga_to_func(f, c, 4, 3, 3, rgb.data()); });
  stbi_write_tga_with_rle = rle;
  std::vector<float> radiance(8 * 2 * 3, 0.5f);
  const std::string hdr =
      stb_written([&](stbi_write_func* f, void* c) { return stbi_write_hdr_to_func(f, c, 8, 2, 3, radiance.data()); });
  const std::string jpeg = jpeg_bytes(16, 16);
  const std::string png = png_bytes(3, 2, 8, 2, png_rows(2, 9));
  const std::string gif = gif_bytes(3, 2);
  const std::string pgm = "P5\n3 2\n255\n" + byte_pattern(6);
  const std::string raw_psd = psd_bytes(3, 2, 8, false), packed_psd = psd_bytes(3, 2, 16, true);
  // Every one of them decodes whole...
  for (const std::string* file : {&bmp, &tga, &hdr, &jpeg, &png, &gif, &pgm, &raw_psd, &packed_psd}) {
    CHECK(decode_error(*file) == "decoded");
  }
  // ...and is refused cut.
  CHECK_THAT(decode_error(bmp.substr(0, bmp.size() - 5)), Contains("the BMP is truncated"));
  CHECK_THAT(decode_error(tga.substr(0, tga.size() - 5)), Contains("the TGA is truncated"));
  CHECK_THAT(decode_error(pgm.substr(0, pgm.size() - 1)), Contains("the PNM is truncated"));
  CHECK_THAT(decode_error(raw_psd.substr(0, raw_psd.size() - 1)), Contains("the PSD is truncated"));
  CHECK_THAT(decode_error(packed_psd.substr(0, packed_psd.size() - 1)), Contains("the PSD is truncated"));
  CHECK_THAT(decode_error(jpeg.substr(0, jpeg.size() - 10)), Contains("end-of-image marker"));
  CHECK_THAT(decode_error(png_bytes(3, 2, 8, 2, png_rows(2, 9), "", /*complete=*/false)), Contains("IEND"));
  CHECK_THAT(decode_error(gif.substr(0, gif.size() - 3)), Contains("the GIF ends inside its first image"));
  // stb_image 2.27 loops for ever on a run-length HDR scanline cut by the end of the file.
  CHECK_THAT(decode_error(hdr.substr(0, hdr.size() - 5)), Contains("ends inside a run-length scanline"));
  CHECK_THAT(decode_error(hdr.substr(0, hdr.size() - 5)), Contains("truncated"));
}

TEST_CASE("hostile images: what stb_image 2.27 would overflow on is refused first", "[unit][hostile]") {
  // A Huffman table of more than 256 codes: stb writes past its 257-entry table.
  std::string jpeg = jpeg_bytes(8, 8);
  const size_t table = find_marker(jpeg, '\xc4');  // DHT: length, class/id, 16 counts
  jpeg[table + 5 + 15] = static_cast<char>(0xff);  // 255 more 16-bit codes
  CHECK_THAT(decode_error(jpeg), Contains("Huffman table of") && Contains("at most 256"));
  // stb quotes a PNG chunk's type bytes in its reason: they come out escaped.
  std::string png = png_bytes(2, 2, 8, 0, png_rows(2, 2));
  png.replace(37, 4, "ID\x01\x02");  // the IDAT chunk's type
  CHECK_THAT(decode_error(png), Contains("\\x01"));
}

TEST_CASE("hostile images: 16-bit PGM, PPM and PNG decode properly", "[unit][hostile]") {
  // 16-bit PGM through another channel count was read out of bounds by stb 2.27.
  const std::string pgm16 =
      "P5\n4 1\n65535\n" + big_endian16(0) + big_endian16(65535) + big_endian16(0x8080) + big_endian16(0x7f7f);
  CHECK(data::decode_image(pgm16, 1).pixels == std::vector<uint8_t>{0, 255, 128, 127});
  CHECK(data::decode_image(pgm16, 3).pixels ==
        std::vector<uint8_t>{0, 0, 0, 255, 255, 255, 128, 128, 128, 127, 127, 127});
  // maxval scales: 1023 is white, 512 rounds to 128.
  const std::string ppm10 = "P6 1 1 1023\n" + big_endian16(1023) + big_endian16(512) + big_endian16(0);
  CHECK(data::decode_image(ppm10, 3).pixels == std::vector<uint8_t>{255, 128, 0});
  CHECK(data::decode_image(ppm10, 1).pixels == std::vector<uint8_t>{(255 * 77 + 128 * 150) >> 8});
  // A large valid 16-bit PGM (it segfaulted) decodes, each sample its high byte rounded.
  std::string large = "P5 512 512 65535\n";
  for (int i = 0; i < 512 * 512; ++i) large += big_endian16(static_cast<uint32_t>(i % 256) * 257);
  const data::DecodedImage decoded = data::decode_image(large, 3);
  REQUIRE(decoded.pixels.size() == size_t{512} * 512 * 3);
  CHECK(decoded.pixels[3 * 1000] == 1000 % 256);
  // 16-bit PNG through stbi_load_16, gray and RGB.
  const std::string gray16 = png_bytes(4, 1, 16, 0, std::string(1, '\0') + pgm16.substr(pgm16.size() - 8));
  CHECK(data::decode_image(gray16, 1).pixels == std::vector<uint8_t>{0, 255, 128, 127});
  const std::string rgb16 =
      png_bytes(1, 1, 16, 2, std::string(1, '\0') + big_endian16(65535) + big_endian16(0) + big_endian16(0));
  CHECK(data::decode_image(rgb16, 3).pixels == std::vector<uint8_t>{255, 0, 0});
  CHECK(data::decode_image(rgb16, 1).pixels == std::vector<uint8_t>{(255 * 77) >> 8});
}

TEST_CASE("hostile images through an image folder name the file", "[unit][hostile]") {
  TemporaryDirectory directory;
  std::filesystem::create_directories(directory.path() / "class");
  const std::string image = (directory.path() / "class" / "image.pgm").string();
  write_bytes(image, "P5\n");
  REQUIRE_THROWS_WITH(data::load_image_folder(directory.path().string()), Contains(image) && Contains("no width"));
  // A file of 2^31 bytes (sparse) is refused before it is read: stb_image takes an int length.
  write_bytes(image, "");
  std::filesystem::resize_file(image, uintmax_t{1} << 31);
  REQUIRE_THROWS_WITH(data::load_image_folder(directory.path().string()),
                      Contains(image) && Contains("more than the 2^31 - 1"));
}

// ---- BiT weights --------------------------------------------------------------------------------

TEST_CASE("hostile BiT weights: checked against the architecture before it is built", "[unit][hostile]") {
  // A root kernel of 512 output channels and unit names for 72 units per block, but no other
  // arrays: building that network first would take ~80 GB; the check refuses it at once.
  io::TensorMap npz{{"resnet/root_block/standardized_conv2d/kernel", zeros({7, 7, 3, 512})}};
  for (int block = 1; block <= 4; ++block) {
    for (int unit = 1; unit <= 72; ++unit) {
      npz[fmt::format("resnet/block{}/unit{:02d}/a/group_norm/gamma", block, unit)] = zeros({1});
    }
  }
  const models::ResNetV2Config config = models::infer_resnet_v2_config(npz, 1);
  REQUIRE(config.base_width * config.width_factor == 512);
  REQUIRE_THROWS_WITH(
      models::make_resnet_v2_from_bit_weights(npz, config, false, "'wide.npz'"),
      Contains("'wide.npz'") && Contains("missing 'resnet/block1/unit01/a/standardized_conv2d/kernel'"));
  // The same from timm's names.
  io::TensorMap state{{"stem.conv.weight", zeros({512, 3, 7, 7})}};
  for (int stage = 0; stage < 4; ++stage) {
    for (int block = 0; block < 72; ++block)
      state[fmt::format("stages.{}.blocks.{}.norm1.weight", stage, block)] = zeros({1});
  }
  const models::ResNetV2Config timm_config = models::infer_resnet_v2_config_from_state(state, 1);
  REQUIRE_THROWS_WITH(models::make_resnet_v2_from_timm_state(state, timm_config, "'wide.safetensors'"),
                      Contains("'wide.safetensors'") && Contains("missing 'stages.0.blocks.0.conv1.weight'"));

  // Architecture sizes past the limits are refused by the inference itself.
  npz["resnet/root_block/standardized_conv2d/kernel"] = zeros({7, 7, 3, 1024});
  REQUIRE_THROWS_WITH(models::infer_resnet_v2_config(npz, 1), Contains("1024 output channels"));
  npz["resnet/root_block/standardized_conv2d/kernel"] = zeros({7, 7, 3, 64});
  for (int unit = 73; unit <= 2000; ++unit)
    npz[fmt::format("resnet/block2/unit{:02d}/a/group_norm/gamma", unit)] = zeros({1});
  REQUIRE_THROWS_WITH(models::infer_resnet_v2_config(npz, 1), Contains("block2 has 2000 units, more than the 72"));
}

TEST_CASE("hostile BiT weights: an integer array is refused, float arrays convert on purpose", "[unit][hostile]") {
  manual_seed(5);
  const models::ResNetV2Config config{.depth = 0,
                                      .classes = 2,
                                      .in_channels = 1,
                                      .gn_groups = 1,
                                      .base_width = 1,
                                      .units_per_stage = {1, 1, 1, 1},
                                      .zero_head = false};
  models::ResNetV2 source(config);
  io::TensorMap npz;
  const auto state = source.state_dict();
  for (const models::BitWeightName& name : models::bit_weight_names(source, true)) {
    npz[name.npz_name] =
        name.is_kernel ? state.at(name.timm_name).permute({2, 3, 1, 0}).contiguous() : state.at(name.timm_name);
    REQUIRE(state.at(name.timm_name).shape() == name.shape);  // the shapes from the config are the model's
  }
  REQUIRE(models::make_resnet_v2_from_bit_weights(npz, config, true, "'ok.npz'")->describe() == source.describe());
  io::TensorMap as_double = npz;
  for (auto& [name, array] : as_double) array = array.to(kFloat64);
  models::ResNetV2 model(config);
  REQUIRE(models::load_bit_weights(model, as_double, true, "'double.npz'"));  // float64 -> float32, deliberately
  npz["resnet/group_norm/gamma"] = npz["resnet/group_norm/gamma"].to(kInt32);
  REQUIRE_THROWS_WITH(models::make_resnet_v2_from_bit_weights(npz, config, true, "'int.npz'"),
                      Contains("'resnet/group_norm/gamma'") && Contains("int32") && Contains("not a floating-point"));
}

// ---- checkpoints and writes ---------------------------------------------------------------------

TEST_CASE("hostile checkpoint: a tensor of another dtype is refused with both dtypes", "[unit][hostile]") {
  // An encoder weight stored as I32 loaded silently (converted) and evaluated to 12.5%.
  TemporaryDirectory directory;
  nn::Linear layer(3, 2);
  std::map<std::string, Tensor> state = layer.state_dict();
  state["weight"] = state["weight"].to(kInt32);
  io::save_safetensors(directory.file("encoder.safetensors"), state);
  const io::TensorMap loaded = io::load_safetensors(directory.file("encoder.safetensors")).tensors;
  REQUIRE(loaded.at("weight").dtype() == kInt32);
  REQUIRE_THROWS_WITH(layer.load_state_dict(std::map<std::string, Tensor>(loaded.begin(), loaded.end())),
                      Contains("'weight'") && Contains("int32") && Contains("float32"));
}

TEST_CASE("stale temporary files of interrupted writes are removed at the next write", "[unit][hostile]") {
  TemporaryDirectory directory;
  const std::string target = directory.file("checkpoint.safetensors");
  // No process has a pid above Linux's pid_max (at most 2^22), so these writers are gone.
  const std::string stale = target + ".tmp-99999999-0";
  const std::string recent = directory.file("metrics.jsonl.tmp-99999998-3");
  const std::string running = target + fmt::format(".tmp-{}-0", ::getppid());  // this test's parent
  const std::string lookalike = directory.file("notes.tmp-backup");
  const std::string own_pattern_directory = directory.file("folder.tmp-99999997-0");
  for (const std::string& path : {stale, recent, running, lookalike}) write_bytes(path, "partial");
  std::filesystem::create_directory(own_pattern_directory);
  const auto two_hours_ago = std::filesystem::file_time_type::clock::now() - std::chrono::hours(2);
  for (const std::string& path : {stale, running, lookalike}) std::filesystem::last_write_time(path, two_hours_ago);

  util::write_file_atomically(target, std::string_view("new"));
  // Only the old file of a dead writer went; the recent one may belong to a writer elsewhere.
  REQUIRE(directory.entries() == std::vector<std::string>{"checkpoint.safetensors",
                                                          fmt::format("checkpoint.safetensors.tmp-{}-0", ::getppid()),
                                                          "folder.tmp-99999997-0", "metrics.jsonl.tmp-99999998-3",
                                                          "notes.tmp-backup"});
  // Once it has aged, the next write into the folder removes it too.
  std::filesystem::last_write_time(recent, two_hours_ago);
  util::write_file_atomically(target, std::string_view("newer"));
  REQUIRE_FALSE(std::filesystem::exists(recent));
  REQUIRE(std::filesystem::exists(running));
  REQUIRE(read_bytes(target) == "newer");
  REQUIRE(util::remove_stale_temporary_files(directory.path().string()) == 0);
}
