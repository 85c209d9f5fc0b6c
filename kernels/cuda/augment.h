// CUDA twin of the augmentation pipeline of kernels/cpu/augment.h (which specifies what
// it computes and lists the family's files): uint8 NHWC source images -> float32 NCHW
// views, one AugmentParams per view.
#pragma once

#include "kernels/cpu/augment.h"
#include "kernels/cuda/stream.h"

namespace visrep::kernels::cuda {

// Every view of the batch (kernels/cpu/augment.h AugmentBatch: images, params and output in
// device memory, host_params their host copy), queued on `stream`; throws std::runtime_error on
// a bad parameter or a failed launch.
void augment_batch(const AugmentBatch& arguments, cudaStream_t stream);

}  // namespace visrep::kernels::cuda
