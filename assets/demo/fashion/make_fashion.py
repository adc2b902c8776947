#!/usr/bin/env python3
"""Builds the Fashion demo ImageFolder from Debian's dataset-fashion-mnist (Zalando, MIT/Expat).

    apt-get install dataset-fashion-mnist && python3 assets/demo/fashion/make_fashion.py

Takes the FIRST 300 images of each class from the training set (train/) and the first 100 of each
class from the test set (val/), in file order (no selection by content), and writes them as
28x28 greyscale PNGs under train/<class>/ and val/<class>/. Needs numpy and Pillow.
"""
import gzip
import pathlib

import numpy as np
from PIL import Image

SOURCE = pathlib.Path("/usr/share/datasets/fashion-mnist")
HERE = pathlib.Path(__file__).resolve().parent
# The dataset's label order; folder names sort differently, which ImageFolder handles by name.
CLASSES = ["T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle_boot"]
PER_CLASS = {"train": 300, "val": 100}
FILES = {"train": "train", "val": "t10k"}


def read_idx(path: pathlib.Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def main() -> None:
    for split, stem in FILES.items():
        images = read_idx(SOURCE / f"{stem}-images-idx3-ubyte.gz")
        labels = read_idx(SOURCE / f"{stem}-labels-idx1-ubyte.gz")
        for c, name in enumerate(CLASSES):
            out = HERE / split / name
            out.mkdir(parents=True, exist_ok=True)
            picked = np.flatnonzero(labels == c)[: PER_CLASS[split]]
            for i in picked:
                Image.fromarray(images[i], mode="L").save(out / f"{stem}_{i:05d}.png", optimize=True)
        print(split, {name: PER_CLASS[split] for name in CLASSES})


if __name__ == "__main__":
    main()
