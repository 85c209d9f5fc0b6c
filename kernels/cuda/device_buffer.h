// Scratch device memory for the duration of a kernel call (cuDNN workspaces, partial sums,
// sort buffers), taken from and returned to the caching allocator on the call's stream:
// work queued on that stream that still reads the buffer finishes before the buffer can be
// handed out again, so releasing it right after queuing the kernels is safe.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "kernels/cuda/allocator.h"

namespace visrep::kernels::cuda {

class DeviceBuffer {
 public:
  DeviceBuffer(size_t bytes, int device, cudaStream_t stream)
      : bytes_(bytes), device_(device), stream_(stream),
        pointer_(bytes > 0 ? device_allocate(bytes, device, stream) : nullptr) {}
  ~DeviceBuffer() {
    if (pointer_ != nullptr) device_release(pointer_, bytes_, device_, stream_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  template <class T = void>
  T* get() const {
    return static_cast<T*>(pointer_);
  }
  size_t bytes() const { return bytes_; }

 private:
  size_t bytes_;
  int device_;
  cudaStream_t stream_;
  void* pointer_;
};

// The device a stream belongs to (the current device, which runtime.h's stream() sets).
int current_device();

}  // namespace visrep::kernels::cuda
