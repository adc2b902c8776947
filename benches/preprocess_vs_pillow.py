#!/usr/bin/env python3
"""Preprocessing throughput: `fixres bench preprocess` beside Pillow + torchvision, same images,
same pipeline (decode, Resize(int(K/0.875)), CenterCrop(K), ToTensor, Normalize), same run.

  python3 benches/preprocess_vs_pillow.py [--data DIR] [--res 224] [--workers 2] [--seconds 10]

Without --data it builds an ImageFolder from tests/fixtures/photos (real JPEG and PNG photos).
Pillow runs in a multiprocessing pool of --workers processes (the usual DataLoader setup);
fixres uses --workers threads. Prints both figures and the ratio; --json prints one object.
Needs: pip install torch torchvision Pillow; the release binary (cargo build --release).
"""
import argparse
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

_transform = None


def _init(res, interp):
    global _transform
    from torchvision import transforms as T

    mode = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}[interp]
    _transform = T.Compose([
        T.Resize(int(res / 0.875), interpolation=mode), T.CenterCrop(res), T.ToTensor(),
        T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ])
    import torch

    torch.set_num_threads(1)


def _one(path):
    from PIL import Image

    with open(path, "rb") as f:
        img = Image.open(f).convert("RGB")
    return _transform(img).shape[0]


def pillow_images_per_s(files, res, interp, workers, seconds):
    with mp.Pool(workers, initializer=_init, initargs=(res, interp)) as pool:
        pool.map(_one, files[: workers * 2])  # warm the workers
        done, start = 0, time.perf_counter()
        while done == 0 or time.perf_counter() - start < seconds:
            done += len(pool.map(_one, files, chunksize=4))
        return done / (time.perf_counter() - start)


def list_files(data):
    out = []
    for cls in sorted(os.listdir(data)):
        for root, _, names in sorted(os.walk(os.path.join(data, cls), followlinks=True)):
            out += [os.path.join(root, n) for n in sorted(names) if n.lower().endswith(EXTENSIONS)]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data")
    ap.add_argument("--res", type=int, default=224)
    ap.add_argument("--interp", default="bilinear", choices=["bilinear", "bicubic"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--fixres", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "fixres"))
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = a.data
        if data is None:
            data = os.path.join(tmp, "photos")
            os.makedirs(os.path.join(data, "all"))
            photos = os.path.join(ROOT, "tests", "fixtures", "photos")
            for n in sorted(os.listdir(photos)):
                if n.lower().endswith(EXTENSIONS):
                    os.symlink(os.path.join(photos, n), os.path.join(data, "all", n))
        files = list_files(data)
        ours = json.loads(subprocess.run(
            [a.fixres, "bench", "preprocess", "--data", data, "--res", str(a.res), "--interp", a.interp,
             "--threads", str(a.workers), "--seconds", str(a.seconds), "--json"],
            check=True, capture_output=True, text=True).stdout)
        theirs = pillow_images_per_s(files, a.res, a.interp, a.workers, a.seconds)

    import PIL
    import torchvision

    result = {
        "images": len(files), "res": a.res, "interpolation": a.interp, "workers": a.workers,
        "fixres_images_per_s": ours["images_per_s"], "pillow_torchvision_images_per_s": theirs,
        "ratio": ours["images_per_s"] / theirs,
        "pillow": PIL.__version__, "torchvision": torchvision.__version__,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
    }
    if a.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"{len(files)} images at {a.res} ({a.interp}), {a.workers} workers:")
        print(f"  fixres               {ours['images_per_s']:8.1f} images/s")
        print(f"  Pillow+torchvision   {theirs:8.1f} images/s")
        print(f"  ratio                {result['ratio']:8.2f}x")


if __name__ == "__main__":
    sys.exit(main())
