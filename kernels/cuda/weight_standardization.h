// CUDA twins of kernels/cpu/weight_standardization.h (which specifies what they compute and
// lists the family's files), for float32, bfloat16 (statistics in float32) and float64.
//
// The list of descriptors stays on the host; the twin copies up to
// kWeightStandardizationTensorsPerLaunch of them at a time into the kernel's parameter
// space (a launch argument, under the classic 4 KiB limit), so there is no host-to-device
// copy to wait for and one launch standardises a whole model (BiT-R50x1: 53 weights). The
// pointers inside the descriptors are device pointers.
#pragma once

#include "kernels/cpu/weight_standardization.h"
#include "kernels/cuda/stream.h"

namespace visrep::kernels::cuda {

inline constexpr int kWeightStandardizationTensorsPerLaunch = 64;

// One launch per kWeightStandardizationTensorsPerLaunch tensors (empty ones are skipped).
template <class T>
void weight_standardization_forward(const WeightStandardizationForward<T>* tensors, int64_t count, double eps,
                                    cudaStream_t stream);

template <class T>
void weight_standardization_backward(const WeightStandardizationBackward<T>* tensors, int64_t count,
                                     cudaStream_t stream);

}  // namespace visrep::kernels::cuda
