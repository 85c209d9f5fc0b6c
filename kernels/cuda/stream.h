// cudaStream_t for the headers that declare the CUDA twins of the kernels. The engine
// includes those headers in every build and calls the twins only in a build with CUDA
// (engine/dispatch.h), so they must also compile where the CUDA toolkit is absent: there
// the type is declared the way cuda_runtime_api.h declares it, an opaque struct pointer.
#pragma once

#if VISREP_WITH_CUDA
#include <cuda_runtime_api.h>
#else
typedef struct CUstream_st* cudaStream_t;
#endif
