#include "kernels/cuda/device.h"

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace visrep::kernels::cuda {
namespace {

void check(cudaError_t status, const char* call, size_t bytes = 0) {
  if (status == cudaSuccess) return;
  cudaGetLastError();  // clear the sticky non-fatal error so later calls are not blamed
  std::string message = std::string(call) + " failed: " + cudaGetErrorString(status);
  if (bytes != 0) message += " (" + std::to_string(bytes) + " bytes)";
  throw std::runtime_error(message);
}

struct DeviceQuery {
  int count = 0;
  std::string reason;
  DeviceQuery() {
    cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess) {
      count = 0;
      reason = cudaGetErrorString(status);
      cudaGetLastError();
    } else if (count == 0) {
      reason = "no CUDA device found";
    }
  }
};

const DeviceQuery& query() {
  static const DeviceQuery result;
  return result;
}

}  // namespace

int device_count() { return query().count; }

const char* unavailable_reason() { return query().reason.c_str(); }

void* device_allocate(size_t bytes, int device) {
  check(cudaSetDevice(device), "cudaSetDevice");
  void* pointer = nullptr;
  check(cudaMalloc(&pointer, bytes), "cudaMalloc", bytes);
  return pointer;
}

void device_free(void* pointer, int device) {
  if (pointer == nullptr) return;
  cudaSetDevice(device);
  cudaFree(pointer);  // never throws: called from destructors
}

void copy_host_to_device(void* destination, const void* source, size_t bytes, int device) {
  check(cudaSetDevice(device), "cudaSetDevice");
  check(cudaMemcpy(destination, source, bytes, cudaMemcpyHostToDevice), "cudaMemcpy host to device", bytes);
}

void copy_device_to_host(void* destination, const void* source, size_t bytes, int device) {
  check(cudaSetDevice(device), "cudaSetDevice");
  check(cudaMemcpy(destination, source, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy device to host", bytes);
}

void copy_device_to_device(void* destination, int destination_device, const void* source, int source_device,
                           size_t bytes) {
  if (destination_device == source_device) {
    check(cudaSetDevice(destination_device), "cudaSetDevice");
    check(cudaMemcpy(destination, source, bytes, cudaMemcpyDeviceToDevice), "cudaMemcpy device to device", bytes);
  } else {
    check(cudaMemcpyPeer(destination, destination_device, source, source_device, bytes), "cudaMemcpyPeer", bytes);
  }
}

}  // namespace visrep::kernels::cuda
