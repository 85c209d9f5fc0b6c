#include "engine/storage.h"

#include <cstdlib>
#include <cstring>

#include "engine/cpu_allocator.h"
#include "engine/error.h"

#if VISREP_WITH_CUDA
#include "kernels/cuda/allocator.h"
#include "kernels/cuda/runtime.h"
#endif

namespace visrep {

std::shared_ptr<Storage> Storage::allocate(size_t bytes, Device device) {
  if (device.is_cpu()) {
    return std::shared_ptr<Storage>(new Storage(cpu_allocate(bytes), bytes, device));
  }
  check_device_usable(device, "allocate");
#if VISREP_WITH_CUDA
  try {
    void* data = kernels::cuda::device_allocate(bytes, device.index, kernels::cuda::stream(device.index));
    return std::shared_ptr<Storage>(new Storage(data, bytes, device));
  } catch (const std::runtime_error& error) {
    VISREP_FAIL("allocate: {}", error.what());
  }
#endif
  VISREP_FAIL("allocate: unreachable");
}

Storage::~Storage() {
  if (device_.is_cpu()) {
    cpu_free(data_, bytes_);
  } else {
#if VISREP_WITH_CUDA
    // Back to the cache of the stream every op runs on: work already queued that reads
    // this block finishes before any later op can reuse it. A destructor must not throw;
    // should CUDA itself have failed, the block is simply not reused.
    try {
      kernels::cuda::device_release(data_, bytes_, device_.index, kernels::cuda::stream(device_.index));
    } catch (...) {
    }
#endif
  }
}

void copy_bytes(void* destination, Device destination_device, const void* source, Device source_device,
                size_t bytes) {
  if (bytes == 0) return;
  if (destination_device.is_cpu() && source_device.is_cpu()) {
    std::memcpy(destination, source, bytes);
    return;
  }
#if VISREP_WITH_CUDA
  try {
    if (source_device.is_cpu()) {
      kernels::cuda::copy_host_to_device(destination, source, bytes, destination_device.index);
    } else if (destination_device.is_cpu()) {
      kernels::cuda::copy_device_to_host(destination, source, bytes, source_device.index);
    } else {
      kernels::cuda::copy_device_to_device(destination, destination_device.index, source, source_device.index, bytes);
    }
    return;
  } catch (const std::runtime_error& error) {
    VISREP_FAIL("copy from {} to {}: {}", source_device.str(), destination_device.str(), error.what());
  }
#endif
  VISREP_FAIL("copy from {} to {}: visrep was built without the CUDA backend", source_device.str(),
              destination_device.str());
}

}  // namespace visrep
