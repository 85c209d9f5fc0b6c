// The io layer: safetensors and .npy round trips for every dtype and layout, the files NumPy
// and Python's safetensors wrote (tests/fixtures, see make_fixtures.py), corrupt files that
// must fail with a message naming the file, and atomic writes that leave nothing behind.
#include <stdlib.h>

#include <array>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "engine/io/npy.h"
#include "engine/io/safetensors.h"
#include "engine/util/atomic_file.h"
#include "tests/support/test_data.h"

using namespace visrep;
using Catch::Contains;

namespace {

// A fresh directory under /tmp for one test, removed with its contents afterwards.
class TemporaryDirectory {
 public:
  TemporaryDirectory() {
    std::string pattern = "/tmp/visrep-test-io-XXXXXX";
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TemporaryDirectory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(path_)) names.push_back(entry.path().filename());
    return names;
  }

 private:
  std::filesystem::path path_;
};

std::string fixture(const std::string& name) { return std::string(VISREP_TEST_FIXTURES) + "/" + name; }

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

// The tensor's elements as raw bytes, row-major: equal bytes mean bit-identical values.
std::string tensor_bytes(const Tensor& tensor) {
  const Tensor host = tensor.cpu().contiguous();
  const auto* begin = static_cast<const char*>(host.raw_data());
  return std::string(begin, begin + host.numel() * static_cast<int64_t>(element_size(host.dtype())));
}

// Fresh random values of any dtype; int64 values use all 64 bits, so a truncation shows.
Tensor random_tensor(const Shape& shape, DType dtype, Generator& generator) {
  if (is_floating(dtype)) return testing::random_normal(shape, generator, kFloat64).to(dtype);
  if (dtype == kUInt8) return randint(0, 256, shape, kUInt8, generator);
  if (dtype == kInt32) return randint(INT32_MIN, int64_t{INT32_MAX} + 1, shape, kInt32, generator);
  Tensor high = randint(INT32_MIN, int64_t{INT32_MAX} + 1, shape, kInt64, generator);
  Tensor low = randint(0, int64_t{1} << 32, shape, kInt64, generator);
  for (int64_t i = 0; i < high.numel(); ++i) {
    high.data<int64_t>()[i] = static_cast<int64_t>(static_cast<uint64_t>(high.data<int64_t>()[i]) << 32) |
                              low.data<int64_t>()[i];
  }
  return high;
}

void require_identical(const Tensor& loaded, const Tensor& original) {
  INFO("loaded " << loaded.description() << ", original " << original.description());
  REQUIRE(loaded.dtype() == original.dtype());
  REQUIRE(loaded.shape() == original.shape());
  REQUIRE(loaded.device().is_cpu());
  REQUIRE(loaded.is_contiguous());
  REQUIRE(tensor_bytes(loaded) == tensor_bytes(original));
}

// Checks dtype, shape, and every element against formula(flat row-major index).
void require_values(const Tensor& loaded, DType dtype, const Shape& shape, const std::function<double(int64_t)>& formula) {
  INFO("loaded " << loaded.description());
  REQUIRE(loaded.dtype() == dtype);
  REQUIRE(loaded.shape() == shape);
  const std::vector<double> values = loaded.to_vector<double>();
  for (int64_t i = 0; i < loaded.numel(); ++i) {
    INFO("element " << i);
    REQUIRE(values[i] == formula(i));
  }
}

// A safetensors file from a hand-written header and buffer, for the corruption tests.
std::string safetensors_bytes(const std::string& header, const std::string& buffer) {
  const uint64_t length = header.size();
  std::string bytes(reinterpret_cast<const char*>(&length), sizeof(length));
  return bytes + header + buffer;
}

// A version 1.0 .npy file from a hand-written header (padded as np.save pads it).
std::string npy_bytes(std::string header, const std::string& data) {
  header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::string bytes = "\x93NUMPY\x01";
  bytes += '\0';
  bytes += static_cast<char>(header.size() & 0xff);
  bytes += static_cast<char>(header.size() >> 8);
  return bytes + header + data;
}

const std::string kTwoFloats(8, '\x01');

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

// Writes `bytes` to a file and requires `load` to throw a visrep::Error whose message names
// the file and contains `problem`.
template <class Load>
void require_rejected(Load load, const std::string& file_name, const std::string& bytes, const std::string& problem) {
  TemporaryDirectory directory;
  const std::string path = directory.file(file_name);
  write_bytes(path, bytes);
  REQUIRE_THROWS_AS(load(path), Error);
  REQUIRE_THROWS_WITH(load(path), Contains(path) && Contains(problem));
}

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

// ---- npy: round trips --------------------------------------------------------------------------

TEST_CASE("npy round trip of every dtype", "[unit]") {
  TemporaryDirectory directory;
  Generator generator = testing::generator_for("npy round trip of every dtype");
  for (DType dtype : {kFloat32, kFloat64, kInt32, kInt64, kUInt8}) {
    INFO("dtype " << dtype_name(dtype));
    const Tensor original = random_tensor({2, 3, 5}, dtype, generator);
    const std::string path = directory.file(std::string(dtype_name(dtype)) + ".npy");
    io::save_npy(path, original);
    require_identical(io::load_npy(path), original);
  }
  REQUIRE(directory.entries().size() == 5);
}

TEST_CASE("npy views, empty tensors and scalars", "[unit]") {
  TemporaryDirectory directory;
  Generator generator = testing::generator_for("npy views, empty tensors and scalars");
  const Tensor base = random_tensor({5, 4}, kFloat64, generator);
  const std::vector<Tensor> cases = {base.t(), base.slice(0, 1, 5, 3), base.select(1, 2), empty({0, 4}, kFloat32),
                                     random_tensor({}, kInt64, generator), random_tensor({1}, kUInt8, generator)};
  for (size_t index = 0; index < cases.size(); ++index) {
    INFO("case " << index << ": " << cases[index].description());
    const std::string path = directory.file(fmt::format("case{}.npy", index));
    io::save_npy(path, cases[index]);
    require_identical(io::load_npy(path), cases[index].contiguous());
  }
}

TEST_CASE("npy file layout", "[unit]") {
  TemporaryDirectory directory;
  Generator generator = testing::generator_for("npy file layout");
  const std::vector<std::pair<Tensor, std::string>> cases = {
      {random_tensor({5}, kFloat32, generator), "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }"},
      {random_tensor({}, kFloat64, generator), "{'descr': '<f8', 'fortran_order': False, 'shape': (), }"},
      {random_tensor({2, 3}, kUInt8, generator), "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }"},
  };
  for (const auto& [tensor, expected_header] : cases) {
    INFO(expected_header);
    const std::string path = directory.file("layout.npy");
    io::save_npy(path, tensor);
    const std::string bytes = read_bytes(path);
    REQUIRE(bytes.substr(0, 8) == std::string("\x93NUMPY\x01\x00", 8));  // version 1.0
    const size_t header_length = static_cast<unsigned char>(bytes[8]) | static_cast<unsigned char>(bytes[9]) << 8;
    REQUIRE((10 + header_length) % 64 == 0);  // the data starts 64-byte aligned
    const std::string header = bytes.substr(10, header_length);
    REQUIRE(header.substr(0, expected_header.size()) == expected_header);
    REQUIRE(header.back() == '\n');
    REQUIRE(header.find_first_not_of(' ', expected_header.size()) == header.size() - 1);
    REQUIRE(bytes.substr(10 + header_length) == tensor_bytes(tensor));
  }
}

TEST_CASE("npy refuses bfloat16", "[unit]") {
  TemporaryDirectory directory;
  Generator generator = testing::generator_for("npy refuses bfloat16");
  const std::string path = directory.file("half.npy");
  REQUIRE_THROWS_WITH(io::save_npy(path, random_tensor({3}, kBFloat16, generator)),
                      Contains(path) && Contains(".to(kFloat32)"));
  REQUIRE(directory.entries().empty());
}

TEST_CASE("npy header parser tolerates other writers", "[unit]") {
  TemporaryDirectory directory;
  const std::string three_ints(reinterpret_cast<const char*>(std::array<int32_t, 3>{-7, 0, 123456}.data()), 12);
  for (const std::string header : {
           R"({"descr":"<i4","fortran_order":False,"shape":(3,)})",
           "{ 'shape' : ( 3 , ) ,\t'fortran_order' : False , 'descr' : '<i4' , }",
           "{'descr': '<i4', 'fortran_order': False, 'shape': (3L,)}",
           "{'descr': '=i4', 'fortran_order': True, 'shape': (3,),}",
       }) {
    INFO(header);
    const std::string path = directory.file("other_writer.npy");
    write_bytes(path, npy_bytes(header, three_ints));
    const Tensor loaded = io::load_npy(path);
    REQUIRE(loaded.dtype() == kInt32);
    REQUIRE(loaded.to_vector<int64_t>() == std::vector<int64_t>{-7, 0, 123456});
  }
}

// ---- npy: files written by NumPy -----------------------------------------------------------------

TEST_CASE("npy fixtures of plain dtypes", "[unit]") {
  require_values(io::load_npy(fixture("npy_float32_2d.npy")), kFloat32, {3, 4}, [](int64_t i) { return i * 0.25 - 3; });
  require_values(io::load_npy(fixture("npy_float64.npy")), kFloat64, {5}, [](int64_t i) { return (i * 1.5 - 4) / 3; });
  require_values(io::load_npy(fixture("npy_uint8.npy")), kUInt8, {4, 4}, [](int64_t i) { return (i * 37 + 11) % 256; });
  require_values(io::load_npy(fixture("npy_scalar_float64.npy")), kFloat64, {}, [](int64_t) { return -2.625; });
  const Tensor ids = io::load_npy(fixture("npy_int64.npy"));
  REQUIRE(ids.dtype() == kInt64);
  REQUIRE(ids.shape() == Shape{2, 3});
  for (int64_t i = 0; i < 6; ++i) REQUIRE(ids.data<int64_t>()[i] == i * 1000003 - (int64_t{1} << 40));
}

TEST_CASE("npy fixture in fortran order", "[unit]") {
  const Tensor loaded = io::load_npy(fixture("npy_fortran_float32.npy"));
  require_values(loaded, kFloat32, {2, 3, 4}, [](int64_t i) { return i * 0.5 - 1; });
  REQUIRE(loaded.is_contiguous());
}

TEST_CASE("npy big-endian fixtures", "[unit]") {
  require_values(io::load_npy(fixture("npy_big_endian_float64.npy")), kFloat64, {2, 3},
                 [](int64_t i) { return i * 0.75 - 2; });
  require_values(io::load_npy(fixture("npy_big_endian_int32.npy")), kInt32, {5},
                 [](int64_t i) { return i * 65537.0 - 100000; });
}

TEST_CASE("npy bool and float16 fixtures", "[unit]") {
  require_values(io::load_npy(fixture("npy_bool.npy")), kUInt8, {7}, [](int64_t i) { return i % 3 == 0 ? 1 : 0; });
  require_values(io::load_npy(fixture("npy_float16.npy")), kFloat32, {8}, [](int64_t i) { return i * 0.5 - 2; });
  // Every kind of float16 (subnormal, normal, infinite, NaN) converts as NumPy converts it.
  const Tensor converted = io::load_npy(fixture("npy_float16_patterns.npy"));
  const Tensor reference = io::load_npy(fixture("npy_float16_patterns_as_float32.npy"));
  REQUIRE(converted.shape() == Shape{263});
  REQUIRE(reference.shape() == Shape{263});
  int nan_count = 0;
  for (int64_t i = 0; i < 263; ++i) {
    const float expected = reference.data<float>()[i], got = converted.data<float>()[i];
    INFO("element " << i << ": expected " << expected << ", got " << got);
    if (std::isnan(expected)) {
      ++nan_count;
      REQUIRE(std::isnan(got));
      REQUIRE(std::signbit(got) == std::signbit(expected));
    } else {
      REQUIRE(std::memcmp(&expected, &got, sizeof(float)) == 0);  // -0.0 stays -0.0
    }
  }
  REQUIRE(nan_count > 0);
}

TEST_CASE("npy format versions 2 and 3", "[unit]") {
  require_values(io::load_npy(fixture("npy_version2_int32.npy")), kInt32, {3}, [](int64_t i) { return i * 7 - 5; });
  require_values(io::load_npy(fixture("npy_version3_float32.npy")), kFloat32, {2, 2},
                 [](int64_t i) { return i * 0.25 - 3; });
}

// ---- npy: corrupt files --------------------------------------------------------------------------

namespace {
void require_npy_rejected(const std::string& bytes, const std::string& problem) {
  require_rejected(io::load_npy, "corrupt.npy", bytes, problem);
}
const std::string kValidHeader = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
}  // namespace

TEST_CASE("npy bad magic", "[unit]") {
  std::string bytes = npy_bytes(kValidHeader, kTwoFloats);
  bytes[1] = 'n';
  require_npy_rejected(bytes, "not a .npy file");
  require_npy_rejected("PK\x03\x04", "too short");
}

TEST_CASE("npy unsupported version", "[unit]") {
  std::string bytes = npy_bytes(kValidHeader, kTwoFloats);
  bytes[6] = '\x04';
  require_npy_rejected(bytes, "unsupported .npy version 4.0");
}

TEST_CASE("npy truncated header", "[unit]") {
  const std::string bytes = npy_bytes(kValidHeader, kTwoFloats);
  require_npy_rejected(bytes.substr(0, 40), "runs past the end");
}

TEST_CASE("npy truncated data", "[unit]") {
  TemporaryDirectory directory;
  Generator generator = testing::generator_for("npy truncated data");
  const std::string path = directory.file("whole.npy");
  io::save_npy(path, random_tensor({3, 4}, kFloat64, generator));
  const std::string whole = read_bytes(path);
  require_npy_rejected(whole.substr(0, whole.size() - 1), "needs 96 bytes after the header but the file holds 95");
}

TEST_CASE("npy malformed header", "[unit]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{'descr': '<f4', 'fortran_order': False}", "no 'shape' entry"},
      {"{'descr': '<c8', 'fortran_order': False, 'shape': (2,)}", "unsupported descr '<c8'"},
      {"{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (2,)}", "structured array"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': ('2',)}", "other than integers"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}", "negative size"},
      {"{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}", "not True or False"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}", "unexpected key 'extra'"},
      {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", "appears twice"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} trailing", "after the closing"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,", "malformed header"},
      {"{'descr': '<f4, 'fortran_order': False}", "malformed header"},
      {std::string(40, '(') + std::string(40, ')'), "malformed header"},
  };
  for (const auto& [header, problem] : cases) {
    INFO(header);
    require_npy_rejected(npy_bytes(header, kTwoFloats), problem);
  }
}

TEST_CASE("npy missing file", "[unit]") {
  const std::string path = "/tmp/visrep-no-such-directory/missing.npy";
  REQUIRE_THROWS_WITH(io::load_npy(path), Contains(path) && Contains("cannot open"));
  REQUIRE_THROWS_WITH(io::load_npy("/tmp"), Contains("'/tmp'") && Contains("not a regular file"));
}

TEST_CASE("randomly corrupted files fail cleanly", "[unit]") {
  // Random bytes overwritten in the headers (where the parsing happens) and random cuts:
  // every load must either succeed or throw a visrep::Error naming the file; any other
  // exception fails the test, and a crash or out-of-bounds read fails it under ASan.
  TemporaryDirectory directory;
  Generator generator = testing::generator_for("randomly corrupted files fail cleanly");
  const std::string good_npy = read_bytes(fixture("npy_fortran_float32.npy"));
  const std::string good_safetensors = read_bytes(fixture("safetensors_numpy.safetensors"));
  int rejected = 0;
  for (int trial = 0; trial < 400; ++trial) {
    const bool npy = trial % 2 == 0;
    std::string bytes = npy ? good_npy : good_safetensors;
    const Tensor positions = randint(0, npy ? 128 : 600, {3}, kInt64, generator);
    const Tensor values = randint(0, 256, {3}, kInt64, generator);
    for (int k = 0; k < 3; ++k) bytes[positions.data<int64_t>()[k]] = static_cast<char>(values.data<int64_t>()[k]);
    if (trial % 5 == 0) bytes.resize(static_cast<size_t>(positions.data<int64_t>()[0]));
    const std::string path = directory.file(npy ? "fuzzed.npy" : "fuzzed.safetensors");
    write_bytes(path, bytes);
    try {
      if (npy) {
        io::load_npy(path);
      } else {
        io::load_safetensors(path);
      }
    } catch (const Error& error) {
      ++rejected;
      REQUIRE_THAT(error.what(), Contains(path));
    }
  }
  REQUIRE(rejected > 100);
}

// ---- atomic writes -----------------------------------------------------------------------------

TEST_CASE("atomic write replaces the target", "[unit]") {
  TemporaryDirectory directory;
  const std::string path = directory.file("metrics.jsonl");
  util::write_file_atomically(path, std::string_view("first\n"));
  util::write_file_atomically(path, [](std::ostream& out) { out << "second " << 2 << '\n'; });
  REQUIRE(read_bytes(path) == "second 2\n");
  // Larger than the writer's 64 KiB buffer, in pieces of both sizes.
  Generator generator = testing::generator_for("atomic write replaces the target");
  const std::string big = tensor_bytes(random_tensor({300000}, kUInt8, generator));
  util::write_file_atomically(path, [&](std::ostream& out) {
    out.write(big.data(), 100);
    out.write(big.data() + 100, static_cast<std::streamsize>(big.size() - 100));
  });
  REQUIRE(read_bytes(path) == big);
  REQUIRE(directory.entries() == std::vector<std::string>{"metrics.jsonl"});
}

TEST_CASE("atomic write with a failing writer leaves nothing behind", "[unit]") {
  TemporaryDirectory directory;
  const std::string path = directory.file("checkpoint.safetensors");
  auto failing_writer = [](std::ostream& out) {
    out << std::string(100000, 'x');
    throw std::runtime_error("disk on fire");
  };
  REQUIRE_THROWS_WITH(util::write_file_atomically(path, failing_writer),
                      Contains(path) && Contains("disk on fire"));
  REQUIRE(directory.entries().empty());

  // An existing target keeps its old contents.
  util::write_file_atomically(path, std::string_view("old contents"));
  REQUIRE_THROWS_AS(util::write_file_atomically(path, failing_writer), Error);
  REQUIRE(read_bytes(path) == "old contents");
  REQUIRE(directory.entries() == std::vector<std::string>{"checkpoint.safetensors"});
}

TEST_CASE("atomic write into a missing directory", "[unit]") {
  TemporaryDirectory directory;
  const std::string path = directory.file("no/such/dir/state.npy");
  REQUIRE_THROWS_WITH(util::write_file_atomically(path, std::string_view("data")), Contains(path));
  REQUIRE_THROWS_WITH(io::save_npy(path, zeros({2})), Contains(path));
  REQUIRE_THROWS_WITH(io::save_safetensors(path, {{"w", zeros({2})}}), Contains(path));
  REQUIRE(directory.entries().empty());
}

TEST_CASE("atomic write over a directory fails cleanly", "[unit]") {
  TemporaryDirectory directory;
  const std::string path = directory.file("occupied");
  std::filesystem::create_directory(path);
  REQUIRE_THROWS_WITH(util::write_file_atomically(path, std::string_view("data")),
                      Contains(path) && Contains("renaming"));
  REQUIRE(directory.entries() == std::vector<std::string>{"occupied"});
  REQUIRE(std::filesystem::is_directory(path));
}
