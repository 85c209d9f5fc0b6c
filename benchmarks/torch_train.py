#!/usr/bin/env python3
"""PyTorch eager's training steps matching bench_train's cases: the reference for its targets.

Run both in the same command. --case picks the steps, as in bench_train:

- simclr: 2B random 32x32x3 views on the device -> ResNet-18, CIFAR stem (3x3/1
  conv, no max-pool) -> SimCLR's 2-layer projection head (Linear 512->512 no bias, BN, ReLU,
  Linear 512->128 no bias, BN without shift) -> NT-Xent as google-research/simclr
  objective.py computes it (tau 0.5, the 2B x 2B logits materialised) -> backward -> an
  optimizer step. LARS is APPROXIMATED by torch.optim.SGD with momentum 0.9 (no per-layer
  trust ratio: fewer kernels than a real LARS, so this side is if anything flattered).
- supervised (simclr's baseline): B images -> the same ResNet-18 (defined here, torchvision-
  free) -> Linear(512, 10) -> cross-entropy on random labels -> backward -> SGD (momentum
  0.9, weight decay 5e-4).
- bit: timm.create_model("resnetv2_50x1_bit", num_classes=1000), timm's own
  initialisation, B = 128 random 224x224x3 images -> cross-entropy on random labels ->
  backward -> SGD as the BiT-HyperRule has it (momentum 0.9, no weight decay, lr 0.003).
  Needs timm; without it this case prints "skipped: timm not installed".
The default runs simclr and supervised; "all" runs the three.

Precisions: float32 with TF32 on (tf32) and off (fp32) for every case, and for bit also
bf16: torch.autocast(bfloat16) around the forward pass and the loss, float32 weights and
optimizer, TF32 allowed for what autocast leaves in float32. --precision overrides the set
for every case. cudnn.benchmark stays at PyTorch's default (off): plain eager. Timing: CUDA
events around samples of steps after warm-up, the median sample's ms per step. Peak memory:
torch.cuda.max_memory_allocated over the contender's life (weights, optimizer state,
inputs, activations), as bench_train reports its caching allocator's peak.

With --visrep-json (bench_train's --json file from the same command) it adds the target rows:
  simclr  visrep's SimCLR views/s over PyTorch's supervised img/s at the same precision (>= 1)
  bit     visrep's BiT img/s over PyTorch's at the same precision, and visrep's TF32 over
          PyTorch's bf16 (visrep has no bf16 training path) (>= 1.5)

The commands, on the GPU machine (tools/gpu-check.sh bench runs shorter ones):
  build/benchmarks/bench_train --json train.jsonl &&
  python3 benchmarks/torch_train.py --visrep-json train.jsonl --json torch_train.jsonl
  build/benchmarks/bench_train --case bit --json bit.jsonl &&
  python3 benchmarks/torch_train.py --case bit --visrep-json bit.jsonl --json torch_bit.jsonl

Without PyTorch or a GPU it says so and exits 0.
"""
import argparse
import contextlib
import os
import statistics
import sys

import torch_common

CASES = ("simclr", "supervised", "bit")  # in the order they are measured
TABLE_ORDER = ("supervised", "simclr", "bit")  # the baseline before the step compared with it
PRECISIONS = ("tf32", "bf16", "fp32")  # in the order they are measured
CIFAR_CLASSES = 10
TEMPERATURE = 0.5
BIT_MODEL = "resnetv2_50x1_bit"
BIT_CLASSES = 1000
BIT_LEARNING_RATE = 0.003  # BiT-HyperRule (bit_hyperrule.py)
BIT_TARGET = 1.5  # the BiT target: visrep img/s >= 1.5x PyTorch eager's


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs="+", choices=CASES + ("all",), default=["simclr", "supervised"],
                        help="steps to measure (several may be given); default: simclr and supervised")
    parser.add_argument("--batch", type=int, default=None,
                        help="images per step for every case (SimCLR: 2x as many views); default 512, bit 128")
    parser.add_argument("--image-size", type=int, default=None, help="image height and width; default 32, bit 224")
    torch_common.add_common_arguments(parser, warmup=5)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per contender")
    parser.add_argument("--precision", choices=["tf32", "fp32", "bf16", "both", "all"], default=None,
                        help="both: tf32 and fp32; all: tf32, bf16 and fp32; default: both, and all for bit")
    parser.add_argument("--visrep-json", default="", help="bench_train's JSON lines, for the target rows")
    arguments = parser.parse_args()
    if "all" in arguments.case:
        arguments.case = list(CASES)
    return arguments


def case_batch(name, arguments):
    if arguments.batch is not None:
        return arguments.batch
    return 128 if name == "bit" else 512


def case_image_size(name, arguments):
    if arguments.image_size is not None:
        return arguments.image_size
    return 224 if name == "bit" else 32


def case_precisions(name, arguments):
    choice = arguments.precision or ("all" if name == "bit" else "both")
    if choice == "both":
        return ["tf32", "fp32"]
    if choice == "all":
        return list(PRECISIONS)
    return [choice]


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


def simclr_step(torch, modules, batch, side, device, generator, autocast):
    resnet, projection_head = modules
    encoder = resnet().to(device).train()
    head = projection_head(resnet.feature_dim).to(device).train()
    parameters = list(encoder.parameters()) + list(head.parameters())
    # LARS approximated: SGD with momentum, weight decay on everything (see the docstring).
    optimizer = torch.optim.SGD(parameters, lr=0.3 * batch / 256, momentum=0.9, weight_decay=1e-6)
    views = torch.randn(2 * batch, 3, side, side, device=device, generator=generator)
    state = {}

    def run():
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = torch_common.nt_xent(torch, head(encoder(views)), TEMPERATURE)
        loss.backward()
        optimizer.step()
        state["loss"] = loss

    return ("torch simclr step (NT-Xent, SGD for LARS)", f"2x{batch}x3x{side}x{side}", 2 * batch, run,
            lambda: state["loss"].item())


def supervised_step(torch, modules, batch, side, device, generator, autocast):
    resnet, _ = modules
    encoder = resnet().to(device).train()
    classifier = torch.nn.Linear(resnet.feature_dim, CIFAR_CLASSES).to(device)
    parameters = list(encoder.parameters()) + list(classifier.parameters())
    optimizer = torch.optim.SGD(parameters, lr=0.1, momentum=0.9, weight_decay=5e-4)
    images = torch.randn(batch, 3, side, side, device=device, generator=generator)
    labels = torch.randint(0, CIFAR_CLASSES, (batch,), device=device, generator=generator)
    state = {}

    def run():
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = torch.nn.functional.cross_entropy(classifier(encoder(images)), labels)
        loss.backward()
        optimizer.step()
        state["loss"] = loss

    return ("torch supervised step (cross-entropy, SGD) [baseline]", f"{batch}x3x{side}x{side}", batch, run,
            lambda: state["loss"].item())


def bit_step(torch, timm, batch, side, device, generator, autocast):
    """timm's BiT-R50x1 fine-tuned whole, head included, with BiT's SGD."""
    model = timm.create_model(BIT_MODEL, pretrained=False, num_classes=BIT_CLASSES).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=BIT_LEARNING_RATE, momentum=0.9, weight_decay=0.0)
    images = torch.randn(batch, 3, side, side, device=device, generator=generator)
    labels = torch.randint(0, BIT_CLASSES, (batch,), device=device, generator=generator)
    state = {}

    def run():
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = torch.nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        state["loss"] = loss

    return (f"torch bit step (timm {BIT_MODEL}, cross-entropy, SGD)", f"{batch}x3x{side}x{side}", batch, run,
            lambda: state["loss"].item())


def set_precision(torch, precision):
    """Sets the TF32 switches and returns the context the forward pass runs in."""
    torch.backends.cuda.matmul.allow_tf32 = precision != "fp32"
    torch.backends.cudnn.allow_tf32 = precision != "fp32"
    if precision == "bf16":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def measure(torch, build, warmup, steps):
    """(description, ms per step, peak bytes, last loss); the contender is freed afterwards.
    The timed steps are split into up to 5 samples; the median sample's ms per step counts."""
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


def case_of(record):
    """bench_train's case of a record: its "case" field, or from the name in older files."""
    if "case" in record:
        return record["case"]
    return next((name for name in CASES if record.get("name", "").startswith(name)), None)


def visrep_rates(path):
    """{(case, precision): images per second (views for SimCLR)} from bench_train's JSON lines."""
    return {(case_of(record), record.get("precision")): record["images_per_second"]
            for record in torch_common.read_json_lines(path) if case_of(record) and "images_per_second" in record}


def target_rows(arguments, rates, device_name, batch_of):
    """The target lines and records: visrep's rates (bench_train's file) over ours."""
    visrep = visrep_rates(arguments.visrep_json)
    lines, records = [], []

    def compare(case, visrep_key, torch_key, goal, what):
        if visrep_key not in visrep:
            lines.append(f"  {what}: no visrep {visrep_key[0]} {visrep_key[1]} row in {arguments.visrep_json}")
            return
        if torch_key not in rates:
            lines.append(f"  {what}: no torch {torch_key[0]} {torch_key[1]} row in this run")
            return
        ratio = visrep[visrep_key] / rates[torch_key]
        verdict = "met" if ratio >= goal else "NOT met"
        unit = "views/s" if visrep_key[0] == "simclr" else "img/s"
        lines.append(f"  {what}: visrep {visrep[visrep_key]:.0f} {unit} / torch {rates[torch_key]:.0f} img/s = "
                     f"{ratio:.2f} (>= {goal}: {verdict})")
        records.append({"name": f"target: visrep {visrep_key[0]} {visrep_key[1]} over torch {torch_key[0]} "
                                f"{torch_key[1]}", "shape": "", "ms": None, "peak_bytes": None, "device": device_name,
                        "case": case, "precision": visrep_key[1], "torch_precision": torch_key[1],
                        "batch": batch_of(case), "visrep_images_per_second": visrep[visrep_key],
                        "torch_images_per_second": rates[torch_key], "ratio": ratio, "goal": goal,
                        "met": ratio >= goal})

    if "simclr" in arguments.case:
        lines.append("target (simclr): visrep SimCLR views/s >= PyTorch eager supervised img/s at the same precision")
        for precision in case_precisions("simclr", arguments):
            if precision != "bf16":  # visrep has no bf16 training path
                compare("simclr", ("simclr", precision), ("supervised", precision), 1.0, precision)
    if "bit" in arguments.case:
        lines.append(f"target (bit): visrep BiT-R50x1 img/s >= {BIT_TARGET}x PyTorch eager timm {BIT_MODEL}")
        for precision in case_precisions("bit", arguments):
            if precision == "bf16":
                compare("bit", ("bit", "tf32"), ("bit", "bf16"), BIT_TARGET,
                        "visrep tf32 vs torch bf16 autocast (visrep has no bf16 training path)")
            else:
                compare("bit", ("bit", precision), ("bit", precision), BIT_TARGET, precision)
    return lines, records


def main():
    arguments = parse_arguments()
    torch = torch_common.import_torch_or_skip("torch_train")
    if torch is None:
        return 0
    timm = None
    if "bit" in arguments.case:
        try:
            import timm
        except ImportError:
            print("torch_train: bit case skipped: timm not installed")
            arguments.case = [name for name in arguments.case if name != "bit"]
            if not arguments.case:
                return 0
    device = torch.device("cuda")
    device_name = torch.cuda.get_device_name(0)
    generator = torch.Generator(device=device).manual_seed(7)
    torch.manual_seed(7)
    modules = build_modules(torch)
    cases = [name for name in CASES if name in arguments.case]

    def build(name, autocast):
        batch, side = case_batch(name, arguments), case_image_size(name, arguments)
        if name == "simclr":
            return simclr_step(torch, modules, batch, side, device, generator, autocast)
        if name == "supervised":
            return supervised_step(torch, modules, batch, side, device, generator, autocast)
        return bit_step(torch, timm, batch, side, device, generator, autocast)

    print(f"torch_train on {device_name}: PyTorch {torch.__version__} eager"
          f"{f', timm {timm.__version__}' if timm is not None else ''}, random inputs on the device; "
          f"{arguments.warmup} warm-up steps, median of {min(arguments.steps, 5)} samples over {arguments.steps} "
          "timed steps")
    for name in cases:
        network = f"timm {BIT_MODEL}, {BIT_CLASSES} classes" if name == "bit" else "ResNet-18 (CIFAR stem)"
        side = case_image_size(name, arguments)
        print(f"  {name}: {network}, batch {case_batch(name, arguments)}, {side}x{side}x3, "
              f"precisions {', '.join(case_precisions(name, arguments))}")
    if "simclr" in cases:
        print("NOTE: the SimCLR step uses SGD with momentum in place of LARS (no per-layer trust ratio).")
    sys.stdout.flush()

    rows, records = [], []
    rates = {}  # (case, precision): images (views) per second
    for precision in PRECISIONS:
        measured_cases = [name for name in cases if precision in case_precisions(name, arguments)]
        if not measured_cases:
            continue
        autocast = set_precision(torch, precision)
        measured = {}
        for name in measured_cases:
            measured[name] = measure(torch, lambda: build(name, autocast), arguments.warmup, arguments.steps)
            (_, _, images_per_step), ms, peak, _ = measured[name]
            rates[(name, precision)] = images_per_step / (ms / 1000.0)
            print(f"measured: {name} {precision}: {ms:.2f} ms/step, {rates[(name, precision)]:.0f} img/s, "
                  f"peak {peak / 2**20:.0f} MiB", file=sys.stderr)
        supervised_rate = rates.get(("supervised", precision))
        for name in TABLE_ORDER:
            if name not in measured:
                continue
            (title, shape, images_per_step), ms, peak, loss = measured[name]
            rate = rates[(name, precision)]
            ratio = rate / supervised_rate if name != "bit" and supervised_rate else None
            rows.append((title, precision, shape, f"{ms:.2f}", f"{rate:.0f}", "-" if ratio is None else f"{ratio:.2f}",
                         f"{peak / 2**20:.0f}", f"{loss:.4f}"))
            record = {"name": title, "shape": shape, "ms": ms, "peak_bytes": peak, "device": device_name,
                      "case": name, "precision": precision, "batch": case_batch(name, arguments),
                      "image_size": case_image_size(name, arguments), "images_per_step": images_per_step,
                      "images_per_second": rate, "last_loss": loss, "warmup_steps": arguments.warmup,
                      "timed_steps": arguments.steps, "torch_version": torch.__version__}
            if name == "bit":
                record.update({"model": f"timm {BIT_MODEL}", "classes": BIT_CLASSES, "timm_version": timm.__version__})
            else:
                record.update({"supervised_images_per_second": supervised_rate, "ratio_to_supervised": ratio,
                               "lars_approximated_by_sgd": name == "simclr"})
            records.append(record)
        rows.append(None)
        torch_common.write_json_lines(arguments.json, records)  # a run cut short keeps what it measured
    torch_common.print_table(("case", "precision", "shape", "ms/step", "img or views/s", "x supervised", "peak MiB",
                              "loss"), rows)
    if "simclr" in cases:
        print('img/s counts views for the SimCLR step (2 per image); "x supervised" is that rate over the supervised '
              "step's img/s in the same run.")

    if arguments.visrep_json and os.path.exists(arguments.visrep_json):
        lines, target_records = target_rows(arguments, rates, device_name, lambda name: case_batch(name, arguments))
        for line in lines:
            print(line)
        records.extend(target_records)
    elif arguments.visrep_json:
        print(f"no target rows: {arguments.visrep_json} does not exist (bench_train did not write it)")
    torch_common.write_json_lines(arguments.json, records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
