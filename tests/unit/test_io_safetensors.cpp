// Safetensors: round trips of every dtype and layout, the files Python's safetensors wrote
// (tests/fixtures, see make_fixtures.py), and corrupt files that must fail with a message
// naming the file.
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "engine/io/safetensors.h"
#include "tests/support/files.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;
using Catch::Contains;

namespace {

// A safetensors file from a hand-written header and buffer, for the corruption tests.
std::string safetensors_bytes(const std::string& header, const std::string& buffer) {
  const uint64_t length = header.size();
  std::string bytes(reinterpret_cast<const char*>(&length), sizeof(length));
  return bytes + header + buffer;
}

}  // namespace

// ---- safetensors: round trips -------------------------------------------------------------------

TEST_CASE("safetensors round trip of every dtype", "[unit]") {
  TemporaryDirectory directory;
  Generator generator = testing::generator_for("safetensors round trip of every dtype");
  io::TensorMap tensors = {
      {"conv.weight", random_tensor({3, 4}, kFloat32, generator)},
      {"stats.mean", random_tensor({5}, kFloat64, generator)},
      {"half.weight", random_tensor({2, 3, 2}, kBFloat16, generator)},
      {"labels32", random_tensor({7}, kInt32, generator)},
      {"labels64", random_tensor({2, 2}, kInt64, generator)},
      {"image", random_tensor({3, 3}, kUInt8, generator)},
  };
  const std::map<std::string, std::string> metadata = {{"epoch", "3"}, {"note", "caf\xc3\xa9, \"quoted\""}};
  const std::string path = directory.file("state.safetensors");
  io::save_safetensors(path, tensors, metadata);

  const io::SafetensorsContents loaded = io::load_safetensors(path);
  REQUIRE(loaded.metadata == metadata);
  REQUIRE(loaded.tensors.size() == tensors.size());
  for (const auto& [name, original] : tensors) {
    INFO("tensor " << name);
    REQUIRE(loaded.tensors.count(name) == 1);
    require_identical(loaded.tensors.at(name), original);  // bfloat16 bit for bit
  }
  REQUIRE(directory.entries() == std::vector<std::string>{"state.safetensors"});
}

TEST_CASE("safetensors saves views by value", "[unit]") {
  TemporaryDirectory directory;
  Generator generator = testing::generator_for("safetensors saves views by value");
  const Tensor base = random_tensor({4, 6}, kFloat32, generator);
  const io::TensorMap views = {
      {"transposed", base.t()},
      {"strided_slice", base.slice(1, 1, 6, 2)},
      {"row", base.select(0, 2)},
      {"broadcast", base.select(1, 0).unsqueeze(1).expand({4, 3})},
      {"bf16_permuted", random_tensor({2, 3, 4}, kBFloat16, generator).permute({2, 0, 1})},
  };
  REQUIRE_FALSE(views.at("transposed").is_contiguous());
  const std::string path = directory.file("views.safetensors");
  io::save_safetensors(path, views);
  const io::SafetensorsContents loaded = io::load_safetensors(path);
  for (const auto& [name, view] : views) {
    INFO("tensor " << name);
    require_identical(loaded.tensors.at(name), view.contiguous());
  }
}

TEST_CASE("safetensors empty and scalar tensors", "[unit]") {
  TemporaryDirectory directory;
  Generator generator = testing::generator_for("safetensors empty and scalar tensors");
  const io::TensorMap tensors = {
      {"empty_rows", empty({0, 3}, kFloat32)},
      {"empty_ids", empty({0}, kInt64)},
      {"scalar", random_tensor({}, kFloat64, generator)},
      {"values", random_tensor({4}, kFloat32, generator)},
  };
  const std::string path = directory.file("small.safetensors");
  io::save_safetensors(path, tensors);
  const io::SafetensorsContents loaded = io::load_safetensors(path);
  REQUIRE(loaded.metadata.empty());
  for (const auto& [name, original] : tensors) require_identical(loaded.tensors.at(name), original);

  const std::string metadata_only = directory.file("metadata_only.safetensors");
  io::save_safetensors(metadata_only, {}, {{"step", "17"}});
  const io::SafetensorsContents nothing = io::load_safetensors(metadata_only);
  REQUIRE(nothing.tensors.empty());
  REQUIRE(nothing.metadata.at("step") == "17");
}

TEST_CASE("safetensors file layout", "[unit]") {
  TemporaryDirectory directory;
  Generator generator = testing::generator_for("safetensors file layout");
  const std::string path = directory.file("layout.safetensors");
  // Odd sizes, so that a writer without the alignment ordering would misalign the float64.
  io::save_safetensors(path,
                       {{"a_bytes", random_tensor({3}, kUInt8, generator)},
                        {"b_half", random_tensor({5}, kBFloat16, generator)},
                        {"c_double", random_tensor({2}, kFloat64, generator)}},
                       {{"k", "v"}});
  const std::string bytes = read_bytes(path);
  uint64_t header_length = 0;
  std::memcpy(&header_length, bytes.data(), sizeof(header_length));
  REQUIRE(header_length % 8 == 0);
  const auto header = nlohmann::json::parse(bytes.substr(8, header_length));
  REQUIRE(header["__metadata__"]["k"] == "v");
  REQUIRE(header["b_half"]["dtype"] == "BF16");
  REQUIRE(header["c_double"]["dtype"] == "F64");
  REQUIRE(header["c_double"]["shape"] == nlohmann::json::array({2}));
  uint64_t buffer_bytes = 0;
  for (const char* name : {"a_bytes", "b_half", "c_double"}) {
    INFO("tensor " << name);
    const uint64_t begin = header[name]["data_offsets"][0], end = header[name]["data_offsets"][1];
    const uint64_t element_bytes = std::string(name) == "a_bytes" ? 1 : std::string(name) == "b_half" ? 2 : 8;
    REQUIRE(begin % element_bytes == 0);
    buffer_bytes += end - begin;
  }
  REQUIRE(bytes.size() == 8 + header_length + buffer_bytes);
}

// ---- safetensors: files written by Python -----------------------------------------------------------

TEST_CASE("safetensors fixture written by numpy", "[unit]") {
  const io::SafetensorsContents loaded = io::load_safetensors(fixture("safetensors_numpy.safetensors"));
  const auto& t = loaded.tensors;
  REQUIRE(t.size() == 9);
  require_values(t.at("weight_f32"), kFloat32, {2, 3}, [](int64_t i) { return i * 0.25 - 3; });
  require_values(t.at("values_f64"), kFloat64, {4}, [](int64_t i) { return (i * 1.5 - 4) / 3; });
  require_values(t.at("ids_i32"), kInt32, {2, 2}, [](int64_t i) { return i * 65537.0 - 100000; });
  require_values(t.at("pixels_u8"), kUInt8, {5}, [](int64_t i) { return (i * 37 + 11) % 256; });
  require_values(t.at("half_f16"), kFloat32, {2, 2}, [](int64_t i) { return i * 0.5 - 2; });
  require_values(t.at("mask_bool"), kUInt8, {3}, [](int64_t i) { return i % 2 == 0 ? 1 : 0; });
  require_values(t.at("scalar_f32"), kFloat32, {}, [](int64_t) { return 1.75; });
  require_values(t.at("empty_f32"), kFloat32, {0, 3}, [](int64_t) { return 0.0; });
  // Exact int64 values beyond the 53 bits a double holds are compared as integers.
  const Tensor ids = t.at("ids_i64");
  REQUIRE(ids.dtype() == kInt64);
  REQUIRE(ids.shape() == Shape{3});
  for (int64_t i = 0; i < 3; ++i) REQUIRE(ids.data<int64_t>()[i] == i * 1000003 - (int64_t{1} << 40));
  REQUIRE(loaded.metadata == std::map<std::string, std::string>{{"format", "np"},
                                                                {"source", "tests/fixtures/make_fixtures.py"}});
}

TEST_CASE("safetensors bfloat16 fixture", "[unit]") {
  const io::SafetensorsContents loaded = io::load_safetensors(fixture("safetensors_bfloat16.safetensors"));
  const Tensor weight = loaded.tensors.at("weight_bf16");
  REQUIRE(weight.dtype() == kBFloat16);
  REQUIRE(weight.shape() == Shape{2, 4});
  for (int64_t i = 0; i < weight.numel(); ++i) {
    const uint16_t expected = static_cast<uint16_t>((0x3F80 + 3 * i) | (i % 2 == 1 ? 0x8000 : 0));
    REQUIRE(weight.data<bfloat16>()[i].bits == expected);
  }
  require_values(loaded.tensors.at("bias_f32"), kFloat32, {3}, [](int64_t i) { return i * 0.25 - 3; });
  REQUIRE(loaded.metadata.at("dtype") == "bfloat16");
}

// ---- safetensors: corrupt files -------------------------------------------------------------------

namespace {

void require_safetensors_rejected(const std::string& bytes, const std::string& problem) {
  require_rejected(io::load_safetensors, "corrupt.safetensors", bytes, problem);
}

}  // namespace

TEST_CASE("safetensors file shorter than 8 bytes", "[unit]") {
  require_safetensors_rejected("", "too short");
  require_safetensors_rejected(std::string("\x10\0\0\0\0", 5), "too short");
}

TEST_CASE("safetensors header length beyond the file", "[unit]") {
  require_safetensors_rejected(safetensors_bytes("{}", "").substr(0, 9), "runs past the end");
  std::string bytes = safetensors_bytes("{}", "");
  bytes[7] = '\x7f';  // a length near 2^63
  require_safetensors_rejected(bytes, "runs past the end");
}

TEST_CASE("safetensors header length over the limit", "[unit]") {
  // A sparse 120 MB file, so the length fits in the file but exceeds the 100 MB limit.
  TemporaryDirectory directory;
  const std::string path = directory.file("huge.safetensors");
  const uint64_t length = 110'000'000;
  write_bytes(path, std::string(reinterpret_cast<const char*>(&length), 8));
  std::filesystem::resize_file(path, 120'000'000);
  REQUIRE_THROWS_WITH(io::load_safetensors(path), Contains(path) && Contains("exceeds"));
}

TEST_CASE("safetensors header not valid JSON", "[unit]") {
  require_safetensors_rejected(safetensors_bytes("{\"w\": {\"dtype\": ", ""), "not valid JSON");
  require_safetensors_rejected(safetensors_bytes("[1, 2]  ", ""), "not an object");
  require_safetensors_rejected(safetensors_bytes(std::string("{\"\xff\": 1}"), ""), "not valid JSON");
}

TEST_CASE("safetensors entry missing a field", "[unit]") {
  require_safetensors_rejected(safetensors_bytes(R"({"w": {"dtype": "F32", "shape": [2]}})", kTwoFloats),
                               "no \"data_offsets\" field");
  require_safetensors_rejected(safetensors_bytes(R"({"w": {"shape": [2], "data_offsets": [0, 8]}})", kTwoFloats),
                               "no \"dtype\" field");
  require_safetensors_rejected(safetensors_bytes(R"({"w": [1]})", kTwoFloats), "not a JSON object");
}

TEST_CASE("safetensors unknown dtype", "[unit]") {
  require_safetensors_rejected(
      safetensors_bytes(R"({"w": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}})", kTwoFloats),
      "tensor 'w' has dtype 'C64'");
}

TEST_CASE("safetensors negative shape", "[unit]") {
  require_safetensors_rejected(
      safetensors_bytes(R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", kTwoFloats),
      "negative size -2");
  require_safetensors_rejected(
      safetensors_bytes(R"({"w": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}})", kTwoFloats),
      "not a list of non-negative integers");
}

TEST_CASE("safetensors data_offsets that do not match the shape", "[unit]") {
  require_safetensors_rejected(
      safetensors_bytes(R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", kTwoFloats),
      "F32 [3] (12 bytes) but its data_offsets [0, 8] span 8 bytes");
  require_safetensors_rejected(
      safetensors_bytes(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", kTwoFloats),
      "end comes before its begin");
  // A shape whose byte count overflows int64 must not wrap around.
  require_safetensors_rejected(
      safetensors_bytes(R"({"w": {"dtype": "F64", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})", ""),
      "overflows");
}

TEST_CASE("safetensors offsets outside the buffer", "[unit]") {
  require_safetensors_rejected(
      safetensors_bytes(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})", kTwoFloats),
      "beyond the end of the 8-byte data buffer");
}

TEST_CASE("safetensors overlapping tensors", "[unit]") {
  require_safetensors_rejected(safetensors_bytes(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                                     "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                                                 kTwoFloats),
                               "tensor 'b' (bytes [4, 8)) overlaps tensor 'a'");
}

TEST_CASE("safetensors buffer bytes owned by no tensor", "[unit]") {
  require_safetensors_rejected(
      safetensors_bytes(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", kTwoFloats),
      "bytes [0, 4) of the data buffer belong to no tensor");
  require_safetensors_rejected(
      safetensors_bytes(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", kTwoFloats),
      "account for only 4");
}

TEST_CASE("safetensors duplicate tensor name", "[unit]") {
  require_safetensors_rejected(safetensors_bytes(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                                     "w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                                                 kTwoFloats),
                               "names 'w' twice");
}

TEST_CASE("safetensors truncated file", "[unit]") {
  TemporaryDirectory directory;
  Generator generator = testing::generator_for("safetensors truncated file");
  const std::string path = directory.file("whole.safetensors");
  io::save_safetensors(path, {{"weight", random_tensor({4, 5}, kFloat32, generator)}});
  const std::string whole = read_bytes(path);
  require_safetensors_rejected(whole.substr(0, whole.size() - 4), "tensor 'weight' has data_offsets [0, 80]");
  require_safetensors_rejected(whole.substr(0, 20), "runs past the end");
}

TEST_CASE("safetensors missing file", "[unit]") {
  const std::string path = "/tmp/visrep-no-such-directory/missing.safetensors";
  REQUIRE_THROWS_WITH(io::load_safetensors(path), Contains(path) && Contains("cannot open"));
}

TEST_CASE("safetensors refuses bad tensors to save", "[unit]") {
  TemporaryDirectory directory;
  const std::string path = directory.file("bad.safetensors");
  REQUIRE_THROWS_WITH(io::save_safetensors(path, {{"w", Tensor()}}), Contains(path) && Contains("'w' is undefined"));
  REQUIRE_THROWS_WITH(io::save_safetensors(path, {{"__metadata__", zeros({1})}}), Contains(path));
  REQUIRE(directory.entries().empty());
}
