// NumPy .npz archives (engine/io/npz.h): round trips through save_npz, the archives NumPy
// wrote (stored by np.savez, deflated by np.savez_compressed; tests/fixtures,
// make_bit_fixture.py), and broken archives that must fail with a message naming the file
// and, where one is at fault, the member.
#include <catch2/catch.hpp>

#include <filesystem>

#include "engine/io/npy.h"
#include "engine/io/npz.h"
#include "tests/support/files.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;
using Catch::Contains;

namespace {

// The byte offset of `needle` in `haystack`, which must hold it once.
size_t unique_offset(const std::string& haystack, const std::string& needle) {
  const size_t offset = haystack.find(needle);
  REQUIRE(offset != std::string::npos);
  REQUIRE(haystack.find(needle, offset + 1) == std::string::npos);
  return offset;
}

}  // namespace

TEST_CASE("npz round trip of several dtypes and nested names", "[unit][npz]") {
  TemporaryDirectory directory;
  Generator generator = generator_for("npz round trip of several dtypes and nested names");
  const io::TensorMap original = {
      {"resnet/block1/unit01/a/standardized_conv2d/kernel", random_tensor({1, 1, 4, 8}, kFloat32, generator)},
      {"float64", random_tensor({2, 3, 5}, kFloat64, generator)},
      {"int64", random_tensor({7}, kInt64, generator)},
      {"int32_view", random_tensor({4, 3}, kInt32, generator).t()},
      {"uint8", random_tensor({3, 2}, kUInt8, generator)},
      {"scalar", random_tensor({}, kFloat64, generator)},
      {"empty", empty({0, 3}, kFloat32)},
  };
  const std::string path = directory.file("arrays.npz");
  io::save_npz(path, original);
  const io::TensorMap loaded = io::load_npz(path);
  REQUIRE(loaded.size() == original.size());
  for (const auto& [name, tensor] : original) {
    INFO(name);
    REQUIRE(loaded.count(name) == 1);
    require_identical(loaded.at(name), tensor.contiguous());
  }
  REQUIRE(directory.entries() == std::vector<std::string>{"arrays.npz"});  // no temporary file left

  SECTION("members are stored: each is its .npy file verbatim, named '<key>.npy'") {
    const std::string bytes = read_bytes(path);
    REQUIRE(bytes.substr(0, 4) == "PK\x03\x04");  // a zip local file header
    for (const auto& [name, tensor] : original) {
      INFO(name);
      unique_offset(bytes, io::npy_bytes(tensor, name));
      REQUIRE(bytes.find(name + ".npy") != std::string::npos);
    }
  }

  SECTION("an empty map gives an empty archive that loads") {
    const std::string empty_path = directory.file("empty.npz");
    io::save_npz(empty_path, {});
    REQUIRE(io::load_npz(empty_path).empty());
  }
}

TEST_CASE("npz archives written by NumPy: stored and deflated", "[unit][npz]") {
  // np.savez_compressed: deflated members, values from formulas of the flat index i.
  const io::TensorMap deflated = io::load_npz(fixture("npz_deflated.npz"));
  REQUIRE(deflated.size() == 3);
  require_values(deflated.at("weights"), kFloat32, {3, 4}, [](int64_t i) { return static_cast<double>(i) * 0.25 - 1; });
  require_values(deflated.at("nested/name"), kInt64, {5},
                 [](int64_t i) { return static_cast<double>(i * 1000003 - 7); });
  require_values(deflated.at("repeated"), kFloat64, {64}, [](int64_t) { return 2.5; });

  // np.savez: the tiny BiT checkpoint, stored members with the official names.
  const io::TensorMap stored = io::load_npz(fixture("bit_tiny.npz"));
  REQUIRE(stored.size() == 45);  // root + 4 units x (3 kernels + 6 norms + proj) + final GN 2 + head 2
  REQUIRE(stored.at("resnet/root_block/standardized_conv2d/kernel").shape() == Shape{7, 7, 3, 4});
  REQUIRE(stored.at("resnet/group_norm/gamma").shape() == Shape{128});  // (C), as in the official files
  REQUIRE(stored.at("resnet/head/conv2d/bias").dtype() == kFloat32);
}

TEST_CASE("npz bad files fail with a message naming the file and the member", "[unit][npz]") {
  TemporaryDirectory directory;
  Generator generator = generator_for("npz bad files");
  const std::string good_path = directory.file("good.npz");
  const Tensor weights = random_tensor({16, 16}, kFloat32, generator);
  io::save_npz(good_path, {{"first", random_tensor({3}, kInt64, generator)}, {"weights", weights}});
  const std::string good = read_bytes(good_path);

  SECTION("missing file") {
    const std::string missing = directory.file("missing.npz");
    REQUIRE_THROWS_WITH(io::load_npz(missing), Contains("cannot open") && Contains(missing));
  }
  SECTION("not a zip archive") {
    require_rejected(io::load_npz, "text.npz", "these are not the weights you are looking for\n", "not a zip archive");
    require_rejected(io::load_npz, "empty.npz", "", "not a zip archive");
    // A lone .npy file is not an archive either.
    require_rejected(io::load_npz, "array.npz", io::npy_bytes(weights, "weights"), "not a zip archive");
  }
  SECTION("truncated archive") {
    for (const size_t kept : {good.size() / 2, good.size() - 1, size_t{30}}) {
      INFO("kept " << kept << " of " << good.size() << " bytes");
      require_rejected(io::load_npz, "truncated.npz", good.substr(0, kept), "truncated");
    }
  }
  SECTION("a stored member whose data is corrupt fails its CRC check") {
    std::string corrupt = good;
    const size_t data = unique_offset(corrupt, io::npy_bytes(weights, "weights"));
    corrupt[data + 200] = static_cast<char>(corrupt[data + 200] ^ 0x40);  // one bit of one float
    require_rejected(io::load_npz, "corrupt.npz", corrupt, "member 'weights.npy'");
    require_rejected(io::load_npz, "corrupt.npz", corrupt, "CRC");
  }
  SECTION("a deflated member whose data is corrupt") {
    std::string corrupt = read_bytes(fixture("npz_deflated.npz"));
    // The first member's local header: 30 fixed bytes, the name, an extra field (NumPy forces
    // a zip64 one); the deflate stream follows. Lengths are little-endian uint16 at 26 and 28.
    const auto uint16_at = [&corrupt](size_t offset) {
      return static_cast<size_t>(static_cast<unsigned char>(corrupt[offset])) |
             static_cast<size_t>(static_cast<unsigned char>(corrupt[offset + 1])) << 8;
    };
    REQUIRE(corrupt.substr(30, uint16_at(26)) == "weights.npy");
    const size_t data = 30 + uint16_at(26) + uint16_at(28);
    for (size_t offset = data + 10; offset < data + 50; ++offset) {
      corrupt[offset] = static_cast<char>(corrupt[offset] ^ 0x5a);
    }
    require_rejected(io::load_npz, "corrupt_deflated.npz", corrupt, "member 'weights.npy'");
  }
  SECTION("members that are not valid .npy arrays") {
    // Made by make_bit_fixture.py with Python's zipfile: a valid archive, wrong contents.
    require_rejected(io::load_npz, "bad.npz", read_bytes(fixture("npz_invalid_npy_member.npz")),
                     "member 'broken.npy': not a .npy file");
    require_rejected(io::load_npz, "bad.npz", read_bytes(fixture("npz_text_member.npz")),
                     "member 'readme.txt': not a .npy array");
  }
}

TEST_CASE("npz saving a tensor .npy cannot hold names the member and writes nothing", "[unit][npz]") {
  TemporaryDirectory directory;
  const std::string path = directory.file("bf16.npz");
  const io::TensorMap tensors = {{"fine", zeros({2})}, {"half", zeros({2}).to(kBFloat16)}};
  REQUIRE_THROWS_WITH(io::save_npz(path, tensors), Contains(path) && Contains("member 'half'") && Contains("bfloat16"));
  REQUIRE_THROWS_WITH(io::save_npz(path, {{"", zeros({1})}}), Contains("empty key"));
  REQUIRE(directory.entries().empty());
}
