// Errors that CUDA kernels find in their inputs (an index out of range, a NaN embedding)
// without the host waiting for the answer. Asking at once would cost a device-to-host copy
// and a stream synchronisation in the middle of every training step; instead an op takes a
// slot (defer_check), its kernel marks the slot when it meets bad input (and makes the op
// harmless: no read or write out of bounds), and the host reads every pending slot at the
// next point where it waits for the device anyway:
//   - after every device-to-host copy (Tensor::item(), to_vector(), cpu(): the recipes read
//     the loss with item() for logging, so a bad step is reported at that step), and
//   - after synchronize() (engine/cuda.h's cuda::synchronize()).
// Both are in runtime.cu, which calls raise_deferred_errors: the first pending check that
// fired is thrown as a std::runtime_error with its op's message, naming the bad value and
// its position as the CPU's immediate check does, plus where it was found. The results of
// the ops between the bad one and the report are not meaningful (and not used: the report
// ends that step).
//
// Slot layout, clearing and the order of reports: kernels/deferred_error_list.h.
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/deferred_error_list.h"

namespace visrep::kernels::cuda {

// A cleared slot (2 x int64 in device memory, see deferred_error_list.h) on `device`, for a
// kernel queued on `stream`, the device's stream (runtime.h). Should the device's list be
// full (kCapacity checks queued with no read in between), it first waits for the stream and
// raises what is pending, so this may throw another op's error.
long long* defer_check(int device, cudaStream_t stream, DeferredMessage message);

// Throws the first pending error of `device` (see the top), then has none pending. Reads the
// slots with one small copy; called where the device's stream has just been synchronised.
void raise_deferred_errors(int device);

}  // namespace visrep::kernels::cuda
