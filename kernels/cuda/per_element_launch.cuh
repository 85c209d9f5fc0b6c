// The launch shared by the one-thread-per-element kernels of indexing.cu and pool.cu:
// nothing for an empty problem, else grid_size_for(elements) blocks of kThreadsPerBlock
// threads (the kernels' grid-stride loops cover whatever the capped grid does not), no
// dynamic shared memory, on the op's stream, with the launch checked at once.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "kernels/cuda/runtime.h"

namespace visrep::kernels::cuda {

// kernel<<<grid_size_for(elements), kThreadsPerBlock, 0, stream>>>(arguments...). A bad
// launch throws "launch of <kernel_name> failed at ...", as VISREP_CUDA_CHECK_LAUNCH does.
template <class... Parameters, class... Arguments>
void launch_per_element(void (*kernel)(Parameters...), const char* kernel_name, int64_t elements, cudaStream_t stream,
                        const Arguments&... arguments) {
  if (elements <= 0) return;
  kernel<<<grid_size_for(elements), kThreadsPerBlock, 0, stream>>>(arguments...);
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) {
    check_status(status, (std::string("launch of ") + kernel_name).c_str(), __FILE__, __LINE__);
  }
}

}  // namespace visrep::kernels::cuda
