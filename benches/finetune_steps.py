#!/usr/bin/env python3
"""Steps per second of the FixRes fine-tune's head (the SGD steps over cached trunk outputs, test
time augmentation) on each device: what keeping the head's parameters and momentum buffers on the
device, and reading the loss back only for progress, is about. Compares two builds when --before
names another fixres binary (e.g. one built from an earlier commit), in the same run.

  python3 benches/finetune_steps.py [--device gpu] [--epochs 3] [--res 24] [--before PATH]

Model and data: the Fashion demo's ResNet (resnet-tiny, K = 20) and its 3000 training images
(10 classes: a small classifier); `--weights`/`--data` take others (an ImageNet model's 1000×2048
classifier is where per-step copies cost most).
Needs: cargo build --release.
"""
import argparse
import json
import os
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION = os.path.join(ROOT, "assets", "demo", "fashion")


def steps_per_s(exe, a, out):
    cmd = [exe, "finetune", "--weights", a.weights, "--data", a.data, "--res", str(a.res),
           "--epochs", str(a.epochs), "--batch", str(a.batch), "--device", a.device,
           "--curve", str(a.res), "--out", out, "--json"]
    s = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    steps = a.epochs * -(-s["train_images"] // a.batch)
    # train_seconds runs from the start of the trunk cache to the last epoch; each epoch also
    # scores the validation images (through the head only).
    return steps / (s["train_seconds"] - (s.get("cache_seconds") or 0.0)), s["device"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="gpu")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--res", type=int, default=24)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--weights", default=os.path.join(FASHION, "grid", "models", "resnet-tiny_k20.safetensors"))
    ap.add_argument("--data", default=FASHION)
    ap.add_argument("--before")
    ap.add_argument("--fixres", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "fixres"))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        builds = [("before", a.before)] if a.before else []
        builds.append(("this build", a.fixres))
        rates = {}
        for name, exe in builds:
            rates[name], device = steps_per_s(exe, a, os.path.join(tmp, "out.safetensors"))
            print(f"{name:10s}: {rates[name]:7.2f} head steps/s  ({device['backend']}: {device['adapter']}, "
                  f"batch {a.batch}, K={a.res}, {a.epochs} epochs)")
        if a.before:
            print(f"this build / before: {rates['this build'] / rates['before']:.2f}×")


if __name__ == "__main__":
    main()
