// Indexing over (outer, size, inner) views of contiguous tensors: the range check of an
// index tensor, index_select / gather and their adjoints index_add / scatter_add, and
// one_hot; the CUDA twins of kernels/cpu/indexing.cpp.
//
// Shape of the work: one thread per element of the larger side (the output of a select or
// gather, the source of an add), in grid-stride loops with int64 offsets. Consecutive
// threads take consecutive `inner` positions, so loads and stores are coalesced whenever
// inner spans a warp; the int64 index is read once per element (served from L1 when several
// threads share it). Each element is read once and written once: these kernels run at
// memory bandwidth and need no shared memory.
//
// index_add and scatter_add may hit the same destination from many threads (repeated
// indices), so they add with atomics: native atomicAdd for float, double (sm_60+), int32 and
// int64 (as unsigned 64-bit: two's complement addition wraps the same way). uint8 has no
// byte-wide atomic, so it is added by a compare-and-swap loop on the aligned 32-bit word that
// contains the byte; that word lies inside the same allocation, because device allocations
// are 256-byte aligned and their sizes rounded up to multiples of 512 bytes
// (kernels/cuda/allocator.h), and the CAS leaves the neighbouring bytes as they are.
// Floating-point atomics make the order of the additions, and so the last bits of the sums,
// vary from run to run where indices repeat; integer sums are exact.
//
// The range check does not wait for the device (deferred_errors.h): mark_first_out_of_range
// atomicMin's the position of every bad index into the op's slot, then one thread records the
// value at the first one, and the host reads the slot at its next synchronisation. So that
// the op may run meanwhile, the kernels here never follow a bad index: select and gather
// read it as 0, index_add and scatter_add add nothing for it.
// Where to look for the rest of the family: kernels/cpu/indexing.h.
#include "kernels/cuda/indexing.h"

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/bfloat16.h"
#include "kernels/cuda/per_element_launch.cuh"
#include "kernels/cuda/runtime.h"
#include "kernels/deferred_error_list.h"

namespace visrep::kernels::cuda {
namespace {

__device__ __forceinline__ bool in_range(int64_t index, int64_t size) { return index >= 0 && index < size; }

// slot[0] = min(slot[0], k) over every bad indices[k] (not `ignored`, when has_ignored).
__global__ void mark_first_out_of_range_kernel(const int64_t* indices, int64_t count, int64_t size, bool has_ignored,
                                               int64_t ignored, long long* slot) {
  for (int64_t k = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; k < count; k += int64_t{gridDim.x} * blockDim.x) {
    const int64_t value = indices[k];
    if (!in_range(value, size) && !(has_ignored && value == ignored)) atomicMin(&slot[0], static_cast<long long>(k));
  }
}

// slot[1] = the first bad index itself, for the message.
__global__ void record_first_bad_value_kernel(const int64_t* indices, long long* slot) {
  if (slot[0] != kNoError) slot[1] = static_cast<long long>(indices[slot[0]]);
}

// out (outer, count, inner)[o, k, i] = x (outer, size, inner)[o, indices[k], i].
template <class T>
__global__ void index_select_kernel(const T* x, int64_t outer, int64_t size, int64_t inner, const int64_t* indices,
                                    int64_t count, T* out) {
  const int64_t total = outer * count * inner;
  for (int64_t at = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; at < total;
       at += int64_t{gridDim.x} * blockDim.x) {
    const int64_t i = at % inner;
    const int64_t k = (at / inner) % count;
    const int64_t o = at / (inner * count);
    const int64_t index = indices[k];
    out[at] = in_range(index, size) ? x[(o * size + index) * inner + i] : T(0);
  }
}

// ---- atomic addition, per type ------------------------------------------------------------

__device__ __forceinline__ void atomic_add(float* address, float value) { atomicAdd(address, value); }
__device__ __forceinline__ void atomic_add(double* address, double value) { atomicAdd(address, value); }
__device__ __forceinline__ void atomic_add(int32_t* address, int32_t value) { atomicAdd(address, value); }
__device__ __forceinline__ void atomic_add(int64_t* address, int64_t value) {
  static_assert(sizeof(int64_t) == sizeof(unsigned long long));
  atomicAdd(reinterpret_cast<unsigned long long*>(address), static_cast<unsigned long long>(value));
}
__device__ __forceinline__ void atomic_add(uint8_t* address, uint8_t value) {
  // Little-endian: the byte at address & 3 occupies bits [8 * (address & 3), +8) of its word.
  const uintptr_t byte_address = reinterpret_cast<uintptr_t>(address);
  unsigned int* word = reinterpret_cast<unsigned int*>(byte_address & ~uintptr_t{3});
  const unsigned int shift = static_cast<unsigned int>(byte_address & 3u) * 8u;
  const unsigned int mask = 0xffu << shift;
  unsigned int observed = *word;
  unsigned int expected;
  do {
    expected = observed;
    const unsigned int byte = ((expected >> shift) + value) & 0xffu;  // wraps modulo 256, like uint8_t +=
    const unsigned int replacement = (expected & ~mask) | (byte << shift);
    observed = atomicCAS(word, expected, replacement);
  } while (observed != expected);
}

// dst (outer, size, inner)[o, indices[k], i] += src (outer, count, inner)[o, k, i].
template <class T>
__global__ void index_add_kernel(const T* src, int64_t outer, int64_t count, int64_t inner, const int64_t* indices,
                                 int64_t size, T* dst) {
  const int64_t total = outer * count * inner;
  for (int64_t at = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; at < total;
       at += int64_t{gridDim.x} * blockDim.x) {
    const int64_t i = at % inner;
    const int64_t k = (at / inner) % count;
    const int64_t o = at / (inner * count);
    const int64_t index = indices[k];
    if (in_range(index, size)) atomic_add(dst + (o * size + index) * inner + i, src[at]);
  }
}

// out[o, k, i] = x[o, indices[o, k, i], i], indices and out shaped (outer, count, inner).
template <class T>
__global__ void gather_kernel(const T* x, int64_t outer, int64_t size, int64_t inner, const int64_t* indices,
                              int64_t count, T* out) {
  const int64_t total = outer * count * inner;
  for (int64_t at = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; at < total;
       at += int64_t{gridDim.x} * blockDim.x) {
    const int64_t i = at % inner;
    const int64_t o = at / (inner * count);
    const int64_t index = indices[at];
    out[at] = in_range(index, size) ? x[(o * size + index) * inner + i] : T(0);
  }
}

// dst[o, indices[o, k, i], i] += src[o, k, i].
template <class T>
__global__ void scatter_add_kernel(const T* src, int64_t outer, int64_t count, int64_t inner, const int64_t* indices,
                                   int64_t size, T* dst) {
  const int64_t total = outer * count * inner;
  for (int64_t at = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; at < total;
       at += int64_t{gridDim.x} * blockDim.x) {
    const int64_t i = at % inner;
    const int64_t o = at / (inner * count);
    const int64_t index = indices[at];
    if (in_range(index, size)) atomic_add(dst + (o * size + index) * inner + i, src[at]);
  }
}

// out (count, classes) = 1 at [k, labels[k]], 0 elsewhere; every element written once.
template <class T>
__global__ void one_hot_kernel(const int64_t* labels, int64_t count, int64_t classes, T* out) {
  const int64_t total = count * classes;
  for (int64_t at = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; at < total;
       at += int64_t{gridDim.x} * blockDim.x) {
    const int64_t k = at / classes, c = at % classes;
    out[at] = labels[k] == c ? T(1) : T(0);
  }
}

}  // namespace

void mark_first_out_of_range(const MarkFirstOutOfRange& a, cudaStream_t stream) {
  if (a.count <= 0) return;
  launch_per_element(mark_first_out_of_range_kernel, "mark_first_out_of_range_kernel", a.count, stream, a.indices,
                     a.count, a.size, a.has_ignored, a.ignored, a.slot);
  record_first_bad_value_kernel<<<1, 1, 0, stream>>>(a.indices, a.slot);
  VISREP_CUDA_CHECK_LAUNCH("record_first_bad_value_kernel");
}

template <class T>
void index_select(const IndexSelect<T>& a, cudaStream_t stream) {
  launch_per_element(index_select_kernel<T>, "index_select_kernel", a.outer * a.count * a.inner, stream, a.x, a.outer,
                     a.size, a.inner, a.indices, a.count, a.out);
}

template <class T>
void index_add(const IndexAdd<T>& a, cudaStream_t stream) {
  launch_per_element(index_add_kernel<T>, "index_add_kernel", a.outer * a.count * a.inner, stream, a.src, a.outer,
                     a.count, a.inner, a.indices, a.size, a.dst);
}

template <class T>
void gather(const Gather<T>& a, cudaStream_t stream) {
  launch_per_element(gather_kernel<T>, "gather_kernel", a.outer * a.count * a.inner, stream, a.x, a.outer, a.size,
                     a.inner, a.indices, a.count, a.out);
}

template <class T>
void scatter_add(const ScatterAdd<T>& a, cudaStream_t stream) {
  launch_per_element(scatter_add_kernel<T>, "scatter_add_kernel", a.outer * a.count * a.inner, stream, a.src, a.outer,
                     a.count, a.inner, a.indices, a.size, a.dst);
}

template <class T>
void one_hot(const OneHot<T>& a, cudaStream_t stream) {
  launch_per_element(one_hot_kernel<T>, "one_hot_kernel", a.count * a.classes, stream, a.labels, a.count, a.classes,
                     a.out);
}

#define VISREP_INSTANTIATE_INDEXING(T)                                   \
  template void index_select<T>(const IndexSelect<T>&, cudaStream_t);    \
  template void gather<T>(const Gather<T>&, cudaStream_t);

#define VISREP_INSTANTIATE_INDEX_ADD(T)                                  \
  template void index_add<T>(const IndexAdd<T>&, cudaStream_t);          \
  template void scatter_add<T>(const ScatterAdd<T>&, cudaStream_t);      \
  template void one_hot<T>(const OneHot<T>&, cudaStream_t);

VISREP_INSTANTIATE_INDEXING(float)
VISREP_INSTANTIATE_INDEXING(double)
VISREP_INSTANTIATE_INDEXING(bfloat16)
VISREP_INSTANTIATE_INDEXING(int32_t)
VISREP_INSTANTIATE_INDEXING(int64_t)
VISREP_INSTANTIATE_INDEXING(uint8_t)
VISREP_INSTANTIATE_INDEX_ADD(float)
VISREP_INSTANTIATE_INDEX_ADD(double)
VISREP_INSTANTIATE_INDEX_ADD(int32_t)
VISREP_INSTANTIATE_INDEX_ADD(int64_t)
VISREP_INSTANTIATE_INDEX_ADD(uint8_t)
#undef VISREP_INSTANTIATE_INDEXING
#undef VISREP_INSTANTIATE_INDEX_ADD

}  // namespace visrep::kernels::cuda
