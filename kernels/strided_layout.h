// How the elements of one operand sit in memory: sizes and strides (in elements) of up
// to kMaxDims dimensions. Kernels take this plain struct instead of a Tensor so that they
// know nothing of the engine (kernels/ depends on nothing above it), and a CUDA
// kernel can receive it by value.
#pragma once

#include <cstdint>

#include "kernels/host_device.h"

namespace visrep::kernels {

inline constexpr int kMaxDims = 8;

struct StridedLayout {
  int ndim = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};

  VISREP_HOST_DEVICE int64_t numel() const {
    int64_t count = 1;
    for (int d = 0; d < ndim; ++d) count *= sizes[d];
    return count;
  }

  // Row-major contiguous: the last dimension has stride 1 and each earlier one spans the
  // ones after it. Dimensions of size 1 may carry any stride.
  VISREP_HOST_DEVICE bool is_contiguous() const {
    int64_t expected = 1;
    for (int d = ndim - 1; d >= 0; --d) {
      if (sizes[d] != 1 && strides[d] != expected) return false;
      expected *= sizes[d];
    }
    return true;
  }
};

}  // namespace visrep::kernels
