#!/usr/bin/env python3
"""Forward-pass throughput: `fixres bench forward` beside PyTorch eager, same models, same batch,
same resolutions, same machine, same run. Prints images/s for both and the ratio.

  python3 benches/forward_vs_pytorch.py [--device cpu|gpu] [--res 224,320] [--batch 8] [--seconds 5]
                                        [--models resnet50,efficientnet-lite0,...]

Models (random weights: speed does not depend on their values), one of each family:
resnet50, efficientnet-lite0 (the embedded one, its ImageNet weights), and with --models zoo (or
by name) torchvision's efficientnet_b0, mobilenet_v3_large, regnet_y_400mf, convnext_tiny and
timm's efficientnet_b0, mobilenetv3_large_100, deit_small_patch16_224.
--device gpu runs fixres on wgpu and PyTorch on CUDA.
Needs: pip install torch torchvision timm safetensors (efficientnet-lite-pytorch for
efficientnet-lite0); cargo build --release.
"""
import argparse
import json
import os
import platform
import subprocess
import tempfile
import time

import torch
import torchvision
from safetensors.torch import load_file, save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def torch_images_per_s(model, res, batch, seconds, device):
    x = torch.randn(batch, 3, res, res, device=device)
    with torch.inference_mode():
        model(x)
        if device == "cuda":
            torch.cuda.synchronize()
        passes, start = 0, time.perf_counter()
        while passes == 0 or time.perf_counter() - start < seconds:
            model(x)
            if device == "cuda":
                torch.cuda.synchronize()
            passes += 1
    return passes * batch / (time.perf_counter() - start)


# One model of each family the tool loads.
ZOO = ["resnet50", "tv_efficientnet_b0", "tv_mobilenet_v3_large", "tv_regnet_y_400mf", "tv_convnext_tiny",
       "timm_efficientnet_b0", "timm_mobilenetv3_large_100", "timm_deit_small_patch16_224"]


def build(name, tmp):
    """The model `name` in eval mode and the safetensors file fixres loads it from."""
    torch.manual_seed(0)
    if name == "efficientnet-lite0":
        from efficientnet_lite_pytorch import EfficientNet

        lite = EfficientNet.from_name("efficientnet-lite0", image_size=None)
        path = os.path.join(ROOT, "assets", "models", "efficientnet_lite0.safetensors")
        lite.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in load_file(path).items()})
        return lite.eval(), path
    if name == "resnet50":
        model = torchvision.models.resnet50()
    elif name.startswith("tv_"):
        model = getattr(torchvision.models, name[3:])()
    elif name.startswith("timm_"):
        import timm

        model = timm.create_model(name[5:], pretrained=False)
    else:
        raise SystemExit(f"unknown model {name}")
    path = os.path.join(tmp, f"{name}.safetensors")
    meta = {"architecture": name[5:]} if name.startswith("timm_") else {}
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path, metadata=meta)
    return model.eval(), path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    ap.add_argument("--res", default="224,320")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--fixres", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "fixres"))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--models", default="resnet50,efficientnet-lite0",
                    help="comma-separated names (see above), or 'zoo' for one of every family")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tdev = "cuda" if a.device == "gpu" else "cpu"
    resolutions = [int(r) for r in a.res.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        names = ZOO if a.models == "zoo" else a.models.split(",")
        for name in names:
            model, path = build(name, tmp)
            ours = json.loads(subprocess.run(
                [a.fixres, "bench", "forward", "--weights", path, "--res", a.res, "--batch", str(a.batch),
                 "--device", a.device, "--seconds", str(a.seconds), "--json"],
                check=True, capture_output=True, text=True).stdout)
            model = model.to(tdev)
            for k, mine in zip(resolutions, ours["results"]):
                theirs = torch_images_per_s(model, k, a.batch, a.seconds, tdev)
                results.append({"model": name, "res": k, "fixres_images_per_s": mine["images_per_s"],
                                "pytorch_images_per_s": theirs, "ratio": mine["images_per_s"] / theirs,
                                "fixres_device": ours["device"]})
    summary = {"batch": a.batch, "device": a.device, "torch": torch.__version__, "threads": a.threads,
               "machine": f"{platform.machine()}, {os.cpu_count()} cores"
               + (f", {torch.cuda.get_device_name()}" if tdev == "cuda" else ""),
               "date": time.strftime("%Y-%m-%d"), "results": results}
    if a.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"forward, batch {a.batch}, {summary['machine']}, torch {torch.__version__}:")
        for r in results:
            print(f"  {r['model']:<20} K={r['res']:<4} fixres {r['fixres_images_per_s']:8.1f}  "
                  f"PyTorch {r['pytorch_images_per_s']:8.1f} images/s  ratio {r['ratio']:.2f}x")


if __name__ == "__main__":
    main()
