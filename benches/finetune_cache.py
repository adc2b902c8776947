#!/usr/bin/env python3
"""FixRes fine-tune with test-time augmentation, 10 epochs: the trunk computed once and cached
vs recomputed every epoch (`--no-trunk-cache`), same data, same run. Prints both times and the
ratio (goal >= 5x).

  python3 benches/finetune_cache.py [--weights W] [--res 160] [--epochs 10] [--copies 4]

Default model: the embedded EfficientNet-Lite0; data: the fixture photos, each copied --copies
times into the demo's ImageNet class folders (labels do not matter for timing).
Needs: cargo build --release.
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=os.path.join(ROOT, "assets", "models", "efficientnet_lite0.safetensors"))
    ap.add_argument("--res", type=int, default=160)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--fixres", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "fixres"))
    a = ap.parse_args()
    photos = os.path.join(ROOT, "tests", "fixtures", "photos")
    classes = ["tabby", "espresso", "military uniform"]
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        names = sorted(n for n in os.listdir(photos) if not n.endswith(".md"))
        for i, n in enumerate(names):
            d = os.path.join(data, classes[i % len(classes)])
            os.makedirs(d, exist_ok=True)
            for c in range(a.copies):
                shutil.copy(os.path.join(photos, n), os.path.join(d, f"{c}-{n}"))
        times = {}
        for label, extra in [("cached", []), ("recomputed", ["--no-trunk-cache"])]:
            out = subprocess.run(
                [a.fixres, "finetune", "--weights", a.weights, "--data", data, "--res", str(a.res), "--epochs",
                 str(a.epochs), "--batch", "16", "--device", "cpu", "--out", os.path.join(tmp, f"{label}.safetensors"),
                 "--curve", str(a.res), "--json", *extra], check=True, capture_output=True, text=True).stdout
            # The fine-tune itself (trunk caching included), not decoding or the final curve.
            times[label] = json.loads(out)["train_seconds"]
    print(f"{len(names) * a.copies} images, {a.epochs} epochs at {a.res}:")
    print(f"  trunk cached      {times['cached']:8.2f} s")
    print(f"  trunk recomputed  {times['recomputed']:8.2f} s")
    print(f"  ratio             {times['recomputed'] / times['cached']:8.2f}x")


if __name__ == "__main__":
    main()
