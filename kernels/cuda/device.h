// The CUDA runtime as the engine needs it before any kernel runs: is there a GPU, and
// moving bytes to, from and between device memory. Plain C++ interface so that engine
// code compiled by g++ never includes CUDA headers. Errors are thrown as
// std::runtime_error naming the call and CUDA's own message.
#pragma once

#include <cstddef>

namespace visrep::kernels::cuda {

// Number of usable CUDA devices; 0 (not an error) when there is no driver or no GPU.
int device_count();

// A one-line description of why device_count() is 0 (CUDA's error string), or "".
const char* unavailable_reason();

void* device_allocate(size_t bytes, int device);
void device_free(void* pointer, int device);

void copy_host_to_device(void* destination, const void* source, size_t bytes, int device);
void copy_device_to_host(void* destination, const void* source, size_t bytes, int device);
void copy_device_to_device(void* destination, int destination_device, const void* source, int source_device,
                           size_t bytes);

}  // namespace visrep::kernels::cuda
