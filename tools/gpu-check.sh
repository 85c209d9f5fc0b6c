#!/usr/bin/env bash
# The GPU check, in stages that each fit one command on the GPU machine (a session there has
# 15 minutes of device time, the machine's start and idle time included, and a command may
# run 10 minutes at most). Each stage keeps to its time budget (every part runs under a
# timeout inside it, so a stage that runs out of time still summarises what it measured),
# writes its logs and JSON lines under $OUT and prints its own summary last:
#   parity  every CPU/CUDA parity case (tests/parity) in one process, a JSON line per check
#           and per test case; after a crash, or a fault that leaves the device unusable, the
#           cases not yet run go on in a fresh process. Budget 300 s.
#   bench   the headline benchmarks next to their baselines: the fused contrastive losses vs
#           the unfused ones and torch_contrastive.py; GroupNorm and weight standardisation vs
#           a copy and torch_group_norm.py / torch_weight_standardization.py; the SimCLR and
#           BiT training steps vs torch_train.py.
#           Budget 300 s.
#   all     parity, then bench, for a machine that has the time. Budget 560 s.
# Prepare on the development machine with one command, tools/pack-gpu-deps.sh: it fills
# .deps (Debian packages) and .gpu-bin (the stage binaries, built for sm_90), which travel
# with the tree. Here the carried binaries are used when they match the tree's sources and
# start; otherwise only the stage's targets are built, with every core. The output says
# which path ran and how long each part took.
#
#   tools/gpu-check.sh [--dry-run] [--out DIR] [--budget SECONDS] [--binaries DIR] parity|bench|all
#
# --dry-run works on any machine and uses no GPU: it checks the arguments, shows the stage's
# plan, unpacks .deps into a temporary folder, starts the binaries (--help, --list), and runs
# the summaries on made-up rows (tests/fixtures/gpu-check/). ctest runs it
# (tests/tools/test_gpu_check.py). --binaries DIR takes the binaries from a build folder
# instead of .gpu-bin. Exit codes: 0 the stage passed (parity) or ran completely (bench);
# 1 something failed; 2 bad arguments; 3 no GPU, or no binaries and no build.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
root=$(pwd)
# shellcheck source=tools/gpu-common.sh
source tools/gpu-common.sh

usage() { sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; }
fail_usage() {
  echo "gpu-check: $1" >&2
  echo "usage: tools/gpu-check.sh [--dry-run] [--out DIR] [--budget SECONDS] [--binaries DIR] parity|bench|all" >&2
  exit 2
}

dry_run=0 stage="" budget="" binaries_dir="" out=${OUT:-$root/build-gpu/check}
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) dry_run=1 ;;
    --out|--budget|--binaries)
      [ $# -ge 2 ] && [ -n "$2" ] || fail_usage "$1 needs a value"
      case $1 in
        --out) out=$2 ;;
        --budget) budget=$2 ;;
        --binaries) binaries_dir=$2 ;;
      esac
      shift ;;
    -h|--help) usage; exit 0 ;;
    -*) fail_usage "unknown option '$1'" ;;
    parity|bench|all)
      [ -z "$stage" ] || fail_usage "one stage at a time (got '$stage' and '$1')"
      stage=$1 ;;
    *) fail_usage "unknown stage '$1': the stages are parity, bench and all" ;;
  esac
  shift
done
[ -n "$stage" ] || fail_usage "name a stage: parity (about 5 minutes), bench (about 5 minutes) or all"
case $stage in
  parity|bench) default_budget=300 ;;
  all) default_budget=560 ;;
esac
budget=${budget:-$default_budget}
[[ $budget =~ ^[0-9]+$ ]] && [ "$budget" -ge 30 ] && [ "$budget" -le 3600 ] ||
  fail_usage "--budget takes whole seconds from 30 to 3600, got '$budget'"
[ -z "$binaries_dir" ] || [ -d "$binaries_dir" ] || fail_usage "--binaries: no folder '$binaries_dir'"

mkdir -p "$out" || { echo "gpu-check: cannot create the output folder $out" >&2; exit 2; }
out=$(cd "$out" && pwd)
start=$(date +%s)
deadline=$((start + budget))
reserve=15      # seconds kept for the summaries after the last part
status=0        # becomes 1 when anything fails
child=""        # the part running now, for the signal handler
timings=()      # "what: N s" of every part, printed last
stages_run=()
work=$root/build-gpu
if [ $dry_run -eq 1 ]; then
  work=$(mktemp -d "${TMPDIR:-/tmp}/visrep-gpu-check.XXXXXX")
  trap 'rm -rf "$work"' EXIT
fi

elapsed() { echo $(( $(date +%s) - start )); }
time_left() { echo $(( deadline - $(date +%s) )); }
step() { printf '\n== %s (at %s s of %s)\n' "$1" "$(elapsed)" "$budget"; }
took() { timings+=("$1 $2 s"); }
json_string() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"; }

# The carried libraries for visrep's binaries only: python3 and PyTorch keep the machine's own.
# with_deps runs a command with them; "${deps_env[@]}" COMMAND does the same where a
# function cannot go (under timeout).
deps_lib_path=""
with_deps() { LD_LIBRARY_PATH="$deps_lib_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@"; }
deps_env=(env)

# run_part NAME CAP STDOUT STDERR COMMAND...: COMMAND with at most CAP seconds and never past
# the stage's deadline (less the summaries' reserve); one JSON line in $parts_file.
parts_file=$out/parts.jsonl
run_part() {
  local name=$1 cap=$2 stdout=$3 stderr=$4
  shift 4
  local limit=$(( $(time_left) - reserve ))
  [ "$limit" -le "$cap" ] || limit=$cap
  local rc=0 state began seconds
  if [ "$limit" -lt 5 ]; then
    state=not-run rc=""
    seconds=0
    echo "  $name: not run, the stage's time is spent"
  else
    began=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" > "$stdout" 2> "$stderr" &
    child=$!
    wait "$child"
    rc=$?
    child=""
    seconds=$(( $(date +%s) - began ))
    # timeout says 124 when the time ran out (137 when it then had to kill); a command that
    # died of a signal before its time is a failure (a crash).
    state=failed
    if [ "$rc" -eq 0 ]; then
      state=ok
    elif [ "$rc" -eq 124 ] || { [ "$rc" -eq 137 ] && [ "$seconds" -ge "$limit" ]; }; then
      state=timeout
    fi
    printf '  %-18s %-8s %4s s (limit %s s)%s\n' "$name" "$state" "$seconds" "$limit" \
      "$([ "$rc" -eq 0 ] || echo ", exit code $rc; log: $(basename "$stdout") $(basename "$stderr")")"
  fi
  [ "$state" = ok ] || status=1
  printf '{"part": %s, "status": "%s", "rc": %s, "seconds": %s, "limit": %s, "stdout": %s, "stderr": %s}\n' \
    "$(json_string "$name")" "$state" "${rc:-null}" "$seconds" "$limit" "$(json_string "$(basename "$stdout")")" \
    "$(json_string "$(basename "$stderr")")" >> "$parts_file"
  took "$name" "$seconds"
  return "${rc:-124}"
}

# ---- summaries (also printed when the stage is interrupted) -----------------------------------
summary_printed=0
print_summaries() {
  [ $summary_printed -eq 0 ] || return 0
  summary_printed=1
  local report_dir=$out
  [ $dry_run -eq 0 ] || report_dir=$out/dry-run
  for ran in "${stages_run[@]}"; do
    step "summary: $ran"
    case $ran in
      parity)
        python3 tools/gpu_check_summary.py parity "$report_dir/parity.jsonl" "$report_dir/parity-cases.txt" ||
          [ $dry_run -eq 1 ] || status=1 ;;
      bench)
        python3 tools/gpu_check_summary.py bench "$report_dir/parts-bench.jsonl" "$report_dir" ||
          [ $dry_run -eq 1 ] || status=1 ;;
    esac
  done
  echo
  echo "timings: ${timings[*]/%/;} total $(elapsed) s of a $budget s budget; logs and JSON lines in $out"
  if [ $dry_run -eq 1 ]; then
    echo "GPU CHECK DRY RUN DONE ($stage): nothing ran on a device; the summaries above are of made-up rows"
  elif [ $status -eq 0 ]; then
    echo "GPU CHECK PASSED ($stage)"
  else
    echo "GPU CHECK FAILED ($stage)"
  fi
}
on_signal() {
  echo "gpu-check: interrupted at $(elapsed) s; summarising what was measured"
  [ -z "$child" ] || kill -TERM "$child" 2>/dev/null
  status=1
  print_summaries
  exit 124
}
trap on_signal TERM INT HUP

# ---- environment and the carried Debian packages -----------------------------------------------
environment() {
  step "environment"
  local began
  began=$(date +%s)
  if [ $dry_run -eq 1 ]; then
    echo "dry run: no device is used"
  elif ! nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$out/machine.txt" 2>&1; then
    cat "$out/machine.txt"
    echo "gpu-check: no usable NVIDIA GPU here (nvidia-smi failed); tools/gpu-check.sh --dry-run checks everything else" >&2
    exit 3
  else
    cat "$out/machine.txt"
  fi
  { command -v nvcc >/dev/null && nvcc --version | tail -1; } | tee -a "$out/machine.txt"
  command -v python3 >/dev/null || echo "gpu-check: python3 not found: no summaries and no PyTorch rows" >&2

  # CUDA's own libraries come from the machine: its toolkit's folder too, should the loader
  # not know it (the binaries' run path is the development machine's toolkit).
  local nvcc_path cuda_libs=""
  nvcc_path=$(command -v nvcc 2>/dev/null || true)
  for folder in ${nvcc_path:+"$(dirname "$(readlink -f "$nvcc_path")")/../lib64"} /usr/local/cuda/lib64; do
    [ -d "$folder" ] && cuda_libs=${cuda_libs:+$cuda_libs:}$(cd "$folder" && pwd)
  done
  local deps_dir=${VISREP_DEPS_DIR:-$root/.deps}
  local debs=()
  [ -d "$deps_dir/debs" ] && mapfile -t debs < <(find "$deps_dir/debs" -maxdepth 1 -name '*.deb' | sort)
  if [ ${#debs[@]} -eq 0 ]; then
    echo "deps: no Debian packages in $deps_dir/debs: the machine's own libraries are used" \
         "(tools/pack-gpu-deps.sh packs them; the device tool must carry .deps)"
    deps_lib_path=$cuda_libs
  else
    local deps_root
    if [ $dry_run -eq 1 ]; then deps_root=$work/deps; else deps_root=$(visrep_default_deps_root); fi
    mkdir -p "$deps_root" || { echo "gpu-check: cannot create $deps_root for the Debian packages" >&2; exit 3; }
    local stamp="$deps_root/.unpacked" wanted
    wanted=$(cd "$deps_dir/debs" && ls -l -- *.deb | md5sum | cut -c1-16)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
      for deb in "${debs[@]}"; do
        dpkg-deb -x "$deb" "$deps_root" || { echo "gpu-check: dpkg-deb -x $deb failed" >&2; exit 3; }
      done
      echo "$wanted" > "$stamp"
      echo "deps: ${#debs[@]} Debian packages from $deps_dir unpacked into $deps_root (never into /)"
    else
      echo "deps: ${#debs[@]} Debian packages already unpacked in $deps_root"
    fi
    local missing=()
    for package in "${visrep_runtime_packages[@]}"; do
      compgen -G "$deps_dir/debs/${package}_*.deb" > /dev/null || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] || echo "deps: WARNING: .deps lacks ${missing[*]} (tools/pack-gpu-deps.sh fetches them)"
    deps_lib_path=$(find "$deps_root/usr/lib" \( -name '*.so' -o -name '*.so.*' \) -printf '%h\n' 2>/dev/null | sort -u |
                    paste -sd: -)
    deps_lib_path=$deps_lib_path${cuda_libs:+:$cuda_libs}
    export CMAKE_PREFIX_PATH="$deps_root/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
    export CPATH="$deps_root/usr/include${CPATH:+:$CPATH}"
    export LIBRARY_PATH="$deps_lib_path${LIBRARY_PATH:+:$LIBRARY_PATH}"
    deps_cmake_hints=(-DOPENBLAS_INCLUDE_DIR="$deps_root/usr/include/x86_64-linux-gnu/openblas-pthread"
                      -DOPENBLAS_LIBRARY="$deps_root/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so")
    echo "deps: libraries for visrep's binaries from ${deps_lib_path:-nowhere}"
  fi
  [ -z "$deps_lib_path" ] || deps_env=(env "LD_LIBRARY_PATH=$deps_lib_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
  took environment $(( $(date +%s) - began ))
}
deps_cmake_hints=()

# ---- binaries: the carried ones, else a build of the stage's targets ---------------------------
declare -A binary=()
stage_targets() {
  case $stage in
    parity) echo "${visrep_parity_targets[*]}" ;;
    bench) echo "${visrep_bench_targets[*]}" ;;
    all) echo "${visrep_parity_targets[*]} ${visrep_bench_targets[*]}" ;;
  esac
}
# Does the binary start here (its libraries found, its CUDA runtime loads)? Listing or --help
# touches no device. (Catch2's listing exits with the number of names listed, so the parity
# binary is judged by what it prints.)
starts() {
  local target=$1 path=$2
  [ -x "$path" ] || return 1
  if [ "$target" = test_parity ]; then
    [ -n "$(with_deps "$path" --list-test-names-only 2>/dev/null | head -1)" ]
  else
    with_deps "$path" --help > /dev/null 2>&1
  fi
}
# The parity binary's test case names, one per line (the listing's exit code is its count).
list_cases() { with_deps "$@" --list-test-names-only 2>/dev/null | sed '/^$/d' || true; }
find_binaries() {  # DIR: fills binary[target] with what DIR holds (a .gpu-bin bin/ or a build folder)
  local dir=$1 target found
  for target in $(stage_targets); do
    found=$(find "$dir" -type f -name "$target" -perm -u+x 2>/dev/null | head -1)
    [ -z "$found" ] || binary[$target]=$found
  done
}
all_start() {
  local target ok=0
  for target in $(stage_targets); do
    if [ -z "${binary[$target]:-}" ]; then
      echo "binaries: no $target"
      ok=1
    elif ! starts "$target" "${binary[$target]}"; then
      echo "binaries: $target does not start here:"
      with_deps ldd "${binary[$target]}" 2>&1 | grep -E "not found" | sed 's/^/    /'
      ok=1
    fi
  done
  return $ok
}
binaries() {
  step "binaries for $stage: $(stage_targets)"
  local began carried=${VISREP_GPU_BIN:-$root/.gpu-bin}
  began=$(date +%s)
  binary=()
  if [ -n "$binaries_dir" ]; then
    find_binaries "$binaries_dir"
    if all_start; then
      echo "binaries: from $binaries_dir (--binaries)"
      took binaries $(( $(date +%s) - began ))
      return 0
    fi
  elif [ -f "$carried/binaries.tar.xz" ]; then
    local built tree
    built=$(sed -n 's/^source_digest=//p' "$carried/manifest.txt" 2>/dev/null)
    tree=$(visrep_source_digest "$root")
    if [ "$built" != "$tree" ]; then
      echo "binaries: the carried ones are stale (built from sources $built, the tree is $tree): not used"
    else
      rm -rf "$work/carried" && mkdir -p "$work/carried"
      if tar -C "$work/carried" -xJf "$carried/binaries.tar.xz"; then
        find_binaries "$work/carried"
        if all_start; then
          echo "binaries: the carried ones ($(sed -n 's/^built=//p' "$carried/manifest.txt"), sources $built)" \
               "start here: used, unpacked in $(( $(date +%s) - began )) s"
          took "binaries (carried)" $(( $(date +%s) - began ))
          return 0
        fi
      else
        echo "binaries: $carried/binaries.tar.xz does not unpack"
      fi
    fi
  else
    echo "binaries: none carried ($carried/binaries.tar.xz; tools/pack-gpu-deps.sh makes it)"
  fi

  # The fallback: configure and build only the stage's targets, with every core.
  local build=$work/build-$stage targets
  read -r -a targets <<< "$(stage_targets)"
  local configure=(cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DVISREP_CUDA=ON
                   -DCMAKE_CUDA_ARCHITECTURES=90 "${deps_cmake_hints[@]}")
  local compile=(cmake --build "$build" -j "$(nproc)" --target "${targets[@]}")
  if [ $dry_run -eq 1 ]; then
    echo "binaries: on the GPU machine this would build (every core, within the stage's budget):"
    echo "    ${configure[*]}"
    echo "    ${compile[*]}"
    took "binaries (would build)" $(( $(date +%s) - began ))
    return 0
  fi
  echo "binaries: building ${targets[*]} with $(nproc) cores in $build"
  if ! run_part configure 120 "$out/configure.log" "$out/configure.err" "${deps_env[@]}" "${configure[@]}"; then
    tail -30 "$out/configure.log" "$out/configure.err"
    echo "gpu-check: configure failed (logs: $out/configure.log, configure.err)" >&2
    return 3
  fi
  if ! run_part build $(( $(time_left) - 60 )) "$out/build.log" "$out/build.err" "${deps_env[@]}" "${compile[@]}"; then
    grep -E "error|Error" "$out/build.log" | head -30
    echo "gpu-check: the build failed or ran out of time (log: $out/build.log)" >&2
    return 3
  fi
  binary=()
  find_binaries "$build"
  all_start || { echo "gpu-check: the binaries built here do not start either" >&2; return 3; }
  echo "binaries: built here in $(( $(date +%s) - began )) s"
}

# ---- stage: parity --------------------------------------------------------------------------------
parity_stage() {
  local stage_budget=$1
  step "parity: every CPU/CUDA parity case in one process (budget $stage_budget s)"
  stages_run+=(parity)
  local report=$out/parity.jsonl cases=$out/parity-cases.txt parity_deadline=$(( $(date +%s) + stage_budget ))
  local test_parity=${binary[test_parity]:-}
  if [ -n "$test_parity" ]; then
    list_cases "$test_parity" > "$cases"
    echo "parity: $(wc -l < "$cases") test cases"
  else
    : > "$cases"
  fi
  if [ $dry_run -eq 1 ]; then
    mkdir -p "$out/dry-run"
    if [ -n "$test_parity" ]; then
      # The names go back to the binary through a Catch2 input file: escaped, every one must come back.
      : > "$out/dry-run/empty.jsonl"
      python3 tools/gpu_check_summary.py remaining "$out/dry-run/empty.jsonl" "$cases" > "$out/dry-run/all-cases.txt"
      list_cases "$test_parity" --input-file "$out/dry-run/all-cases.txt" > "$out/dry-run/selected-cases.txt"
      if cmp -s "$out/dry-run/selected-cases.txt" "$cases"; then
        echo "parity: an input file of all $(wc -l < "$cases") names (escaped for Catch2) selects exactly those test cases"
      else
        echo "parity: an input file of all the names selects other test cases:"
        diff "$out/dry-run/selected-cases.txt" "$cases" | head -10
        status=1
      fi
    fi
    echo "parity: would run: VISREP_PARITY_REPORT=$report test_parity --input-file <cases not yet run>," \
         "again after a crash, until $stage_budget s are spent"
    cp tests/fixtures/gpu-check/parity-report.jsonl "$out/dry-run/parity.jsonl"
    cp tests/fixtures/gpu-check/parity-cases.txt "$out/dry-run/parity-cases.txt"
    return 0
  fi
  [ -n "$test_parity" ] || { echo "parity: no test_parity binary"; status=1; return 1; }
  rm -f "$report"
  local pass=1 before after
  while [ $pass -le 6 ]; do
    python3 tools/gpu_check_summary.py remaining "$report" "$cases" > "$out/parity-pass$pass.txt"
    [ -s "$out/parity-pass$pass.txt" ] || break
    local left=$(( parity_deadline - $(date +%s) ))
    if [ "$left" -lt 10 ]; then
      echo "parity: $(wc -l < "$out/parity-pass$pass.txt") test cases left when the stage's time ran out"
      status=1
      break
    fi
    before=$(grep -c '"kind": "start"' "$report" 2>/dev/null || echo 0)
    [ $pass -eq 1 ] || echo "parity: pass $pass, $(wc -l < "$out/parity-pass$pass.txt") test cases not yet run"
    run_part "parity pass $pass" "$left" "$out/parity-pass$pass.log" "$out/parity-pass$pass.err" \
      "${deps_env[@]}" VISREP_PARITY_REPORT="$report" VISREP_TEST_FIXTURES="$root/tests/fixtures" \
      "$test_parity" --input-file "$out/parity-pass$pass.txt" --use-colour no
    after=$(grep -c '"kind": "start"' "$report" 2>/dev/null || echo 0)
    if [ "$after" -le "$before" ]; then
      echo "parity: pass $pass started no test case; its output:"
      head -5 "$out/parity-pass$pass.log" "$out/parity-pass$pass.err" | sed 's/^/    /'
      status=1
      break
    fi
    pass=$((pass + 1))
  done
}

# ---- stage: bench -----------------------------------------------------------------------------------
# NAME|CAP SECONDS|COMMAND: the headline benchmarks, in order of importance, each sized to a
# few tens of seconds on the H200 (sizes, repeats and steps cut down from their defaults).
bench_parts() {
  local j=$1  # the folder for JSON lines
  cat <<EOF
bench_contrastive|60|${binary[bench_contrastive]:-bench_contrastive} --rows 2048 8192 32768 --dims 128 --repeats 5 --json $j/bench_contrastive.jsonl
torch_contrastive|45|python3 benchmarks/torch_contrastive.py --rows 2048 8192 32768 --dims 128 --repeats 5 --json $j/torch_contrastive.jsonl
bench_group_norm|25|${binary[bench_group_norm]:-bench_group_norm} --repeats 10 --json $j/bench_group_norm.jsonl
torch_group_norm|25|python3 benchmarks/torch_group_norm.py --repeats 10 --json $j/torch_group_norm.jsonl
bench_weight_standardization|15|${binary[bench_weight_standardization]:-bench_weight_standardization} --repeats 10 --json $j/bench_weight_standardization.jsonl
torch_weight_standardization|15|python3 benchmarks/torch_weight_standardization.py --repeats 10 --json $j/torch_weight_standardization.jsonl
bench_train|60|${binary[bench_train]:-bench_train} --case simclr supervised --precision tf32 --warmup 2 --steps 10 --json $j/bench_train.jsonl
torch_train|50|python3 benchmarks/torch_train.py --case simclr supervised --precision tf32 --warmup 2 --steps 10 --visrep-json $j/bench_train.jsonl --json $j/torch_train.jsonl
bench_train_bit|50|${binary[bench_train]:-bench_train} --case bit --precision tf32 --warmup 2 --steps 6 --json $j/bench_train_bit.jsonl
torch_train_bit|50|python3 benchmarks/torch_train.py --case bit --precision tf32 --warmup 2 --steps 6 --visrep-json $j/bench_train_bit.jsonl --json $j/torch_train_bit.jsonl
EOF
}
bench_stage() {
  local stage_budget=$1
  step "bench: the headline benchmarks and their PyTorch twins (budget $stage_budget s)"
  stages_run+=(bench)
  local name cap command bench_deadline=$(( $(date +%s) + stage_budget ))
  if [ $dry_run -eq 1 ]; then
    mkdir -p "$out/dry-run"
    echo "bench: would run, each under its cap and the stage's deadline:"
    while IFS='|' read -r name cap command; do
      local words
      read -r -a words <<< "$command"
      local ok=ok
      if [ "${words[0]}" = python3 ]; then
        python3 "${words[1]}" --help > /dev/null 2>&1 || ok="FAILS (--help)"
      elif [ -x "${words[0]}" ]; then
        with_deps "${words[0]}" --help > /dev/null 2>&1 || ok="FAILS (--help)"
      else
        ok="not built here"
      fi
      [[ $ok == FAILS* ]] && status=1
      printf '  %-16s cap %3s s  [%s]  %s\n' "$name" "$cap" "$ok" "$command"
    done < <(bench_parts "$out")
    cp tests/fixtures/gpu-check/bench/* "$out/dry-run/"
    return 0
  fi
  : > "$out/parts-bench.jsonl"
  while IFS='|' read -r name cap command; do
    local left=$(( bench_deadline - $(date +%s) ))
    [ "$left" -ge "$cap" ] || cap=$left
    local words
    read -r -a words <<< "$command"
    local before
    before=$(wc -l < "$parts_file" 2>/dev/null || echo 0)
    if [ "${words[0]}" = python3 ]; then
      run_part "$name" "$cap" "$out/$name.txt" "$out/$name.err" "${words[@]}"
    else
      run_part "$name" "$cap" "$out/$name.txt" "$out/$name.err" "${deps_env[@]}" "${words[@]}"
    fi
    tail -n +"$((before + 1))" "$parts_file" >> "$out/parts-bench.jsonl"
  done < <(bench_parts "$out")
}

# ---- the stage ------------------------------------------------------------------------------------
echo "gpu-check: stage $stage, budget $budget s$([ $dry_run -eq 0 ] || echo ', dry run'), output in $out"
: > "$parts_file"
environment
binaries || { rc=$?; print_summaries; exit "$rc"; }
case $stage in
  parity) parity_stage $(( $(time_left) - reserve )) ;;
  bench) bench_stage $(( $(time_left) - reserve )) ;;
  all)
    # The parity cases first (they decide whether the benchmarks mean anything), with what
    # leaves the benchmarks about four minutes.
    parity_budget=$(( $(time_left) - reserve - 240 ))
    [ "$parity_budget" -le 300 ] || parity_budget=300
    parity_stage "$parity_budget"
    bench_stage $(( $(time_left) - reserve )) ;;
esac
print_summaries
exit $status
