#!/usr/bin/env python3
"""A transfer's training speed: `fixres train --from --trainable head|last-stage|all` beside
PyTorch training the same part of the same network the same way (a new classifier for the
folder's classes; RandomResizedCrop + flip at K_train on the decoded images every step; SGD
momentum 0.9, weight decay 1e-4; `model.train()` for `all`, eval mode except the trained part
otherwise), on the same images and device. Prints training images per second of each and the
ratio (fixres / PyTorch; above 1 fixres is faster). Decoding is excluded on both sides; both run
the whole network every step (fixres's trunk cache needs `--da test`).

  python3 benches/transfer_vs_pytorch.py [--device cpu|gpu] [--res 128] [--epochs 1] [--per-class 40]

Model: the embedded EfficientNet-Lite0 (efficientnet-lite-pytorch, dropout and drop-connect 0, as
fixres trains it); data: the first --per-class training images of each Fashion demo class.
Needs: pip install torch torchvision safetensors efficientnet-lite-pytorch; cargo build --release.
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

import torch
from PIL import Image
from safetensors.torch import load_file
from torchvision import transforms as T

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(ROOT, "assets", "models", "efficientnet_lite0.safetensors")
FASHION = os.path.join(ROOT, "assets", "demo", "fashion", "train")
PARTS = ["head", "last-stage", "all"]


def folder(tmp, per_class):
    """train/ (the first images of each class) and val/ (the next 5): symlinks."""
    files, labels = [], []
    for label, c in enumerate(sorted(os.listdir(FASHION))):
        names = sorted(os.listdir(os.path.join(FASHION, c)))
        for split, chosen in [("train", names[:per_class]), ("val", names[per_class:per_class + 5])]:
            os.makedirs(os.path.join(tmp, split, c))
            for n in chosen:
                os.symlink(os.path.join(FASHION, c, n), os.path.join(tmp, split, c, n))
                if split == "train":
                    files.append(os.path.join(FASHION, c, n))
                    labels.append(label)
    return files, labels


def pytorch_images_per_s(part, files, labels, res, epochs, batch, device):
    from efficientnet_lite_pytorch import EfficientNet

    classes = max(labels) + 1
    model = EfficientNet.from_name("efficientnet-lite0", image_size=None, num_classes=classes,
                                   dropout_rate=0.0, drop_connect_rate=0.0)
    weights = {k: v.float() for k, v in load_file(WEIGHTS).items() if not k.startswith("_fc.")}
    model.load_state_dict(weights, strict=False)
    model.to(device)
    if part == "all":
        model.train()
        params = list(model.parameters())
    else:
        model.eval()
        # fixres's last stage of Lite: the trailing blocks of the last width, the head conv.
        trained = [model._bn1, model._fc] if part == "head" else [model._blocks[-1], model._conv_head, model._bn1, model._fc]
        for p in model.parameters():
            p.requires_grad = False
        params = []
        for m in trained:
            m.train()
            for p in m.parameters():
                p.requires_grad = True
                params.append(p)
    opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9, weight_decay=1e-4)
    augment = T.Compose([T.RandomResizedCrop(res), T.RandomHorizontalFlip(), T.ToTensor(),
                         T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    images = [Image.open(f).convert("RGB") for f in files]
    y_all = torch.tensor(labels)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    seen = 0
    for _ in range(epochs):
        perm = torch.randperm(len(images))
        for i in range(0, len(images), batch):
            idx = perm[i:i + batch]
            if len(idx) < 2:
                continue
            x = torch.stack([augment(images[j]) for j in idx]).to(device)
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y_all[idx].to(device)).backward()
            opt.step()
            seen += len(idx)
    sync()
    return seen / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    ap.add_argument("--fixres", default=os.path.join(target, "release", "fixres"))
    ap.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--res", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--per-class", type=int, default=40)
    a = ap.parse_args()
    torch_device = "cuda" if a.device == "gpu" else "cpu"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; EfficientNet-Lite0 at {a.res}, "
          f"batch {a.batch}, {a.epochs} epoch(s), device {a.device}")
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        files, labels = folder(data, a.per_class)
        for part in PARTS:
            out = os.path.join(tmp, f"{part}.safetensors")
            run = subprocess.run([a.fixres, "train", "--from", WEIGHTS, "--trainable", part, "--data", data,
                                  "--res", str(a.res), "--epochs", str(a.epochs), "--batch", str(a.batch),
                                  "--da", "train", "--device", a.device, "--curve", str(a.res), "--json",
                                  "--out", out], check=True, capture_output=True, text=True)
            s = json.loads(run.stdout)
            # train_seconds includes each epoch's validation (50 images): fixres's side is, if
            # anything, understated.
            ours = a.epochs * s["train_images"] / s["train_seconds"]
            theirs = pytorch_images_per_s(part, files, labels, a.res, a.epochs, a.batch, torch_device)
            print(f"{part:>10}: fixres {ours:6.1f} images/s ({s['device']['backend']}), "
                  f"PyTorch {theirs:6.1f} images/s: {ours / theirs:.2f}x")


if __name__ == "__main__":
    main()
