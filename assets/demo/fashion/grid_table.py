#!/usr/bin/env python3
"""Prints a `fixres grid` result as the README's Markdown table.

    grid_table.py GRID.json              top-1 as trained / after the fine-tune, each row's best
                                         K_test as trained in bold
    grid_table.py GRID.json GRID.json... the same grid trained with other seeds: the mean over the
                                         grids of each cell (as trained / fine-tuned, each row's
                                         best mean as trained in bold), then each cell's spread
                                         (max - min, in points)

Standard library only.
"""
import json
import sys


def load(path):
    with open(path) as f:
        grid = json.load(f)
    return grid, {(c["train_res"], c["test_res"]): c for c in grid["cells"]}


def pct(x):
    return f"{100 * x:.1f}"


def main(paths):
    grids = [load(p) for p in paths]
    first, cells = grids[0]
    for grid, _ in grids[1:]:
        same = [k for k in ("data", "arch", "epochs", "finetune_epochs") if grid[k] != first[k]]
        if same:
            sys.exit(f"the grids differ in {', '.join(same)}")
    train = sorted({k[0] for k in cells})
    test = sorted({k[1] for k in cells})

    def value(tr, te, key, reduce):
        values = [g[1][(tr, te)].get(key) for g in grids]
        return None if any(v is None for v in values) else reduce(values)

    def table(text):
        print("| K_train \\ K_test | " + " | ".join(map(str, test)) + " |")
        print("|---" * (len(test) + 1) + "|")
        for tr in train:
            print(f"| {tr} | " + " | ".join(text(tr, te) for te in test) + " |")

    def mean_cell(tr, te):
        mean = lambda v: sum(v) / len(v)
        best = max(test, key=lambda t: value(tr, t, "top1", mean))
        top1 = pct(value(tr, te, "top1", mean))
        text = f"**{top1}**" if te == best else top1
        tuned = value(tr, te, "finetuned_top1", mean)
        return text if tuned is None else f"{text} / {pct(tuned)}"

    table(mean_cell)
    if len(grids) > 1:
        spread = lambda v: max(v) - min(v)
        print()
        table(lambda tr, te: " / ".join(
            pct(v) for v in (value(tr, te, "top1", spread), value(tr, te, "finetuned_top1", spread)) if v is not None))
    seeds = ", ".join(str(g["seed"]) for g, _ in grids)
    print(f"\n(seed{'s' if len(grids) > 1 else ''} {seeds})")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
