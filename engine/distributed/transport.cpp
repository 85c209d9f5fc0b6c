#include "engine/distributed/transport.h"

#include "engine/error.h"

#if VISREP_WITH_CUDA
#include "kernels/cuda/runtime.h"
#endif

namespace visrep::distributed {

void divide_in_place(void* data, int64_t count, DType dtype, int divisor) {
  switch (dtype) {
    case kFloat32: {
      float* values = static_cast<float*>(data);
      const float d = static_cast<float>(divisor);
      for (int64_t i = 0; i < count; ++i) values[i] /= d;
      return;
    }
    case kFloat64: {
      double* values = static_cast<double*>(data);
      const double d = static_cast<double>(divisor);
      for (int64_t i = 0; i < count; ++i) values[i] /= d;
      return;
    }
    default: VISREP_FAIL("divide_in_place: {} is not a floating dtype the transports average", dtype_name(dtype));
  }
}

PinnedStaging::~PinnedStaging() {
#if VISREP_WITH_CUDA
  if (data_ != nullptr) kernels::cuda::pinned_free(data_);
#endif
}

void* PinnedStaging::get(size_t bytes) {
#if VISREP_WITH_CUDA
  if (bytes <= bytes_ && data_ != nullptr) return data_;
  if (data_ != nullptr) kernels::cuda::pinned_free(data_);
  data_ = nullptr;
  bytes_ = 0;
  try {
    data_ = kernels::cuda::pinned_allocate(bytes);
  } catch (const std::runtime_error& error) {
    VISREP_FAIL("staging a CUDA buffer through host memory: could not allocate {} bytes of pinned memory: {}", bytes,
                error.what());
  }
  bytes_ = bytes;
  return data_;
#else
  VISREP_FAIL("staging a CUDA buffer through host memory: visrep was built without CUDA ({} bytes asked for)", bytes);
#endif
}

}  // namespace visrep::distributed
