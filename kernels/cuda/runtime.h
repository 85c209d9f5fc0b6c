// The CUDA runtime as visrep uses it: status checks that name the call and the source
// line, one stream per device on which every op is queued, events for timing, host <->
// device copies, pinned host memory, and the TF32 switch. A plain C++ header (no CUDA
// language features), so engine code compiled by g++ can call it. Errors are thrown as
// std::runtime_error; the engine adds the op's name (engine/dispatch.h).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

namespace visrep::kernels::cuda {

// Throws std::runtime_error("<what> failed at <file>:<line>: <CUDA's message>").
void check_status(cudaError_t status, const char* what, const char* file, int line);

#define VISREP_CUDA_CHECK(call) ::visrep::kernels::cuda::check_status((call), #call, __FILE__, __LINE__)
// After a kernel launch: reports a bad launch configuration at once (errors inside the
// kernel surface at the next synchronisation).
#define VISREP_CUDA_CHECK_LAUNCH(kernel_name) \
  ::visrep::kernels::cuda::check_status(cudaGetLastError(), "launch of " kernel_name, __FILE__, __LINE__)

// Number of usable CUDA devices; 0 (not an error) when there is no driver or no GPU.
int device_count();
// Why device_count() is 0 (CUDA's error string), or "".
const char* unavailable_reason();

// The stream every visrep op on `device` is queued on (created on first use; it does not
// synchronise with the legacy default stream). Also makes `device` current.
cudaStream_t stream(int device);
// Waits until all queued work on `device` is done and reports any error it raised,
// including the bad input its kernels flagged (deferred_errors.h).
void synchronize(int device);

// Copies through the device's stream and waits for the copy to finish; a copy to the host
// then reports the bad input flagged so far, as synchronize() does.
void copy_host_to_device(void* destination, const void* source, size_t bytes, int device);
void copy_device_to_host(void* destination, const void* source, size_t bytes, int device);
void copy_device_to_device(void* destination, int destination_device, const void* source, int source_device,
                           size_t bytes);

// Page-locked host memory: transfers from it run at full PCIe/NVLink speed and may be
// asynchronous. The data loader stages batches in it.
void* pinned_allocate(size_t bytes);
void pinned_free(void* pointer);

// TF32 tensor-core math for float32 matmul and convolution: faster, with a 10-bit
// mantissa on the products. Off by default: lower precision is never chosen silently.
void set_tf32_enabled(bool enabled);
bool tf32_enabled();

// A CUDA event on a device's stream, for timing (benchmarks) and ordering.
class Event {
 public:
  explicit Event(int device);
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void record();
  void synchronize();
  // Milliseconds from `start` to this event (both recorded and complete).
  float elapsed_ms_since(const Event& start);

 private:
  int device_;
  cudaEvent_t event_ = nullptr;
};

// Launch-size helpers shared by the kernels: one thread per element in blocks of
// kThreadsPerBlock, capped so that grid-stride loops cover the rest.
inline constexpr int kThreadsPerBlock = 256;
unsigned int grid_size_for(long long elements, int threads_per_block = kThreadsPerBlock);

}  // namespace visrep::kernels::cuda
