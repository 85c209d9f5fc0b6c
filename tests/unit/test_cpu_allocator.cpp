// The host block cache: large blocks come back for the next tensor of their size, the
// counters add up, and running out of memory is an error, not a crash.
#include <catch2/catch.hpp>

#include "engine/cpu_allocator.h"
#include "engine/ops.h"

using namespace visrep;
using Catch::Matchers::Contains;

TEST_CASE("cpu allocator reuses large blocks", "[unit]") {
  cpu_empty_cache();
  const CpuMemoryStats before = cpu_memory_stats();
  REQUIRE(before.cached_bytes == 0);
  const void* first_block = nullptr;
  {
    Tensor big = empty({3 << 20}, kUInt8);  // 3 MiB
    first_block = big.raw_data();
    REQUIRE(cpu_memory_stats().current_bytes == before.current_bytes + (3u << 20));
    REQUIRE(cpu_memory_stats().peak_bytes >= before.current_bytes + (3u << 20));
  }
  REQUIRE(cpu_memory_stats().current_bytes == before.current_bytes);
  REQUIRE(cpu_memory_stats().cached_bytes == (3u << 20));
  {
    // Same rounded size (3 MiB): the cached block comes back.
    Tensor again = empty({(3 << 20) - 100}, kUInt8);
    REQUIRE(again.raw_data() == first_block);
    REQUIRE(cpu_memory_stats().cached_bytes == 0);
    // A different size does not take it.
    Tensor other = empty({5 << 20}, kUInt8);
    REQUIRE(other.raw_data() != first_block);
  }
  REQUIRE(cpu_memory_stats().cached_bytes == (3u << 20) + (5u << 20));
  cpu_empty_cache();
  REQUIRE(cpu_memory_stats().cached_bytes == 0);
}

TEST_CASE("cpu allocator reuses smaller blocks by size class", "[unit]") {
  cpu_empty_cache();
  const void* first_block = nullptr;
  {
    Tensor medium = empty({200 << 10}, kUInt8);  // 200 KiB: a 256 KiB block
    first_block = medium.raw_data();
  }
  REQUIRE(cpu_memory_stats().cached_bytes == (256u << 10));
  {
    Tensor again = empty({250 << 10}, kUInt8);  // also 256 KiB
    REQUIRE(again.raw_data() == first_block);
    Tensor small = empty({1000}, kFloat32);  // 4000 bytes: a 4 KiB block
  }
  REQUIRE(cpu_memory_stats().cached_bytes == (256u << 10) + (4u << 10));
  {
    Tensor small_again = empty({1024}, kFloat32);  // 4 KiB: the same class
    REQUIRE(cpu_memory_stats().cached_bytes == (256u << 10));
  }
  cpu_empty_cache();
}

TEST_CASE("cpu out of memory is an error", "[unit]") {
  // 2^50 bytes (a petabyte) cannot be had anywhere this test runs.
  REQUIRE_THROWS_WITH(empty({int64_t{1} << 48}, kFloat32),
                      Contains("out of memory") && Contains("1125899906842624 bytes"));
  // The failed request leaves the counters as they were, and memory still works.
  Tensor small = ones({4});
  REQUIRE(sum(small).item() == 4.0);
}
