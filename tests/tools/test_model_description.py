#!/usr/bin/env python3
"""The "visrep.model" metadata of the files a visrep-simclr run writes, checked with the
standard library alone (no torch, no numpy, no safetensors package):

  - a short run (bit-tiny, the main job's CPU default, on a tiny MNIST-format dataset this
    script writes) leaves encoder.safetensors and checkpoint.safetensors;
  - both hold ONE "visrep.model" entry of the schema models/model_description.h states, the
    same encoder description in both, visrep's version, and the input preprocessing;
  - the encoder's tensor names, shapes and dtypes are exactly those timm's resnetv2.ResNetV2
    (PreActBottleneck, stem_type "fixed", num_classes 0) has for the recorded config, which
    is what the README's Python lines build: so its load_state_dict(strict=True) holds.

    test_model_description.py VISREP_SIMCLR_BINARY VERSION
"""
import json
import os
import random
import struct
import subprocess
import sys
import tempfile


def read_safetensors_header(path):
    """(tensors: name -> (dtype, shape), metadata) from a .safetensors file's JSON header."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    metadata = header.pop("__metadata__", {})
    return {name: (entry["dtype"], entry["shape"]) for name, entry in header.items()}, metadata


def write_mnist_split(root, prefix, images, labels, size):
    with open(os.path.join(root, f"{prefix}-images-idx3-ubyte"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, len(images), size, size))
        for image in images:
            f.write(bytes(image))
    with open(os.path.join(root, f"{prefix}-labels-idx1-ubyte"), "wb") as f:
        f.write(struct.pack(">II", 0x801, len(labels)))
        f.write(bytes(labels))


def write_tiny_dataset(root, size=16):
    """4 classes of noisy blobs in the four quadrants, 64 training and 32 test images."""
    rng = random.Random(5)
    os.makedirs(root)

    def image(label):
        top, left = (label // 2) * size // 2, (label % 2) * size // 2
        return [min(255, rng.randrange(40) + (180 if top <= r < top + size // 2 and left <= c < left + size // 2 else 0))
                for r in range(size) for c in range(size)]

    for prefix, count in (("train", 64), ("t10k", 32)):
        labels = [i % 4 for i in range(count)]
        write_mnist_split(root, prefix, [image(label) for label in labels], labels, size)


def timm_resnetv2_state(arch):
    """name -> shape of timm's resnetv2.ResNetV2(layers=units_per_stage,
    channels=stage_widths, stem_chs=base_width * width_factor, in_chans, num_classes=0,
    stem_type="fixed", preact=True): timm's module names, written from its source, not
    from visrep's."""
    state = {}
    stem = arch["base_width"] * arch["width_factor"]
    state["stem.conv.weight"] = [stem, arch["in_channels"], 7, 7]
    channels = stem
    for stage, (units, out) in enumerate(zip(arch["units_per_stage"], arch["stage_widths"])):
        mid = out // 4  # bottle_ratio 0.25
        for unit in range(units):
            prefix = f"stages.{stage}.blocks.{unit}."
            if unit == 0:  # channels or stride change: a projection of the pre-activated input
                state[prefix + "downsample.conv.weight"] = [out, channels, 1, 1]
            for i, (cin, cout, k) in enumerate(((channels, mid, 1), (mid, mid, 3), (mid, out, 1)), start=1):
                state[prefix + f"norm{i}.weight"] = [cin]
                state[prefix + f"norm{i}.bias"] = [cin]
                state[prefix + f"conv{i}.weight"] = [cout, cin, k, k]
            channels = out
    state["norm.weight"] = [channels]
    state["norm.bias"] = [channels]
    return state


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def main():
    simclr, version = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as directory:
        data, run = os.path.join(directory, "data"), os.path.join(directory, "run")
        write_tiny_dataset(data)
        command = [simclr, "--data", data, "--run-dir", run, "--arch", "bit-tiny", "--device", "cpu", "--epochs", "1",
                   "--batch-size", "32", "--linear-epochs", "1", "--workers", "1"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        check(result.returncode == 0, f"{' '.join(command)} exited {result.returncode}:\n{result.stderr[-3000:]}")

        tensors, metadata = read_safetensors_header(os.path.join(run, "encoder.safetensors"))
        check("visrep.model" in metadata, f"no visrep.model entry in encoder.safetensors: {sorted(metadata)}")
        description = json.loads(metadata["visrep.model"])
        check(description["visrep_version"] == version, f"version {description['visrep_version']} != {version}")
        check(list(description["modules"]) == ["encoder"], f"modules {list(description['modules'])}")
        arch = description["modules"]["encoder"]
        expected_fields = {"family": "resnet_v2", "units_per_stage": [1, 1, 1, 1], "depth": 14, "base_width": 32,
                           "width_factor": 1, "stage_widths": [128, 256, 512, 1024], "gn_groups": 16,
                           "std_conv_eps": 1e-10, "in_channels": 1, "feature_dim": 1024, "classes": 0}
        check(arch == expected_fields, f"the encoder's description {arch} != {expected_fields}")
        # The input its features are evaluated at: visrep-simclr evaluates bit-tiny's 16 px views'
        # encoder on the whole images at 1.5x, 24 px.
        preprocessing = description["input"]
        check(preprocessing == {"channels": 1, "height": 24, "width": 24, "value_range": [0.0, 1.0], "mean": [0.0],
                                "std": [1.0]}, f"input {preprocessing}")

        expected = timm_resnetv2_state(arch)
        shapes = {name: shape for name, (_, shape) in tensors.items()}
        check(set(shapes) == set(expected),
              f"names timm lacks: {sorted(set(shapes) - set(expected))}; names the file lacks: "
              f"{sorted(set(expected) - set(shapes))}")
        for name, shape in expected.items():
            check(shapes[name] == shape, f"{name}: {shapes[name]} in the file, {shape} in timm's ResNetV2")
        check({dtype for dtype, _ in tensors.values()} == {"F32"}, "the encoder's tensors are not all F32")

        # The checkpoint: the same key and schema, the encoder described alike, the head too.
        _, checkpoint_metadata = read_safetensors_header(os.path.join(run, "checkpoint.safetensors"))
        checkpoint = json.loads(checkpoint_metadata["visrep.model"])
        check(checkpoint["modules"]["encoder"] == arch, "the checkpoint describes another encoder")
        check(checkpoint["input"] == preprocessing and checkpoint["visrep_version"] == version,
              "the checkpoint's input or version differ")
        head = checkpoint["modules"]["head"]
        check(head["family"] == "ProjectionHead" and head["linear_layers"][0]["in"] == 1024,
              f"the head's description {head}")
    print(f"ok: {len(expected)} tensors match timm's resnetv2 names and shapes; description {json.dumps(arch)}")


if __name__ == "__main__":
    main()
