#include "kernels/cuda/deferred_errors.h"

#include <cuda_runtime.h>

#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cuda/runtime.h"

namespace visrep::kernels::cuda {
namespace {

constexpr size_t kSlotBytes = 2 * sizeof(long long);

// One device's pending checks and their slots: kCapacity slots in device memory, all clear
// between uses, and a pinned copy for reading them back.
struct DeviceChecks {
  std::mutex mutex;
  DeferredErrorList list;
  long long* slots = nullptr;
  long long* host_slots = nullptr;
};

struct Registry {
  std::mutex mutex;
  std::vector<std::unique_ptr<DeviceChecks>> devices;
};

Registry& registry() {
  static Registry* instance = new Registry();  // outlives static destructors, like the allocator's state
  return *instance;
}

// The device's checks; created (slots allocated and cleared) on first use when `create`.
DeviceChecks* checks_of(int device, bool create) {
  Registry& all = registry();
  const std::lock_guard<std::mutex> lock(all.mutex);
  if (device < 0) throw std::runtime_error("deferred errors: no CUDA device " + std::to_string(device));
  if (static_cast<size_t>(device) >= all.devices.size()) {
    if (!create) return nullptr;
    all.devices.resize(static_cast<size_t>(device) + 1);
  }
  std::unique_ptr<DeviceChecks>& checks = all.devices[static_cast<size_t>(device)];
  if (checks == nullptr && create) {
    auto fresh = std::make_unique<DeviceChecks>();
    const size_t bytes = DeferredErrorList::kCapacity * kSlotBytes;
    cudaStream_t s = stream(device);  // makes the device current for the allocations
    VISREP_CUDA_CHECK(cudaMalloc(&fresh->slots, bytes));
    VISREP_CUDA_CHECK(cudaMallocHost(&fresh->host_slots, bytes));
    VISREP_CUDA_CHECK(cudaMemsetAsync(fresh->slots, kNoErrorByte, bytes, s));
    checks = std::move(fresh);
  }
  return checks.get();
}

// Reads back the pending slots (the caller holds checks.mutex), clears them on the device
// and empties the list; the first error, if any.
std::optional<std::string> take_pending(DeviceChecks& checks, cudaStream_t s) {
  if (checks.list.empty()) return std::nullopt;
  const size_t bytes = checks.list.size() * kSlotBytes;
  VISREP_CUDA_CHECK(cudaMemcpyAsync(checks.host_slots, checks.slots, bytes, cudaMemcpyDeviceToHost, s));
  VISREP_CUDA_CHECK(cudaStreamSynchronize(s));
  VISREP_CUDA_CHECK(cudaMemsetAsync(checks.slots, kNoErrorByte, bytes, s));  // before any later kernel on s
  return checks.list.take_first_error(checks.host_slots);
}

[[noreturn]] void throw_found(const std::string& message, int device) {
  throw std::runtime_error(message + " (found on cuda:" + std::to_string(device) +
                           " by an op queued earlier; CUDA ops report bad input at the next synchronisation: "
                           "item(), a copy to the host or cuda::synchronize())");
}

}  // namespace

long long* defer_check(int device, cudaStream_t s, DeferredMessage message) {
  DeviceChecks& checks = *checks_of(device, true);
  const std::lock_guard<std::mutex> lock(checks.mutex);
  if (checks.list.full()) {
    if (std::optional<std::string> error = take_pending(checks, s)) throw_found(*error, device);
  }
  return checks.slots + 2 * checks.list.add(std::move(message));
}

void raise_deferred_errors(int device) {
  DeviceChecks* checks = checks_of(device, false);
  if (checks == nullptr) return;  // no check was ever queued on this device
  cudaStream_t s = stream(device);
  std::optional<std::string> error;
  {
    const std::lock_guard<std::mutex> lock(checks->mutex);
    error = take_pending(*checks, s);
  }
  if (error) throw_found(*error, device);
}

}  // namespace visrep::kernels::cuda
