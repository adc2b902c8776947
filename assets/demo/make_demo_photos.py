#!/usr/bin/env python3
"""Builds the demo photos from public-domain / freely licensed sample photos that packages ship,
labelled only where the class is plain to see, and writes assets/demo/LICENSE.md:

- assets/demo/photos/<ImageNet class>/: folder names are torchvision's ImageNet-1k class names
  (`assets/models/imagenet_classes.txt`), so `fixres eval` scores the embedded model on them;
- assets/demo/own/{train,val}/<own class>/: the same photos (file copies) under a few coarse
  classes that are not ImageNet's ("mammal", "bird", ...), to train a classifier for your own
  classes offline. The split is fixed: within each own class, the files in sorted order (by file
  name) go 0 -> val, 1 -> train, 2 -> train, 3 -> val, ... (every third, starting with the first),
  so each class has at least one validation image and, from two images on, a training image.

Sources: PyPI packages (scikit-image, matplotlib) as installed, and Debian packages that this
script fetches itself with `apt-get download` into a temporary folder and unpacks with
`dpkg-deb -x` (no root needed, nothing installed): opencv-doc (OpenCV's samples/data) and
gcompris-qt-data (GCompris's activities, whose photos sit in Qt resource bundles, `.rcc`, each
with a README naming the author, source and licence of every file; read here).

A file over 1 MB would be downscaled with Pillow to a 640 px long side and saved as PNG (said so
in LICENSE.md); every file picked today is under that, so all are byte-for-byte the packages'.

Run (on Debian, after `apt-get update`; it downloads about 140 MB of .deb files, all deleted after):
      pip install scikit-image matplotlib && python3 assets/demo/make_demo_photos.py
"""
import importlib.metadata
import io
import os
import re
import shutil
import struct
import subprocess
import tempfile
import zlib

import matplotlib
import skimage
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
CLASSES = os.path.join(HERE, "..", "models", "imagenet_classes.txt")
SKIMAGE = os.path.join(os.path.dirname(skimage.__file__), "data")
MPL = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data")

OPENCV = "opencv-doc"  # OpenCV's samples/data, as /usr/share/doc/opencv-doc/examples/data
GCOMPRIS = "gcompris-qt-data"  # GCompris's activities, as /usr/share/gcompris-qt/rcc/*.rcc
OPENCV_DATA = "usr/share/doc/opencv-doc/examples/data"
OPENCV_LICENCE = (
    "Debian's opencv-doc copyright file: `Files: *` (which covers samples/data) is "
    "Apache-2.0 AND BSD-3-Clause, copyright Intel, Willow Garage, OpenCV Foundation and others; "
    "OpenCV names no photographer for this sample image"
)
MAX_BYTES = 1_000_000  # a larger file is downscaled to a 640 px long side, saved as PNG


def pip(package, folder, name):
    return ("pip", package, os.path.join(folder, name))


def opencv(name):
    return ("deb", OPENCV, f"{OPENCV_DATA}/{name}")


def gcompris(activity, path):
    """`path` under the activity's `resource/` folder in `<activity>.rcc`."""
    return ("rcc", activity, path)


# (ImageNet class as torchvision names it, source file, licence as the package states it). For
# GCompris the licence is its README's `License:` line for that file (checked when run); the
# README's author and source go into LICENSE.md with it.
PHOTOS = [
    ("tabby", pip("scikit-image", SKIMAGE, "chelsea.png"),
     "scikit-image: CC0 by the photographer (Stefan van der Walt)"),
    ("espresso", pip("scikit-image", SKIMAGE, "coffee.png"),
     "scikit-image: CC0 by the photographer (Rachel Michetti)"),
    ("military uniform", pip("matplotlib", MPL, "grace_hopper.jpg"),
     "matplotlib sample data: US Navy photograph, public domain"),
    ("orange", opencv("orange.jpg"), OPENCV_LICENCE),
    # OpenCV's baboon.jpg is left out: it is the USC-SIPI "Mandrill" test image, whose
    # original source and licence OpenCV does not give.
    # GCompris "Explore world animals" and "Explore farm animals"
    ("bison", gcompris("explore_world_animals", "animals/bison.webp"), "CC0-1.0"),
    ("Komodo dragon", gcompris("explore_world_animals", "animals/dragon.webp"), "Public Domain"),
    ("koala", gcompris("explore_world_animals", "animals/koala.webp"), "Public Domain"),
    ("Madagascar cat", gcompris("explore_world_animals", "animals/lemur.webp"), "CC0-1.0"),  # ring-tailed lemur
    ("giant panda", gcompris("explore_world_animals", "animals/panda.webp"), "Public Domain"),
    ("ice bear", gcompris("explore_world_animals", "animals/polar_bear.webp"), "Public Domain"),
    ("macaw", gcompris("explore_world_animals", "animals/scarlet_macaw.webp"), "CC0-1.0"),
    ("jaguar", gcompris("explore_world_animals", "animals/jaguar.webp"), "CC0-1.0"),
    ("German shepherd", gcompris("explore_farm_animals", "animals/dog.webp"), "Public Domain"),
    ("ox", gcompris("explore_farm_animals", "animals/cow.webp"), "Public Domain"),
    ("hog", gcompris("explore_farm_animals", "animals/pig.webp"), "Public Domain"),
    ("hen", gcompris("explore_farm_animals", "animals/chicken.webp"), "Public Domain"),
    # GCompris "Erase" (its README: "cropping, sharpening" of the source photos)
    ("cheetah", gcompris("erase", "cheetah.webp"), "CC-BY-SA-4.0"),
    ("lesser panda", gcompris("erase", "red_panda.webp"), "CC0-1.0"),
    ("gorilla", gcompris("erase", "gorilla.webp"), "CC-BY-SA-4.0"),
    ("African chameleon", gcompris("erase", "chamaeleon.webp"), "CC-BY-3.0"),  # Chamaeleo chamaeleon
    ("toucan", gcompris("erase", "toucan.webp"), "CC-BY-SA-4.0"),  # collared aracari, a toucan
    ("spoonbill", gcompris("erase", "spoonbills.webp"), "CC-BY-SA-4.0"),
    ("bee", gcompris("erase", "bee.webp"), "CC-BY-2.0"),
    # GCompris "Categorization"
    ("goldfish", gcompris("categorization", "images/fishes/fish25.webp"), "Public Domain"),
    ("anemone fish", gcompris("categorization", "images/fishes/fish9.webp"), "Public Domain"),
    ("puffer", gcompris("categorization", "images/fishes/fish28.webp"), "CC0-1.0"),
    ("baseball", gcompris("categorization", "images/others/baseball.webp"), "Public Domain"),
    ("volleyball", gcompris("categorization", "images/others/volleyball.webp"), "Public Domain"),
    ("frying pan", gcompris("categorization", "images/others/pan.webp"), "Public Domain"),
    ("pillow", gcompris("categorization", "images/others/pillow.webp"), "CC0-1.0"),
    ("hammer", gcompris("categorization", "images/tools/hammer1.webp"), "CC0-1.0"),
    ("hammer", gcompris("categorization", "images/tools/hammer5.webp"), "Public Domain"),
    ("screwdriver", gcompris("categorization", "images/tools/screwDriver1.webp"), "Public Domain"),
    ("screwdriver", gcompris("categorization", "images/tools/screwDriver2.webp"), "CC0-1.0"),
    ("palace", gcompris("categorization", "images/monuments/zimniPalace.webp"), "Public Domain"),
    ("triumphal arch", gcompris("categorization", "images/monuments/arcDeTriomphe.webp"), "Public Domain"),
    # GCompris "Explore monuments"
    ("castle", gcompris("explore_monuments", "germany/neuschwansteinCastle.webp"), "CC0-1.0"),
    ("church", gcompris("explore_monuments", "france/reimsCathedral.webp"), "Public Domain"),
    ("stupa", gcompris("explore_monuments", "india/greatStupa.webp"), "Public Domain"),
]

# Own classes (not ImageNet class names) -> the ImageNet folders whose photos they take.
OWN = {
    "mammal": ["tabby", "bison", "koala", "Madagascar cat", "giant panda", "ice bear", "jaguar",
               "German shepherd", "ox", "hog", "cheetah", "lesser panda", "gorilla"],
    "bird": ["macaw", "hen", "toucan", "spoonbill"],
    "fish": ["goldfish", "anemone fish", "puffer"],
    "tool": ["hammer", "screwdriver"],
    "building": ["palace", "triumphal arch", "castle", "church", "stupa"],
}


def val_split(i):
    """Every third file of an own class, in sorted order, starting with the first, is validation."""
    return i % 3 == 0


def fetch_debs(names, into):
    """`apt-get download` each package into `into`, unpacked there by `dpkg-deb -x`; their versions."""
    versions = {}
    for name in names:
        subprocess.run(["apt-get", "download", "-o", "APT::Sandbox::User=root", name], cwd=into, check=True,
                       stdout=subprocess.DEVNULL)
        (deb,) = [f for f in os.listdir(into) if f.startswith(name + "_") and f.endswith(".deb")]
        deb = os.path.join(into, deb)
        versions[name] = subprocess.run(["dpkg-deb", "-f", deb, "Version"], check=True, capture_output=True,
                                        text=True).stdout.strip()
        subprocess.run(["dpkg-deb", "-x", deb, os.path.join(into, name)], check=True)
    return versions


def read_rcc(path):
    """The files of a Qt resource bundle (rcc format 1-3, zlib or uncompressed): {path: bytes}."""
    b = open(path, "rb").read()
    assert b[:4] == b"qres", path
    version, tree, data, names = struct.unpack(">IIII", b[4:20])
    entry = 14 if version == 1 else 22
    files = {}

    def name(offset):
        (n,) = struct.unpack(">H", b[names + offset:names + offset + 2])
        return b[names + offset + 6:names + offset + 6 + 2 * n].decode("utf-16-be")

    def walk(i, prefix):
        e = tree + i * entry
        name_offset, flags = struct.unpack(">IH", b[e:e + 6])
        path = f"{prefix}/{name(name_offset)}" if i else ""
        if flags & 2:  # a folder
            count, first = struct.unpack(">II", b[e + 6:e + 14])
            for child in range(first, first + count):
                walk(child, path)
        else:
            (offset,) = struct.unpack(">I", b[e + 10:e + 14])
            (size,) = struct.unpack(">I", b[data + offset:data + offset + 4])
            raw = b[data + offset + 4:data + offset + 4 + size]
            assert not flags & 4, f"{path}: zstd-compressed, not read here"
            files[path.lstrip("/")] = zlib.decompress(raw[4:]) if flags & 1 else raw

    walk(0, "")
    return files


def gcompris_credits(files):
    """{path: {"Copyright", "License", "Source", ...}} from the READMEs in a GCompris bundle."""
    credits = {}
    for readme in [p for p in files if os.path.basename(p) == "README"]:
        folder = os.path.dirname(readme)
        for block in re.split(r"\n\s*\n", files[readme].decode("utf-8")):
            info, listed, in_files = {}, [], False
            for line in block.splitlines():
                m = re.match(r"^(Copyright|Licen[cs]e|Source|Comments?|Files):\s*(.*)$", line)
                if m:
                    key, value = m.group(1), m.group(2).strip()
                    key = "License" if key.startswith("Licen") else key.rstrip("s")
                    in_files = key == "File"
                    if in_files:
                        listed += value.split()
                    else:
                        info[key] = value
                elif in_files and line.strip():
                    listed.append(line.strip())
            for f in listed:
                credits[f"{folder}/{f}"] = info
    return credits


def place(data, name, out_dir):
    """Writes `data` as out_dir/name (or, over MAX_BYTES, a 640 px PNG); the file name and a note."""
    if len(data) <= MAX_BYTES:
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)
        return name, ""
    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("RGB")
        im.thumbnail((640, 640), Image.LANCZOS)
        name = os.path.splitext(name)[0] + ".png"
        im.save(os.path.join(out_dir, name))
    return name, (f" Downscaled by this script with Pillow to a 640 px long side, saved as PNG (the original"
                  f" is {len(data) / 1e6:.1f} MB).")


def main():
    imagenet = set(open(CLASSES).read().splitlines())
    out, own_out = os.path.join(HERE, "photos"), os.path.join(HERE, "own")
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(own_out, ignore_errors=True)
    placed = []  # (class, file name, path, licence line)
    with tempfile.TemporaryDirectory() as tmp:
        versions = fetch_debs([OPENCV, GCOMPRIS], tmp)
        bundles = {}
        for cls, src, licence in PHOTOS:
            assert cls in imagenet, f"{cls!r} is not an ImageNet-1k class name"
            kind = src[0]
            if kind == "pip":
                package, path = src[1], src[2]
                data, name = open(path, "rb").read(), os.path.basename(path)
                version = importlib.metadata.version(package)
                where = os.path.relpath(path, os.path.dirname(os.path.dirname(skimage.__file__)))
                line = f"PyPI package {package} {version}, `{where}`. Licence: {licence}."
            elif kind == "deb":
                data, name = open(os.path.join(tmp, src[1], src[2]), "rb").read(), os.path.basename(src[2])
                line = f"Debian package {src[1]} {versions[src[1]]}, `/{src[2]}`. Licence: {licence}."
            else:
                activity, path = src[1], src[2]
                if activity not in bundles:
                    files = read_rcc(os.path.join(tmp, GCOMPRIS, "usr/share/gcompris-qt/rcc", f"{activity}.rcc"))
                    bundles[activity] = (files, gcompris_credits(files))
                files, credits = bundles[activity]
                key = f"gcompris/src/activities/{activity}/resource/{path}"
                info = credits[key]
                stated = info.get("License")
                assert stated == licence, f"{key}: its README says {stated!r}, not {licence!r}"
                data, name = files[key], os.path.basename(path)
                note = f" GCompris's note: {info['Comment']}." if "Comment" in info else ""
                line = (f"Debian package {GCOMPRIS} {versions[GCOMPRIS]} (GCompris), `{activity}.rcc`: `{key}`. "
                        f"Licence: {licence}; author: {info['Copyright']}; source: <{info['Source']}>, "
                        f"as the README beside it in the bundle states.{note}")
            os.makedirs(os.path.join(out, cls), exist_ok=True)
            assert not os.path.exists(os.path.join(out, cls, name)), name
            name, note = place(data, name, os.path.join(out, cls))
            placed.append((cls, name, os.path.join(out, cls, name), line + note))

    lines = [
        "# Demo photos",
        "",
        "Made by `make_demo_photos.py` (its docstring says how to run it) from sample photos that",
        "packages ship; every file is the package's own, byte for byte, unless its entry says otherwise.",
        "Labels are ours, given only where the class is plain to see. GCompris's photos are its crops",
        "(and, where it says so, sharpening) of the Wikimedia Commons / publicdomainpictures.net photos",
        "named below; a CC-BY / CC-BY-SA file needs its author and licence kept with it (as here), and",
        "CC-BY-SA's share-alike applies to changed versions of that file. (Debian's copyright file for",
        "gcompris-qt-data gives GPL-3+ for the package as a whole; the README inside each bundle gives",
        "each photo's own licence, which is the one recorded here.)",
        "",
        f"## `photos/`: {len(placed)} photos, folders named by ImageNet-1k class",
        "",
    ]
    for cls, name, path, line in placed:
        with Image.open(path) as im:
            size = f"{im.width}x{im.height}"
        lines.append(f"- `{cls}/{name}` ({size}, {os.path.getsize(path) / 1024:.0f} KB): {line}")

    by_folder = {}
    for cls, name, path, _ in placed:
        by_folder.setdefault(cls, []).append((name, path))
    own_lines = []
    for own, folders in OWN.items():
        assert own not in imagenet, f"{own!r} is an ImageNet class name"
        members = sorted((name, cls, path) for cls in folders for name, path in by_folder[cls])
        assert len({m[0] for m in members}) == len(members), f"{own}: two files share a name"
        for i, (name, cls, path) in enumerate(members):
            split = "val" if val_split(i) else "train"
            os.makedirs(os.path.join(own_out, split, own), exist_ok=True)
            shutil.copyfile(path, os.path.join(own_out, split, own, name))
            own_lines.append(f"- `{split}/{own}/{name}`: a copy of `photos/{cls}/{name}` (its licence above)")
    counts = {own: [sum(1 for l in own_lines if l.startswith(f"- `{split}/{own}/")) for split in ("train", "val")]
              for own in OWN}
    n_train = sum(c[0] for c in counts.values())
    lines += [
        "",
        f"## `own/`: the same photos under {len(OWN)} classes of our own, {n_train} to train on, "
        f"{len(own_lines) - n_train} to validate",
        "",
        "Classes that are not ImageNet's, to show training a classifier for your own classes offline: "
        + ", ".join(f"`{own}` ({t} train, {v} val)" for own, (t, v) in counts.items()) + ".",
        "That is very little data, and unbalanced: it shows the workflow and says nothing about the",
        "accuracy that real data would give. Every photo here is also in `photos/` under its ImageNet",
        "class, and ImageNet-trained weights have seen those classes. Split: in each class, the files in",
        "sorted order go val, train, train, val, ... (every third, starting with the first).",
        "",
    ] + own_lines
    with open(os.path.join(HERE, "LICENSE.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
