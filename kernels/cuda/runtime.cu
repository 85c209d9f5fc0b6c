#include "kernels/cuda/runtime.h"

#include "kernels/cuda/deferred_errors.h"
#include "kernels/cuda/device_buffer.h"

#include <cuda_runtime.h>

#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace visrep::kernels::cuda {
namespace {

struct DeviceQuery {
  int count = 0;
  std::string reason;
  DeviceQuery() {
    const cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess) {
      count = 0;
      reason = cudaGetErrorString(status);
      cudaGetLastError();  // clear the error so later calls are not blamed for it
    } else if (count == 0) {
      reason = "no CUDA device found";
    }
  }
};

const DeviceQuery& query() {
  static const DeviceQuery result;
  return result;
}

bool tf32 = false;

}  // namespace

void check_status(cudaError_t status, const char* what, const char* file, int line) {
  if (status == cudaSuccess) return;
  cudaGetLastError();
  throw std::runtime_error(std::string(what) + " failed at " + file + ":" + std::to_string(line) + ": " +
                           cudaGetErrorString(status));
}

int device_count() { return query().count; }
const char* unavailable_reason() { return query().reason.c_str(); }

cudaStream_t stream(int device) {
  static std::mutex mutex;
  static std::vector<cudaStream_t> streams;
  VISREP_CUDA_CHECK(cudaSetDevice(device));
  std::lock_guard<std::mutex> lock(mutex);
  if (streams.empty()) streams.assign(static_cast<size_t>(device_count()), nullptr);
  if (device < 0 || device >= static_cast<int>(streams.size())) {
    throw std::runtime_error("stream: no CUDA device " + std::to_string(device));
  }
  if (streams[device] == nullptr) VISREP_CUDA_CHECK(cudaStreamCreateWithFlags(&streams[device], cudaStreamNonBlocking));
  return streams[device];
}

// The two places where the host waits for the device and reads what its kernels flagged
// (deferred_errors.h): here and after every device-to-host copy.
void synchronize(int device) {
  VISREP_CUDA_CHECK(cudaStreamSynchronize(stream(device)));
  raise_deferred_errors(device);
}

void copy_host_to_device(void* destination, const void* source, size_t bytes, int device) {
  cudaStream_t s = stream(device);
  VISREP_CUDA_CHECK(cudaMemcpyAsync(destination, source, bytes, cudaMemcpyHostToDevice, s));
  VISREP_CUDA_CHECK(cudaStreamSynchronize(s));
}

void copy_device_to_host(void* destination, const void* source, size_t bytes, int device) {
  cudaStream_t s = stream(device);
  VISREP_CUDA_CHECK(cudaMemcpyAsync(destination, source, bytes, cudaMemcpyDeviceToHost, s));
  VISREP_CUDA_CHECK(cudaStreamSynchronize(s));
  raise_deferred_errors(device);
}

void copy_device_to_device(void* destination, int destination_device, const void* source, int source_device,
                           size_t bytes) {
  if (destination_device == source_device) {
    cudaStream_t s = stream(destination_device);
    VISREP_CUDA_CHECK(cudaMemcpyAsync(destination, source, bytes, cudaMemcpyDeviceToDevice, s));
    VISREP_CUDA_CHECK(cudaStreamSynchronize(s));
  } else {
    // Every op runs on its device's own non-blocking stream, which does not order itself
    // with the legacy default stream that cudaMemcpyPeer would run on. So the copy goes on
    // the destination's stream, after the work already queued on the source's stream (which
    // may still be writing the source), through an event; then, as the same-device copy
    // does, it is waited for, so neither buffer can be reused or freed while it runs.
    cudaStream_t destination_stream = stream(destination_device);
    cudaStream_t source_stream = stream(source_device);  // makes the source current: the event is its device's
    cudaEvent_t source_ready = nullptr;
    VISREP_CUDA_CHECK(cudaEventCreateWithFlags(&source_ready, cudaEventDisableTiming));
    cudaError_t status = cudaEventRecord(source_ready, source_stream);
    if (status == cudaSuccess) status = cudaStreamWaitEvent(destination_stream, source_ready, 0);
    cudaEventDestroy(source_ready);  // safe at once: the wait is already queued
    VISREP_CUDA_CHECK(status);
    VISREP_CUDA_CHECK(cudaMemcpyPeerAsync(destination, destination_device, source, source_device, bytes,
                                          destination_stream));
    VISREP_CUDA_CHECK(cudaStreamSynchronize(destination_stream));
  }
}

void* pinned_allocate(size_t bytes) {
  void* pointer = nullptr;
  VISREP_CUDA_CHECK(cudaMallocHost(&pointer, bytes == 0 ? 1 : bytes));
  return pointer;
}

void pinned_free(void* pointer) {
  if (pointer != nullptr) cudaFreeHost(pointer);  // never throws: called from destructors
}

void set_tf32_enabled(bool enabled) { tf32 = enabled; }
bool tf32_enabled() { return tf32; }

Event::Event(int device) : device_(device) {
  VISREP_CUDA_CHECK(cudaSetDevice(device));
  VISREP_CUDA_CHECK(cudaEventCreate(&event_));
}

Event::~Event() {
  if (event_ != nullptr) cudaEventDestroy(event_);
}

void Event::record() { VISREP_CUDA_CHECK(cudaEventRecord(event_, stream(device_))); }
void Event::synchronize() { VISREP_CUDA_CHECK(cudaEventSynchronize(event_)); }

float Event::elapsed_ms_since(const Event& start) {
  float milliseconds = 0.0f;
  VISREP_CUDA_CHECK(cudaEventElapsedTime(&milliseconds, start.event_, event_));
  return milliseconds;
}

int current_device() {
  int device = 0;
  VISREP_CUDA_CHECK(cudaGetDevice(&device));
  return device;
}

unsigned int grid_size_for(long long elements, int threads_per_block) {
  // Enough blocks to fill an H100 (132 SMs x 2048 threads) several times; grid-stride
  // loops take care of anything larger.
  constexpr long long kMaxBlocks = 132LL * 32;
  long long blocks = (elements + threads_per_block - 1) / threads_per_block;
  if (blocks < 1) blocks = 1;
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  return static_cast<unsigned int>(blocks);
}

}  // namespace visrep::kernels::cuda
