"""Can a rough baseline be made useful? Si with the Tersoff potential (issue #19), two ideas measured.

1. ``switch``: Tersoff's cutoff switch widened (R, D in the potential file; the published Si.tersoff has R = 3.0,
   D = 0.2 A, so the switch runs from 2.8 to 3.2 A where liquid and amorphous Si have neighbours). A wider switch
   has smaller force spikes; the file stays a plain LAMMPS ``tersoff`` file, so fitting, ASE and the LAMMPS pair style
   use it unchanged. Each variant: the default fit (linear SO(3) 4/4, rcut 5, spread-normalised weights) of the hybrid,
   test MAE and the baseline check's 5-fold CV errors next to pure ML.
2. ``scale``: E = s * E_Tersoff + E_ML for s in a grid, scored by 5-fold CV on the training set. The targets of every s
   share the design rows, so one pass over the data serves the whole grid (the baseline check's second right-hand
   side, generalised). s = 0 is pure ML, s = 1 the usual hybrid. Each s is fitted at its full fit's ridge per row.
3. ``refit``: six Tersoff parameters (A, B, lambda1, lambda2 and the switch R, D) refitted with the residual (the
   ``lammps`` baseline type's ``refit``: BOBYQA within wide bounds, :data:`REFIT_BOUNDS`, the linear residual solved
   exactly at each trial), against pure ML and the published Tersoff hybrid with the same descriptor, weights and
   training structures: 5 random subsets of 10% and 25% of the training set ([fit] seed 0-4) and the whole set;
   ``--refit-starts N`` adds the refit from N starts (the published parameters and N - 1 random points in the bounds,
   ``[baseline] refit_starts``), the lowest training objective kept; ``--refit-choose cv`` adds the same starts with
   the start of the lowest 5-fold held-out error kept (``[baseline] refit_choose = "cv"``). ``--refit-system Li-meam``
   (or Si-sw) runs the same comparison with another baseline of benchmarks/lammps_baseline.py, its own refitted
   parameters within +-50 % (the data-efficiency claim of issue #19 for Li, whose baseline is LAMMPS's MEAM), and for
   Li also the variants with wider refits (:func:`wide_refits`: 11 MEAM library parameters; those and the screening
   Cmin, Cmax and the cutoff rc of a parameter file).

    python benchmarks/rough_baseline.py [--shared ../shared] [--parts switch,scale,refit] [--refit-seeds 5] [--refit-starts N]
        [--refit-choose cv] [--refit-settings benchmark|mlearn]
        [--refit-variants "NAME;..."] [--refit-fractions 0.1,0.25] [--refit-system Si-tersoff|Li-meam|Si-sw] [--refit-summarise]
        [--out benchmarks/results]

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

import lammps_baseline  # noqa: E402
import mlearn  # noqa: E402
from common import machine_info, write_json  # noqa: E402

from hybridpot.dataset import read_dataset  # noqa: E402
from hybridpot.descriptors import SO3  # noqa: E402
from hybridpot.design import DesignAssembler  # noqa: E402
from hybridpot.empirical import load  # noqa: E402
from hybridpot.fitting.assembly import Weights, accumulate, target_scales  # noqa: E402
from hybridpot.fitting.config import parse_config  # noqa: E402
from hybridpot.fitting.job import run_fit  # noqa: E402
from hybridpot.fitting.linear import cv_errors, kind_factors  # noqa: E402
from hybridpot.fitting.solver import QRAccumulator, solve  # noqa: E402
from hybridpot.models.polynomial import PolynomialModel  # noqa: E402
from hybridpot.potential import HybridPotential  # noqa: E402
from hybridpot.prediction import BaselinePredictions, baseline_predictions  # noqa: E402

#: (R, D) of the switch variants, Angstrom; the first is the published file
SWITCHES = [(3.0, 0.2), (3.2, 0.4), (3.2, 0.55), (3.3, 0.5)]
SCALES = [0.0, 0.25, 0.5, 0.75, 1.0]
PUBLISHED_RD = "3.0  0.2  3.2394"
_T = "Si.tersoff:Si.Si.Si."
#: the refitted Tersoff parameters and their bounds (the published values: A 3264.7 eV, B 95.373 eV, lambda1 3.2394 /A,
#: lambda2 1.3258 /A, R 3.0 A, D 0.2 A); wide enough that none of them ends at a bound on the whole training set
REFIT_BOUNDS = {_T + name: bounds for name, bounds in mlearn.REFITS["Si"]["refit_bounds"].items()}  # the learning curves' refit
REFIT_EVALS = mlearn.REFITS["Si"]["refit_max_evals"]
FRACTIONS = [0.1, 0.25, 1.0]
#: Li's MEAM library parameters that shape its densities, embedding and pair term (the accuracy part refits 4 of them)
MEAM_LIBRARY = [f"library.meam:Li.{p}" for p in ("alpha", "b0", "b1", "b2", "b3", "esub", "alat", "t1", "t2", "t3", "asub")]
#: a MEAM parameter file with LAMMPS's defaults written out (the same potential as none; refit can only move what a file
#: holds): the cutoff rc, its smoothing delr and the screening Cmin, Cmax
MEAM_PARAMETER_FILE = "rc = 4.0\ndelr = 0.1\nCmin(1,1,1) = 2.0\nCmax(1,1,1) = 2.8\n"
#: bounds of the screened refit where +-50 % is too narrow or crosses a limit (Cmin < Cmax; the rest: +-50 %)
MEAM_BOUNDS = {"library.meam:Li.alat": [0.5, 7.0], "library.meam:Li.esub": [0.1, 3.0], "library.meam:Li.b0": [0.1, 8.0],
               "library.meam:Li.b1": [0.0, 8.0], "library.meam:Li.b2": [0.0, 8.0], "library.meam:Li.b3": [0.0, 8.0],
               "library.meam:Li.asub": [0.0, 2.0], "Li.meam:Cmin(1,1,1)": [0.5, 2.7], "Li.meam:Cmax(1,1,1)": [2.75, 4.0],
               "Li.meam:rc": [3.5, 5.5]}


def wide_refits(system: str, spec: dict, tmp: Path) -> dict[str, dict]:
    """The wider refits of a system, as more variants: for Li's MEAM, its 11 library parameters (400 evaluations within
    +-50 %), and those with the screening and cutoff of a parameter file (:data:`MEAM_PARAMETER_FILE`, written into
    ``tmp``; 14 parameters within :data:`MEAM_BOUNDS`, 500 evaluations). Other systems: none."""
    if system != "Li-meam":
        return {}
    par = tmp / "Li.meam"
    par.write_text(MEAM_PARAMETER_FILE)
    screened = {**spec["baseline"], "pair_coeff": ["* * library.meam Li Li.meam Li"], "files": [*spec["baseline"]["files"], str(par)]}
    return {f"refitted hybrid, {len(MEAM_LIBRARY)} parameters": {**spec["baseline"], "refit": MEAM_LIBRARY, "refit_max_evals": 400},
            f"refitted hybrid, {len(MEAM_LIBRARY) + 3} parameters with screening": {
                **screened, "refit": MEAM_LIBRARY + ["Li.meam:Cmin(1,1,1)", "Li.meam:Cmax(1,1,1)", "Li.meam:rc"],
                "refit_bounds": MEAM_BOUNDS, "refit_max_evals": 500}}


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
    parts, _, _ = accumulate(DesignAssembler(d, model, pot.types, pot.cutoff), train, scaled[0], weights, folds=folds,
                          by_kind=True, progress=False, extra_baselines=scaled[1:])
    out = {}
    for j, s in enumerate(SCALES):
        full = solve(QRAccumulator.combine([(acc, 1.0) for _, acc in sorted(parts.items())]).target(j), n_free=1, posterior=False)
        e = cv_errors(parts, 5, 1, full.lam / full.n_rows, kind_factors(weights, weights), weights, target=j)
        out[str(s)] = e
        print(f"scale s = {s}: CV energy {e['energy_rmse_meV_atom']:.2f} meV/atom, force {e['force_rmse_eV_A']:.4f} eV/A", flush=True)
    return out


def refit_keys(system: str, shared: Path) -> dict:
    """The [baseline] co-fit keys of the refit part for a system of benchmarks/lammps_baseline.py: Si-tersoff's six
    parameters within :data:`REFIT_BOUNDS` (:data:`REFIT_EVALS` evaluations); any other system's own refitted
    parameters (``lammps_baseline.SYSTEMS``) within +-50 % (the default refit_range), 100 evaluations (its accuracy part's)."""
    if system == "Si-tersoff":
        return {"refit": list(REFIT_BOUNDS), "refit_bounds": REFIT_BOUNDS, "refit_max_evals": REFIT_EVALS}
    return {**lammps_baseline.system(system, shared)["refit"], "refit_max_evals": 100}


def part_refit(shared: Path, tmp: Path, seeds: int, starts: int = 1, names: list[str] | None = None,
               fractions: list[float] | None = None, earlier: list[dict] | None = None, choose_by_cv: bool = False,
               system: str = "Si-tersoff", settings: str = "benchmark") -> dict:
    """Pure ML, the published baseline's hybrid and the refitted one on the same subsets (``system``: one of
    benchmarks/lammps_baseline.py's, the Si Tersoff by default): test MAE per fit, the means per training share, on how
    many subsets each hybrid is at least as accurate as pure ML in both energy and force, and the refitted parameters.
    ``starts`` > 1 adds the variant "refitted hybrid, N starts" ([baseline] refit_starts: the refit from the published
    parameters and N - 1 random points, the lowest objective kept) and, with ``choose_by_cv``, "refitted hybrid, N
    starts, CV choice" (the start of the lowest held-out error kept). ``names``/``fractions``: run only these variants
    and shares (``names`` empty: none, only the means of ``earlier``'s fits again); the fits of ``earlier`` runs of the
    others are kept. ``settings``: "benchmark" (lammps_baseline.py's descriptor, default weights) or "mlearn" (the
    element's linear settings of benchmarks/mlearn.py: its CV-chosen descriptor and weights, those of its learning
    curves)."""
    spec = lammps_baseline.system(system, shared)
    descriptor, fit_keys = lammps_baseline.DESCRIPTOR, {}
    if settings == "mlearn":
        descriptor, fit_keys = mlearn.SETTINGS[spec["element"]]["descriptor"], mlearn.SETTINGS[spec["element"]]["fit"]
    keys = refit_keys(system, shared)
    refit = {**spec["baseline"], **keys}
    variants = {"pure ML": {"type": "none"}, "hybrid": spec["baseline"], "refitted hybrid": refit}
    variants.update(wide_refits(system, spec, tmp))
    if starts > 1:
        variants[f"refitted hybrid, {starts} starts"] = {**refit, "refit_starts": starts}
        if choose_by_cv:
            variants[f"refitted hybrid, {starts} starts, CV choice"] = {**refit, "refit_starts": starts, "refit_choose": "cv"}
    unknown = sorted(set(names or []) - set(variants))
    if unknown:
        raise SystemExit(f"--refit-variants {unknown}: not variants of {system} (with these options: {list(variants)})")
    run = [n for n in variants if names is None or n in names]
    shares = fractions or FRACTIONS
    fits: list[dict] = [f for f in earlier or [] if not (f["variant"] in run and f["train_fraction"] in shares)]
    for frac in shares:
        for seed in range(seeds if frac < 1.0 else 1):
            for name in run:
                raw = lammps_baseline._raw(spec["data"], variants[name], tmp / f"{system}-{name}-{frac}-{seed}", frac, fit={**fit_keys, "seed": seed},
                                           check_units=spec["check_units"], descriptor=descriptor)
                t0 = time.perf_counter()
                rep = run_fit(parse_config(raw, Path.cwd(), f"rough_baseline refit {system} {name}"), progress=False, log=lambda m: None).report
                row = {"variant": name, "train_fraction": frac, "seed": seed, "n_train": rep["data"]["train"]["n_used"],
                       "test": lammps_baseline._pick(rep["test"]), "seconds": round(time.perf_counter() - t0, 1)}
                if "cofit" in rep["fit"]:
                    c = rep["fit"]["cofit"]
                    row["refit"] = {"final": dict(zip(c["labels"], c["final"])), "at_bound": c["at_bound"],
                                    "objective": [c["objective_initial"], c["objective_final"]], "evaluations": c["evaluations"],
                                    "objective_per_start": [r["objective_final"] for r in c["starts"]], "best_start": c["best_start"],
                                    **({"held_out_rss_per_start": [r["cv_rss"] for r in c["starts"]]}
                                       if all("cv_rss" in r for r in c["starts"]) else {})}
                fits.append(row)
                print(f"refit part: {name}, {frac:.0%} seed {seed}: test {row['test']['energy_mae_meV_atom']:.2f} meV/atom "
                      f"{row['test']['force_mae_eV_A']:.4f} eV/A ({row['seconds']:.0f} s)", flush=True)
    means = {}
    present = list(dict.fromkeys(f["variant"] for f in fits))
    for frac in FRACTIONS:
        p = sorted((f for f in fits if f["variant"] == "pure ML" and f["train_fraction"] == frac), key=lambda f: f["seed"])
        for name in present:
            rows = sorted((f for f in fits if f["variant"] == name and f["train_fraction"] == frac), key=lambda f: f["seed"])
            if not rows:
                continue
            means[f"{name} {frac:g}"] = {k: float(np.mean([r["test"][k] for r in rows])) for k in ("energy_mae_meV_atom", "force_mae_eV_A")}
            if name != "pure ML" and [r["seed"] for r in rows] == [r["seed"] for r in p]:
                ahead = [a["test"]["energy_mae_meV_atom"] <= b["test"]["energy_mae_meV_atom"]
                         and a["test"]["force_mae_eV_A"] <= b["test"]["force_mae_eV_A"] for a, b in zip(rows, p)]
                means[f"{name} ahead of pure ML {frac:g}"] = {"subsets": len(ahead), "ahead": int(sum(ahead))}
                print(f"refit part, {frac:.0%}: {name} {means[f'{name} {frac:g}']}, pure ML {means[f'pure ML {frac:g}']}; "
                      f"ahead on {sum(ahead)} of {len(ahead)} subsets", flush=True)
    return {"system": system, "baseline": spec["description"], "refit": keys["refit"], "bounds": keys.get("refit_bounds", "+-50 %"),
            "variants": {n: {k: v for k, v in t.items() if k.startswith("refit") or k == "pair_coeff"} for n, t in variants.items() if "refit" in t},
            "max_evals": keys["refit_max_evals"], "descriptor": descriptor, "fit": fit_keys, "fits": fits, "means": means}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("HYBRIDPOT_SHARED", REPO.parent / "shared")))
    parser.add_argument("--parts", default="switch,scale,refit")
    parser.add_argument("--refit-seeds", type=int, default=5, help="refit: random subsets per training share below 100%%")
    parser.add_argument("--refit-starts", type=int, default=1, help="refit: also the variant with this many starts (> 1)")
    parser.add_argument("--refit-choose", default="objective", choices=["objective", "cv"],
                        help="refit: with cv, also the variant of --refit-starts starts chosen by held-out error")
    parser.add_argument("--refit-variants", default=None, help="refit: only these variants (separated by ';'); the JSON keeps "
                                                               "the others' fits")
    parser.add_argument("--refit-fractions", default=None, help="refit: only these training shares (e.g. 0.1,0.25)")
    parser.add_argument("--refit-summarise", action="store_true", help="refit: fit nothing, only the means and 'ahead' counts "
                                                                       "of the stored fits again (give the options of their run)")
    parser.add_argument("--refit-system", default="Si-tersoff", choices=[s for s in lammps_baseline.SYSTEMS if s != "CHO-reaxff"],
                        help="refit: the baseline (a system of lammps_baseline.py); written under 'refit' (Si-tersoff) or "
                             "'refit SYSTEM'")
    parser.add_argument("--refit-settings", default="benchmark", choices=["benchmark", "mlearn"],
                        help="refit: the descriptor and weights: lammps_baseline.py's (benchmark) or the element's linear "
                             "settings in mlearn.py (those of its learning curves); mlearn is written under 'KEY, mlearn settings'")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    if not all((args.shared / "data/mlearn" / el).is_dir() for el in {"Si", lammps_baseline.SYSTEMS[args.refit_system]["element"]}):
        raise SystemExit(f"shared data not found at {args.shared} (pass --shared or set HYBRIDPOT_SHARED)")
    path = args.out / "rough_baseline.json"
    doc = json.loads(path.read_text()) if path.is_file() else {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if "switch" in args.parts:
            doc["switch"] = part_switch(args.shared, Path(tmp))
        if "scale" in args.parts:
            doc["scale"] = part_scale(args.shared)
        if "refit" in args.parts:
            os.environ.setdefault("HYBRIDPOT_CACHE", str(Path(tmp) / "cache"))
            key = ("refit" if args.refit_system == "Si-tersoff" else f"refit {args.refit_system}") + (
                ", mlearn settings" if args.refit_settings == "mlearn" else "")
            doc[key] = part_refit(args.shared, Path(tmp), args.refit_seeds, args.refit_starts,
                                  [] if args.refit_summarise else args.refit_variants.split(";") if args.refit_variants else None,
                                  [float(x) for x in args.refit_fractions.split(",")] if args.refit_fractions else None,
                                  doc.get(key, {}).get("fits"), args.refit_choose == "cv", args.refit_system,
                                  args.refit_settings)
    doc.update({"description": __doc__.split("\n\n")[0], "units": {"energy": "meV/atom", "force": "eV/A"},
                "machine": machine_info(), "runtime_seconds_this_run": round(time.perf_counter() - t0, 1)})
    write_json(path, doc)


if __name__ == "__main__":
    main()
