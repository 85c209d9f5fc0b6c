#include "engine/cpu_allocator.h"

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <map>
#include <mutex>

#include "engine/error.h"

namespace visrep {
namespace {

constexpr size_t kAlignment = 64;  // a cache line, and enough for any vector load
// Every block is kept for reuse, by size class: powers of two below 64 KiB, whole 64 KiB up
// to 1 MiB, whole MiB above. malloc would keep the small ones itself, but glibc trims the top
// of its heap and maps each block of 128 KiB or more afresh, unmapping it when freed, so in a
// training step (hundreds of tensors of the same sizes each time: activations of 512 images
// at 2x2 and 1x1, the head's (512, 512) matrices, per-group statistics) every 4 KiB page came
// back with a page fault and a zero-fill.
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
  if (bytes >= kSmallGranule) return (bytes + kSmallGranule - 1) / kSmallGranule * kSmallGranule;
  return std::bit_ceil(std::max(kAlignment, bytes));  // a multiple of the alignment, as aligned_alloc needs
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
  {
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
  if (state.stats.cached_bytes + size <= kMaxCachedBytes) {
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
