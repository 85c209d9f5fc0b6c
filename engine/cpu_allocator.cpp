#include "engine/cpu_allocator.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>

#include "engine/error.h"

namespace visrep {
namespace {

constexpr size_t kAlignment = 64;  // a cache line, and enough for any vector load
// Smaller blocks come from malloc's own free lists, which keep them. From 128 KiB glibc maps
// each block afresh and unmaps it when freed, so every one costs a page fault per 4 KiB on
// first touch; bit-tiny's step allocates hundreds of them (activations of 512 images at
// 2x2 and 1x1, the head's (512, 512) matrices).
constexpr size_t kCachedFrom = size_t{64} << 10;
// Cached sizes are rounded up to whole granules: 64 KiB below 1 MiB, 1 MiB above.
constexpr size_t kSmallGranule = size_t{64} << 10;
constexpr size_t kGranule = size_t{1} << 20;
constexpr size_t kMaxCachedBytes = size_t{4} << 30;

struct Cache {
  std::mutex mutex;
  std::multimap<size_t, void*> free_blocks;  // rounded size -> block
  CpuMemoryStats stats;
};

Cache& cache() {
  static Cache* instance = new Cache();  // never destroyed: tensors may outlive static destructors
  return *instance;
}

size_t rounded_size(size_t bytes) {
  if (bytes >= kGranule) return (bytes + kGranule - 1) / kGranule * kGranule;
  if (bytes >= kCachedFrom) return (bytes + kSmallGranule - 1) / kSmallGranule * kSmallGranule;
  // aligned_alloc needs a multiple of the alignment, and not 0.
  return std::max(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment);
}

void release_all(Cache& state) {
  for (auto& [size, block] : state.free_blocks) std::free(block);
  state.free_blocks.clear();
  state.stats.cached_bytes = 0;
}

}  // namespace

void* cpu_allocate(size_t bytes) {
  const size_t size = rounded_size(bytes);
  Cache& state = cache();
  std::lock_guard<std::mutex> lock(state.mutex);
  void* block = nullptr;
  if (size >= kCachedFrom) {
    auto found = state.free_blocks.find(size);
    if (found != state.free_blocks.end()) {
      block = found->second;
      state.free_blocks.erase(found);
      state.stats.cached_bytes -= size;
    }
  }
  if (block == nullptr) block = std::aligned_alloc(kAlignment, size);
  if (block == nullptr && state.stats.cached_bytes > 0) {  // the cache may be what is in the way
    release_all(state);
    block = std::aligned_alloc(kAlignment, size);
  }
  VISREP_CHECK(block != nullptr,
               "out of memory: could not allocate {} bytes on the cpu ({} bytes held by live tensors, peak {})", bytes,
               state.stats.current_bytes, state.stats.peak_bytes);
  state.stats.current_bytes += size;
  state.stats.peak_bytes = std::max(state.stats.peak_bytes, state.stats.current_bytes);
  return block;
}

void cpu_free(void* data, size_t bytes) {
  if (data == nullptr) return;
  const size_t size = rounded_size(bytes);
  Cache& state = cache();
  std::lock_guard<std::mutex> lock(state.mutex);
  state.stats.current_bytes -= size;
  if (size >= kCachedFrom && state.stats.cached_bytes + size <= kMaxCachedBytes) {
    state.free_blocks.emplace(size, data);
    state.stats.cached_bytes += size;
  } else {
    std::free(data);
  }
}

CpuMemoryStats cpu_memory_stats() {
  Cache& state = cache();
  std::lock_guard<std::mutex> lock(state.mutex);
  return state.stats;
}

void cpu_empty_cache() {
  Cache& state = cache();
  std::lock_guard<std::mutex> lock(state.mutex);
  release_all(state);
}

}  // namespace visrep
