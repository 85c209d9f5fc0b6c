// Where a tensor's memory lives: the CPU, or CUDA device N ("cuda:N").
#pragma once

#include <string>
#include <string_view>

namespace visrep {

enum class DeviceType { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  static Device cpu() { return {DeviceType::CPU, 0}; }
  static Device cuda(int index = 0) { return {DeviceType::CUDA, index}; }
  // "cpu", "cuda" or "cuda:N"; anything else throws naming the string.
  static Device parse(std::string_view text);

  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  std::string str() const;

  friend bool operator==(const Device&, const Device&) = default;
};

// True when visrep was built with the CUDA backend.
bool cuda_built();
// CUDA devices usable now (0 without the backend, a driver or a GPU).
int cuda_device_count();
bool cuda_available();
// Throws a clear error unless `device` can hold tensors on this machine.
void check_device_usable(const Device& device, std::string_view what);

}  // namespace visrep
