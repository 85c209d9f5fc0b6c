// A block of memory on one device, shared by every tensor (and view) that reads it.
// The version counter counts in-place writes, so autograd can tell when a tensor it
// saved for the backward pass was overwritten afterwards (see autograd.h, SavedTensor).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "engine/device.h"

namespace visrep {

class Storage {
 public:
  // Uninitialised memory; CPU blocks are 64-byte aligned and come from cpu_allocator.h,
  // which reuses large blocks. Throws visrep::Error naming the byte count when the memory
  // cannot be had.
  static std::shared_ptr<Storage> allocate(size_t bytes, Device device);

  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

  uint64_t version() const { return version_; }
  void bump_version() { ++version_; }

 private:
  Storage(void* data, size_t bytes, Device device) : data_(data), bytes_(bytes), device_(device) {}

  void* data_;
  size_t bytes_;
  Device device_;
  uint64_t version_ = 0;
};

// Copies bytes between any two devices (host <-> device, device <-> device).
void copy_bytes(void* destination, Device destination_device, const void* source, Device source_device,
                size_t bytes);

}  // namespace visrep
