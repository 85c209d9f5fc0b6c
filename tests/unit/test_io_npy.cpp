// NumPy .npy files: round trips of every dtype and layout, the files NumPy wrote
// (tests/fixtures, see make_fixtures.py), corrupt files that must fail with a message naming
// the file, and random corruption of both io formats.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>

#include "engine/io/npy.h"
#include "engine/io/safetensors.h"
#include "tests/support/files.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;
using Catch::Contains;

namespace {

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

}  // namespace

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
