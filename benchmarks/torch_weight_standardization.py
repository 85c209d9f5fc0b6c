#!/usr/bin/env python3
"""PyTorch eager reference for benchmarks/bench_weight_standardization: the same weights and bytes.

big_transfer's StdConv2d weight formula (bit_pytorch/models.py: var_mean over dims
[1, 2, 3], unbiased=False; (w - m) / sqrt(v + 1e-10)) over all 53 convolution weights of
BiT-R50x1, forward and forward + backward, one weight at a time as StdConv2d does it, next
to a device-to-device copy of the same bytes.

Timing: CUDA events around --iterations back-to-back runs after warm-up, median of
--repeats samples. Prints a table and, with --json, writes JSON lines (name, shape, ms,
gb_per_s, device) like the C++ benchmarks. Exits 0 with "skipped" when PyTorch or a CUDA
device is missing.

Where to look for the rest of the family: kernels/cpu/weight_standardization.h.
"""

import argparse
import sys

import torch_common


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    torch_common.add_common_arguments(parser, warmup=2, repeats=20)
    parser.add_argument("--iterations", type=int, default=10, help="back-to-back runs per timed sample")
    return parser.parse_args()


def bit_r50x1_weight_shapes():
    """The 7x7 root, then per unit conv1 1x1, conv2 3x3, conv3 1x1, and a 1x1 projection
    in each block's first unit: 53 weights."""
    shapes = [(64, 3, 7, 7)]
    channels_in = 64
    for block, units in enumerate((3, 4, 6, 3)):
        mid = 64 << block
        out = 4 * mid
        for unit in range(units):
            if unit == 0:
                shapes.append((out, channels_in, 1, 1))
            shapes.append((mid, channels_in, 1, 1))
            shapes.append((mid, mid, 3, 3))
            shapes.append((out, mid, 1, 1))
            channels_in = out
    return shapes


def main():
    arguments = parse_arguments()
    torch = torch_common.import_torch_or_skip("torch_weight_standardization")
    if torch is None:
        return 0

    device = torch.device("cuda")
    properties = torch.cuda.get_device_properties(device)
    torch.manual_seed(1)

    # big_transfer's StdConv2d.forward, on the weight alone.
    def standardize(w, eps=1e-10):
        v, m = torch.var_mean(w, dim=[1, 2, 3], keepdim=True, unbiased=False)
        return (w - m) / torch.sqrt(v + eps)

    shapes = bit_r50x1_weight_shapes()
    weights = [torch.randn(s, device=device, requires_grad=True) for s in shapes]
    grads = [torch.randn(s, device=device) for s in shapes]
    values = sum(w.numel() for w in weights)
    weight_bytes = 4 * values
    source = torch.randn(values, device=device)
    destination = torch.empty(values, device=device)
    text = f"{len(shapes)} weights, {values / 1e6:.1f} M values"

    def forward():
        with torch.no_grad():
            for w in weights:
                standardize(w)

    def forward_backward():
        outputs = [standardize(w) for w in weights]
        torch.autograd.backward(outputs, grads)

    cases = [
        ("device-to-device copy of all weights (baseline)", text, 2 * weight_bytes, lambda: destination.copy_(source)),
        ("torch StdConv2d formula forward (per weight)", text, 2 * weight_bytes, forward),
        ("torch StdConv2d formula forward + backward", text, 5 * weight_bytes, forward_backward),
    ]
    rows = []
    milliseconds = torch_common.median_ms_interleaved(torch, [case[3] for case in cases], arguments.warmup,
                                                      arguments.repeats, arguments.iterations)
    torch_common.add_bandwidth_rows(rows, cases, milliseconds)

    torch_common.report_bandwidth(
        rows, properties.name, arguments.json,
        f"torch_weight_standardization on {properties.name} (PyTorch {torch.__version__}): median of "
        f"{arguments.repeats} samples of {arguments.iterations} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
