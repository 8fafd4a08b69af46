"""Can a rough baseline be made useful? Si with the Tersoff potential (issue #19), two ideas measured.

1. ``switch``: Tersoff's cutoff switch widened (R, D in the potential file; the published Si.tersoff has R = 3.0,
   D = 0.2 A, so the switch runs from 2.8 to 3.2 A where liquid and amorphous Si have neighbours). A wider switch
   has smaller force spikes; the file stays a plain LAMMPS ``tersoff`` file, so fitting, ASE and the LAMMPS pair style
   use it unchanged. Each variant: the default fit (linear SO(3) 4/4, rcut 5, spread-normalised weights) of the hybrid,
   test MAE and the baseline check's 5-fold CV errors next to pure ML.
2. ``scale``: E = s * E_Tersoff + E_ML for s in a grid, scored by 5-fold CV on the training set. The targets of every s
   share the design rows, so one pass over the data serves the whole grid (the baseline check's second right-hand
   side, generalised). s = 0 is pure ML, s = 1 the usual hybrid.

    python benchmarks/rough_baseline.py [--shared ../shared] [--parts switch,scale] [--out benchmarks/results]

Writes ``rough_baseline.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import mlearn  # noqa: E402
from common import machine_info, write_json  # noqa: E402

from hybridpot.dataset import read_dataset  # noqa: E402
from hybridpot.descriptors import SO3  # noqa: E402
from hybridpot.design import DesignAssembler  # noqa: E402
from hybridpot.empirical import load  # noqa: E402
from hybridpot.fitting.assembly import Weights, accumulate, target_scales  # noqa: E402
from hybridpot.fitting.linear import cv_errors, kind_factors  # noqa: E402
from hybridpot.models.polynomial import PolynomialModel  # noqa: E402
from hybridpot.potential import HybridPotential  # noqa: E402
from hybridpot.prediction import BaselinePredictions, baseline_predictions  # noqa: E402

#: (R, D) of the switch variants, Angstrom; the first is the published file
SWITCHES = [(3.0, 0.2), (3.2, 0.4), (3.2, 0.55), (3.3, 0.5)]
SCALES = [0.0, 0.25, 0.5, 0.75, 1.0]
PUBLISHED_RD = "3.0  0.2  3.2394"


def part_switch(shared: Path, tmp: Path) -> dict:
    text = (shared / "data/potentials/Si.tersoff").read_text()
    if PUBLISHED_RD not in text:
        raise SystemExit("Si.tersoff does not hold the expected R, D entry")
    out = {}
    for R, D in SWITCHES:
        path = tmp / f"Si_R{R}_D{D}.tersoff"
        path.write_text(text.replace(PUBLISHED_RD, f"{R}  {D}  3.2394"))
        mlearn.BASELINES["Si"] = {"file": str(path)}  # absolute: make_config keeps it
        r = mlearn.run_one(shared, "Si", "linear", True, descriptor={}, fit={}, model_settings={}, baseline_mode="on")
        check = r["fit"]["baseline_check"]
        out[f"R={R} D={D}"] = {"test": r["test"], "baseline_only_test": r["baseline_only_test"],
                               "cv_hybrid": check["hybrid"], "cv_pure_ml": check["pure_ml"], "wall_seconds": r["wall_seconds"]}
        print(f"switch R {R} D {D}: test {r['test']['energy_mae_meV_atom']:.2f} meV/atom {r['test']['force_mae_eV_A']:.4f} eV/A; "
              f"baseline alone {r['baseline_only_test']['energy_mae_meV_atom']:.1f} / {r['baseline_only_test']['force_mae_eV_A']:.3f}; "
              f"CV hybrid {check['hybrid']['force_rmse_eV_A']:.3f}, pure ML {check['pure_ml']['force_rmse_eV_A']:.3f} eV/A", flush=True)
    return out


def part_scale(shared: Path) -> dict:
    train = read_dataset(shared / "data/mlearn/Si/train.xyz")
    bl = baseline_predictions(load(shared / "data/potentials/Si.tersoff"), train, progress=False)
    scaled = [BaselinePredictions(s * bl.energy, s * bl.forces, s * bl.virial) for s in SCALES]
    d = SO3(rcut=5.0, nmax=4, lmax=4, alpha=2.0, basis="lammps", kind="power", elements=["Si"])
    model = PolynomialModel(["Si"], d.n_features)
    pot = HybridPotential(None, d, model)
    weights = Weights().scaled(target_scales(train, scaled[0], ["Si"]))  # the pure-ML spreads, the same for every s
    folds = np.random.default_rng(0).permutation(len(train)) % 5
    parts, _ = accumulate(DesignAssembler(d, model, pot.types, pot.cutoff), train, scaled[0], weights, folds=folds,
                          by_kind=True, progress=False, extra_baselines=scaled[1:])
    out = {}
    for j, s in enumerate(SCALES):
        e = cv_errors(parts, 5, 1, None, kind_factors(weights, weights), weights, target=j)
        out[str(s)] = e
        print(f"scale s = {s}: CV energy {e['energy_rmse_meV_atom']:.2f} meV/atom, force {e['force_rmse_eV_A']:.4f} eV/A", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("HYBRIDPOT_SHARED", REPO.parent / "shared")))
    parser.add_argument("--parts", default="switch,scale")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    if not (args.shared / "data/mlearn/Si").is_dir():
        raise SystemExit(f"shared data not found at {args.shared} (pass --shared or set HYBRIDPOT_SHARED)")
    path = args.out / "rough_baseline.json"
    doc = json.loads(path.read_text()) if path.is_file() else {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if "switch" in args.parts:
            doc["switch"] = part_switch(args.shared, Path(tmp))
        if "scale" in args.parts:
            doc["scale"] = part_scale(args.shared)
    doc.update({"description": __doc__.split("\n\n")[0], "units": {"energy": "meV/atom", "force": "eV/A"},
                "machine": machine_info(), "runtime_seconds_this_run": round(time.perf_counter() - t0, 1)})
    write_json(path, doc)


if __name__ == "__main__":
    main()
