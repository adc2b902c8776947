#!/usr/bin/env python3
"""A sweep against the forward pass alone: `fixres eval` over 8 resolutions (decoding once,
resampling per resolution, overlapped with the model) beside `fixres bench forward` at the same
resolutions and batch, in the same run. Prints, per resolution, the model's images/s inside the
sweep and alone, and for the whole sweep the ratio
    (time the forward passes alone would take) / (the sweep's wall time),
which is 1 when decoding and resampling are entirely hidden behind the model.

  python3 benches/sweep_vs_forward.py [--copies 4] [--res 128,160,192,224,256,288,320,352] [--batch 8]

Data: the demo photos (39 real photos, 0.7 megapixels on average, up to 1920×1080), each
hard-linked --copies times; model: the embedded EfficientNet-Lite0; CPU backend.
Needs: cargo build --release.
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--res", default="128,160,192,224,256,288,320,352")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--fixres", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "fixres"))
    a = ap.parse_args()
    res = [int(r) for r in a.res.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        n = 0
        for c in sorted(os.listdir(PHOTOS)):
            os.makedirs(os.path.join(tmp, c))
            for f in sorted(os.listdir(os.path.join(PHOTOS, c))):
                for k in range(a.copies):
                    os.link(os.path.join(PHOTOS, c, f), os.path.join(tmp, c, f"{k}-{f}"))
                    n += 1
        out = subprocess.run([a.fixres, "bench", "forward", "--weights", WEIGHTS, "--res", a.res,
                              "--batch", str(a.batch), "--device", "cpu", "--json"],
                             check=True, capture_output=True, text=True).stdout
        alone = {r["res"]: r["images_per_s"] for r in json.loads(out)["results"]}
        started = time.perf_counter()
        out = subprocess.run([a.fixres, "eval", "--weights", WEIGHTS, "--data", tmp, "--res", a.res,
                              "--batch", str(a.batch), "--device", "cpu", "--json"],
                             check=True, capture_output=True, text=True).stdout
        wall = time.perf_counter() - started
        swept = {r["res"]: r["images_per_s"] for r in json.loads(out)["results"]}
    print(f"sweep of {n} photos at {len(res)} resolutions, EfficientNet-Lite0, CPU, batch {a.batch}")
    for r in res:
        print(f"  K={r:<4} model in the sweep {swept[r]:6.1f} images/s, alone {alone[r]:6.1f} "
              f"({swept[r] / alone[r]:.2f}×)")
    ideal = sum(n / alone[r] for r in res)
    print(f"  the forward passes alone: {ideal:.1f} s; the sweep (loading, decoding, resampling "
          f"included): {wall:.1f} s; ratio {ideal / wall:.2f}")


if __name__ == "__main__":
    main()
