#include "engine/cuda.h"

#include <stdexcept>

#include "engine/error.h"

#if VISREP_WITH_CUDA
#include "kernels/cuda/allocator.h"
#include "kernels/cuda/runtime.h"
#endif

namespace visrep::cuda {
namespace {

#if VISREP_WITH_CUDA
int index_of(Device device, const char* what) {
  VISREP_CHECK(device.is_cuda(), "cuda::{}: {} is not a CUDA device", what, device.str());
  check_device_usable(device, what);
  return device.index;
}
#endif

}  // namespace

void synchronize(Device device) {
#if VISREP_WITH_CUDA
  if (!cuda_available()) return;
  try {
    kernels::cuda::synchronize(index_of(device, "synchronize"));
  } catch (const std::runtime_error& error) {
    VISREP_FAIL("cuda::synchronize: {}", error.what());
  }
#endif
}

MemoryStats memory_stats(Device device) {
#if VISREP_WITH_CUDA
  if (!cuda_available()) return {};
  const auto stats = kernels::cuda::device_memory_stats(index_of(device, "memory_stats"));
  return {stats.current_bytes, stats.peak_bytes, stats.reserved_bytes};
#else
  return {};
#endif
}

void reset_peak_memory(Device device) {
#if VISREP_WITH_CUDA
  if (cuda_available()) kernels::cuda::reset_peak_memory(index_of(device, "reset_peak_memory"));
#endif
}

void empty_cache(Device device) {
#if VISREP_WITH_CUDA
  if (cuda_available()) kernels::cuda::empty_cache(index_of(device, "empty_cache"));
#endif
}

void set_tf32_enabled(bool enabled) {
#if VISREP_WITH_CUDA
  kernels::cuda::set_tf32_enabled(enabled);
#endif
}

bool tf32_enabled() {
#if VISREP_WITH_CUDA
  return kernels::cuda::tf32_enabled();
#else
  return false;
#endif
}

}  // namespace visrep::cuda
