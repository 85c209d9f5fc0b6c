// The reference switch of kernels/cpu/reference/reference_kernels.h: a count of the live
// ScopedReferenceKernels, so nested scopes (and scopes on several threads) compose.
#include "kernels/cpu/reference/reference_kernels.h"

#include <atomic>

namespace visrep::kernels::cpu {
namespace {

std::atomic<int> reference_scopes{0};

}  // namespace

bool reference_kernels_enabled() { return reference_scopes.load(std::memory_order_relaxed) > 0; }

ScopedReferenceKernels::ScopedReferenceKernels() { reference_scopes.fetch_add(1, std::memory_order_relaxed); }

ScopedReferenceKernels::~ScopedReferenceKernels() { reference_scopes.fetch_sub(1, std::memory_order_relaxed); }

}  // namespace visrep::kernels::cpu
