// Batch normalisation (kernels/cpu/batch_norm.h specifies the kernels and lists the
// family's files).
#pragma once

#include "engine/tensor.h"

namespace visrep {

struct BatchNormOptions {
  bool training = true;
  double momentum = 0.1;  // running = (1 - momentum) running + momentum batch (PyTorch's convention)
  double eps = 1e-5;
};

// x (N, C) or (N, C, H, W). Training: normalise by the batch's per-channel mean and biased
// variance and, when running_mean/running_var are given, update them in place (unbiased
// variance). Evaluation: normalise by the running statistics. weight/bias (C) may be
// undefined (no affine transform).
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, const BatchNormOptions& options = {});

}  // namespace visrep
