// Files for tests: a temporary directory that cleans up after itself, whole-file byte
// reads and writes, and the tensor comparisons the io tests (safetensors, .npy) share.
#pragma once

#include <catch2/catch.hpp>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "engine/ops.h"

namespace visrep::testing {

// A fresh directory under the system's temporary folder for one test, removed with its
// contents afterwards.
class TemporaryDirectory {
 public:
  TemporaryDirectory();
  ~TemporaryDirectory();
  TemporaryDirectory(const TemporaryDirectory&) = delete;
  TemporaryDirectory& operator=(const TemporaryDirectory&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  // The names directly inside, sorted.
  std::vector<std::string> entries() const;

 private:
  std::filesystem::path path_;
};

// tests/fixtures/<name>; the environment variable VISREP_TEST_FIXTURES, when set, names the
// folder instead (binaries run away from the tree they were built from).
std::string fixture(const std::string& name);

std::string read_bytes(const std::string& path);
void write_bytes(const std::string& path, const std::string& bytes);

// The tensor's elements as raw bytes, row-major: equal bytes mean bit-identical values.
std::string tensor_bytes(const Tensor& tensor);

// Fresh random values of any dtype; int64 values use all 64 bits, so a truncation shows.
Tensor random_tensor(const Shape& shape, DType dtype, Generator& generator);

// Same dtype, shape and bytes, and `loaded` is a contiguous CPU tensor.
void require_identical(const Tensor& loaded, const Tensor& original);

// Checks dtype, shape, and every element against formula(flat row-major index).
void require_values(const Tensor& loaded, DType dtype, const Shape& shape, const std::function<double(int64_t)>& formula);

// Writes `bytes` to a file and requires `load` to throw a visrep::Error whose message names
// the file and contains `problem`.
template <class Load>
void require_rejected(Load load, const std::string& file_name, const std::string& bytes, const std::string& problem) {
  using Catch::Contains;
  TemporaryDirectory directory;
  const std::string path = directory.file(file_name);
  write_bytes(path, bytes);
  REQUIRE_THROWS_AS(load(path), Error);
  REQUIRE_THROWS_WITH(load(path), Contains(path) && Contains(problem));
}

// Eight bytes of data: two float32 values, for hand-written corrupt files.
inline const std::string kTwoFloats(8, '\x01');

}  // namespace visrep::testing
