// Device memory for tensors and scratch space: a caching allocator. cudaMalloc and
// cudaFree synchronise the device and cost tens of microseconds each, so a training loop
// that allocated through them every step would stall; instead a freed block goes onto a
// free list (per device, stream and rounded size) and the next request of that size on
// that stream takes it back at once. Work queued on one stream runs in order, so a block
// freed by an op can be reused by the next op on the same stream without waiting.
// Sizes round up to 512 bytes below 1 MiB and to 2 MiB above, so that a loop's
// repeated shapes land in the same bins.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

namespace visrep::kernels::cuda {

struct DeviceMemoryStats {
  size_t current_bytes = 0;   // in blocks handed out and not yet released
  size_t peak_bytes = 0;      // the most current_bytes has been
  size_t reserved_bytes = 0;  // obtained from cudaMalloc (handed out plus cached)
};

// Throws std::runtime_error naming the requested bytes and the current, peak and reserved
// use when the device has no memory left even after the cache is returned to it.
void* device_allocate(size_t bytes, int device, cudaStream_t stream);
// `bytes` and `stream` must be those of the allocation.
void device_release(void* pointer, size_t bytes, int device, cudaStream_t stream);

DeviceMemoryStats device_memory_stats(int device);
void reset_peak_memory(int device);
// Returns every cached block of `device` to CUDA.
void empty_cache(int device);

// Tests: fill every new allocation with 0xFF bytes (NaN for floats, -1 for integers), so a
// kernel that fails to write part of its output is caught by the parity harness.
void set_poison_allocations(bool enabled);

}  // namespace visrep::kernels::cuda
