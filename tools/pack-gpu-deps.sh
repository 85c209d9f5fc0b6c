#!/usr/bin/env bash
# Packs what travels to the GPU machine with the working tree (run here, on the development
# machine, before a GPU session; both folders are git-ignored, name them in the device
# tool's carry list):
#   .deps/     the Debian packages the stage binaries load there and a fallback build needs
#              (tools/gpu-common.sh lists them), fetched with apt-get download; gpu-check.sh
#              unpacks them with dpkg -x into a folder outside / (never installs them)
#   .gpu-bin/  binaries.tar.xz: the stage binaries (test_parity, bench_contrastive,
#              bench_group_norm, bench_weight_standardization, bench_train) built for sm_90 without -march=native (the GPU machine's CPU is
#              another one), stripped; manifest.txt: the source digest they were built from
# It checks with ldd that every shared library the binaries need is either carried or on a
# stock Ubuntu 24.04 + CUDA machine, prints the sizes, and fails when the tree plus both
# folders exceed the 64 MiB that travel.
#
#   tools/pack-gpu-deps.sh [--deps-only | --binaries-only] [--build-dir DIR] [Debian package ...]
set -euo pipefail
cd "$(dirname "$0")/.." || exit 2
root=$(pwd)
# shellcheck source=tools/gpu-common.sh
source tools/gpu-common.sh

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }
do_deps=1 do_binaries=1 build_dir=build-gpu-carry extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --deps-only) do_binaries=0 ;;
    --binaries-only) do_deps=0 ;;
    --build-dir)
      [ $# -ge 2 ] || { echo "pack-gpu-deps: --build-dir needs a folder" >&2; exit 2; }
      build_dir=$2
      shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "pack-gpu-deps: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) extra+=("$1") ;;
  esac
  shift
done
limit_bytes=$((64 * 1024 * 1024))

# ---- .deps: the Debian packages ------------------------------------------------------------
if [ $do_deps -eq 1 ]; then
  command -v apt-get >/dev/null || { echo "pack-gpu-deps: apt-get not found: run this on the Debian development machine" >&2; exit 1; }
  staging=$(mktemp -d "$root/.deps.new.XXXXXX")
  trap 'rm -rf "$staging"' EXIT
  mkdir -p "$staging/debs"
  packages=("${visrep_runtime_packages[@]}" "${visrep_build_packages[@]}" "${extra[@]}")
  echo "pack-gpu-deps: downloading ${#packages[@]} Debian packages: ${packages[*]}"
  if ! (cd "$staging/debs" && apt-get download "${packages[@]}" > "$staging/download.log" 2>&1); then
    grep -v "Download is performed unsandboxed" "$staging/download.log" >&2 || true
    echo "pack-gpu-deps: apt-get download failed (is the package index current? apt-get update)" >&2
    exit 1
  fi
  printf '%s\n' "${visrep_runtime_packages[@]}" > "$staging/runtime-packages.txt"
  printf '%s\n' "${packages[@]}" > "$staging/packages.txt"
  rm -f "$staging/download.log"
  rm -rf .deps && mv "$staging" .deps
  trap - EXIT
  echo "pack-gpu-deps: .deps: $(ls .deps/debs | wc -l) packages, $(du -sh .deps | cut -f1)"
fi

# ---- .gpu-bin: the stage binaries ------------------------------------------------------------
if [ $do_binaries -eq 1 ]; then
  command -v nvcc >/dev/null || { echo "pack-gpu-deps: nvcc not found: the binaries need the CUDA toolkit" >&2; exit 1; }
  launcher=()
  if command -v ccache >/dev/null; then
    launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
  fi
  targets=("${visrep_parity_targets[@]}" "${visrep_bench_targets[@]}")
  echo "pack-gpu-deps: building ${targets[*]} for sm_90 without -march=native in $build_dir"
  started=$(date +%s)
  mkdir -p "$build_dir"
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DVISREP_CUDA=ON -DVISREP_NATIVE=OFF \
    -DCMAKE_CUDA_ARCHITECTURES=90 "${launcher[@]}" > "$build_dir/pack-configure.log" 2>&1 ||
    { tail -30 "$build_dir/pack-configure.log" >&2; echo "pack-gpu-deps: configure failed ($build_dir/pack-configure.log)" >&2; exit 1; }
  cmake --build "$build_dir" --target "${targets[@]}" > "$build_dir/pack-build.log" 2>&1 ||
    { grep -E "error|Error" "$build_dir/pack-build.log" | head -30 >&2; echo "pack-gpu-deps: build failed ($build_dir/pack-build.log)" >&2; exit 1; }
  echo "pack-gpu-deps: built in $(( $(date +%s) - started )) s"

  staging=$(mktemp -d)
  trap 'rm -rf "$staging"' EXIT
  mkdir -p "$staging/bin"
  for target in "${targets[@]}"; do
    binary=$(find "$build_dir" -type f -name "$target" -perm -u+x | head -1)
    [ -n "$binary" ] || { echo "pack-gpu-deps: $target was not built" >&2; exit 1; }
    strip -o "$staging/bin/$target" "$binary"
  done

  # Every shared library the binaries need must be carried or be on the GPU machine.
  missing=0
  runtime_list=" ${visrep_runtime_packages[*]} "
  while read -r library path; do
    for known in "${visrep_system_libraries[@]}"; do
      [[ $library == "$known"* ]] && continue 2
    done
    package=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -1 | cut -d: -f1 || true)
    [ -n "$package" ] || package=$(dpkg -S "$path" 2>/dev/null | head -1 | cut -d: -f1 || true)
    if [[ $runtime_list != *" $package "* ]]; then
      echo "pack-gpu-deps: $library ($path, package '${package:-unknown}') is needed but not carried:" \
           "add its package to visrep_runtime_packages in tools/gpu-common.sh" >&2
      missing=1
    fi
  done < <(for b in "$staging"/bin/*; do ldd "$b"; done | awk '{n = split($1, name, "/"); print name[n], ($2 == "=>" ? $3 : $1)}' | sort -u)
  [ $missing -eq 0 ] || exit 1

  mkdir -p "$staging/pack"
  tar -C "$staging" -cf - bin | xz -6 -T0 > "$staging/pack/binaries.tar.xz"
  {
    echo "source_digest=$(visrep_source_digest "$root")"
    echo "git_commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo -dirty)"
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ) on $(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "compiler=$(c++ --version | head -1)"
    echo "nvcc=$(nvcc --version | tail -1)"
    echo "cuda_architectures=90 native=OFF"
    echo "binaries=${targets[*]}"
    for b in "$staging"/bin/*; do echo "size $(basename "$b")=$(stat -c %s "$b")"; done
  } > "$staging/pack/manifest.txt"
  rm -rf .gpu-bin && mv "$staging/pack" .gpu-bin
  echo "pack-gpu-deps: .gpu-bin: $(du -sh .gpu-bin/binaries.tar.xz | cut -f1) compressed" \
       "($(du -sh "$staging/bin" | cut -f1) stripped), source digest $(grep -m1 source_digest .gpu-bin/manifest.txt | cut -d= -f2)"
fi

# ---- what travels ----------------------------------------------------------------------------
tree_bytes=$( (git ls-files -z --cached --others --exclude-standard 2>/dev/null || true) | xargs -0 -r stat -c %s 2>/dev/null |
             awk '{s += $1} END {print s + 0}')
carried_bytes=$( (du -sb .deps .gpu-bin 2>/dev/null || true) | awk '{s += $1} END {print s + 0}')
total=$((tree_bytes + carried_bytes))
echo "pack-gpu-deps: travels: working tree $((tree_bytes / 1024)) KiB + .deps and .gpu-bin $((carried_bytes / 1024)) KiB" \
     "= $((total / 1024 / 1024)) MiB of 64 MiB; carry [\".deps\", \".gpu-bin\"]"
if [ $total -gt $limit_bytes ]; then
  echo "pack-gpu-deps: that is over the 64 MiB that travel to the GPU machine" >&2
  exit 1
fi
