#!/usr/bin/env python3
"""Sweeps of ImageNet's size (issue: datasets of ImageNet's size): on a generated 1000-class
folder of real photos (hard links of the demo's photos, named by ImageNet WordNet id so that the
embedded EfficientNet-Lite0 scores them), prints
  1. the time `fixres eval --until-ci W` takes to a ±W-point 95 % interval of top-1 at one
     resolution, against the full pass (and how many images each scored);
  2. the wall time of N concurrent shards (`--shard I/N`, then `fixres merge`) against one
     process over the same images, and their ratio (on 2 cores expect ~1×: the point is that the
     merge equals the single run and sharding costs no more than loading the model per shard);
  and checks that the merged report's counts equal the single run's.

  python3 benches/shards.py [--per-class 10] [--res 128] [--ci 2] [--shards 4] [--batch 32]

Needs: cargo build --release (uses target/release/fixres, or $FIXRES).
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(ROOT, "assets", "models", "efficientnet_lite0.safetensors")
PHOTOS = os.path.join(ROOT, "assets", "demo", "photos")
WNIDS = os.path.join(ROOT, "assets", "models", "imagenet_wnids.txt")


def fixres():
    if os.environ.get("FIXRES"):
        return os.environ["FIXRES"]
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "release", "fixres")


def make_folder(root, per_class):
    """1000 class folders named by ImageNet-1k WordNet id, filled with the demo's photos in turn
    (hard links): real photos, mostly not of their folder's class, so top-1 is low; the folder is
    about size (decoding, the model, the interval's convergence), not about the model's accuracy."""
    photos = []
    for c in sorted(os.listdir(PHOTOS)):
        for n in sorted(os.listdir(os.path.join(PHOTOS, c))):
            photos.append(os.path.join(PHOTOS, c, n))
    wnids = open(WNIDS).read().split()
    k = 0
    for wnid in wnids:
        os.makedirs(os.path.join(root, wnid))
        for j in range(per_class):
            src = photos[k % len(photos)]
            k += 1
            dst = os.path.join(root, wnid, f"{j:03d}{os.path.splitext(src)[1]}")
            try:
                os.link(src, dst)
            except OSError:
                os.symlink(src, dst)
    return len(wnids) * per_class


def run(args, **kw):
    started = time.perf_counter()
    out = subprocess.run(args, check=True, capture_output=True, text=True, **kw)
    return time.perf_counter() - started, out.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-class", type=int, default=10)
    ap.add_argument("--res", type=int, default=128)
    ap.add_argument("--ci", type=float, default=2.0)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--batch", type=int, default=32)
    a = ap.parse_args()
    exe = fixres()
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "imagenet-like")
        n = make_folder(data, a.per_class)
        base = [exe, "eval", "--weights", WEIGHTS, "--data", data, "--res", str(a.res),
                "--device", "cpu", "--batch", str(a.batch), "--json"]
        t_ci, out = run(base + ["--until-ci", str(a.ci)])
        ci = json.loads(out)["results"][0]
        whole_json = os.path.join(tmp, "whole.json")
        t_full, out = run(base + ["--out", whole_json])
        full = json.loads(out)["results"][0]
        print(f"{n} images in 1000 classes at K={a.res} (EfficientNet-Lite0, CPU, batch {a.batch})")
        print(f"  to ±{a.ci} points: {t_ci:7.1f} s, {ci['images']} images, top-1 {100 * ci['top1']:.2f} % "
              f"[{100 * ci['top1_ci'][0]:.2f}, {100 * ci['top1_ci'][1]:.2f}]")
        print(f"  full pass:     {t_full:7.1f} s, {full['images']} images, top-1 {100 * full['top1']:.2f} %")
        print(f"  time to the interval / full pass: {t_ci / t_full:.3f}")

        parts = os.path.join(tmp, "parts")
        os.makedirs(parts)
        started = time.perf_counter()
        procs = [subprocess.Popen(base[:-1] + ["--shard", f"{i}/{a.shards}", "--out",
                                               os.path.join(parts, f"eval-{i}.safetensors")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for i in range(1, a.shards + 1)]
        for p in procs:
            _, err = p.communicate()
            if p.returncode != 0:
                raise SystemExit(err.decode())
        t_shards = time.perf_counter() - started
        merged_json = os.path.join(tmp, "merged.json")
        t_merge, _ = run([exe, "merge", *[os.path.join(parts, f) for f in sorted(os.listdir(parts))],
                          "--out", merged_json])
        merged = json.load(open(merged_json))["results"][0]
        whole = json.load(open(whole_json))["results"][0]
        same = all(merged[k] == whole[k] for k in ["images", "top1", "top5", "top1_ci"])
        print(f"  {a.shards} concurrent shards: {t_shards:7.1f} s (+ merge {t_merge:.2f} s); "
              f"1 process: {t_full:7.1f} s; 1 process / shards: {t_full / (t_shards + t_merge):.2f}×")
        print(f"  merged counts equal the single run's: {same}")
        if not same:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
