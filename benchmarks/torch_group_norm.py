#!/usr/bin/env python3
"""PyTorch eager reference for benchmarks/bench_norm: the same cases, the same bytes.

GroupNorm(32) forward and forward + backward (torch.nn.functional.group_norm) on the
activations of BiT-R50x1's four stages (batch 64, 224 px) in float32 and bfloat16, next to
a device-to-device copy of the same tensor; and big_transfer's StdConv2d weight formula
(bit_pytorch/models.py: var_mean over dims [1, 2, 3], unbiased=False; (w - m) /
sqrt(v + 1e-10)) over all 53 convolution weights of BiT-R50x1, forward and forward +
backward, one weight at a time as StdConv2d does it.

Timing: CUDA events around --iterations back-to-back runs after warm-up, median of
--repeats samples; inputs rotate over copies spanning 4x the L2 cache. Prints a table and,
with --json, writes JSON lines (name, shape, ms, gb_per_s, device) like the C++ benchmarks.
Exits 0 with "skipped" when PyTorch or a CUDA device is missing.
"""

import argparse
import sys

import torch_common


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    torch_common.add_common_arguments(parser, warmup=2, repeats=20)
    parser.add_argument("--iterations", type=int, default=10, help="back-to-back runs per timed sample")
    parser.add_argument("--batch", type=int, default=64, help="batch size of the GroupNorm activations")
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
    torch = torch_common.import_torch_or_skip("torch_norm")
    if torch is None:
        return 0
    functional = torch.nn.functional

    device = torch.device("cuda")
    properties = torch.cuda.get_device_properties(device)
    l2_bytes = getattr(properties, "L2_cache_size", 50 << 20) or (50 << 20)
    rotation_bytes = 4 * l2_bytes
    torch.manual_seed(1)

    def measure(cases):
        """Median milliseconds per run of each (name, shape, bytes, run) case, interleaved."""
        return torch_common.median_ms_interleaved(torch, [case[3] for case in cases], arguments.warmup,
                                                  arguments.repeats, arguments.iterations)

    def rotation(shape, dtype, copies):
        tensors = [torch.randn(shape, device=device, dtype=dtype) for _ in range(copies)]
        state = {"next": 0}

        def take():
            tensor = tensors[state["next"]]
            state["next"] = (state["next"] + 1) % len(tensors)
            return tensor

        return take

    rows = []  # (name, shape, bytes, ms, copy GB/s) or None for a rule

    for dtype in (torch.float32, torch.bfloat16):
        for channels, size in ((256, 56), (512, 28), (1024, 14), (2048, 7)):
            shape = (arguments.batch, channels, size, size)
            element_bytes = 4 if dtype == torch.float32 else 2
            tensor_bytes = element_bytes * arguments.batch * channels * size * size
            copies = max(2, -(-rotation_bytes // tensor_bytes))
            take_x = rotation(shape, dtype, copies)
            take_dy = rotation(shape, dtype, copies)
            gamma = torch.randn(channels, device=device, dtype=dtype, requires_grad=True)
            beta = torch.randn(channels, device=device, dtype=dtype, requires_grad=True)
            destination = torch.empty(shape, device=device, dtype=dtype)
            text = f"{list(shape)} {str(dtype).replace('torch.', '')}"

            def forward():
                with torch.no_grad():
                    functional.group_norm(take_x(), 32, gamma, beta, 1e-5)

            def forward_relu():
                with torch.no_grad():
                    torch.relu_(functional.group_norm(take_x(), 32, gamma, beta, 1e-5))

            def forward_backward():
                x = take_x().detach().requires_grad_()
                y = functional.group_norm(x, 32, gamma, beta, 1e-5)
                torch.autograd.grad(y, (x, gamma, beta), take_dy())

            cases = [
                ("device-to-device copy (baseline)", text, 2 * tensor_bytes, lambda: destination.copy_(take_x())),
                ("torch group_norm forward", text, 2 * tensor_bytes, forward),
                ("torch group_norm forward + relu_", text, 2 * tensor_bytes, forward_relu),
                ("torch group_norm forward + backward", text, 5 * tensor_bytes, forward_backward),
            ]
            milliseconds = measure(cases)
            copy_gbps = cases[0][2] / (milliseconds[0] * 1e6)
            rows.extend((c[0], c[1], c[2], ms, copy_gbps) for c, ms in zip(cases, milliseconds))
            rows.append(None)
            del take_x, take_dy, destination
            torch.cuda.empty_cache()

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

    def ws_forward():
        with torch.no_grad():
            for w in weights:
                standardize(w)

    def ws_forward_backward():
        outputs = [standardize(w) for w in weights]
        torch.autograd.backward(outputs, grads)

    cases = [
        ("device-to-device copy of all weights (baseline)", text, 2 * weight_bytes, lambda: destination.copy_(source)),
        ("torch StdConv2d formula forward (per weight)", text, 2 * weight_bytes, ws_forward),
        ("torch StdConv2d formula forward + backward", text, 5 * weight_bytes, ws_forward_backward),
    ]
    milliseconds = measure(cases)
    copy_gbps = cases[0][2] / (milliseconds[0] * 1e6)
    rows.extend((c[0], c[1], c[2], ms, copy_gbps) for c, ms in zip(cases, milliseconds))

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
        records.append({"name": name, "shape": shape, "ms": ms, "peak_bytes": None, "device": properties.name,
                        "gb_per_s": gbps, "bytes": bytes_moved, "copy_gb_per_s": copy_gbps,
                        "fraction_of_copy": gbps / copy_gbps})
    print(f"torch_norm on {properties.name} (PyTorch {torch.__version__}): median of {arguments.repeats} samples "
          f"of {arguments.iterations} runs; inputs rotated over {rotation_bytes >> 20} MiB")
    torch_common.print_table(headers, table)
    torch_common.write_json_lines(arguments.json, records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
