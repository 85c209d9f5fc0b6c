#include "kernels/cuda/allocator.h"

#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/cuda/runtime.h"

namespace visrep::kernels::cuda {
namespace {

constexpr size_t kSmallGranule = 512;
constexpr size_t kLargeFrom = size_t{1} << 20;
constexpr size_t kLargeGranule = size_t{2} << 20;

size_t rounded_size(size_t bytes) {
  if (bytes == 0) bytes = 1;
  const size_t granule = bytes < kLargeFrom ? kSmallGranule : kLargeGranule;
  return (bytes + granule - 1) / granule * granule;
}

using BinKey = std::tuple<int, cudaStream_t, size_t>;  // device, stream, rounded size

struct AllocatorState {
  std::mutex mutex;
  std::multimap<BinKey, void*> free_blocks;
  std::vector<DeviceMemoryStats> stats;
  bool poison = false;

  DeviceMemoryStats& stats_of(int device) {
    if (static_cast<int>(stats.size()) <= device) stats.resize(static_cast<size_t>(device) + 1);
    return stats[device];
  }

  // Returns every cached block of `device` to CUDA.
  void release_cached(int device) {
    for (auto it = free_blocks.begin(); it != free_blocks.end();) {
      if (std::get<0>(it->first) != device) {
        ++it;
        continue;
      }
      cudaSetDevice(device);
      cudaFree(it->second);
      stats_of(device).reserved_bytes -= std::get<2>(it->first);
      it = free_blocks.erase(it);
    }
  }
};

AllocatorState& state() {
  static AllocatorState* instance = new AllocatorState();  // outlives static destructors
  return *instance;
}

std::string mebibytes(size_t bytes) { return std::to_string(bytes / (1024 * 1024)) + " MiB"; }

}  // namespace

void* device_allocate(size_t bytes, int device, cudaStream_t stream) {
  AllocatorState& s = state();
  const size_t size = rounded_size(bytes);
  std::lock_guard<std::mutex> lock(s.mutex);
  DeviceMemoryStats& stats = s.stats_of(device);
  void* pointer = nullptr;
  auto found = s.free_blocks.find(BinKey{device, stream, size});
  if (found != s.free_blocks.end()) {
    pointer = found->second;
    s.free_blocks.erase(found);
  } else {
    VISREP_CUDA_CHECK(cudaSetDevice(device));
    cudaError_t status = cudaMalloc(&pointer, size);
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      // Cached blocks of other sizes may be what is in the way: give them back and retry.
      // cudaFree synchronises the device, so none of them is still in use.
      s.release_cached(device);
      status = cudaMalloc(&pointer, size);
    }
    if (status != cudaSuccess) {
      cudaGetLastError();
      throw std::runtime_error("out of memory on cuda:" + std::to_string(device) + ": could not allocate " +
                               std::to_string(bytes) + " bytes (" + mebibytes(bytes) + "); in use " +
                               mebibytes(stats.current_bytes) + ", peak " + mebibytes(stats.peak_bytes) +
                               ", reserved " + mebibytes(stats.reserved_bytes) + " (" + cudaGetErrorString(status) +
                               ")");
    }
    stats.reserved_bytes += size;
  }
  stats.current_bytes += size;
  if (stats.current_bytes > stats.peak_bytes) stats.peak_bytes = stats.current_bytes;
  if (s.poison) VISREP_CUDA_CHECK(cudaMemsetAsync(pointer, 0xFF, size, stream));
  return pointer;
}

void device_release(void* pointer, size_t bytes, int device, cudaStream_t stream) {
  if (pointer == nullptr) return;
  AllocatorState& s = state();
  const size_t size = rounded_size(bytes);
  std::lock_guard<std::mutex> lock(s.mutex);
  s.stats_of(device).current_bytes -= size;
  s.free_blocks.emplace(BinKey{device, stream, size}, pointer);
}

DeviceMemoryStats device_memory_stats(int device) {
  AllocatorState& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  return s.stats_of(device);
}

void reset_peak_memory(int device) {
  AllocatorState& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  DeviceMemoryStats& stats = s.stats_of(device);
  stats.peak_bytes = stats.current_bytes;
}

void empty_cache(int device) {
  AllocatorState& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.release_cached(device);
}

void set_poison_allocations(bool enabled) {
  AllocatorState& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.poison = enabled;
}

}  // namespace visrep::kernels::cuda
