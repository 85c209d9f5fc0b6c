#!/usr/bin/env python3
"""visrep-simclr as a data-parallel job under mpirun, judged from outside, for ctest.

    data_parallel_runs.py --mpiexec MPIRUN --simclr BINARY [--only NAME ...]

Each case runs the binary on a small subset of Fashion-MNIST (one view of the job is enough:
the step-level equivalence of every recipe is test_data_parallel.cpp's):
  same-losses       2 ranks and 1 rank on the same global batch: the same loss at every step
  resume            a 2-rank run stopped by SIGTERM to one of its ranks (what mpirun sends on
                    Ctrl-C) checkpoints and exits; resumed on 2 ranks it ends with the losses of
                    the uninterrupted run; resumed on 1 rank it is refused, naming both counts
  batch-indivisible --batch-size 32 on 3 ranks: refused at start by every rank, naming both
  flags-differ      ranks started with different flags (mpirun's "A : B" form): refused by every
                    rank, naming the flag
  rank-dies         one rank killed (SIGKILL) mid-run: every rank gone within the time limit, a
                    non-zero status, and no half-written file in the run folder
Every case checks that no rank process is left once mpirun has returned.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from launch import mpirun_command  # noqa: E402  (the same mpirun flags as the communicator's tests)

# A run of 2 epochs of 8 steps of 32 images (16 per rank on 2), small enough for seconds.
# (CLI11 refuses a flag given twice: flags() changes a value.)
FLAGS = ["--train-limit", "256", "--test-limit", "64", "--epochs", "2", "--batch-size", "32", "--arch", "small",
         "--width", "8", "--linear-epochs", "0", "--no-raw-baseline", "--workers", "1", "--seed", "3",
         "--device", "cpu"]


def flags(**changed):
    """FLAGS with some values changed: flags(epochs=4) for --epochs 4."""
    result = list(FLAGS)
    for name, value in changed.items():
        result[result.index("--" + name.replace("_", "-")) + 1] = str(value)
    return result


ENVIRONMENT = dict(os.environ, OMP_NUM_THREADS="1", VISREP_DISTRIBUTED_TIMEOUT="30")


def session_ranks(session, program):
    """The live (not zombie) processes of `program` in session `session`."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{name}/cmdline", "rb") as cmdline:
                arguments = cmdline.read().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if fields[0] != "Z" and int(fields[3]) == session and arguments and \
                os.path.basename(arguments[0]) == os.path.basename(program).encode():
            found.append(int(name))
    return found


class Job:
    """mpirun in a session of its own, so that its ranks can be found (and ended) afterwards."""

    def __init__(self, command, program):
        self.program = program
        self.process = subprocess.Popen(command, env=ENVIRONMENT, start_new_session=True, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT)
        self.started = time.monotonic()

    def ranks(self):
        return session_ranks(self.process.pid, self.program)

    def wait(self, limit):
        """(status, output, seconds, ranks left running, timed out)."""
        timed_out = False
        try:
            output, _ = self.process.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(self.process.pid, signal.SIGKILL)
            output, _ = self.process.communicate()
        seconds = time.monotonic() - self.started
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self.ranks():
            time.sleep(0.1)
        left = self.ranks()
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        return self.process.returncode, output.decode(errors="replace"), seconds, left, timed_out


def run(args, ranks, extra, limit=120, base=None):
    command = mpirun_command(args.mpiexec, ranks, tag_output=False) + [args.simclr] + (base or FLAGS) + extra
    return Job(command, args.simclr).wait(limit)


def step_losses(run_directory):
    with open(os.path.join(run_directory, "metrics.jsonl")) as metrics:
        records = [json.loads(line) for line in metrics if line.strip()]
    return [record["loss"] for record in records if record.get("kind") == "step"]


def complete_safetensors(path):
    """Whether `path` is a whole safetensors file: its header, and every tensor's bytes after it."""
    try:
        with open(path, "rb") as file:
            data = file.read()
        length = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + length])
        end = max([entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"], default=0)
        return len(data) == 8 + length + end
    except (OSError, ValueError, KeyError, TypeError):
        return False


def close(a, b, tolerance=1e-5):
    return len(a) == len(b) and all(abs(x - y) <= tolerance * max(1.0, abs(y)) for x, y in zip(a, b))


def finished(problems, status, output, left, timed_out, limit, expect_status=0):
    if timed_out:
        problems.append(f"still running after {limit} s")
    if left:
        problems.append(f"rank processes {left} left running after mpirun returned")
    if expect_status == 0 and status != 0:
        problems.append(f"exit status {status}; output:\n" + output)
    if expect_status != 0 and status == 0:
        problems.append("exit status 0, expected a failure; output:\n" + output)


def case_same_losses(args, folder):
    problems = []
    one, two = os.path.join(folder, "one"), os.path.join(folder, "two")
    status, output, _, left, timed_out = run(args, 1, ["--run-dir", one])
    finished(problems, status, output, left, timed_out, 120)
    status, output, _, left, timed_out = run(args, 2, ["--run-dir", two])
    finished(problems, status, output, left, timed_out, 120)
    if "2 ranks x 16, batch 32" not in output:
        problems.append("the progress line does not show the ranks and the global batch")
    if not problems:
        losses_one, losses_two = step_losses(one), step_losses(two)
        print("  1 rank : " + " ".join(f"{x:.6f}" for x in losses_one))
        print("  2 ranks: " + " ".join(f"{x:.6f}" for x in losses_two))
        if not close(losses_two, losses_one):
            problems.append("the 2-rank losses differ from the 1-rank run's")
    return problems


def case_resume(args, folder):
    problems = []
    whole, stopped = os.path.join(folder, "whole"), os.path.join(folder, "stopped")
    # 4 epochs of 512 images (64 steps), so that the stop lands mid-run however loaded the
    # machine is.
    longer = flags(epochs=4, train_limit=512)
    status, output, _, left, timed_out = run(args, 2, ["--run-dir", whole], base=longer)
    finished(problems, status, output, left, timed_out, 120)
    # Stop the second run by SIGTERM to one rank as soon as rank 0 has opened metrics.jsonl: every
    # rank has its stop handler by then (the apps install it before training, and rank 0 opens
    # the file after the collectives of the run's start, which every rank takes part in). The
    # run stops at the end of the step the signal arrives in.
    job = Job(mpirun_command(args.mpiexec, 2, tag_output=False) + [args.simclr] + longer + ["--run-dir", stopped],
              args.simclr)
    metrics = os.path.join(stopped, "metrics.jsonl")
    deadline = time.monotonic() + 60
    ranks = []
    while time.monotonic() < deadline and job.process.poll() is None:
        # The ranks are found first (a scan of /proc can take longer than the whole run).
        ranks = ranks or job.ranks()
        if ranks and os.path.exists(metrics):
            os.kill(ranks[-1], signal.SIGTERM)
            break
        time.sleep(0.005)
    status, output, _, left, timed_out = job.wait(60)
    finished(problems, status, output, left, timed_out, 60, expect_status=130)
    if "stopped; checkpoint:" not in output:
        problems.append("the stopped run did not say where its checkpoint is; output:\n" + output)
    steps_before = len(step_losses(stopped)) if os.path.exists(metrics) else 0
    status, output, _, left, timed_out = run(args, 1, ["--run-dir", stopped, "--resume", stopped], base=longer)
    finished(problems, status, output, left, timed_out, 60, expect_status=1)
    if "was written by a job of 2 rank(s), and this job has 1" not in output:
        problems.append("a resume on 1 rank was not refused with the counts; output:\n" + output)
    status, output, _, left, timed_out = run(args, 2, ["--run-dir", stopped, "--resume", stopped], base=longer)
    finished(problems, status, output, left, timed_out, 120)
    if not problems:
        resumed, uninterrupted = step_losses(stopped), step_losses(whole)
        print(f"  stopped after {steps_before} of {len(uninterrupted)} steps, resumed on 2 ranks")
        if not 0 < steps_before < len(uninterrupted):
            problems.append(f"the run was not stopped mid-run ({steps_before} steps)")
        if not close(resumed, uninterrupted):
            problems.append(f"the resumed run's losses {resumed} differ from the uninterrupted {uninterrupted}")
    return problems


def case_batch_indivisible(args, folder):
    problems = []
    status, output, _, left, timed_out = run(args, 3, ["--run-dir", os.path.join(folder, "run")], limit=60)
    finished(problems, status, output, left, timed_out, 60, expect_status=1)
    if "--batch-size 32 is not divisible by the 3 ranks of this job" not in output:
        problems.append("no message naming the batch size and the ranks; output:\n" + output)
    return problems


def case_flags_differ(args, folder):
    problems = []
    run_directory = ["--run-dir", os.path.join(folder, "run")]
    base = mpirun_command(args.mpiexec, 1, tag_output=False)
    command = base + [args.simclr] + FLAGS + run_directory + [":", "-np", "1", args.simclr] + FLAGS + \
        run_directory + ["--temperature", "0.3"]
    status, output, _, left, timed_out = Job(command, args.simclr).wait(60)
    finished(problems, status, output, left, timed_out, 60, expect_status=1)
    if "the flags differ between the ranks of this job" not in output or "temperature" not in output:
        problems.append("no message naming the flag that differs; output:\n" + output)
    return problems


def case_rank_dies(args, folder):
    problems = []
    run_directory = os.path.join(folder, "run")
    job = Job(mpirun_command(args.mpiexec, 2, tag_output=False) + [args.simclr] + flags(epochs=20) +
              ["--checkpoint-every", "1", "--run-dir", run_directory], args.simclr)
    killed = False
    deadline = time.monotonic() + 60
    ranks = []
    while time.monotonic() < deadline and job.process.poll() is None:
        ranks = ranks or job.ranks()
        if ranks and os.path.exists(os.path.join(run_directory, "checkpoint.safetensors")):
            os.kill(ranks[-1], signal.SIGKILL)
            killed = True
            break
        time.sleep(0.005)
    status, output, seconds, left, timed_out = job.wait(60)
    finished(problems, status, output, left, timed_out, 60, expect_status=1)
    if not killed:
        problems.append("the run ended before a rank could be killed; output:\n" + output)
    checkpoint = os.path.join(run_directory, "checkpoint.safetensors")
    if killed and not complete_safetensors(checkpoint):
        problems.append(f"{checkpoint} is not a whole safetensors file")
    # A write cut short leaves only its temporary file ("<target>.tmp-<pid>-<n>"), which the
    # next write into the folder removes (engine/util/atomic_file.h): a note, not a failure.
    leftovers = [name for name in os.listdir(run_directory) if ".tmp-" in name] if os.path.isdir(run_directory) else []
    if leftovers:
        print(f"  (temporary files of a write cut short, never a target: {leftovers})")
    print(f"  a rank killed mid-run: exit status {status}, every rank gone after {seconds:.1f} s")
    return problems


CASES = {
    "same-losses": case_same_losses,
    "resume": case_resume,
    "batch-indivisible": case_batch_indivisible,
    "flags-differ": case_flags_differ,
    "rank-dies": case_rank_dies,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mpiexec", required=True)
    parser.add_argument("--simclr", required=True, help="the visrep-simclr binary")
    parser.add_argument("--only", nargs="*", help="only these cases")
    args = parser.parse_args()
    selected = args.only or list(CASES)
    failures = 0
    for name in selected:
        with tempfile.TemporaryDirectory(prefix="visrep-data-parallel-") as folder:
            started = time.monotonic()
            problems = CASES[name](args, folder)
            verdict = "ok" if not problems else "FAILED:\n    " + "\n    ".join(problems)
            print(f"{name}: {time.monotonic() - started:.1f} s: {verdict}", flush=True)
            failures += bool(problems)
    print(f"data_parallel_runs.py: {len(selected) - failures} of {len(selected)} cases ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
