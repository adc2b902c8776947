#!/usr/bin/env python3
"""Writes imagenet_wnids.txt: the 1000 ImageNet-1k WordNet ids (synsets) in output order.

torchvision's and timm's ImageNet-1k models index their classes in the sorted order of these
ids (ImageFolder sorts the train/ folders, which are named by id), so the list read here is
checked to be sorted, of 1000 unique ids of the form n########, and against the class names
beside it (imagenet_classes.txt, torchvision's): each name must be one of its id's WordNet lemmas
(timm's imagenet_synset_to_lemma.txt), or start with the first of them where torchvision made two
equal names distinct ("crane bird", "maillot tank suit"). The source is timm's
timm/data/_info/imagenet_synsets.txt (Apache-2.0): from the installed package
(pip install timm), or from a wheel given on the command line
(pip download --no-deps timm -d /tmp/timm; make_wnids.py /tmp/timm/timm-*.whl).
"""

import os
import re
import sys
import zipfile

SOURCE = "timm/data/_info/imagenet_synsets.txt"
LEMMAS = "timm/data/_info/imagenet_synset_to_lemma.txt"
HERE = os.path.dirname(os.path.abspath(__file__))


def read_source(argv):
    """(ids file, lemma file, where they came from)."""
    if len(argv) > 1:
        with zipfile.ZipFile(argv[1]) as wheel:
            read = [wheel.read(name).decode("utf-8") for name in (SOURCE, LEMMAS)]
            return read[0], read[1], os.path.basename(argv[1])
    from importlib.metadata import version
    from importlib.resources import files

    root = files("timm")
    read = [root.joinpath(name.removeprefix("timm/")).read_text(encoding="utf-8") for name in (SOURCE, LEMMAS)]
    return read[0], read[1], f"timm {version('timm')}"


def check_against_names(wnids, lemma_text):
    lemmas = dict(line.split("\t", 1) for line in lemma_text.splitlines() if "\t" in line)
    with open(os.path.join(HERE, "imagenet_classes.txt"), encoding="utf-8") as f:
        names = [line.rstrip("\n") for line in f]
    assert len(names) == 1000, f"imagenet_classes.txt: {len(names)} names"
    for i, (wnid, name) in enumerate(zip(wnids, names)):
        of_id = [s.strip() for s in lemmas[wnid].split(",")]
        assert name in of_id or name.split()[0] == of_id[0], f"output {i}: '{name}' is not {wnid} ({of_id})"


def main():
    text, lemma_text, source = read_source(sys.argv)
    wnids = [line.strip() for line in text.splitlines() if line.strip()]
    assert len(wnids) == 1000, f"{len(wnids)} ids, not 1000"
    assert len(set(wnids)) == 1000, "ids repeat"
    assert wnids == sorted(wnids), "ids are not sorted (the output order is the sorted order)"
    bad = [w for w in wnids if not re.fullmatch(r"n\d{8}", w)]
    assert not bad, f"not WordNet ids: {bad[:3]}"
    check_against_names(wnids, lemma_text)
    out = os.path.join(HERE, "imagenet_wnids.txt")
    with open(out, "w", encoding="ascii", newline="\n") as f:
        f.write("\n".join(wnids) + "\n")
    print(f"{out}: 1000 ids from {source} ({SOURCE}), first {wnids[0]}, last {wnids[-1]}")


if __name__ == "__main__":
    main()
