#!/usr/bin/env python3
"""Checks `fixres preprocess` against PIL + torchvision on every image under a folder, side by side.

    python3 scripts/compare_with_torchvision.py DIR [--res 224,64] [--interp bilinear,bicubic,lanczos]
                                                [--crop-ratio 0.875] [--odd-images]

For each image, resolution K and filter: the reference is torchvision's test transform on
`PIL.Image.open(f).convert('RGB')` (what ImageFolder's loader gives): Resize(int(K / crop_ratio))
+ CenterCrop(K); ours is the `u8` tensor `fixres preprocess` writes. Prints every image that
differs (largest difference, share of differing values) or that one side cannot read, and exits 1
if any did. `--odd-images` first writes a set of awkward images into DIR (every format and mode
ImageFolder accepts, JPEG subsamplings, progressive, 1-pixel-wide, palette, 16-bit, alpha, ...).

Needs: pip install torch torchvision Pillow numpy safetensors; a release build
(`cargo build --release`; the binary is found through CARGO_TARGET_DIR, else target/).
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image
from safetensors.numpy import load_file
from torchvision import transforms as T

EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def binary():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    path = os.path.join(target, "release", "fixres")
    if not os.path.exists(path):
        sys.exit(f"{path}: not built (cargo build --release)")
    return path


def write_odd_images(out):
    rng = np.random.default_rng(1)
    os.makedirs(out, exist_ok=True)

    def photo(w, h):
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([x * 255 / max(w - 1, 1), y * 255 / max(h - 1, 1), ((x + y) % 64) * 4], -1)
        return np.clip(base + rng.integers(0, 60, (h, w, 3)), 0, 255).astype(np.uint8)

    for i, (w, h) in enumerate([(500, 375), (333, 517), (1, 300), (300, 1), (7, 9), (257, 256), (2000, 90)]):
        a = photo(w, h)
        im = Image.fromarray(a)
        p = f"{out}/s{i}_{w}x{h}"
        im.save(f"{p}_q90.jpg", quality=90)
        if min(w, h) >= 16:
            im.save(f"{p}_444.jpg", quality=95, subsampling=0)
            im.save(f"{p}_422.jpg", quality=85, subsampling=1)
            im.save(f"{p}_progressive.jpg", quality=80, progressive=True)
            im.convert("L").save(f"{p}_grey.jpg")
            im.save(f"{p}_lossy.webp", quality=80)
        im.save(f"{p}.png")
        im.convert("LA").save(f"{p}_la.png")
        im.convert("1").save(f"{p}_1bit.png")
        im.convert("P", palette=Image.ADAPTIVE, colors=17).save(f"{p}_palette.png")
        im.save(f"{p}.bmp")
        im.save(f"{p}.ppm")
        im.convert("L").save(f"{p}.pgm")
        im.save(f"{p}.tif")
        im.convert("CMYK").save(f"{p}_cmyk.tif")
        im.save(f"{p}_lossless.webp", lossless=True)
        rgba = Image.fromarray(np.dstack([a, rng.integers(0, 256, (h, w), dtype=np.uint8)]))
        rgba.save(f"{p}_rgba.png")
        rgba.save(f"{p}_rgba.webp", lossless=True)
        Image.fromarray(a[..., 0].astype(np.uint16) * 257 + 3).save(f"{p}_16bit.png")
        exif = Image.Exif()
        exif[0x0112] = 6  # "rotate 90": ImageFolder's loader ignores it, so must we
        im.save(f"{p}_exif6.jpg", exif=exif.tobytes())
        im.save(f"{p}_png_named.jpg", format="PNG")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--res", default="224,64")
    ap.add_argument("--interp", default="bilinear,bicubic")
    ap.add_argument("--crop-ratio", type=float, default=0.875)
    ap.add_argument("--odd-images", action="store_true")
    args = ap.parse_args()
    if args.odd_images:
        write_odd_images(args.dir)
    fixres = binary()
    modes = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC,
             "lanczos": T.InterpolationMode.LANCZOS}
    files = sorted(
        os.path.join(d, f) for d, _, fs in os.walk(args.dir) for f in fs if f.lower().endswith(EXTENSIONS)
    )
    settings = [(int(k), i) for k in args.res.split(",") for i in args.interp.split(",")]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "input.safetensors")
        for path in files:
            try:
                image = Image.open(path).convert("RGB")
            except Exception as e:  # noqa: BLE001 - any reason PIL gives
                image = e
            for res, interp in settings:
                run = subprocess.run(
                    [fixres, "preprocess", "--image", path, "--res", str(res), "--interp", interp,
                     "--crop-ratio", str(args.crop_ratio), "--out", out],
                    capture_output=True, text=True)
                if isinstance(image, Exception) or run.returncode != 0:
                    if isinstance(image, Exception) and run.returncode != 0:
                        continue  # both refuse it
                    failures += 1
                    why = f"PIL: {image}" if isinstance(image, Exception) else f"fixres: {run.stderr.strip()}"
                    print(f"{path}: only one side reads it ({why})")
                    break
                reference = T.Compose([T.Resize(int(res / args.crop_ratio), interpolation=modes[interp]),
                                       T.CenterCrop(res)])(image)
                expected = np.asarray(reference).transpose(2, 0, 1).astype(int)
                got = load_file(out)["u8"].astype(int)
                if got.shape != expected.shape:
                    failures += 1
                    print(f"{path} K={res} {interp}: shape {got.shape} vs torchvision {expected.shape}")
                    continue
                diff = np.abs(got - expected)
                if diff.max() > 0:
                    failures += 1
                    print(f"{path} K={res} {interp}: max difference {diff.max()}, "
                          f"{100 * np.mean(diff > 0):.3f} % of values differ")
    print(f"{len(files)} images x {len(settings)} settings: "
          + ("all identical to torchvision" if failures == 0 else f"{failures} differ"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
