#!/usr/bin/env python3
"""Summaries of tools/gpu-check.sh's stages, printed last by each stage.

    gpu_check_summary.py parity REPORT CASES      the parity suite: failures first, then the
                                                  worst ratios of error to tolerance
    gpu_check_summary.py remaining REPORT CASES   the parity cases not yet started (for the
                                                  next pass after a crash), as a Catch2 input file
    gpu_check_summary.py bench PARTS OUT          the benchmarks: what ran, the headline
                                                  comparisons, then each benchmark's own table

REPORT holds the JSON lines the parity executable appends (tests/parity/parity.h): "start"
and "test" lines per TEST_CASE, "check" lines per check. CASES lists every TEST_CASE, one per
line (test_parity --list-test-names-only). PARTS holds one JSON line per benchmark run by the
stage (part, status, seconds, rc, stdout, json). Standard library only: the GPU machine has
python3 but nothing may be installed there.
"""
import json
import math
import os
import sys

TOP = 10  # how many of the closest passes to list


def read_json_lines(path):
    """The records of a JSON-lines file and the number of lines that were not JSON (a line a
    crash cut short); a missing file has none."""
    records, broken = [], 0
    if not os.path.exists(path):
        return records, broken
    with open(path, errors="replace") as lines:
        for line in lines:
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                broken += 1
    return records, broken


def read_cases(path):
    if not path or not os.path.exists(path):
        return []
    with open(path) as lines:
        return [line.rstrip("\n") for line in lines if line.strip()]


def number(value):
    """A reported error as a float: null (how JSON writes NaN and Inf) reads as infinity."""
    if value is None:
        return math.inf
    return float(value)


def ratio_to_tolerance(check):
    """The worse of forward and backward error over the tolerance. A tolerance of 0 means
    exact: a ratio of 0 when both errors are 0, infinity otherwise."""
    error = max(number(check.get("forward_error")), number(check.get("backward_error")))
    tolerance = number(check.get("tolerance"))
    if math.isnan(error):
        return math.inf
    if tolerance == 0:
        return 0.0 if error == 0 else math.inf
    return error / tolerance


def check_passed(check):
    if "passed" in check:
        return bool(check["passed"]) and ratio_to_tolerance(check) <= 1.0
    return ratio_to_tolerance(check) <= 1.0


def describe_check(check):
    tolerance = number(check.get("tolerance"))
    metric = check.get("metric", "nmse")
    text = (f"{check.get('case', '?')}: forward {number(check.get('forward_error')):.2e}, backward "
            f"{number(check.get('backward_error')):.2e}, tolerance {'0 (exact)' if tolerance == 0 else f'{tolerance:.0e}'}"
            f" ({metric})")
    if check.get("problem"):
        text += f"; {check['problem']}"
    if check.get("note"):
        text += f"; {check['note']}"
    return text


def parity_state(report_path, cases_path):
    records, broken = read_json_lines(report_path)
    cases = read_cases(cases_path)
    started = [r["test"] for r in records if r.get("kind") == "start"]
    ended = {}
    for record in records:
        if record.get("kind") == "test":
            ended[record["test"]] = record
    checks = [r for r in records if r.get("kind") == "check"]
    # Old reports (before the kinds) had one line per check with *_nmse fields.
    for record in records:
        if "kind" not in record and "case" in record:
            checks.append({"case": record["case"], "forward_error": record.get("forward_nmse"),
                           "backward_error": record.get("backward_nmse"), "tolerance": record.get("tolerance")})
    crashed = [name for name in dict.fromkeys(started) if name not in ended]
    not_run = [name for name in cases if name not in set(started)]
    return {"cases": cases, "started": started, "ended": ended, "checks": checks, "crashed": crashed,
            "not_run": not_run, "broken": broken}


def escape_test_name(name):
    """A test name as a line of a Catch2 input file (-f): Catch2 reads each line as a test spec,
    in which a comma separates names and brackets, '*', '~' and quotes mean something, so
    those are escaped with a backslash (and the backslash itself)."""
    return "".join("\\" + c if c in '\\,[]*~"' else c for c in name)


def remaining(report_path, cases_path):
    state = parity_state(report_path, cases_path)
    for name in state["not_run"]:
        print(escape_test_name(name))
    return 0


def parity(report_path, cases_path):
    state = parity_state(report_path, cases_path)
    ended, checks = state["ended"], state["checks"]
    failed_tests = [t for t in ended.values() if not t.get("passed", False)]
    passed_tests = [t for t in ended.values() if t.get("passed", False)]
    failed_checks = [c for c in checks if not check_passed(c)]
    exact = [c for c in checks if number(c.get("tolerance")) == 0]
    total = len(state["cases"]) or len(set(state["started"]))

    print(f"parity: {total} test cases: {len(passed_tests)} passed, {len(failed_tests)} failed, "
          f"{len(state['crashed'])} crashed, {len(state['not_run'])} not run; {len(checks)} checks, "
          f"{len(failed_checks)} failed, {len(exact)} of them with tolerance 0 (exact)")
    if state["broken"]:
        print(f"  ({state['broken']} line(s) of the report were not JSON: cut short by a crash)")

    problems = failed_tests or state["crashed"] or failed_checks or state["not_run"]
    if problems:
        print("FAILURES")
    for name in state["crashed"]:
        print(f"  CRASHED  {name}: the process died in this test case (killed, a fault, or the time ran out)")
    for test in failed_tests:
        reason = test.get("failure") or test.get("error_after_test") or "see the log"
        extra = " (the CUDA device was unusable afterwards)" if test.get("device_lost") else ""
        print(f"  FAILED   {test['test']}: {reason}{extra}")
        if test.get("error_after_test") and test.get("failure"):
            print(f"           after the test: {test['error_after_test']}")
    for check in failed_checks:
        print(f"  CHECK    {describe_check(check)}  [in {check.get('test', '?')}]")
    if state["not_run"]:
        shown = state["not_run"][:TOP]
        more = len(state["not_run"]) - len(shown)
        print(f"  NOT RUN  {len(state['not_run'])} test cases: " + "; ".join(shown) + (f"; and {more} more" if more else ""))

    closest = sorted((c for c in checks if check_passed(c)), key=ratio_to_tolerance, reverse=True)
    closest = [c for c in closest if number(c.get("tolerance")) > 0][:TOP]
    if closest:
        print(f"closest to their tolerance (error / tolerance, the {len(closest)} largest of the passing checks):")
        for check in closest:
            print(f"  {ratio_to_tolerance(check):9.3g}  {describe_check(check)}")
    if exact:
        exact_passed = sum(1 for c in exact if check_passed(c))
        print(f"exact checks (tolerance 0): {exact_passed} of {len(exact)} bit-identical")
    seconds = sum(float(t.get("seconds", 0)) for t in ended.values())
    slowest = sorted(ended.values(), key=lambda t: -float(t.get("seconds", 0)))[:3]
    if slowest:
        print(f"time in test cases: {seconds:.1f} s; slowest: " +
              ", ".join(f"{t['test']} {float(t.get('seconds', 0)):.1f} s" for t in slowest))
    ok = not problems and bool(ended)
    print("PARITY PASSED" if ok else "PARITY FAILED")
    return 0 if ok else 1


# ---- benchmarks ----------------------------------------------------------------------------

# bench_group_norm's and bench_weight_standardization's cases, and those of their PyTorch
# twins (torch_group_norm.py, torch_weight_standardization.py) for the same work.
NORM_PAIRS = [
    ("group_norm forward", "torch group_norm forward"),
    ("group_norm forward + relu", "torch group_norm forward + relu_"),
    ("group_norm forward + backward", "torch group_norm forward + backward"),
    ("weight_standardization forward (one call)", "torch StdConv2d formula forward (per weight)"),
    ("weight_standardization forward + backward (one call each)", "torch StdConv2d formula forward + backward"),
]


def records_of(out, name):
    records, _ = read_json_lines(os.path.join(out, name + ".jsonl"))
    return records


def ms_of(record):
    value = record.get("forward_backward_ms", record.get("ms"))
    return None if value is None else float(value)


def contrastive_headline(out):
    visrep, torch = records_of(out, "bench_contrastive"), records_of(out, "torch_contrastive")
    if not visrep:
        return []
    lines = ["fused contrastive loss, forward + backward ms (speed-up of the fused kernels):"]
    for loss in ("nt_xent", "supcon"):
        fused = {r["shape"]: r for r in visrep if r.get("name") == f"{loss} fused"}
        unfused = {r["shape"]: r for r in visrep if r.get("name") == f"{loss} unfused"}
        reference = {r["shape"]: r for r in torch if r.get("name") == f"torch {loss} unfused"}
        for shape, record in fused.items():
            fused_ms = ms_of(record)
            cells = [f"  {loss:<8} 2N x D = {shape:<10} fused {fused_ms:.3f}" if fused_ms else f"  {loss} {shape}: fused OOM"]
            for label, table in (("unfused", unfused), ("torch", reference)):
                other = ms_of(table[shape]) if shape in table else None
                if other and fused_ms:
                    cells.append(f"{label} {other:.3f} ({other / fused_ms:.1f}x)")
                elif shape in table:
                    cells.append(f"{label} OOM")
            lines.append(", ".join(cells))
    return lines


def norm_headline(out):
    visrep = records_of(out, "bench_group_norm") + records_of(out, "bench_weight_standardization")
    torch = records_of(out, "torch_group_norm") + records_of(out, "torch_weight_standardization")
    if not visrep:
        return []
    lines = ["GroupNorm / weight standardisation: % of a device copy's GB/s, and speed-up over PyTorch eager:"]
    reference = {(r.get("name"), r.get("shape")): r for r in torch}
    for ours, theirs in NORM_PAIRS:
        for record in (r for r in visrep if r.get("name") == ours):
            text = f"  {ours:<58} {record.get('shape', ''):<26}"
            fraction = record.get("fraction_of_copy")
            if fraction is not None:
                text += f" {100 * float(fraction):5.1f}% of copy"
            other = reference.get((theirs, record.get("shape")))
            if other and other.get("ms") and record.get("ms"):
                text += f", {float(other['ms']) / float(record['ms']):.2f}x torch"
            lines.append(text)
    return lines


def train_headline(out):
    lines = []
    for name in ("bench_train", "bench_train_bit"):
        for record in records_of(out, name):
            if record.get("images_per_second") is None:
                continue
            lines.append(f"  visrep {record.get('name', '?')} {record.get('precision', '')} batch {record.get('batch', '?')}: "
                         f"{float(record['images_per_second']):.0f} img/s ({float(record.get('ms') or 0):.1f} ms/step)")
    for name in ("torch_train", "torch_train_bit"):
        for record in records_of(out, name):
            if str(record.get("name", "")).startswith("target:"):
                verdict = "met" if record.get("met") else "NOT met"
                lines.append(f"  {record['name']}: {float(record['ratio']):.2f} (goal {record.get('goal')}: {verdict})")
    return (["training steps (images/s; SimCLR counts views) and the targets against PyTorch eager:"] + lines) if lines else []


def tail_of(out, name, count):
    """The last `count` lines of the file `name` in the folder `out` (none if it is absent)."""
    if not name or count <= 0 or not os.path.exists(os.path.join(out, name)):
        return []
    with open(os.path.join(out, name), errors="replace") as text:
        return text.read().splitlines()[-count:]


def bench(parts_path, out):
    parts, _ = read_json_lines(parts_path)
    counts = {}
    for part in parts:
        counts[part.get("status", "?")] = counts.get(part.get("status", "?"), 0) + 1
    print(f"bench: {len(parts)} parts: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    for part in parts:
        rc = f", exit code {part['rc']}" if part.get("rc") not in (None, 0) else ""
        print(f"  {part.get('part', '?'):<18} {part.get('status', '?'):<9} {float(part.get('seconds', 0)):6.1f} s{rc}")
    headline = contrastive_headline(out) + norm_headline(out) + train_headline(out)
    if headline:
        print("\n".join(headline))
    for part in parts:
        for key, count in (("stdout", 40), ("stderr", 0 if part.get("status") == "ok" else 12)):
            lines = tail_of(out, part.get(key), count)
            if lines:
                print(f"-- {part.get('part')} ({part[key]}, last {len(lines)} lines)")
                print("\n".join(lines))
    ok = bool(parts) and all(part.get("status") == "ok" for part in parts)
    print("BENCH COMPLETE" if ok else "BENCH INCOMPLETE")
    return 0 if ok else 1


def main(argv):
    commands = {"parity": (parity, 2), "remaining": (remaining, 2), "bench": (bench, 2)}
    if len(argv) < 2 or argv[1] not in commands or len(argv) - 2 != commands[argv[1]][1]:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    function, _ = commands[argv[1]]
    return function(*argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
