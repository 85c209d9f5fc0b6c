// Winograd's F(2x2, 3x3) for the float32 3x3 convolutions with stride 1 and padding 1, the
// fast path of conv2d's forward pass and both gradients on the CPU (kernels/cpu/conv2d.h
// specifies the convolution and lists the family's files; kernels/cpu/conv2d_winograd.cpp
// explains the work). Part of the conv2d family: conv2d_forward and conv2d_backward call it
// when winograd_applies, and run im2col + GEMM otherwise, and always under
// ScopedReferenceKernels and for float64.
#pragma once

#include "kernels/cpu/conv2d.h"

namespace visrep::kernels::cpu {

// True for geometries the Winograd path computes: 3x3 kernel, stride 1, padding 1, dilation
// 1, one group, at least kWinogradMinChannels input and output channels (fewer make the 16
// products too thin to beat the transforms' cost), and a batch that gives every thread an
// image (one image is faster through im2col's shared GEMMs).
bool winograd_applies(const Conv2dGeometry& g);

// output (N, C_out, H, W) = conv2d(input, weight) (+ bias when not null).
void winograd_forward(const Conv2dGeometry& g, const float* input, const float* weight, const float* bias,
                      float* output);

// grad_input (N, C_in, H, W), overwritten, from grad_output (N, C_out, H, W): for stride 1 and
// padding 1 it is itself a 3x3 convolution with padding 1, of grad_output with the filters
// swapped over their channel axes and turned by 180 degrees (w'[c][o][i][j] = w[o][c][2-i][2-j]).
void winograd_backward_input(const Conv2dGeometry& g, const float* grad_output, const float* weight,
                             float* grad_input);

// grad_weight (C_out, C_in, 3, 3), overwritten, of conv2d(input, weight) given grad_output: the
// adjoint of the forward's transforms, dW = G^T [sum over tiles (A dY A^T) ⊙ (B^T d B)] G.
void winograd_backward_weight(const Conv2dGeometry& g, const float* grad_output, const float* input,
                              float* grad_weight);

}  // namespace visrep::kernels::cpu
