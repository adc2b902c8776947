#!/usr/bin/env python3
"""The whole FixRes fine-tune job: `fixres finetune` beside PyTorch doing the same fine-tune
(official FixRes semantics: eval mode except the last BatchNorm; BN affine + classifier; SGD
momentum 0.9, weight decay 1e-4; test-time augmentation at K) on the same images, same device.
Prints both times (fine-tune loop only; decoding excluded on both sides) and the ratio.

  python3 benches/finetune_vs_pytorch.py [--device cpu|gpu] [--res 224] [--epochs 5] [--copies 8]

Model: the embedded EfficientNet-Lite0; data: the fixture photos copied --copies times.
Needs: pip install torch torchvision safetensors efficientnet-lite-pytorch; cargo build --release.
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time

import torch
from PIL import Image
from safetensors.torch import load_file
from torchvision import transforms as T

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = ["tabby", "espresso", "military uniform"]


def pytorch_seconds(files, labels, res, epochs, batch, device):
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    weights = load_file(os.path.join(ROOT, "assets", "models", "efficientnet_lite0.safetensors"))
    model.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in weights.items()})
    model.to(device).eval()
    model._bn1.train()
    for p in model.parameters():
        p.requires_grad = False
    params = [model._bn1.weight, model._bn1.bias, model._fc.weight, model._fc.bias]
    for p in params:
        p.requires_grad = True
    opt = torch.optim.SGD(params, lr=8e-3 * batch / 512, momentum=0.9, weight_decay=1e-4)
    t = T.Compose([T.Resize(int(res / 0.875)), T.CenterCrop(res), T.ToTensor(),
                   T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    x = torch.stack([t(Image.open(f).convert("RGB")) for f in files]).to(device)
    y = torch.tensor(labels, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(files), device=device)
        for i in range(0, len(files), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    sync()
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    ap.add_argument("--res", type=int, default=224)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--copies", type=int, default=8)
    ap.add_argument("--fixres", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "fixres"))
    a = ap.parse_args()
    photos = os.path.join(ROOT, "tests", "fixtures", "photos")
    names = sorted(n for n in os.listdir(photos) if not n.endswith(".md"))
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        files, labels = [], []
        for i, n in enumerate(names):
            d = os.path.join(data, CLASSES[i % 3])
            os.makedirs(d, exist_ok=True)
            for c in range(a.copies):
                shutil.copy(os.path.join(photos, n), os.path.join(d, f"{c}-{n}"))
                files.append(os.path.join(d, f"{c}-{n}"))
                labels.append([281, 967, 652][i % 3])  # tabby, espresso, military uniform
        out = json.loads(subprocess.run(
            [a.fixres, "finetune", "--weights", os.path.join(ROOT, "assets", "models", "efficientnet_lite0.safetensors"),
             "--data", data, "--res", str(a.res), "--epochs", str(a.epochs), "--batch", str(a.batch), "--device", a.device,
             "--curve", str(a.res), "--out", os.path.join(tmp, "ft.safetensors"), "--json"],
            check=True, capture_output=True, text=True).stdout)
        # fixres trains on 4/5 of the images (1/5 held out for validation): give PyTorch the same count.
        n = out["train_images"]
        theirs = pytorch_seconds(files[:n], labels[:n], a.res, a.epochs, a.batch, "cuda" if a.device == "gpu" else "cpu")
    ours = out["train_seconds"]
    print(f"FixRes fine-tune, EfficientNet-Lite0, {n} images, {a.epochs} epochs at {a.res}, batch {a.batch}, {a.device}:")
    print(f"  fixres ({out['device']['backend']})  {ours:8.2f} s")
    print(f"  PyTorch             {theirs:8.2f} s")
    print(f"  ratio (PyTorch / fixres)  {theirs / ours:6.2f}x")


if __name__ == "__main__":
    main()
