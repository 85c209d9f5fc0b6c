#!/usr/bin/env python3
"""PyTorch eager reference for benchmarks/bench_group_norm: the same cases, the same bytes.

GroupNorm(32) forward and forward + backward (torch.nn.functional.group_norm) on the
activations of BiT-R50x1's four stages (batch 64, 224 px) in float32 and bfloat16, next to
a device-to-device copy of the same tensor.

Timing: CUDA events around --iterations back-to-back runs after warm-up, median of
--repeats samples; inputs rotate over copies spanning 4x the L2 cache. Prints a table and,
with --json, writes JSON lines (name, shape, ms, gb_per_s, device) like the C++ benchmarks.
Exits 0 with "skipped" when PyTorch or a CUDA device is missing.

Where to look for the rest of the family: kernels/cpu/group_norm.h.
"""

import argparse
import sys

import torch_common


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    torch_common.add_common_arguments(parser, warmup=2, repeats=20)
    parser.add_argument("--iterations", type=int, default=10, help="back-to-back runs per timed sample")
    parser.add_argument("--batch", type=int, default=64, help="batch size of the activations")
    return parser.parse_args()


def main():
    arguments = parse_arguments()
    torch = torch_common.import_torch_or_skip("torch_group_norm")
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
            torch_common.add_bandwidth_rows(rows, cases, measure(cases))
            rows.append(None)
            del take_x, take_dy, destination
            torch.cuda.empty_cache()
    rows.pop()

    torch_common.report_bandwidth(
        rows, properties.name, arguments.json,
        f"torch_group_norm on {properties.name} (PyTorch {torch.__version__}): median of {arguments.repeats} samples "
        f"of {arguments.iterations} runs; inputs rotated over {rotation_bytes >> 20} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
