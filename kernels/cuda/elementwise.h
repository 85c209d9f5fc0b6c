// CUDA twins of kernels/cpu/elementwise.h and kernels/cpu/copy.h (which specify what
// they compute): the same signatures plus the stream they are queued on. Pointers are
// device pointers; layouts describe them exactly as on the CPU.
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/cpu/copy.h"
#include "kernels/cpu/elementwise.h"

namespace visrep::kernels::cuda {

template <class T>
void unary(UnaryOp op, UnaryParameters parameters, const T* x, const StridedLayout& x_layout, T* out,
           const StridedLayout& out_layout, cudaStream_t stream);

template <class T>
void binary(BinaryOp op, const T* a, const StridedLayout& a_layout, const T* b, const StridedLayout& b_layout,
            T* out, const StridedLayout& out_layout, cudaStream_t stream);

template <class T>
void compare(CompareOp op, const T* a, const StridedLayout& a_layout, const T* b, const StridedLayout& b_layout,
             uint8_t* out, const StridedLayout& out_layout, cudaStream_t stream);

template <class T>
void where(const uint8_t* condition, const StridedLayout& condition_layout, const T* a, const StridedLayout& a_layout,
           const T* b, const StridedLayout& b_layout, T* out, const StridedLayout& out_layout, cudaStream_t stream);

template <class Source, class Destination>
void copy(const Source* src, const StridedLayout& src_layout, Destination* dst, const StridedLayout& dst_layout,
          cudaStream_t stream);

template <class T>
void fill(T* dst, const StridedLayout& dst_layout, T value, cudaStream_t stream);

}  // namespace visrep::kernels::cuda
