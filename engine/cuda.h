// The CUDA backend's controls, for apps, benchmarks and tests. Every function works in a
// build without CUDA too (there is simply no device: counters are zero, synchronize does
// nothing), so callers need no #ifdefs.
#pragma once

#include <cstddef>

#include "engine/device.h"

namespace visrep::cuda {

struct MemoryStats {
  size_t current_bytes = 0;   // held by live tensors and scratch buffers
  size_t peak_bytes = 0;      // the most held at once since the last reset
  size_t reserved_bytes = 0;  // obtained from the driver (held plus cached)
};

// Waits for every op queued on `device` and reports any error it raised.
void synchronize(Device device = Device::cuda());
MemoryStats memory_stats(Device device = Device::cuda());
void reset_peak_memory(Device device = Device::cuda());
// Returns cached device memory to the driver.
void empty_cache(Device device = Device::cuda());

// TF32 tensor cores for float32 matmul and convolution (off by default).
void set_tf32_enabled(bool enabled);
bool tf32_enabled();

}  // namespace visrep::cuda
