#!/usr/bin/env bash
# The one-command GPU check, run on the GPU machine from the project root:
#   ../shared/gpu/pack-deps.sh          (on the development machine, once: fills .deps/)
#   tools/gpu-check.sh                  (on the GPU machine; with the device tool: carry .deps)
# Sources the carried Debian packages, configures and builds for sm_90 with every core,
# runs every gpu-labelled test (CPU/CUDA parity) and the CPU suite, then every benchmark
# (ours and the PyTorch references), and prints a short summary last. Logs and JSON lines
# go to $OUT (default: build-gpu/check). Exits non-zero if the build or any test fails.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=${OUT:-$root/build-gpu/check}
mkdir -p "$out"
start=$(date +%s)
status=0
# Each benchmark gets at most this many seconds, so the whole check fits one device call
# (10 minutes) with the build; a benchmark cut short keeps the rows it printed.
bench_limit=${BENCH_LIMIT:-90}

step() { printf '\n== %s (%ss)\n' "$1" "$(( $(date +%s) - start ))"; }

step "environment"
if [ -f .deps/unpack.sh ]; then
  # shellcheck disable=SC1091
  source .deps/unpack.sh
else
  echo "no .deps/unpack.sh: assuming fmt, Catch2, stb, nlohmann-json and CLI11 are installed"
fi
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1; nvcc --version | tail -1; } | tee "$out/machine.txt"

step "configure and build (sm_90, $(nproc) jobs)"
if ! cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DVISREP_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
     > "$out/configure.log" 2>&1; then
  tail -40 "$out/configure.log"; echo "configure FAILED (log: $out/configure.log)"; exit 1
fi
if ! cmake --build build-gpu -j "$(nproc)" > "$out/build.log" 2>&1; then
  grep -E "error|Error" "$out/build.log" | head -40; echo "build FAILED (log: $out/build.log)"; exit 1
fi
echo "built in $(( $(date +%s) - start ))s"

step "gpu tests (CPU/CUDA parity)"
rm -f "$out/parity.jsonl"
VISREP_PARITY_REPORT="$out/parity.jsonl" timeout 300 ctest --test-dir build-gpu -L gpu --output-on-failure \
  > "$out/ctest-gpu.log" 2>&1 || status=1
grep -E "tests passed|tests failed|Failed|Skipped" "$out/ctest-gpu.log" | tail -30

step "cpu tests"
timeout 300 ctest --test-dir build-gpu -LE gpu -j "$(nproc)" > "$out/ctest-cpu.log" 2>&1 || status=1
grep -E "tests passed|tests failed|\(Failed\)" "$out/ctest-cpu.log" | tail -10

step "benchmarks"
# bounded NAME COMMAND...: runs COMMAND under the per-benchmark limit, output in $out/NAME.txt.
bounded() {
  local name=$1
  shift
  echo "-- $name"
  timeout "$bench_limit" "$@" > "$out/$name.txt" 2>&1 || { echo "$name FAILED"; status=1; }
}
for bench in build-gpu/benchmarks/bench_*; do
  [ -x "$bench" ] || continue
  name=$(basename "$bench")
  # The CPU kernels are measured on the development machine; here they only cost time.
  [ "$name" = bench_cpu_ops ] && continue
  bounded "$name" "$bench" --json "$out/$name.jsonl"
done
# Issue 8's BiT-R50x1 fine-tuning step (bench_train's default is issue 7's SimCLR pair): a
# run of its own, so it has its own time limit.
bounded bench_train_bit build-gpu/benchmarks/bench_train --case bit --json "$out/bench_train_bit.jsonl"
for script in benchmarks/torch_*.py; do
  [ -f "$script" ] || continue
  name=$(basename "$script" .py)
  [ "$name" = torch_common ] && continue  # the scripts' shared code, not a benchmark
  # torch_train prints the target rows from bench_train's JSON lines of this run.
  extra=()
  [ "$name" = torch_train ] && extra=(--visrep-json "$out/bench_train.jsonl")
  bounded "$name" python3 "$script" "${extra[@]}" --json "$out/$name.jsonl"
done
bounded torch_train_bit python3 benchmarks/torch_train.py --case bit --visrep-json "$out/bench_train_bit.jsonl" \
  --json "$out/torch_train_bit.jsonl"

step "summary"
if [ -f "$out/parity.jsonl" ]; then
  python3 - "$out/parity.jsonl" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
worst = max(rows, key=lambda r: max(r["forward_nmse"], r["backward_nmse"]) / r["tolerance"]) if rows else None
print(f"parity: {len(rows)} cases reported")
for r in rows:
    print(f"  {r['case']:<46} fwd {r['forward_nmse']:.1e}  bwd {r['backward_nmse']:.1e}  tol {r['tolerance']:.0e}")
if worst:
    print(f"worst relative to its tolerance: {worst['case']}")
PY
fi
for report in "$out"/bench_*.txt "$out"/torch_*.txt; do
  [ -f "$report" ] || continue
  echo "-- $(basename "$report" .txt)"
  tail -25 "$report"
done
grep -hE "tests passed" "$out/ctest-gpu.log" "$out/ctest-cpu.log"
echo "total $(( $(date +%s) - start ))s; logs and JSON in $out"
[ $status -eq 0 ] && echo "GPU CHECK PASSED" || echo "GPU CHECK FAILED"
exit $status
