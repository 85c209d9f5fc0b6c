// Host memory for tensors. Blocks are not returned to the system when a tensor dies but
// kept, by size class (powers of two below 64 KiB, whole 64 KiB below 1 MiB, whole MiB above),
// for the next tensor of that class: a training step
// allocates the same activations and gradients every time, and a fresh multi-megabyte
// block from the system costs a page fault and a zero-fill per 4 KiB page on first touch
// (it made a 4096 x 4096 matmul result 1.8x slower than the multiplication itself).
// The CUDA caching allocator follows the same idea for device memory.
#pragma once

#include <cstddef>

namespace visrep {

struct CpuMemoryStats {
  size_t current_bytes = 0;  // held by live tensors
  size_t peak_bytes = 0;     // the most ever held by live tensors at once
  size_t cached_bytes = 0;   // kept for reuse, owned by no tensor
};

// 64-byte aligned; never returns null (throws visrep::Error naming the size).
void* cpu_allocate(size_t bytes);
// `bytes` must be the size given to cpu_allocate.
void cpu_free(void* data, size_t bytes);

CpuMemoryStats cpu_memory_stats();
// Returns every cached block to the system.
void cpu_empty_cache();

}  // namespace visrep
