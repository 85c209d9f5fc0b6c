#include "engine/device.h"

#include <charconv>

#include "engine/error.h"

#if VISREP_WITH_CUDA
#include "kernels/cuda/runtime.h"
#endif

namespace visrep {

Device Device::parse(std::string_view text) {
  if (text == "cpu") return cpu();
  if (text == "cuda") return cuda(0);
  if (text.starts_with("cuda:")) {
    std::string_view digits = text.substr(5);
    int index = -1;
    auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (error == std::errc() && end == digits.data() + digits.size() && index >= 0) return cuda(index);
  }
  VISREP_FAIL("unknown device '{}': expected cpu, cuda or cuda:N", text);
}

std::string Device::str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

bool cuda_built() {
#if VISREP_WITH_CUDA
  return true;
#else
  return false;
#endif
}

int cuda_device_count() {
#if VISREP_WITH_CUDA
  return kernels::cuda::device_count();
#else
  return 0;
#endif
}

bool cuda_available() { return cuda_device_count() > 0; }

void check_device_usable(const Device& device, std::string_view what) {
  if (device.is_cpu()) return;
#if VISREP_WITH_CUDA
  const int count = kernels::cuda::device_count();
  VISREP_CHECK(count > 0, "{}: {} requested but no CUDA device is usable here ({})", what, device.str(),
               kernels::cuda::unavailable_reason());
  VISREP_CHECK(device.index < count, "{}: {} requested but this machine has {} CUDA device(s)", what, device.str(),
               count);
#else
  VISREP_FAIL("{}: {} requested but visrep was built without the CUDA backend (VISREP_CUDA=OFF or no nvcc found)",
              what, device.str());
#endif
}

}  // namespace visrep
