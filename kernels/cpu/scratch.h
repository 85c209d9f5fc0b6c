// Working memory of the CPU kernels that outlives one call: a growable buffer per thread and
// per slot, so a training step, which calls every kernel with the same sizes each time, asks
// the system for memory once rather than once per call. A fresh block of 128 KiB or more from
// malloc is mapped for the call and unmapped after it, and each of its 4 KiB pages then costs
// a page fault and a zero-fill on first touch (several percent of bit-tiny's step before).
//
// thread_scratch<T>(slot, count) returns `count` elements of the calling thread's buffer for
// `slot`, grown as needed (never shrunk, never zeroed). The buffer stays valid until the same
// thread asks for that slot again: a kernel may hand a pointer to the threads of its parallel
// region, but two scratch arrays needed at once must use two slots. Each slot belongs to one
// kernel family.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace visrep::kernels::cpu {

enum class ScratchSlot {
  kConvColumns,       // conv2d: a chunk's unrolled columns
  kConvWide,          // conv2d: a chunk's GEMM output or gathered gradient
  kConvPartialGrad,   // conv2d: the workers' filter gradients
  kConvPlane,         // conv2d: one padded or transposed channel plane
  kConvFilters,       // conv2d: the Winograd-transformed filters
  kGroupNormSums,     // group_norm backward: the per-(sample, channel) sums
  kGroupNormSpread,   // group_norm: gamma and beta spread over the map
  kGroupNormGroup,    // group_norm backward: d and d * xhat of one group
  kContrastiveZ,      // contrastive: z in float, and dz
  kContrastiveBlock,  // contrastive: one block of similarities
  kCount
};

namespace detail {
void* thread_scratch_bytes(ScratchSlot slot, size_t bytes);
}  // namespace detail

template <class T>
T* thread_scratch(ScratchSlot slot, int64_t count) {
  return static_cast<T*>(detail::thread_scratch_bytes(slot, static_cast<size_t>(count) * sizeof(T)));
}

}  // namespace visrep::kernels::cpu
