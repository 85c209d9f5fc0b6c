#!/usr/bin/env bash
# Runs visrep's fuzz targets (tests/fuzz/CMakeLists.txt; the main build puts them in build/fuzz).
#
#   tests/fuzz/run.sh smoke FUZZ_BUILD TARGET SECONDS
#       One target for SECONDS from its seed corpus (tests/fuzz/corpus/TARGET, and the inputs
#       of tests/fuzz/regressions/TARGET that once failed), stopping at the first crash, hang
#       (10 s) or allocation over 1 GB; what ctest runs ("fuzz: TARGET").
#   tests/fuzz/run.sh long FUZZ_BUILD [SECONDS] [TARGET...]
#       Every target (or those named) for SECONDS each (default 600), in libFuzzer's fork
#       mode, which goes on past crashes, hangs and out-of-memory inputs and counts them; then
#       a table per target: inputs, ok, clean error, crash, hang, out of memory.
#
# Inputs the fuzzer found are kept in FUZZ_BUILD/work/TARGET (pass them to a target binary
# to replay them), crashing ones in FUZZ_BUILD/artifacts/.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
targets=(safetensors npy npz idx cifar image bit_weights app_config)

usage() {
  sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
  exit 2
}

# The options both modes share: no input may take 10 s, nor allocate 1 GB at once, nor the
# process hold 2 GB. One OpenMP thread: the readers do not need more, and runs repeat.
common_options() {
  local target="$1"
  echo -timeout=10 -malloc_limit_mb=1024 -rss_limit_mb=2048 "-artifact_prefix=$fuzz_build/artifacts/$target-"
}

prepare() {
  local target="$1"
  binary="$fuzz_build/fuzz_$target"
  [ -x "$binary" ] || { echo "run.sh: no fuzz target $binary (build it first)" >&2; exit 2; }
  work="$fuzz_build/work/$target"
  mkdir -p "$work" "$fuzz_build/artifacts"
  export OMP_NUM_THREADS=1
}

# The seed corpus, and the inputs earlier runs found crashing, hanging or misbehaving (kept
# in tests/fuzz/regressions/TARGET once fixed).
seeds() {
  local target="$1"
  echo "$here/corpus/$target"
  [ -d "$here/regressions/$target" ] && echo "$here/regressions/$target"
  return 0
}

smoke() {
  local target="$1" seconds="$2"
  prepare "$target"
  rm -rf "$work" && mkdir -p "$work"
  # shellcheck disable=SC2046
  "$binary" $(common_options "$target") -seed=1 -max_total_time="$seconds" -print_final_stats=1 \
    "$work" $(seeds "$target")
}

long() {
  local seconds="$1"
  shift
  local chosen=("$@")
  [ ${#chosen[@]} -gt 0 ] || chosen=("${targets[@]}")
  local report="$fuzz_build/long-run.txt"
  printf '%-12s %9s %9s %12s %6s %5s %14s\n' reader inputs ok "clean error" crash hang "out of memory" >"$report"
  for target in "${chosen[@]}"; do
    prepare "$target"
    local stats="$fuzz_build/work/$target.stats" log="$fuzz_build/work/$target.log"
    rm -f "$stats"
    echo "run.sh: fuzzing $target for $seconds s (log: $log)" >&2
    # shellcheck disable=SC2046
    VISREP_FUZZ_STATS="$stats" "$binary" $(common_options "$target") -fork=1 -ignore_crashes=1 \
      -ignore_timeouts=1 -ignore_ooms=1 -max_total_time="$seconds" "$work" $(seeds "$target") >"$log" 2>&1 || true
    # Each fuzzing process appends "<target> <ok> <clean errors>" as it exits (fuzz_target.h);
    # libFuzzer's last status line counts what crashed, hung or ran out of memory.
    local ok errors status crashes hangs ooms
    ok=$(awk '{ sum += $2 } END { print sum + 0 }' "$stats" 2>/dev/null || echo 0)
    errors=$(awk '{ sum += $3 } END { print sum + 0 }' "$stats" 2>/dev/null || echo 0)
    status=$(grep -o 'oom/timeout/crash: [0-9]*/[0-9]*/[0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    IFS=/ read -r ooms hangs crashes <<<"${status:-0/0/0}"
    printf '%-12s %9d %9d %12d %6d %5d %14d\n' "$target" $((ok + errors + crashes + hangs + ooms)) "$ok" "$errors" \
      "$crashes" "$hangs" "$ooms" >>"$report"
  done
  cat "$report"
}

[ $# -ge 2 ] || usage
mode="$1"
fuzz_build="$(cd "$2" && pwd)"
shift 2
case "$mode" in
  smoke) [ $# -eq 2 ] || usage; smoke "$1" "$2" ;;
  long) seconds="${1:-600}"; [ $# -gt 0 ] && shift; long "$seconds" "$@" ;;
  *) usage ;;
esac
