#!/usr/bin/env python3
"""Tests of tools/gpu-check.sh and tools/gpu_check_summary.py on a machine without a GPU (ctest
runs them, label tools): the arguments, --dry-run of each stage (the deps path with and
without .deps, the binaries of the build, the summaries of the made-up rows in
tests/fixtures/gpu-check/), and the stage's own machinery with stand-ins for the device: a
fake nvidia-smi and a fake parity binary that fails one case and crashes in another, so the
rerun of the cases not yet run, the report and the summary of a real stage are exercised too.

    python3 tests/tools/test_gpu_check.py [BUILD_DIR]
"""
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(ROOT, "tools", "gpu-check.sh")
BUILD = os.path.abspath(sys.argv.pop(1)) if len(sys.argv) > 1 else os.path.join(ROOT, "build")
sys.path.insert(0, os.path.join(ROOT, "tools"))
import gpu_check_summary  # noqa: E402


def write_executable(path, text):
    with open(path, "w") as out:
        out.write(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


class Sandbox(unittest.TestCase):
    """A temporary folder for each test: an output folder, an empty .deps, a PATH stub folder."""

    def setUp(self):
        self.temporary = tempfile.mkdtemp(prefix="visrep-gpu-check-test-")
        self.out = os.path.join(self.temporary, "out")
        self.no_deps = os.path.join(self.temporary, "no-deps")
        self.stubs = os.path.join(self.temporary, "stubs")
        os.makedirs(self.no_deps)
        os.makedirs(self.stubs)

    def tearDown(self):
        shutil.rmtree(self.temporary, ignore_errors=True)

    def run_script(self, *arguments, deps=None, gpu=None, timeout=120):
        """gpu: None leaves PATH alone, False puts a failing nvidia-smi first, True a working one."""
        environment = dict(os.environ, VISREP_DEPS_DIR=deps or self.no_deps, VISREP_GPU_BIN=self.no_deps)
        environment.pop("OUT", None)
        if gpu is not None:
            write_executable(os.path.join(self.stubs, "nvidia-smi"),
                             "#!/bin/sh\necho 'Stand-in GPU, 1.0, 1 MiB'\n" if gpu else
                             "#!/bin/sh\necho 'NVIDIA-SMI has failed: no devices were found' >&2\nexit 9\n")
            environment["PATH"] = self.stubs + os.pathsep + environment["PATH"]
        result = subprocess.run([SCRIPT, *arguments], cwd=self.temporary, env=environment, capture_output=True,
                                text=True, timeout=timeout)
        return result.returncode, result.stdout, result.stderr


class Arguments(Sandbox):
    def test_bad_arguments_say_what_is_wrong_and_exit_2(self):
        cases = [((), "name a stage"), (("benchmarks",), "unknown stage 'benchmarks'"),
                 (("parity", "bench"), "one stage at a time"), (("--fast", "parity"), "unknown option '--fast'"),
                 (("--budget", "soon", "parity"), "--budget takes whole seconds"),
                 (("--budget", "5", "parity"), "--budget takes whole seconds"), (("parity", "--out"), "--out needs a value"),
                 (("--binaries", os.path.join(self.temporary, "nowhere"), "parity"), "--binaries: no folder")]
        for arguments, message in cases:
            with self.subTest(arguments=arguments):
                extra = () if "--out" in arguments else ("--out", self.out)
                code, stdout, stderr = self.run_script(*arguments, *extra)
                self.assertEqual(code, 2, stdout + stderr)
                self.assertIn(message, stderr)
                self.assertIn("usage: tools/gpu-check.sh", stderr)

    def test_help(self):
        code, stdout, _ = self.run_script("--help")
        self.assertEqual(code, 0)
        for word in ("parity", "bench", "all", "--dry-run", "tools/pack-gpu-deps.sh"):
            self.assertIn(word, stdout)

    def test_a_real_stage_without_a_gpu_exits_3(self):
        code, stdout, stderr = self.run_script("--out", self.out, "parity", gpu=False)
        self.assertEqual(code, 3, stdout + stderr)
        self.assertIn("no usable NVIDIA GPU here", stderr)
        self.assertIn("--dry-run", stderr)


class DryRun(Sandbox):
    def dry_run(self, stage, **options):
        code, stdout, stderr = self.run_script("--dry-run", "--binaries", BUILD, "--out", self.out, stage, **options)
        self.assertEqual(code, 0, stdout + stderr)
        self.assertIn(f"GPU CHECK DRY RUN DONE ({stage})", stdout)
        return stdout

    def test_parity_without_deps(self):
        stdout = self.dry_run("parity")
        self.assertIn("deps: no Debian packages in", stdout)
        if os.path.exists(os.path.join(BUILD, "tests", "test_parity")):
            self.assertIn("binaries: from", stdout)
            self.assertIn("(escaped for Catch2) selects exactly those test cases", stdout)
        # The summary of the made-up rows: every kind of failure first, then the closest passes.
        summary = stdout[stdout.index("== summary: parity"):]
        self.assertIn("9 test cases: 3 passed, 4 failed, 1 crashed, 1 not run", summary)
        self.assertIn("CRASHED  out-of-range indices on the device", summary)
        self.assertIn("FAILED   group_norm BiT shapes (scaled down)", summary)
        self.assertIn("CHECK    float32 -> uint8 (NaN, Inf, out of range): forward 3.10e-03, backward 0.00e+00, "
                      "tolerance 0 (exact)", summary)
        self.assertIn("backward inf", summary)  # a NaN error (null in JSON) is a failure, not a crash of the summary
        self.assertIn("threw: conv2d", summary)
        self.assertIn("NOT RUN  1 test cases: softmax cross entropy, large classes", summary)
        self.assertLess(summary.index("FAILURES"), summary.index("closest to their tolerance"))
        self.assertIn("0.42  group_norm [2, 64, 56, 56] g32 float32 relu", summary)
        self.assertIn("exact checks (tolerance 0): 1 of 2 bit-identical", summary)
        self.assertIn("PARITY FAILED", summary)
        self.assertNotIn("Traceback", stdout)

    def test_deps_are_unpacked_outside_the_root(self):
        if shutil.which("dpkg-deb") is None:
            self.skipTest("dpkg-deb is not installed")
        # A package of the layout libopenblas0-pthread has (its library in a folder of its own),
        # under a name no binary loads, so that the binaries of the build still start.
        package = os.path.join(self.temporary, "package")
        library_folder = os.path.join(package, "usr", "lib", "x86_64-linux-gnu", "visrep-stand-in")
        os.makedirs(os.path.join(package, "DEBIAN"))
        os.makedirs(library_folder)
        with open(os.path.join(package, "DEBIAN", "control"), "w") as control:
            control.write("Package: libvisrep-stand-in0\nVersion: 1.0\nArchitecture: amd64\n"
                          "Maintainer: test <test@example.org>\nDescription: a stand-in\n")
        with open(os.path.join(library_folder, "libvisrep_stand_in.so.0"), "w") as library:
            library.write("not really a library\n")
        deps = os.path.join(self.temporary, "deps")
        os.makedirs(os.path.join(deps, "debs"))
        subprocess.run(["dpkg-deb", "--build", package, os.path.join(deps, "debs", "libvisrep-stand-in0_1.0_amd64.deb")],
                       check=True, capture_output=True)
        stdout = self.dry_run("bench", deps=deps)
        self.assertIn(f"deps: 1 Debian packages from {deps} unpacked into", stdout)
        self.assertIn("usr/lib/x86_64-linux-gnu/visrep-stand-in", stdout)
        self.assertNotIn(f"unpacked into {deps}", stdout)  # a folder of its own, never the tree or /
        self.assertIn("deps: WARNING: .deps lacks libfmt9 libzip4 libstb0 libopenblas0-pthread", stdout)

    def test_bench(self):
        stdout = self.dry_run("bench")
        for part in ("bench_contrastive", "torch_contrastive", "bench_group_norm", "torch_group_norm",
                     "bench_weight_standardization", "torch_weight_standardization", "bench_train", "torch_train",
                     "bench_train_bit", "torch_train_bit"):
            self.assertRegex(stdout, rf"\n  {part} +cap +\d+ s")
        self.assertIn("--rows 2048 8192 32768", stdout)
        summary = stdout[stdout.index("== summary: bench"):]
        self.assertIn("10 parts: 1 failed, 1 not-run, 7 ok, 1 timeout", summary)
        self.assertIn("fused 0.910, unfused 3.640 (4.0x), torch 2.700 (3.0x)", summary)
        self.assertIn("2.75x torch", summary)
        self.assertIn("made-up failure", summary)  # a failed part's output is shown
        self.assertIn("BENCH INCOMPLETE", summary)

    def test_all(self):
        stdout = self.dry_run("all")
        self.assertIn("== summary: parity", stdout)
        self.assertIn("== summary: bench", stdout)
        self.assertLess(stdout.index("== parity"), stdout.index("== bench"))


FAKE_PARITY = r'''#!/usr/bin/env python3
# A stand-in for test_parity: lists its cases, runs those of --input-file, writes the report's
# lines, fails "fails, sometimes" and dies (SIGKILL) in "crashes".
import json, os, signal, sys
names = ["passes", "fails, sometimes", "crashes", "passes after the crash"]
if "--list-test-names-only" in sys.argv and "--input-file" not in sys.argv:
    print("\n".join(names)); sys.exit(len(names))
wanted = []
with open(sys.argv[sys.argv.index("--input-file") + 1]) as lines:
    for line in lines:
        text, name, i = line.rstrip("\n"), "", 0
        while i < len(text):
            if text[i] == "\\": i += 1
            name += text[i]; i += 1
        wanted.append(name)
report = os.environ["VISREP_PARITY_REPORT"]
def write(line):
    with open(report, "a") as out: out.write(json.dumps(line) + "\n")
for name in wanted:
    write({"kind": "start", "test": name})
    if name == "crashes":
        os.kill(os.getpid(), signal.SIGKILL)
    good = name != "fails, sometimes"
    write({"kind": "check", "test": name, "case": name + " check", "metric": "nmse", "forward_error": 0.0,
           "backward_error": 1e-12 if good else 1e-3, "tolerance": 1e-10, "passed": good})
    write({"kind": "check", "test": name, "case": name + " exact", "metric": "nmse", "forward_error": 0.0,
           "backward_error": 0.0, "tolerance": 0.0, "passed": True})
    write({"kind": "test", "test": name, "passed": good, "failed_assertions": 0 if good else 1, "seconds": 0.1,
           **({} if good else {"failure": "parity.cpp:1: backward_error <= tolerance"})})
sys.exit(0 if "fails, sometimes" not in wanted else 1)
'''

FAKE_BENCH = r'''#!/bin/sh
# A stand-in benchmark: --help works, a run prints a line and sleeps when told to.
case " $* " in *" --help "*) echo "usage: stand-in"; exit 0 ;; esac
echo "stand-in $(basename "$0") $*"
[ -z "$VISREP_TEST_BENCH_SLEEP" ] || sleep "$VISREP_TEST_BENCH_SLEEP"
'''


class StandInDevice(Sandbox):
    """The real stage code paths, with a fake nvidia-smi and fake binaries in --binaries."""

    def setUp(self):
        super().setUp()
        self.binaries = os.path.join(self.temporary, "binaries")
        os.makedirs(self.binaries)
        write_executable(os.path.join(self.binaries, "test_parity"), FAKE_PARITY)
        for name in ("bench_contrastive", "bench_group_norm", "bench_weight_standardization", "bench_train"):
            write_executable(os.path.join(self.binaries, name), FAKE_BENCH)

    def test_parity_goes_on_after_a_crash_and_summarises_everything(self):
        code, stdout, stderr = self.run_script("--binaries", self.binaries, "--out", self.out, "parity", gpu=True)
        self.assertEqual(code, 1, stdout + stderr)
        self.assertIn("Stand-in GPU", stdout)
        self.assertIn("parity pass 1", stdout)
        self.assertIn("parity: pass 2, 1 test cases not yet run", stdout)
        self.assertIn("4 test cases: 2 passed, 1 failed, 1 crashed, 0 not run; 6 checks, 1 failed, 3 of them", stdout)
        self.assertIn("CRASHED  crashes", stdout)
        self.assertIn("FAILED   fails, sometimes: parity.cpp:1", stdout)
        self.assertIn("PARITY FAILED", stdout)
        self.assertIn("GPU CHECK FAILED (parity)", stdout)
        rows = [json.loads(line) for line in open(os.path.join(self.out, "parity.jsonl"))]
        self.assertEqual([r["test"] for r in rows if r["kind"] == "start"],
                         ["passes", "fails, sometimes", "crashes", "passes after the crash"])
        parts = [json.loads(line) for line in open(os.path.join(self.out, "parts.jsonl"))]
        self.assertEqual([p["part"] for p in parts], ["parity pass 1", "parity pass 2"])
        self.assertEqual(parts[0]["status"], "failed")  # died of SIGKILL long before its time: a crash, not a timeout

    def test_an_interrupted_bench_stage_still_summarises(self):
        environment_sleep = dict(os.environ, VISREP_TEST_BENCH_SLEEP="30")
        write_executable(os.path.join(self.stubs, "nvidia-smi"), "#!/bin/sh\necho 'Stand-in GPU, 1.0, 1 MiB'\n")
        process = subprocess.Popen([SCRIPT, "--binaries", self.binaries, "--out", self.out, "bench"], cwd=self.temporary,
                                   env=dict(environment_sleep, VISREP_DEPS_DIR=self.no_deps, VISREP_GPU_BIN=self.no_deps,
                                            PATH=self.stubs + os.pathsep + os.environ["PATH"]),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
        self.assertEqual(process.returncode, 124, stdout + stderr)
        self.assertIn("interrupted at", stdout)
        self.assertIn("== summary: bench", stdout)
        self.assertIn("GPU CHECK FAILED (bench)", stdout)


class Summary(unittest.TestCase):
    def test_tolerance_zero_and_missing_errors(self):
        ratio = gpu_check_summary.ratio_to_tolerance
        self.assertEqual(ratio({"forward_error": 0.0, "backward_error": 0.0, "tolerance": 0.0}), 0.0)
        self.assertEqual(ratio({"forward_error": 1e-300, "backward_error": 0.0, "tolerance": 0}), float("inf"))
        self.assertEqual(ratio({"forward_error": None, "backward_error": 0.0, "tolerance": 1e-10}), float("inf"))
        self.assertAlmostEqual(ratio({"forward_error": 1e-12, "backward_error": 5e-11, "tolerance": 1e-10}), 0.5)
        self.assertFalse(gpu_check_summary.check_passed({"forward_error": 0, "backward_error": 0, "tolerance": 0,
                                                         "passed": False}))

    def test_escaped_names(self):
        self.assertEqual(gpu_check_summary.escape_test_name('a, b [c] *d* ~e "f" \\g'),
                         'a\\, b \\[c\\] \\*d\\* \\~e \\"f\\" \\\\g')

    def test_a_clean_report_passes(self):
        folder = tempfile.mkdtemp()
        try:
            report, cases = os.path.join(folder, "report.jsonl"), os.path.join(folder, "cases.txt")
            with open(cases, "w") as out:
                out.write("one\n")
            with open(report, "w") as out:
                for line in ({"kind": "start", "test": "one"},
                             {"kind": "check", "test": "one", "case": "c", "forward_error": 0, "backward_error": 0,
                              "tolerance": 0, "passed": True},
                             {"kind": "test", "test": "one", "passed": True, "seconds": 0.5}):
                    out.write(json.dumps(line) + "\n")
            result = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "gpu_check_summary.py"), "parity",
                                     report, cases], capture_output=True, text=True)
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
            self.assertIn("1 test cases: 1 passed, 0 failed, 0 crashed, 0 not run", result.stdout)
            self.assertNotIn("FAILURES", result.stdout)
            self.assertIn("PARITY PASSED", result.stdout)
        finally:
            shutil.rmtree(folder)


if __name__ == "__main__":
    unittest.main(verbosity=2)
