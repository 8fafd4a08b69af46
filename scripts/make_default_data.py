"""Rebuild hybridpot/data/ (the bundled default data set) from ../shared/data.

A seeded, stratified subset of the mlearn Cu set (Zuo et al. 2020, BSD-3-Clause, see
hybridpot/data/README.md): 40 training structures and 12 test structures, plus the Mishin Cu EAM
file. Run once by a maintainer; the package never reads ../shared.

    python scripts/make_default_data.py [--shared ../shared]
"""

from __future__ import annotations

import argparse
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
from ase.io import read, write

TRAIN_COUNTS = {"aimd": 14, "elastic": 12, "vacancy": 8, "surface": 5, "ground_state": 1}
TEST_COUNTS = {"aimd": 4, "elastic": 5, "vacancy": 2, "surface": 1}


def pick(frames, counts, rng):
    groups = defaultdict(list)
    for k, f in enumerate(frames):
        groups[f.info["config_type"]].append(k)
    chosen = []
    for name, n in counts.items():
        chosen += sorted(rng.choice(groups[name], size=n, replace=False).tolist())
    return [frames[k] for k in sorted(chosen)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    args = parser.parse_args()
    shared = Path(args.shared) / "data"
    out = Path(__file__).resolve().parents[1] / "hybridpot" / "data"
    rng = np.random.default_rng(20261121)
    for split, counts in (("train", TRAIN_COUNTS), ("test", TEST_COUNTS)):
        frames = read(shared / "mlearn" / "Cu" / f"{split}.xyz", index=":")
        subset = pick(frames, counts, rng)
        write(out / f"Cu_{split}.xyz", subset, format="extxyz")
        print(f"{split}: {len(subset)} structures, {sum(len(a) for a in subset)} atoms")
    shutil.copy(shared / "potentials" / "Cu_mishin1.eam.alloy", out / "Cu_mishin1.eam.alloy")


if __name__ == "__main__":
    main()
