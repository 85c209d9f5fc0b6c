#!/usr/bin/env python3
"""PyTorch eager's SimCLR and supervised training steps of ResNet-18 (CIFAR stem), the
reference for bench_train (issue 7's H100 target); run both in the same command.

The same two steps as bench_train, torchvision-free (the network is defined here):
- simclr: 2B random 32x32x3 views on the device -> ResNet-18, CIFAR stem (3x3/1 conv, no
  max-pool) -> SimCLR's 2-layer projection head (Linear 512->512 no bias, BN, ReLU, Linear
  512->128 no bias, BN without shift) -> NT-Xent as google-research/simclr objective.py
  computes it (tau 0.5, the 2B x 2B logits materialised) -> backward -> an optimizer step.
  LARS is APPROXIMATED by torch.optim.SGD with momentum 0.9 (no per-layer trust ratio:
  fewer kernels than a real LARS, so this side is if anything flattered).
- supervised (the baseline): B images -> the same ResNet-18 -> Linear(512, 10) ->
  cross-entropy on random labels -> backward -> SGD (momentum 0.9, weight decay 5e-4).
Float32 with TF32 on and off (torch.backends.cuda.matmul / cudnn allow_tf32). Timing: CUDA
events around samples of steps after warm-up, the median sample's ms per step. Peak memory:
torch.cuda.max_memory_allocated over the contender's life (weights, optimizer state, inputs,
activations), as bench_train reports its caching allocator's peak.

With --visrep-json (bench_train's --json file from the same command) it adds the target
rows: visrep's SimCLR views/s over PyTorch's supervised img/s at the same precision.

The issue's command, on the GPU machine:
  build/benchmarks/bench_train --json train.jsonl &&
  python3 benchmarks/torch_train.py --visrep-json train.jsonl --json torch_train.jsonl

Without PyTorch or a GPU it says so and exits 0.
"""
import argparse
import json
import os
import statistics
import sys

IMAGE_SIDE = 32
CLASSES = 10
TEMPERATURE = 0.5


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=512, help="images per step (SimCLR: 2x as many views)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before timing each contender")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per contender")
    parser.add_argument("--precision", choices=["tf32", "fp32", "both"], default="both")
    parser.add_argument("--json", default="", help="write one JSON record per result (JSON lines)")
    parser.add_argument("--visrep-json", default="", help="bench_train's JSON lines, for the target rows")
    return parser.parse_args()


def build_modules(torch):
    """ResNet-18 (CIFAR stem) and the heads, as classes closed over the imported torch."""
    nn = torch.nn
    functional = nn.functional

    class BasicBlock(nn.Module):
        def __init__(self, in_channels, planes, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(in_channels, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = None
            if stride != 1 or in_channels != planes:
                self.downsample = nn.Sequential(nn.Conv2d(in_channels, planes, 1, stride, bias=False),
                                                nn.BatchNorm2d(planes))

        def forward(self, x):
            out = functional.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            shortcut = x if self.downsample is None else self.downsample(x)
            return functional.relu(out + shortcut)

    class ResNet18Cifar(nn.Module):
        """torchvision's resnet18 with the CIFAR stem; ends at the global average pool."""

        feature_dim = 512

        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            layers, channels = [], 64
            for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
                layers.append(nn.Sequential(BasicBlock(channels, planes, stride), BasicBlock(planes, planes, 1)))
                channels = planes
            self.layer1, self.layer2, self.layer3, self.layer4 = layers
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

        def forward(self, x):
            x = functional.relu(self.bn1(self.conv1(x)))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return torch.flatten(functional.adaptive_avg_pool2d(x, 1), 1)

    class BatchNorm1dWithoutBias(nn.BatchNorm1d):
        """simclr's last head BN (center=False): a learnable scale, no shift."""

        def __init__(self, channels):
            super().__init__(channels)
            self.bias = None

    def projection_head(in_features, out_features=128):
        """simclr model.py ProjectionHead with 2 layers, hidden width = input width."""
        head = nn.Sequential(nn.Linear(in_features, in_features, bias=False), nn.BatchNorm1d(in_features), nn.ReLU(),
                             nn.Linear(in_features, out_features, bias=False), BatchNorm1dWithoutBias(out_features))
        for module in head:
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.01)
        return head

    return ResNet18Cifar, projection_head


def nt_xent(torch, h, temperature):
    """simclr objective.py: logits against every other row, the self term masked, cross-entropy
    against the other view, the mean over the 2B rows (rows i and i + B are one image's views)."""
    functional = torch.nn.functional
    z = functional.normalize(h, dim=1)
    rows = z.shape[0]
    logits = z @ z.T / temperature
    self_mask = torch.eye(rows, dtype=torch.bool, device=h.device)
    logits = logits.masked_fill(self_mask, -1e9)
    targets = (torch.arange(rows, device=h.device) + rows // 2) % rows
    return functional.cross_entropy(logits, targets)


def simclr_step(torch, modules, batch, device, generator):
    resnet, projection_head = modules
    encoder = resnet().to(device).train()
    head = projection_head(resnet.feature_dim).to(device).train()
    parameters = list(encoder.parameters()) + list(head.parameters())
    # LARS approximated: SGD with momentum, weight decay on everything (see the docstring).
    optimizer = torch.optim.SGD(parameters, lr=0.3 * batch / 256, momentum=0.9, weight_decay=1e-6)
    views = torch.randn(2 * batch, 3, IMAGE_SIDE, IMAGE_SIDE, device=device, generator=generator)
    state = {}

    def run():
        optimizer.zero_grad(set_to_none=True)
        loss = nt_xent(torch, head(encoder(views)), TEMPERATURE)
        loss.backward()
        optimizer.step()
        state["loss"] = loss

    return ("torch simclr step (NT-Xent, SGD for LARS)", f"2x{batch}x3x{IMAGE_SIDE}x{IMAGE_SIDE}", 2 * batch, run,
            lambda: state["loss"].item())


def supervised_step(torch, modules, batch, device, generator):
    resnet, _ = modules
    encoder = resnet().to(device).train()
    classifier = torch.nn.Linear(resnet.feature_dim, CLASSES).to(device)
    parameters = list(encoder.parameters()) + list(classifier.parameters())
    optimizer = torch.optim.SGD(parameters, lr=0.1, momentum=0.9, weight_decay=5e-4)
    images = torch.randn(batch, 3, IMAGE_SIDE, IMAGE_SIDE, device=device, generator=generator)
    labels = torch.randint(0, CLASSES, (batch,), device=device, generator=generator)
    state = {}

    def run():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(classifier(encoder(images)), labels)
        loss.backward()
        optimizer.step()
        state["loss"] = loss

    return ("torch supervised step (cross-entropy, SGD) [baseline]", f"{batch}x3x{IMAGE_SIDE}x{IMAGE_SIDE}", batch,
            run, lambda: state["loss"].item())


def measure(torch, build, warmup, steps):
    """(description, ms per step, peak bytes, last loss); the contender is freed afterwards."""
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    name, shape, images_per_step, run, last_loss = build()
    for _ in range(warmup):
        run()
    torch.cuda.synchronize()
    samples = min(steps, 5)
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    per_step = []
    for sample in range(samples):
        count = steps // samples + (1 if sample < steps % samples else 0)
        start.record()
        for _ in range(count):
            run()
        stop.record()
        stop.synchronize()
        per_step.append(start.elapsed_time(stop) / count)
    result = ((name, shape, images_per_step), statistics.median(per_step), torch.cuda.max_memory_allocated(),
              last_loss())
    del run, last_loss
    return result


def visrep_rates(path):
    """{precision: SimCLR views/s} from bench_train's JSON lines."""
    rates = {}
    with open(path) as lines:
        for line in lines:
            record = json.loads(line)
            if record.get("name", "").startswith("simclr"):
                rates[record["precision"]] = record["images_per_second"]
    return rates


def main():
    arguments = parse_arguments()
    try:
        import torch
    except ImportError:
        print("torch_train: PyTorch is not installed: skipped")
        return 0
    if not torch.cuda.is_available():
        print("torch_train: no CUDA device: skipped")
        return 0
    device = torch.device("cuda")
    device_name = torch.cuda.get_device_name(0)
    generator = torch.Generator(device=device).manual_seed(7)
    torch.manual_seed(7)
    modules = build_modules(torch)
    precisions = ["tf32", "fp32"] if arguments.precision == "both" else [arguments.precision]
    batch = arguments.batch
    print(f"torch_train on {device_name}: PyTorch {torch.__version__} eager, ResNet-18 (CIFAR stem), "
          f"{IMAGE_SIDE}x{IMAGE_SIDE}x3 random inputs on the device, batch {batch}; {arguments.warmup} warm-up steps, "
          f"median of {min(arguments.steps, 5)} samples over {arguments.steps} timed steps")
    print("NOTE: the SimCLR step uses SGD with momentum in place of LARS (no per-layer trust ratio).")
    header = (f"{'case':<54} {'precision':>9} {'shape':>15} {'ms/step':>8} {'img or views/s':>14} {'x supervised':>12} "
              f"{'peak MiB':>8} {'loss':>8}")
    rows, records = [], []
    supervised_rates = {}
    for precision in precisions:
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        torch.backends.cudnn.allow_tf32 = precision == "tf32"
        simclr = measure(torch, lambda: simclr_step(torch, modules, batch, device, generator), arguments.warmup,
                         arguments.steps)
        supervised = measure(torch, lambda: supervised_step(torch, modules, batch, device, generator),
                             arguments.warmup, arguments.steps)
        supervised_rate = batch / (supervised[1] / 1000.0)
        supervised_rates[precision] = supervised_rate
        for (name, shape, images_per_step), ms, peak, loss in (supervised, simclr):
            rate = images_per_step / (ms / 1000.0)
            ratio = rate / supervised_rate
            rows.append(f"{name:<54} {precision:>9} {shape:>15} {ms:>8.2f} {rate:>14.0f} {ratio:>12.2f} "
                        f"{peak / 2**20:>8.0f} {loss:>8.4f}")
            records.append({"name": name, "shape": shape, "ms": ms, "peak_bytes": peak, "device": device_name,
                            "precision": precision, "batch": batch, "images_per_step": images_per_step,
                            "images_per_second": rate, "supervised_images_per_second": supervised_rate,
                            "ratio_to_supervised": ratio, "last_loss": loss, "warmup_steps": arguments.warmup,
                            "timed_steps": arguments.steps, "torch_version": torch.__version__,
                            "lars_approximated_by_sgd": name.startswith("torch simclr")})
        rows.append("-" * len(header))
        sys.stdout.flush()
    print(header)
    print("-" * len(header))
    for row in rows:
        print(row)
    print('img/s counts views for the SimCLR step (2 per image); "x supervised" is that rate over the supervised '
          "step's img/s in the same run.")

    if arguments.visrep_json and os.path.exists(arguments.visrep_json):
        visrep = visrep_rates(arguments.visrep_json)
        print("target (issue 7): visrep SimCLR views/s >= PyTorch eager supervised img/s at the same precision")
        for precision in precisions:
            if precision not in visrep:
                print(f"  {precision}: no visrep SimCLR row in {arguments.visrep_json}")
                continue
            ratio = visrep[precision] / supervised_rates[precision]
            verdict = "met" if ratio >= 1.0 else "NOT met"
            print(f"  {precision}: visrep {visrep[precision]:.0f} views/s / torch {supervised_rates[precision]:.0f} img/s"
                  f" = {ratio:.2f} ({verdict})")
            records.append({"name": "target: visrep simclr views/s over torch supervised img/s", "shape": "",
                            "ms": None, "peak_bytes": None, "device": device_name, "precision": precision,
                            "batch": batch, "visrep_views_per_second": visrep[precision],
                            "torch_supervised_images_per_second": supervised_rates[precision], "ratio": ratio,
                            "met": ratio >= 1.0})

    if arguments.json:
        temporary = arguments.json + ".tmp"
        with open(temporary, "w") as out:
            for record in records:
                out.write(json.dumps(record) + "\n")
        os.replace(temporary, arguments.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
