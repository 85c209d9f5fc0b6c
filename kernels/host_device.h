// Marks functions that must compile for both the CPU and the GPU, so the CPU reference
// and the CUDA kernels share one definition (the Philox generator, bfloat16 rounding).
#pragma once

#if defined(__CUDACC__)
#define VISREP_HOST_DEVICE __host__ __device__
#define VISREP_FORCE_INLINE __forceinline__
#else
#define VISREP_HOST_DEVICE
#define VISREP_FORCE_INLINE inline __attribute__((always_inline))
#endif
