// CUDA twin of the augmentation pipeline of kernels/cpu/augment.h (which specifies what
// it computes and lists the family's files): uint8 NHWC source images -> float32 NCHW
// views, one AugmentParams per view.
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/cpu/augment.h"

namespace visrep::kernels::cuda {

// `params` (geometry.views of them), `images` and `output` are device memory; `host_params`
// is the host copy of `params`, read to validate them and to choose which passes the batch
// needs (the contrast means, the blur). Queued on `stream`; throws std::runtime_error on a
// bad parameter or a failed launch.
void augment_batch(const AugmentGeometry& geometry, const AugmentParams* host_params, const AugmentParams* params,
                   const uint8_t* images, float* output, cudaStream_t stream);

}  // namespace visrep::kernels::cuda
