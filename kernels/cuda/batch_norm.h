// CUDA twins of kernels/cpu/batch_norm.h (which specifies what they compute and lists the
// family's files): our own kernels, with per-channel statistics accumulated in double like
// the CPU reference (kernels/cuda/batch_norm.cu says why not cuDNN's batch normalisation).
// Pointers are device pointers.
#pragma once

#include "kernels/cpu/batch_norm.h"
#include "kernels/cuda/stream.h"

namespace visrep::kernels::cuda {

template <class T>
void batch_norm_forward_training(const BatchNormForwardTraining<T>& arguments, cudaStream_t stream);
template <class T>
void batch_norm_forward_inference(const BatchNormForwardInference<T>& arguments, cudaStream_t stream);
template <class T>
void batch_norm_inference_statistics(const BatchNormInferenceStatistics<T>& arguments, cudaStream_t stream);
template <class T>
void batch_norm_backward(const BatchNormBackward<T>& arguments, cudaStream_t stream);
template <class T>
void batch_norm_statistics(const BatchNormStatistics<T>& arguments, cudaStream_t stream);
template <class T>
void batch_norm_forward_with_statistics(const BatchNormForwardWithStatistics<T>& arguments, cudaStream_t stream);
template <class T>
void batch_norm_backward_sums(const BatchNormBackwardSums<T>& arguments, cudaStream_t stream);
template <class T>
void batch_norm_backward_with_sums(const BatchNormBackwardWithSums<T>& arguments, cudaStream_t stream);

}  // namespace visrep::kernels::cuda
