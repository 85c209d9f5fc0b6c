// The parity executable's main: without a usable GPU it says so and exits with code 4,
// which ctest reports as "Skipped" (SKIP_RETURN_CODE), so a machine without a GPU never
// passes these cases silently. Listing the tests (ctest's discovery) works everywhere. The
// CPU side of every case runs the reference kernels (kernels/cpu/reference/reference_kernels.h):
// the CUDA twins are held to the specification, not to the fast CPU kernels.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>

#include "engine/device.h"
#include "kernels/cpu/reference/reference_kernels.h"
#include "kernels/cuda/runtime.h"

int main(int argc, char** argv) {
  bool listing = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--list", 6) == 0 || std::strcmp(argv[i], "-h") == 0 ||
        std::strcmp(argv[i], "--help") == 0) {
      listing = true;
    }
  }
  if (!listing && !visrep::cuda_available()) {
    std::printf("SKIPPED: no usable CUDA device on this machine (%s); the CPU/CUDA parity cases run on the GPU "
                "machine (tools/gpu-check.sh)\n",
                visrep::kernels::cuda::unavailable_reason());
    return 4;
  }
  const visrep::kernels::cpu::ScopedReferenceKernels reference;
  return Catch::Session().run(argc, argv);
}
