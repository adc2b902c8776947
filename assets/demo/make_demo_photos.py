#!/usr/bin/env python3
"""Builds assets/demo/photos/<ImageNet class>/ from public-domain / CC0 sample photos that PyPI
packages ship, labelled only where the ImageNet class is plain to see.

Run:  pip install scikit-image matplotlib && python3 assets/demo/make_demo_photos.py
"""
import os
import shutil

import matplotlib
import skimage

HERE = os.path.dirname(os.path.abspath(__file__))
SKIMAGE = os.path.join(os.path.dirname(skimage.__file__), "data")
MPL = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data")

# (ImageNet class as torchvision names it, source file, licence as the package states it)
PHOTOS = [
    ("tabby", os.path.join(SKIMAGE, "chelsea.png"), "scikit-image: CC0 by the photographer (Stefan van der Walt)"),
    ("espresso", os.path.join(SKIMAGE, "coffee.png"), "scikit-image: CC0 by the photographer (Rachel Michetti)"),
    ("military uniform", os.path.join(MPL, "grace_hopper.jpg"), "matplotlib sample data: US Navy photograph, public domain"),
]


def main():
    out = os.path.join(HERE, "photos")
    shutil.rmtree(out, ignore_errors=True)
    lines = ["# Demo photos\n", "Made by `../make_demo_photos.py`; folder names are ImageNet-1k classes.\n"]
    for cls, src, licence in PHOTOS:
        os.makedirs(os.path.join(out, cls))
        shutil.copy(src, os.path.join(out, cls, os.path.basename(src)))
        lines.append(f"- `{cls}/{os.path.basename(src)}`: {licence}")
    with open(os.path.join(HERE, "LICENSE.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
