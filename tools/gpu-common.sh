# shellcheck shell=bash
# shellcheck disable=SC2034  # the lists are used by the scripts that source this file
# What tools/pack-gpu-deps.sh (on the development machine) and tools/gpu-check.sh (on the
# GPU machine) must agree on; sourced by both.

# The Debian 12 packages the stage binaries load at run time and a stock Ubuntu 24.04 + CUDA
# machine may lack (the sonames are the same as Ubuntu's: libfmt.so.9, libzip.so.4,
# libstb.so.0, libopenblas.so.0, libgfortran.so.5, libquadmath.so.0). glibc, libstdc++,
# libgcc_s, libgomp (gcc's), zlib and CUDA's own libraries are there already.
visrep_runtime_packages=(libfmt9 libzip4 libstb0 libopenblas0-pthread libgfortran5 libquadmath0)
# What a build there needs on top (headers, CMake packages): the fallback when the carried
# binaries do not start.
visrep_build_packages=(libfmt-dev catch2 libstb-dev nlohmann-json3-dev libcli11-dev libzip-dev zlib1g-dev
                       libopenblas-pthread-dev)
# Libraries the GPU machine has without .deps: sonames (prefixes) that need no package.
# libmpi and libnccl are not among them, nor carried: the stage binaries do not link the
# communicator (engine/distributed/, library visrep_distributed), and pack-gpu-deps.sh's
# ldd check fails if one ever does.
visrep_system_libraries=(linux-vdso ld-linux libc.so libm.so libdl.so librt.so libpthread.so libstdc++.so libgcc_s.so
                         libgomp.so libz.so libcudart.so libcublas.so libcublasLt.so libcudnn)

# The binaries each stage runs, as CMake targets.
visrep_parity_targets=(test_parity)
visrep_bench_targets=(bench_contrastive bench_group_norm bench_weight_standardization bench_train)

# The folder the carried Debian packages are unpacked into: never /, and kept between stages.
visrep_default_deps_root() {
  if [ -n "${VISREP_DEPS_ROOT:-}" ]; then
    echo "$VISREP_DEPS_ROOT"
  elif mkdir -p /opt/visrep-deps 2>/dev/null && [ -w /opt/visrep-deps ]; then
    echo /opt/visrep-deps
  else
    echo "${HOME:-/tmp}/.cache/visrep-deps"
  fi
}

# A digest of the sources the binaries are built from (every C++/CUDA/CMake file of the tree,
# by content, in a fixed order), the same here and on the GPU machine, which has no git: a
# carried binary whose digest differs from the tree's is stale and is not used.
visrep_source_digest() {
  local root=$1
  (cd "$root" && find CMakeLists.txt kernels engine models recipes apps tests benchmarks -type f \
     \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' -o -name 'CMakeLists.txt' \) -print0 |
     LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
}
