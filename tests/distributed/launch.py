#!/usr/bin/env python3
"""Runs test_distributed under mpirun for ctest, and judges the failure scenarios.

    launch.py --mpiexec MPIRUN --ranks N [--timeout S] -- PROGRAM [ARGS...]
        PROGRAM on N ranks (mpirun --oversubscribe, --allow-run-as-root when root,
        --tag-output); exits with mpirun's status. Past S seconds mpirun is ended (SIGTERM,
        then SIGKILL) and the run fails.

    launch.py --mpiexec MPIRUN --scenarios PROGRAM [--ranks 3] [--only NAME ...]
        every failure scenario of PROGRAM (tests/distributed/scenarios.cpp): one rank stops
        taking part while the others wait for it. Each must end the whole job within its time
        limit, with a non-zero status (the one the scenario chose, where it chose one) and
        the messages that say what happened.

Either way, every rank records its process id in a fresh folder (VISREP_TEST_PID_DIR), and
once mpirun has returned, no rank may still be running: one that is counts as a failure
(and is ended, by its recorded id).
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

# name, the job's exit status (None: any but 0), messages that must appear (each entry: one
# of its strings), messages that must not, the time limit in seconds. The scenarios' own
# watchdog gives up after 3 s.
SCENARIOS = [
    ("rank-fails", 3, [["exiting with status 3: ending the other ranks (MPI_Abort)"]], [], 20),
    ("rank-exits-abruptly", 3, [["non-zero exit code", "non-zero status"]], [], 20),
    ("rank-killed", 137, [["signal 9"]], [], 20),
    # (Open MPI's own "MPI_ABORT was invoked" banner is not asked for: it sometimes comes out
    # garbled, "ORTE_ERROR_LOG: Out of resource in file show_help.c"; the status is the code.)
    ("rank-aborts", 5, [["scenario rank-aborts: this rank gives up on purpose"]], [], 20),
    ("rank-skips-collective", 1,
     [["all_reduce (sum) of 1000 float32 elements, call 2 on cpu has waited"], ["for the other ranks"],
      ["Giving up: exiting with status 1"]], [], 30),
    ("rank-hangs", 1, [["has waited"], ["Giving up: exiting with status 1"]], [], 30),
    ("mismatched-counts-unchecked", None, [["MPI_Allreduce failed", "has waited"]], [], 30),
    ("every-rank-stops", 130, [], ["MPI_ABORT", "ending the other ranks"], 20),
]


def mpirun_command(mpiexec, ranks, tag_output):
    command = [mpiexec, "--oversubscribe", "-np", str(ranks)]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-run-as-root")
    if tag_output:
        command.append("--tag-output")
    return command


def running(pid, program):
    """Whether process `pid` is still our program and not yet a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            arguments = cmdline.read().split(b"\0")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z" and bool(arguments) and os.path.basename(arguments[0]) == os.path.basename(program).encode()


def run_job(command, program, timeout, capture):
    """Runs `command`; returns (status, output, seconds, rank pids, pids left running, timed out)."""
    with tempfile.TemporaryDirectory(prefix="visrep-ranks-") as pid_dir:
        environment = dict(os.environ, VISREP_TEST_PID_DIR=pid_dir)
        started = time.monotonic()
        process = subprocess.Popen(command, env=environment, start_new_session=True,
                                   stdout=subprocess.PIPE if capture else None,
                                   stderr=subprocess.STDOUT if capture else None)
        timed_out = False
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            process.send_signal(signal.SIGTERM)  # mpirun then ends its ranks
            try:
                output, _ = process.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()  # mpirun can hang in its own teardown
                output, _ = process.communicate()
        seconds = time.monotonic() - started
        pids = sorted(int(name) for name in os.listdir(pid_dir) if name.isdigit())
        # mpirun has returned; give the kernel a moment to reap what it ended.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(running(pid, program) for pid in pids):
            time.sleep(0.1)
        left = [pid for pid in pids if running(pid, program)]
        for pid in left:
            os.kill(pid, signal.SIGKILL)
    text = output.decode(errors="replace") if capture and output else ""
    return process.returncode, text, seconds, pids, left, timed_out


def run_program(args):
    command = mpirun_command(args.mpiexec, args.ranks, tag_output=True) + args.program
    status, _, seconds, pids, left, timed_out = run_job(command, args.program[0], args.timeout, capture=False)
    print(f"launch.py: {len(pids)} rank(s), mpirun exit status {status}, {seconds:.1f} s")
    if timed_out:
        print(f"launch.py: FAILED: still running after {args.timeout} s; mpirun was ended")
        return 1
    if left:
        print(f"launch.py: FAILED: rank processes {left} were still running after mpirun returned")
        return 1
    return status


def run_scenarios(args):
    selected = [s for s in SCENARIOS if not args.only or s[0] in args.only]
    unknown = set(args.only or []) - {s[0] for s in SCENARIOS}
    if unknown:
        print(f"launch.py: no scenario {sorted(unknown)}; the scenarios: {[s[0] for s in SCENARIOS]}")
        return 2
    failures = []
    for name, status_wanted, wanted, unwanted, limit in selected:
        command = mpirun_command(args.mpiexec, args.ranks, tag_output=False) + [args.scenarios, "--scenario", name]
        status, output, seconds, pids, left, timed_out = run_job(command, args.scenarios, limit, capture=True)
        problems = []
        if timed_out:
            problems.append(f"the job was still running after {limit} s")
        if len(pids) != args.ranks:
            problems.append(f"{len(pids)} of {args.ranks} ranks started")
        if left:
            problems.append(f"rank processes {left} were still running after mpirun returned")
        if status == 0:
            problems.append("the job's exit status is 0")
        elif status_wanted is not None and status != status_wanted:
            problems.append(f"the job's exit status is {status}, not {status_wanted}")
        for alternatives in wanted:
            if not any(text in output for text in alternatives):
                problems.append("no message " + " or ".join(repr(text) for text in alternatives))
        for text in unwanted:
            if text in output:
                problems.append(f"the message {text!r} appeared")
        verdict = "ok" if not problems else "FAILED: " + "; ".join(problems)
        print(f"scenario {name}: {args.ranks} ranks, exit status {status}, every rank gone after {seconds:.1f} s"
              f" (limit {limit} s): {verdict}")
        if problems:
            failures.append(name)
            print("  its output:\n    " + "\n    ".join(output.strip().splitlines()))
    print(f"launch.py: {len(selected) - len(failures)} of {len(selected)} scenarios ok")
    return 1 if failures else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mpiexec", required=True, help="mpirun / mpiexec")
    parser.add_argument("--ranks", type=int, default=None, help="ranks to start (scenarios: 3)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds before the job is ended")
    parser.add_argument("--scenarios", metavar="PROGRAM", help="run the failure scenarios of PROGRAM")
    parser.add_argument("--only", nargs="*", help="only these scenarios")
    parser.add_argument("program", nargs="*", help="-- PROGRAM [ARGS...]")
    args = parser.parse_args()
    if args.scenarios:
        args.ranks = args.ranks or 3
        return run_scenarios(args)
    if not args.program or not args.ranks:
        parser.error("give --ranks N -- PROGRAM [ARGS...], or --scenarios PROGRAM")
    return run_program(args)


if __name__ == "__main__":
    sys.exit(main())
