#!/usr/bin/env python3
"""PyTorch's unfused NT-Xent and SupCon losses at bench_contrastive's sizes, for the README's
side-by-side table (run by tools/gpu-check.sh on the GPU machine, next to bench_contrastive).

Both materialise the 2N x 2N similarity matrix, as the usual libraries do:
- NT-Xent as google-research/simclr objective.py computes it (the self similarity masked,
  softmax cross-entropy against the other view), written the way PyTorch ports do;
- SupCon as HobbitLong/SupContrast losses.py SupConLoss.forward computes it (features of
  shape [bsz, n_views, dim], contrast_mode 'all', labels from --classes classes).
Float32 embeddings with TF32 on (unless --exact). Reported per case: forward ms and
forward+backward ms (CUDA events, warm-up, median of --repeats), the peak memory beyond the
inputs (torch.cuda.max_memory_allocated), TFLOP/s counting 6 (2N)^2 D flops per step as
bench_contrastive does; "OOM" where the step does not fit.

Without PyTorch or a GPU it says so and exits 0.

Where to look for the rest of the family: kernels/cpu/contrastive.h.
"""
import argparse
import sys

import torch_common


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[512, 2048, 8192, 32768, 131072], help="2N values")
    parser.add_argument("--dims", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--temperature", type=float, default=0.1)
    parser.add_argument("--classes", type=int, default=100, help="SupCon label classes")
    torch_common.add_common_arguments(parser, warmup=1, repeats=5)
    parser.add_argument("--exact", action="store_true", help="exact FP32 matmuls instead of TF32")
    return parser.parse_args()


def supcon(torch, h, labels, temperature, base_temperature):
    """HobbitLong/SupContrast losses.py SupConLoss.forward, contrast_mode 'all'."""
    rows, dim = h.shape
    batch = rows // 2
    # features [bsz, n_views, dim]: view v of image i is row v * N + i of h.
    features = torch.nn.functional.normalize(h, dim=1).view(2, batch, dim).transpose(0, 1)
    labels = labels.contiguous().view(-1, 1)
    mask = torch.eq(labels, labels.T).float()
    contrast_count = features.shape[1]
    contrast_feature = torch.cat(torch.unbind(features, dim=1), dim=0)
    anchor_feature, anchor_count = contrast_feature, contrast_count
    anchor_dot_contrast = torch.div(torch.matmul(anchor_feature, contrast_feature.T), temperature)
    logits_max, _ = torch.max(anchor_dot_contrast, dim=1, keepdim=True)
    logits = anchor_dot_contrast - logits_max.detach()
    mask = mask.repeat(anchor_count, contrast_count)
    logits_mask = torch.scatter(
        torch.ones_like(mask), 1, torch.arange(batch * anchor_count, device=h.device).view(-1, 1), 0)
    mask = mask * logits_mask
    exp_logits = torch.exp(logits) * logits_mask
    log_prob = logits - torch.log(exp_logits.sum(1, keepdim=True))
    mask_pos_pairs = mask.sum(1)
    mask_pos_pairs = torch.where(mask_pos_pairs < 1e-6, 1, mask_pos_pairs)
    mean_log_prob_pos = (mask * log_prob).sum(1) / mask_pos_pairs
    loss = -(temperature / base_temperature) * mean_log_prob_pos
    return loss.view(anchor_count, batch).mean()


def is_out_of_memory(error):
    return "out of memory" in str(error).lower()


def run_case(torch, loss_fn, h, warmup, repeats):
    """(forward ms, forward+backward ms, peak extra bytes), or None when it runs out of memory."""
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    try:
        loss_fn(h).backward()
        h.grad = None
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before

        def forward():
            with torch.no_grad():
                loss_fn(h)

        def step():
            loss_fn(h).backward()
            h.grad = None

        forward_ms, step_ms = torch_common.median_ms_interleaved(torch, [forward, step], warmup, repeats)
        return forward_ms, step_ms, peak
    except RuntimeError as error:  # torch.cuda.OutOfMemoryError is a RuntimeError
        if not is_out_of_memory(error):
            raise
        h.grad = None
        torch.cuda.empty_cache()
        return None


def main():
    arguments = parse_arguments()
    torch = torch_common.import_torch_or_skip("torch_contrastive")
    if torch is None:
        return 0
    torch.backends.cuda.matmul.allow_tf32 = not arguments.exact
    torch.backends.cudnn.allow_tf32 = not arguments.exact
    device = torch.device("cuda")
    device_name = torch.cuda.get_device_name(0)
    generator = torch.Generator(device=device).manual_seed(1)
    records = []
    header = f"{'loss':<8} {'2N':>7} {'D':>4} {'fwd ms':>9} {'f+b ms':>9} {'MB':>9} {'TFLOP/s':>8}"
    print(f"torch_contrastive on {device_name}: PyTorch {torch.__version__}, float32, "
          f"{'exact FP32' if arguments.exact else 'TF32'}, tau {arguments.temperature}, median of {arguments.repeats}")
    print(header)
    print("-" * len(header))
    for loss_name in ("nt_xent", "supcon"):
        for dim in arguments.dims:
            for rows in arguments.rows:
                h = torch.randn(rows, dim, device=device, generator=generator).requires_grad_()
                labels = torch.randint(0, arguments.classes, (rows // 2,), device=device, generator=generator)
                if loss_name == "nt_xent":
                    loss_fn = lambda x: torch_common.nt_xent(torch, x, arguments.temperature)  # noqa: E731
                else:
                    loss_fn = lambda x: supcon(torch, x, labels, arguments.temperature, arguments.temperature)  # noqa: E731
                result = run_case(torch, loss_fn, h, arguments.warmup, arguments.repeats)
                shape = f"{rows}x{dim}"
                record = {"name": f"torch {loss_name} unfused", "shape": shape, "device": device_name,
                          "tf32": not arguments.exact, "temperature": arguments.temperature}
                if result is None:
                    print(f"{loss_name:<8} {rows:>7} {dim:>4} {'OOM':>9} {'OOM':>9} {'OOM':>9} {'OOM':>8}")
                    record.update({"ms": None, "peak_bytes": None, "out_of_memory": True})
                else:
                    forward_ms, step_ms, peak = result
                    tflops = 6.0 * rows * rows * dim / (step_ms * 1e9)
                    print(f"{loss_name:<8} {rows:>7} {dim:>4} {forward_ms:>9.3f} {step_ms:>9.3f} "
                          f"{peak / 2**20:>9.1f} {tflops:>8.1f}")
                    record.update({"ms": step_ms, "forward_ms": forward_ms, "forward_backward_ms": step_ms,
                                   "peak_bytes": peak, "forward_backward_tflops": tflops})
                records.append(record)
                del h, labels
                torch.cuda.empty_cache()
                sys.stdout.flush()
    torch_common.write_json_lines(arguments.json, records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
