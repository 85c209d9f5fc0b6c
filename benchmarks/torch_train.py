#!/usr/bin/env python3
"""PyTorch eager's training steps matching bench_train's cases: the reference for its targets.

Run both in the same command. --case picks the steps, as in bench_train:

- simclr: 2B random 32x32x3 views on the device -> ResNet-18, CIFAR stem (3x3/1
  conv, no max-pool) -> SimCLR's 2-layer projection head (Linear 512->512 no bias, BN, ReLU,
  Linear 512->128 no bias, BN without shift) -> NT-Xent as google-research/simclr
  objective.py computes it (tau 0.5, the 2B x 2B logits materialised) -> backward -> LARS
  as simclr's lars_optimizer.py (below).
- bit-tiny: the README main job's step: 2B random 28x28x1 views -> bit-tiny, the smallest
  ResNetV2 (big_transfer's bit_pytorch/models.py written out here: StdConv2d with eps 1e-10,
  GroupNorm(8 groups, eps 1e-5), pre-activation bottlenecks, one per stage, base width 16,
  zero padding before the stem's max-pool; 512 features) -> the same 2-layer head to 128 ->
  NT-Xent (tau 0.1) -> backward -> LARS. B = 256. The first main job's step, kept as a case.
- main: today's main-job step: the same with bit-tiny of base width 32 (GroupNorm with 16
  groups, 1,024 features, head 1024 -> 1024 -> 128), tau 0.2 and B = 512.
- supervised (simclr's baseline): B images -> the same ResNet-18 (defined here, torchvision-
  free) -> Linear(512, 10) -> cross-entropy on random labels -> backward -> SGD (momentum
  0.9, weight decay 5e-4).
- bit: timm.create_model("resnetv2_50x1_bit", num_classes=1000), timm's own
  initialisation, B = 128 random 224x224x3 images -> cross-entropy on random labels ->
  backward -> SGD as the BiT-HyperRule has it (momentum 0.9, no weight decay, lr 0.003).
  Needs timm; without it this case prints "skipped: timm not installed".
The default runs simclr and supervised; "all" runs the five. LARS (simclr's lars_optimizer.py,
classic momentum; biases and norm parameters, dim <= 1, get neither weight decay nor the
trust ratio) is written out per parameter, as PyTorch code of SimCLR does it; lr 0.3 x B / 256,
momentum 0.9, weight decay 1e-6, eeta 0.001, as bench_train.

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

On the CPU (--device cpu: float32, time.perf_counter around samples, no peak memory) the
same steps run on torch.set_num_threads(--threads) threads, and --visrep BENCH_TRAIN makes
it the side-by-side benchmark: it runs bench_train with OMP_NUM_THREADS set to the same
count, alternating rounds (one bench_train run, then one sample of the same steps here) so
that load from elsewhere hits both alike, and prints both medians, the parameter counts of
both (they must match) and visrep's speed relative to PyTorch eager (torch ms / visrep ms):
  python3 benchmarks/torch_train.py --device cpu --case bit-tiny main --visrep build/benchmarks/bench_train
  python3 benchmarks/torch_train.py --device cpu --case simclr --batch 32 --visrep build/benchmarks/bench_train

Without PyTorch, or without a GPU for --device cuda, it says so and exits 0.
"""
import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch_common

CASES = ("simclr", "supervised", "bit-tiny", "main", "bit")  # in the order they are measured
TABLE_ORDER = ("supervised", "simclr", "bit-tiny", "main", "bit")  # the baseline before the step compared with it
PRECISIONS = ("tf32", "bf16", "fp32")  # in the order they are measured
CIFAR_CLASSES = 10
TEMPERATURE = 0.5
BIT_TINY_TEMPERATURE = 0.1  # bit-tiny: apps/visrep_simclr.cpp's when the case was written
MAIN_JOB_TEMPERATURE = 0.2  # main: apps/visrep_simclr.cpp's today
MAIN_JOB_BATCH = 512  # main: images per step in today's main job (apps/visrep_simclr.cpp)
MAIN_JOB_WIDTH = 32  # main: bit-tiny's base width in today's main job (apps/app_common.h)
MAIN_JOB_CASES = ("bit-tiny", "main")  # the steps on 28x28x1 views
MAIN_JOB_IMAGE_SIZE = 28  # Fashion-MNIST, one channel
BIT_MODEL = "resnetv2_50x1_bit"
BIT_CLASSES = 1000
BIT_LEARNING_RATE = 0.003  # BiT-HyperRule (bit_hyperrule.py)
BIT_TARGET = 1.5  # the BiT target: visrep img/s >= 1.5x PyTorch eager's


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs="+", choices=CASES + ("all",), default=["simclr", "supervised"],
                        help="steps to measure (several may be given); default: simclr and supervised")
    parser.add_argument("--batch", type=int, default=None,
                        help="images per step for every case (SimCLR: 2x as many views); default 512 (cpu: 32), "
                             "bit-tiny 256, main 512, bit 128 (cpu: 2)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="image height and width; default 32, bit-tiny and main 28, bit 224 (cpu: 64)")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="where the steps run")
    parser.add_argument("--threads", type=int, default=None,
                        help="cpu: torch.set_num_threads and bench_train's OMP_NUM_THREADS (default: OMP_NUM_THREADS, "
                             "else every core)")
    parser.add_argument("--visrep", default="",
                        help="cpu: bench_train's path; runs it and this side in alternating rounds and prints the "
                             "side-by-side table")
    parser.add_argument("--rounds", type=int, default=5, help="--visrep: alternating rounds; medians are reported")
    torch_common.add_common_arguments(parser, warmup=None)
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps per contender (per round with --visrep); default 20 (cpu: 5)")
    parser.add_argument("--precision", choices=["tf32", "fp32", "bf16", "both", "all"], default=None,
                        help="both: tf32 and fp32; all: tf32, bf16 and fp32; default: both, and all for bit")
    parser.add_argument("--visrep-json", default="", help="bench_train's JSON lines, for the target rows")
    arguments = parser.parse_args()
    if "all" in arguments.case:
        arguments.case = list(CASES)
    if arguments.visrep and arguments.device != "cpu":
        parser.error("--visrep runs the side-by-side benchmark on the CPU: add --device cpu")
    cpu = arguments.device == "cpu"
    if arguments.warmup is None:
        arguments.warmup = 2 if cpu else 5
    if arguments.steps is None:
        arguments.steps = 5 if cpu else 20
    if arguments.threads is None:
        arguments.threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or os.cpu_count()
    if arguments.threads < 1 or arguments.rounds < 1:
        parser.error(f"--threads ({arguments.threads}) and --rounds ({arguments.rounds}) must be at least 1")
    return arguments


def case_batch(name, arguments):
    """bench_train's case_batch."""
    if arguments.batch is not None:
        return arguments.batch
    cpu = arguments.device == "cpu"
    if name == "bit":
        return 2 if cpu else 128
    if name == "bit-tiny":
        return 256
    if name == "main":
        return MAIN_JOB_BATCH
    return 32 if cpu else 512


def case_image_size(name, arguments):
    """bench_train's case_image_size."""
    if arguments.image_size is not None:
        return arguments.image_size
    if name == "bit":
        return 64 if arguments.device == "cpu" else 224
    return MAIN_JOB_IMAGE_SIZE if name in MAIN_JOB_CASES else 32


def case_precisions(name, arguments):
    if arguments.device == "cpu":
        return ["fp32"]
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

    class StdConv2d(nn.Conv2d):
        """big_transfer's StdConv2d: the weight standardised per output channel (biased variance)
        on every forward pass."""

        def __init__(self, in_channels, out_channels, kernel, stride=1, padding=0, eps=1e-10):
            super().__init__(in_channels, out_channels, kernel, stride, padding, bias=False)
            self.eps = eps
            nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")

        def forward(self, x):
            variance, mean = torch.var_mean(self.weight, dim=[1, 2, 3], keepdim=True, unbiased=False)
            weight = (self.weight - mean) / torch.sqrt(variance + self.eps)
            return functional.conv2d(x, weight, None, self.stride, self.padding)

    class PreActBottleneck(nn.Module):
        """big_transfer's unit: relu(gn1(x)) feeds conv1 and the projection shortcut; the stride
        is on the 3x3 conv2."""

        def __init__(self, in_channels, mid_channels, out_channels, stride, groups):
            super().__init__()
            self.gn1 = nn.GroupNorm(groups, in_channels)
            self.conv1 = StdConv2d(in_channels, mid_channels, 1)
            self.gn2 = nn.GroupNorm(groups, mid_channels)
            self.conv2 = StdConv2d(mid_channels, mid_channels, 3, stride, 1)
            self.gn3 = nn.GroupNorm(groups, mid_channels)
            self.conv3 = StdConv2d(mid_channels, out_channels, 1)
            self.downsample = None
            if stride != 1 or in_channels != out_channels:
                self.downsample = StdConv2d(in_channels, out_channels, 1, stride)

        def forward(self, x):
            out = functional.relu(self.gn1(x))
            shortcut = x if self.downsample is None else self.downsample(out)
            out = self.conv1(out)
            out = self.conv2(functional.relu(self.gn2(out)))
            out = self.conv3(functional.relu(self.gn3(out)))
            return out + shortcut

    class BitTiny(nn.Module):
        """models::make_encoder("bit-tiny", width): ResNetV2 with one unit per stage, base width
        16 (or width), GroupNorm with half as many groups; 7x7/2 StdConv2d stem, zero pad 1, 3x3/2
        max-pool; the final GroupNorm + ReLU and the global average pool give 32 x width features
        (512 at 16)."""

        def __init__(self, in_channels=1, width=16, groups=8):
            super().__init__()
            self.stem = nn.Sequential(StdConv2d(in_channels, width, 7, 2, 3), nn.ConstantPad2d(1, 0.0),
                                      nn.MaxPool2d(3, 2))
            units, channels = [], width
            for stage in range(4):
                mid = width << stage
                units.append(PreActBottleneck(channels, mid, 4 * mid, 1 if stage == 0 else 2, groups))
                channels = 4 * mid
            self.units = nn.Sequential(*units)
            self.norm = nn.GroupNorm(groups, channels)
            self.feature_dim = channels

        def forward(self, x):
            x = functional.relu(self.norm(self.units(self.stem(x))))
            return torch.flatten(functional.adaptive_avg_pool2d(x, 1), 1)

    return ResNet18Cifar, projection_head, BitTiny


class Lars:
    """simclr's lars_optimizer.py (classic momentum) per parameter, as bench_train's LARS: weight
    decay joins the gradient, trust ratio eeta ||w|| / ||g|| (1 where either norm is 0), the
    learning rate inside the momentum buffer; parameters of dim <= 1 get neither."""

    def __init__(self, torch, parameters, lr, momentum=0.9, weight_decay=1e-6, eeta=0.001):
        self.torch, self.parameters = torch, list(parameters)
        self.lr, self.momentum, self.weight_decay, self.eeta = lr, momentum, weight_decay, eeta
        self.buffers = [torch.zeros_like(p) for p in self.parameters]

    def zero_grad(self, set_to_none=True):
        for parameter in self.parameters:
            parameter.grad = None

    def step(self):
        torch = self.torch
        with torch.no_grad():
            for parameter, buffer in zip(self.parameters, self.buffers):
                grad = parameter.grad
                if grad is None:
                    continue
                if parameter.dim() > 1:
                    grad = grad.add(parameter, alpha=self.weight_decay)
                    weight_norm, grad_norm = torch.linalg.vector_norm(parameter), torch.linalg.vector_norm(grad)
                    one = torch.ones_like(weight_norm)
                    trust = torch.where(weight_norm > 0,
                                        torch.where(grad_norm > 0, self.eeta * weight_norm / grad_norm, one), one)
                    scaled = grad * (trust * self.lr)
                else:
                    scaled = grad * self.lr
                buffer.mul_(self.momentum).add_(scaled)
                parameter.sub_(buffer)


def contrastive_step(torch, encoder, head, batch, side, channels, temperature, device, generator, autocast, title):
    """A SimCLR step of encoder + head on 2B random views: NT-Xent, backward, LARS."""
    encoder, head = encoder.to(device).train(), head.to(device).train()
    parameters = list(encoder.parameters()) + list(head.parameters())
    optimizer = Lars(torch, parameters, lr=0.3 * batch / 256)
    views = torch.randn(2 * batch, channels, side, side, device=device, generator=generator)
    state = {}

    def run():
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = torch_common.nt_xent(torch, head(encoder(views)), temperature)
        loss.backward()
        optimizer.step()
        state["loss"] = loss

    return (title, f"2x{batch}x{channels}x{side}x{side}", 2 * batch, run, lambda: state["loss"].item(),
            sum(p.numel() for p in parameters))


def simclr_step(torch, modules, batch, side, device, generator, autocast):
    resnet, projection_head, _ = modules
    return contrastive_step(torch, resnet(), projection_head(resnet.feature_dim), batch, side, 3, TEMPERATURE, device,
                            generator, autocast, "torch simclr step (NT-Xent, LARS)")


def bit_tiny_step(torch, modules, batch, side, device, generator, autocast, main):
    """bit-tiny (main false) or today's main-job step (main true)."""
    _, projection_head, bit_tiny = modules
    encoder = bit_tiny(width=MAIN_JOB_WIDTH, groups=MAIN_JOB_WIDTH // 2) if main else bit_tiny()
    title = ("torch main-job simclr step (bit-tiny width 32, NT-Xent 0.2, LARS)" if main
             else "torch bit-tiny simclr step (first main job: NT-Xent 0.1, LARS)")
    return contrastive_step(torch, encoder, projection_head(encoder.feature_dim), batch, side, 1,
                            MAIN_JOB_TEMPERATURE if main else BIT_TINY_TEMPERATURE, device, generator, autocast, title)


def supervised_step(torch, modules, batch, side, device, generator, autocast):
    resnet, _, _ = modules
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
            lambda: state["loss"].item(), sum(p.numel() for p in parameters))


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
            lambda: state["loss"].item(), sum(p.numel() for p in model.parameters()))


def set_precision(torch, precision):
    """Sets the TF32 switches and returns the context the forward pass runs in."""
    if precision == "fp32" and not torch.cuda.is_available():
        return contextlib.nullcontext
    torch.backends.cuda.matmul.allow_tf32 = precision != "fp32"
    torch.backends.cudnn.allow_tf32 = precision != "fp32"
    if precision == "bf16":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def cuda_ms(torch, run, count):
    """Milliseconds per call of `count` back-to-back calls, by CUDA events."""
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(count):
        run()
    stop.record()
    stop.synchronize()
    return start.elapsed_time(stop) / count


def measure(torch, build, warmup, steps, cuda=True):
    """(description, ms per step, peak bytes (None on the CPU), last loss, parameters); the
    contender is freed afterwards. The timed steps are split into up to 5 samples; the median
    sample's ms per step counts."""
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    name, shape, images_per_step, run, last_loss, parameters = build()
    for _ in range(warmup):
        run()
    if cuda:
        torch.cuda.synchronize()
    samples = min(steps, 5)
    per_step = []
    for sample in range(samples):
        count = steps // samples + (1 if sample < steps % samples else 0)
        per_step.append(cuda_ms(torch, run, count) if cuda else cpu_ms(run, count))
    peak = torch.cuda.max_memory_allocated() if cuda else None
    result = ((name, shape, images_per_step), statistics.median(per_step), peak, last_loss(), parameters)
    del run, last_loss
    return result


def cpu_ms(run, count):
    """Milliseconds per call of `count` back-to-back calls on the host clock (on the CPU every
    op has finished when it returns)."""
    start = time.perf_counter()
    for _ in range(count):
        run()
    return (time.perf_counter() - start) * 1000.0 / count


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


def run_bench_train(arguments, name, steps, warmup):
    """One bench_train run of case `name` on the CPU with OMP_NUM_THREADS = --threads: its JSON record."""
    with tempfile.TemporaryDirectory(prefix="torch_train-") as folder:
        path = os.path.join(folder, "bench_train.jsonl")
        command = [arguments.visrep, "--device", "cpu", "--case", name, "--batch", str(case_batch(name, arguments)),
                   "--image-size", str(case_image_size(name, arguments)), "--warmup", str(warmup), "--steps",
                   str(steps), "--json", path]
        environment = dict(os.environ, OMP_NUM_THREADS=str(arguments.threads))
        result = subprocess.run(command, env=environment, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"torch_train: {' '.join(command)} failed (exit code {result.returncode}):\n"
                             f"{result.stdout}{result.stderr}")
        found = [r for r in torch_common.read_json_lines(path) if r.get("case") == name]
        if not found:
            raise SystemExit(f"torch_train: bench_train wrote no {name} record to {path}")
        return found[0]


def side_by_side(torch, arguments, cases, build):
    """--visrep: for each case, --rounds rounds of one bench_train run (--warmup untimed, then
    --steps timed steps, its median sample) followed by one sample of the same steps here (the
    model built and warmed up once, before the first round); the medians of the rounds."""
    load_before = os.getloadavg()
    rows, records = [], []
    for name in cases:
        title, shape, images_per_step, run, last_loss, parameters = build(name, contextlib.nullcontext)
        for _ in range(arguments.warmup):
            run()
        visrep_ms, torch_ms, visrep_record = [], [], None
        for round_index in range(arguments.rounds):
            visrep_record = run_bench_train(arguments, name, arguments.steps, arguments.warmup)
            visrep_ms.append(float(visrep_record["ms"]))
            torch_ms.append(median_sample_ms(run, arguments.steps))
            print(f"round {round_index + 1}/{arguments.rounds}: {name}: visrep {visrep_ms[-1]:.1f} ms/step, "
                  f"torch {torch_ms[-1]:.1f} ms/step", file=sys.stderr)
        visrep_median, torch_median = statistics.median(visrep_ms), statistics.median(torch_ms)
        speed = torch_median / visrep_median
        visrep_parameters = visrep_record.get("parameters")
        same_network = visrep_parameters == parameters
        rows.append((name, shape, f"{parameters}" + ("" if same_network else f" vs {visrep_parameters} (DIFFER)"),
                     f"{torch_median:.1f}", f"{visrep_median:.1f}", f"{speed:.2f}x",
                     "met" if speed >= 1.0 else "NOT met"))
        records.append({"name": f"side by side: visrep {name} over torch eager", "case": name, "device": "cpu",
                        "shape": shape, "ms": visrep_median, "torch_ms": torch_median, "visrep_ms": visrep_median,
                        "visrep_ms_rounds": visrep_ms, "torch_ms_rounds": torch_ms, "speed_ratio": speed,
                        "goal": 1.0, "met": speed >= 1.0, "threads": arguments.threads,
                        "visrep_threads": visrep_record.get("threads"), "parameters": parameters,
                        "visrep_parameters": visrep_parameters, "batch": case_batch(name, arguments),
                        "images_per_step": images_per_step, "torch_last_loss": last_loss(),
                        "visrep_last_loss": visrep_record.get("last_loss"), "rounds": arguments.rounds,
                        "steps_per_round": arguments.steps, "torch_version": torch.__version__,
                        "peak_bytes": None})
        torch_common.write_json_lines(arguments.json, records)
        del run, last_loss
    load_after = os.getloadavg()
    print(f"side by side on the CPU, {arguments.threads} threads each (torch.set_num_threads, bench_train's "
          f"OMP_NUM_THREADS); medians of {arguments.rounds} alternating rounds of {arguments.steps} steps; "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    torch_common.print_table(("case", "shape", "parameters", "torch ms/step", "visrep ms/step",
                              "visrep speed (torch ms / visrep ms)", "target 1.0x"), rows)
    return 0


def median_sample_ms(run, steps):
    """The median, over up to 5 samples splitting `steps` timed steps, of ms per step on the
    host clock (bench_train's timing)."""
    samples = min(steps, 5)
    return statistics.median(cpu_ms(run, steps // samples + (1 if sample < steps % samples else 0))
                             for sample in range(samples))


def main():
    arguments = parse_arguments()
    torch = torch_common.import_torch_or_skip("torch_train", arguments.device)
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
    cuda = arguments.device == "cuda"
    device = torch.device(arguments.device)
    if cuda:
        device_name = torch.cuda.get_device_name(0)
    else:
        device_name = "cpu"
        torch.set_num_threads(arguments.threads)
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
        if name in MAIN_JOB_CASES:
            return bit_tiny_step(torch, modules, batch, side, device, generator, autocast, name == "main")
        return bit_step(torch, timm, batch, side, device, generator, autocast)

    where = device_name if cuda else f"the cpu ({arguments.threads} threads)"
    print(f"torch_train on {where}: PyTorch {torch.__version__} eager"
          f"{f', timm {timm.__version__}' if timm is not None else ''}, random inputs on the device; "
          f"{arguments.warmup} warm-up steps, median of {min(arguments.steps, 5)} samples over {arguments.steps} "
          "timed steps")
    for name in cases:
        network = {"bit": f"timm {BIT_MODEL}, {BIT_CLASSES} classes",
                   "bit-tiny": "bit-tiny (ResNetV2, 1 unit per stage, width 16) + 2-layer head",
                   "main": "bit-tiny (ResNetV2, 1 unit per stage, width 32) + 2-layer head"}.get(
                       name, "ResNet-18 (CIFAR stem)")
        side, channels = case_image_size(name, arguments), 1 if name in MAIN_JOB_CASES else 3
        print(f"  {name}: {network}, batch {case_batch(name, arguments)}, {side}x{side}x{channels}, "
              f"precisions {', '.join(case_precisions(name, arguments))}")
    sys.stdout.flush()
    if arguments.visrep:
        return side_by_side(torch, arguments, cases, build)

    rows, records = [], []
    rates = {}  # (case, precision): images (views) per second
    for precision in PRECISIONS:
        measured_cases = [name for name in cases if precision in case_precisions(name, arguments)]
        if not measured_cases:
            continue
        autocast = set_precision(torch, precision) if cuda else contextlib.nullcontext
        measured = {}
        for name in measured_cases:
            measured[name] = measure(torch, lambda: build(name, autocast), arguments.warmup, arguments.steps, cuda)
            (_, _, images_per_step), ms, peak, _, _ = measured[name]
            rates[(name, precision)] = images_per_step / (ms / 1000.0)
            print(f"measured: {name} {precision}: {ms:.2f} ms/step, {rates[(name, precision)]:.0f} img/s, "
                  f"peak {mebibytes(peak)} MiB", file=sys.stderr)
        supervised_rate = rates.get(("supervised", precision))
        for name in TABLE_ORDER:
            if name not in measured:
                continue
            (title, shape, images_per_step), ms, peak, loss, parameters = measured[name]
            rate = rates[(name, precision)]
            cifar_case = name in ("simclr", "supervised")
            ratio = rate / supervised_rate if cifar_case and supervised_rate else None
            rows.append((title, precision, shape, f"{ms:.2f}", f"{rate:.0f}", "-" if ratio is None else f"{ratio:.2f}",
                         mebibytes(peak), f"{loss:.4f}"))
            record = {"name": title, "shape": shape, "ms": ms, "peak_bytes": peak, "device": device_name,
                      "case": name, "precision": precision, "batch": case_batch(name, arguments),
                      "image_size": case_image_size(name, arguments), "images_per_step": images_per_step,
                      "images_per_second": rate, "last_loss": loss, "parameters": parameters,
                      "warmup_steps": arguments.warmup, "timed_steps": arguments.steps,
                      "torch_version": torch.__version__}
            if not cuda:
                record["threads"] = arguments.threads
            if name == "bit":
                record.update({"model": f"timm {BIT_MODEL}", "classes": BIT_CLASSES, "timm_version": timm.__version__})
            elif cifar_case:
                record.update({"supervised_images_per_second": supervised_rate, "ratio_to_supervised": ratio})
            records.append(record)
        rows.append(None)
        torch_common.write_json_lines(arguments.json, records)  # a run cut short keeps what it measured
    torch_common.print_table(("case", "precision", "shape", "ms/step", "img or views/s", "x supervised", "peak MiB",
                              "loss"), rows)
    if "simclr" in cases or any(name in cases for name in MAIN_JOB_CASES):
        print('img/s counts views for the SimCLR steps (2 per image); "x supervised" is that rate over the supervised '
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


def mebibytes(peak):
    return "-" if peak is None else f"{peak / 2**20:.0f}"


if __name__ == "__main__":
    sys.exit(main())
