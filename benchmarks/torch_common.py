"""What the PyTorch reference benchmarks (benchmarks/torch_*.py) share: the arguments every
one takes, the "skipped" exit without PyTorch or a GPU, CUDA-event timing with the
contenders interleaved, an aligned text table and atomically written JSON lines, the same
conventions as benchmarks/common/harness.h on the C++ side.

The scripts run as `python3 benchmarks/torch_<name>.py`, which puts this folder first on
sys.path, so they import this module as `torch_common`. It does not import torch itself:
a script must still be able to say "skipped" where PyTorch is missing.
"""
import json
import os
import statistics


def add_common_arguments(parser, warmup, repeats=None, repeats_help="timed samples per case; the median is reported"):
    """--warmup, --repeats (unless repeats is None) and --json."""
    parser.add_argument("--warmup", type=int, default=warmup, help="untimed runs before timing each case")
    if repeats is not None:
        parser.add_argument("--repeats", type=int, default=repeats, help=repeats_help)
    parser.add_argument("--json", default="", help="write one JSON record per result to this file (JSON lines)")


def import_torch_or_skip(program, device="cuda"):
    """The torch module, or None after printing why the benchmark is skipped (no PyTorch, or
    no CUDA device when `device` is "cuda"); the caller then exits 0."""
    try:
        import torch
    except ImportError:
        print(f"{program}: PyTorch is not installed: skipped")
        return None
    if device == "cuda" and not torch.cuda.is_available():
        print(f"{program}: no CUDA device: skipped")
        return None
    return torch


def median_ms_interleaved(torch, runs, warmup, repeats, iterations=1):
    """The median milliseconds per call of each function in `runs`: one sample is CUDA events
    around `iterations` back-to-back calls; `warmup` untimed rounds, then `repeats` rounds,
    one sample of each function in turn, so drift affects all of them alike."""
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)

    def sample(run):
        start.record()
        for _ in range(iterations):
            run()
        stop.record()
        stop.synchronize()
        return start.elapsed_time(stop) / iterations

    for _ in range(warmup):
        for run in runs:
            sample(run)
    samples = [[] for _ in runs]
    for _ in range(repeats):
        for index, run in enumerate(runs):
            samples[index].append(sample(run))
    return [statistics.median(s) for s in samples]


def format_table(headers, rows):
    """Lines of an aligned table: the first column left-aligned (names), the others right-
    aligned (numbers), each as wide as its widest cell; a row of None is a rule."""
    widths = [max([len(headers[c])] + [len(row[c]) for row in rows if row is not None]) for c in range(len(headers))]
    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))

    def line(cells):
        return "  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(cells))

    return [line(headers), rule] + [rule if row is None else line(row) for row in rows]


def print_table(headers, rows):
    for text in format_table(headers, rows):
        print(text)


def write_json_lines(path, records):
    """One JSON record per line, written to a temporary name and renamed, so an interrupted run
    never leaves a half-written file; nothing when path is empty."""
    if not path:
        return
    temporary = path + ".tmp"
    with open(temporary, "w") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")
    os.replace(temporary, path)


def add_bandwidth_rows(rows, cases, milliseconds):
    """The rows (name, shape, bytes, ms, copy GB/s) of (name, shape, bytes, run) cases timed
    `milliseconds`; cases[0] is the device copy the others are compared with."""
    copy_gbps = cases[0][2] / (milliseconds[0] * 1e6)
    rows.extend((c[0], c[1], c[2], ms, copy_gbps) for c, ms in zip(cases, milliseconds))


def report_bandwidth(rows, device_name, json_path, title):
    """The twin of bench::report_bandwidth (benchmarks/common/harness.h): a table (case, shape,
    us, GB/s, copy GB/s, % of copy) under `title`, and one JSON line per row; a row of None
    is a rule."""
    headers = ("case", "shape", "us", "GB/s", "copy GB/s", "% of copy")
    table = []
    records = []
    for row in rows:
        if row is None:
            table.append(None)
            continue
        name, shape, bytes_moved, ms, copy_gbps = row
        gbps = bytes_moved / (ms * 1e6)
        table.append((name, shape, f"{ms * 1e3:.1f}", f"{gbps:.0f}", f"{copy_gbps:.0f}", f"{100 * gbps / copy_gbps:.1f}"))
        records.append({"name": name, "shape": shape, "ms": ms, "peak_bytes": None, "device": device_name,
                        "gb_per_s": gbps, "bytes": bytes_moved, "copy_gb_per_s": copy_gbps,
                        "fraction_of_copy": gbps / copy_gbps})
    print(title)
    print_table(headers, table)
    write_json_lines(json_path, records)


def read_json_lines(path):
    """The records of a JSON-lines file (a C++ benchmark's --json output)."""
    with open(path) as lines:
        return [json.loads(line) for line in lines if line.strip()]


def nt_xent(torch, h, temperature):
    """simclr objective.py: logits against every other row, the self term masked, cross-entropy
    against the other view, the mean over the 2N rows (rows i and i + N are one image's views,
    as in SupContrast's unsupervised case)."""
    functional = torch.nn.functional
    z = functional.normalize(h, dim=1)
    rows = z.shape[0]
    logits = z @ z.T / temperature
    self_mask = torch.eye(rows, dtype=torch.bool, device=h.device)
    logits = logits.masked_fill(self_mask, -1e9)
    targets = (torch.arange(rows, device=h.device) + rows // 2) % rows
    return functional.cross_entropy(logits, targets)
