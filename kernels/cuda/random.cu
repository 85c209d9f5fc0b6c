// CUDA twins of kernels/cpu/random.h. Element i of a draw keyed by (seed, stream) is
// philox(seed, stream, i) (kernels/philox.h, the same code on both sides), so a thread per
// element computes exactly the CPU's value: uniform and integer draws are bit-identical, and
// normal draws are too except in the ~2^-29 cases where CUDA's double log/sin/cos land on
// the other side of a float rounding boundary from glibc's. Scaling uses an explicit fma,
// as the CPU reference does, so compilers cannot contract it differently on the two sides.
//
// Each thread computes one Philox block (10 rounds of 32-bit multiplies) per element and
// writes one value: compute-light next to the write traffic, so a grid-stride loop over
// elements is all it takes.
//
// A permutation sorts the 64-bit keys (philox bits << 32 | index) with CUB's radix sort
// and keeps the low 32 bits: the keys are distinct, so the order is exactly std::sort's on
// the CPU. Traffic: the keys are written once, sorted (CUB's passes, 8 bytes per key each),
// and read once.
// Where to look for the rest of the family: kernels/cpu/random.h.
#include "kernels/cuda/random.h"

#include <cuda_runtime.h>

#include <cub/cub.cuh>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/runtime.h"
#include "kernels/philox.h"

namespace visrep::kernels::cuda {
namespace {

template <class T>
__global__ void uniform_kernel(uint64_t seed, uint64_t philox_stream, int64_t count, double low, double span,
                               T* out) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += step) {
    const uint32_t bits = philox_bits(seed, philox_stream, static_cast<uint64_t>(i));
    const double u = static_cast<double>(uniform_from_bits(bits));
    out[i] = static_cast<T>(::fma(span, u, low));
  }
}

template <class T>
__global__ void normal_kernel(uint64_t seed, uint64_t philox_stream, int64_t count, double mean, double std, T* out) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += step) {
    const double n = static_cast<double>(normal_at(seed, philox_stream, static_cast<uint64_t>(i)));
    out[i] = static_cast<T>(::fma(std, n, mean));
  }
}

__global__ void integers_kernel(uint64_t seed, uint64_t philox_stream, int64_t count, int64_t low, uint64_t range,
                                int64_t* out) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += step) {
    const uint32_t bits = philox_bits(seed, philox_stream, static_cast<uint64_t>(i));
    out[i] = low + static_cast<int64_t>(bounded_from_bits(bits, range));
  }
}

__global__ void permutation_keys_kernel(uint64_t seed, uint64_t philox_stream, int64_t count, uint64_t* keys) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += step) {
    const uint64_t bits = philox_bits(seed, philox_stream, static_cast<uint64_t>(i));
    keys[i] = (bits << 32) | static_cast<uint64_t>(i);
  }
}

__global__ void permutation_indices_kernel(const uint64_t* sorted_keys, int64_t count, int64_t* out) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += step) {
    out[i] = static_cast<int64_t>(sorted_keys[i] & 0xffffffffu);
  }
}

}  // namespace

template <class T>
void random_uniform(const RandomUniform<T>& a, cudaStream_t stream) {
  if (a.count <= 0) return;
  uniform_kernel<T><<<grid_size_for(a.count), kThreadsPerBlock, 0, stream>>>(a.seed, a.stream, a.count, a.low,
                                                                             a.high - a.low, a.out);
  VISREP_CUDA_CHECK_LAUNCH("uniform_kernel");
}

template <class T>
void random_normal(const RandomNormal<T>& a, cudaStream_t stream) {
  if (a.count <= 0) return;
  normal_kernel<T>
      <<<grid_size_for(a.count), kThreadsPerBlock, 0, stream>>>(a.seed, a.stream, a.count, a.mean, a.std, a.out);
  VISREP_CUDA_CHECK_LAUNCH("normal_kernel");
}

void random_integers(const RandomIntegers& a, cudaStream_t stream) {
  if (a.count <= 0) return;
  const uint64_t range = static_cast<uint64_t>(a.high - a.low);
  integers_kernel<<<grid_size_for(a.count), kThreadsPerBlock, 0, stream>>>(a.seed, a.stream, a.count, a.low, range,
                                                                           a.out);
  VISREP_CUDA_CHECK_LAUNCH("integers_kernel");
}

void random_permutation(const RandomPermutation& a, cudaStream_t stream) {
  const uint64_t seed = a.seed;
  const uint64_t philox_stream = a.stream;
  const int64_t count = a.count;
  int64_t* out = a.out;
  if (count <= 0) return;
  if (count > (int64_t{1} << 32)) {
    throw std::runtime_error("random_permutation: " + std::to_string(count) +
                             " elements exceed the 2^32 that the keys can index");
  }
  const int device = current_device();
  DeviceBuffer keys(static_cast<size_t>(count) * sizeof(uint64_t), device, stream);
  DeviceBuffer sorted(static_cast<size_t>(count) * sizeof(uint64_t), device, stream);
  permutation_keys_kernel<<<grid_size_for(count), kThreadsPerBlock, 0, stream>>>(seed, philox_stream, count,
                                                                                 keys.get<uint64_t>());
  VISREP_CUDA_CHECK_LAUNCH("permutation_keys_kernel");

  // CUB's two-call protocol: ask for the scratch size, then sort with it.
  size_t temporary_bytes = 0;
  VISREP_CUDA_CHECK(cub::DeviceRadixSort::SortKeys(nullptr, temporary_bytes, keys.get<uint64_t>(),
                                                   sorted.get<uint64_t>(), count, 0, 64, stream));
  DeviceBuffer temporary(temporary_bytes > 0 ? temporary_bytes : 1, device, stream);  // null would mean "query" again
  VISREP_CUDA_CHECK(cub::DeviceRadixSort::SortKeys(temporary.get(), temporary_bytes, keys.get<uint64_t>(),
                                                   sorted.get<uint64_t>(), count, 0, 64, stream));

  permutation_indices_kernel<<<grid_size_for(count), kThreadsPerBlock, 0, stream>>>(sorted.get<uint64_t>(), count,
                                                                                    out);
  VISREP_CUDA_CHECK_LAUNCH("permutation_indices_kernel");
}

template void random_uniform<float>(const RandomUniform<float>&, cudaStream_t);
template void random_uniform<double>(const RandomUniform<double>&, cudaStream_t);
template void random_normal<float>(const RandomNormal<float>&, cudaStream_t);
template void random_normal<double>(const RandomNormal<double>&, cudaStream_t);

}  // namespace visrep::kernels::cuda
