#include "tests/support/files.h"

#include <stdlib.h>

#include <algorithm>
#include <cstdlib>
#include <cstdint>
#include <fstream>
#include <iterator>

#include "tests/support/test_data.h"

namespace visrep::testing {

TemporaryDirectory::TemporaryDirectory() {
  std::string pattern = (std::filesystem::temp_directory_path() / "visrep-test-XXXXXX").string();
  REQUIRE(::mkdtemp(pattern.data()) != nullptr);
  path_ = pattern;
}

TemporaryDirectory::~TemporaryDirectory() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::vector<std::string> TemporaryDirectory::entries() const {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(path_)) names.push_back(entry.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

std::string fixture(const std::string& name) {
  // The compile-time path is the source tree's; binaries built on one machine and run on
  // another (tools/gpu-check.sh) find the tree through the environment instead.
  const char* moved = std::getenv("VISREP_TEST_FIXTURES");
  return std::string(moved != nullptr && *moved != '\0' ? moved : VISREP_TEST_FIXTURES) + "/" + name;
}

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

std::string tensor_bytes(const Tensor& tensor) {
  const Tensor host = tensor.cpu().contiguous();
  const auto* begin = static_cast<const char*>(host.raw_data());
  return std::string(begin, begin + host.numel() * static_cast<int64_t>(element_size(host.dtype())));
}

Tensor random_tensor(const Shape& shape, DType dtype, Generator& generator) {
  if (is_floating(dtype)) return random_normal(shape, generator, kFloat64).to(dtype);
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

}  // namespace visrep::testing
