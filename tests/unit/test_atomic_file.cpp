// Atomic writes (engine/util/atomic_file.h): the target is replaced whole or not at all, and
// nothing is left behind when a write fails.
#include <catch2/catch.hpp>

#include <filesystem>

#include "engine/io/npy.h"
#include "engine/io/safetensors.h"
#include "engine/util/atomic_file.h"
#include "tests/support/files.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;
using Catch::Contains;

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
