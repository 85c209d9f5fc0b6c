#!/usr/bin/env bash
# Installs the Debian packages visrep builds and runs with, skipping those already present.
# Idempotent: a second run installs nothing. Extra package names may be passed as arguments.
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config
  libfmt-dev            # formatting (never inside .cu files: nvcc 13 rejects fmt's consteval format strings)
  catch2                # Catch2 v2 unit tests
  libstb-dev            # stb_image / stb_image_write
  libopenblas-dev       # CPU GEMM
  zlib1g-dev            # gzip-compressed datasets
  libzip-dev            # NumPy .npz archives (the official BiT weights)
  nlohmann-json3-dev    # safetensors headers, configs, JSON-lines metrics
  libcli11-dev          # command lines of the apps
  dataset-fashion-mnist # the embedded default dataset
  libopenmpi-dev openmpi-bin  # the communicator's MPI transport and mpirun (multi-rank jobs and their tests)
  python3               # the GPU check's summaries and their test (tools/gpu_check_summary.py)
  clang-14 libclang-rt-14-dev libomp-14-dev  # the fuzz targets: libFuzzer, ASan, UBSan, OpenMP (tests/fuzz)
  "$@"
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
