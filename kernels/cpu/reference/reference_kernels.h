// The CPU reference kernels and the switch that runs them in place of the fast ones.
//
// Some kernel families have two CPU implementations that share the family's name:
//   kernels::cpu::NAME             the fast kernel the dispatch runs (float32 with vectorisable
//                                  inner loops, GEMMs where the arithmetic is one), and
//   kernels::cpu::reference::NAME  the specification, in kernels/cpu/reference/<family>.cpp:
//                                  plain loops accumulating in double, written to be read.
// Both are declared in kernels/cpu/<family>.h. The fast kernel handles float32 and hands every
// other dtype (float64, bfloat16) to the reference, so the float64 gradient checks hold the
// reference to the derivative; unit tests hold the fast kernel to the reference with a stated
// tolerance (tests/unit/test_<family>.cpp).
//
// ScopedReferenceKernels makes every fast entry point run the reference instead, for the
// whole process, while it lives: the CPU/CUDA parity suite (tests/parity) uses it, so the
// CUDA twins are compared with the specification, not with another fast implementation.
#pragma once

namespace visrep::kernels::cpu {

// True while a ScopedReferenceKernels lives (any thread).
bool reference_kernels_enabled();

class ScopedReferenceKernels {
 public:
  ScopedReferenceKernels();
  ~ScopedReferenceKernels();
  ScopedReferenceKernels(const ScopedReferenceKernels&) = delete;
  ScopedReferenceKernels& operator=(const ScopedReferenceKernels&) = delete;
};

}  // namespace visrep::kernels::cpu
