"""Uncertainty benchmark on the mlearn data: calibration, gamma separation, fallback, NVE, pooled calibration.

1. Calibration (Cu with Cu_mishin1.eam.alloy, Si with Si.tersoff; linear SO(3) nmax = lmax = 4,
   quadratic nmax = lmax = 3; the kernel model as the mlearn table fits it (benchmarks/mlearn.py SETTINGS: the Cu
   hybrid, Si pure ML on the bispectrum); fitted with ``hybridpot fit`` on the full published training set):
   on the published test set, the fraction of test energies (total, eV) and force components
   inside the predicted 68 % and 95 % intervals (+-1 and +-1.96 std; force components of the
   elastic cells, zero by symmetry for every model, left out), the RMS of the z-scores
   (1 if calibrated), and the Spearman rank correlation between predicted std and actual |error|,
   for the four noise models ("evidence": the fit's noise precision through the row weights;
   "residual": the training RMS error of each kind; "cv": the 5-fold cross-validated RMS error of
   each kind; "local", the default: "cv" with each structure's energy noise the held-out RMS error of its
   nearest training structures) and, for "local", the energy intervals calibrated on the training
   structures' held-out errors (split-conformal quantiles, ``energy_interval``).
2. Gamma separation (Cu): a linear hybrid fitted on the training structures of kind aimd (solid
   snapshots only), elastic and vacancy. The mlearn Cu AIMD comes in three groups (about 300 K,
   1100 K and a liquid near 2 x Tm, told apart by the potential energy: the liquid lies > 0.3
   eV/atom above the ground state); the liquid group and the surfaces are left out of this fit.
   Per-atom and per-structure max gamma of the held-out test structures of the training kinds
   and of structures not in training: the mlearn surfaces and liquid snapshots (train + test,
   DFT), a 2000 K liquid (Langevin MD with the Mishin EAM) and strongly compressed fcc (lattice
   x0.90, x0.88, x0.86; the training set reaches x0.965). Control: the same with the DFT liquid
   in the training set, where the 2000 K liquid is interpolation. Plot: ``uq_gamma.png``.
3. Fallback: errors of the baseline alone (+ per-element reference energies), the hybrid and the
   hybrid with fallback (several bands of the smooth grade, scope "atom" and "structure") on
   in-distribution and OOD structures: (a) real DFT labels (mlearn surfaces and liquid), (b) a
   controlled stand-in where Cu_zhou.eam.alloy plays DFT (the same structures relabelled by it,
   the hybrid refitted to those labels) so that the compressed and the EAM-liquid structures
   have labels too, plus large cells (2x2x2 held-out AIMD snapshots, 851 atoms) with a small void
   (the atoms within 3 A of the centre removed): a local defect in a big cell, where a
   structure-wide switch is coarse. For every group and setting: whether the energy MAE and the
   force MAE are at most those of the baseline alone.
4. NVE through the fallback band: velocity Verlet (108 atoms, lattice x0.96 and hot, so that the
   atoms' grades move through the band [1, 2]), total-energy drift and maximum deviation for dt = 1
   and 0.5 fs, without fallback, with the atom scope (band [1, 2]) and with the structure scope
   (bands [1, 2] and [2, 5]; also 0.25 fs for [2, 5]), the fraction of atom-steps whose residual
   factor is inside (0, 1), inside (0.01, 0.99) and 0, and the largest force that comes from the
   switch's gradient.

5. Pooled calibration (``--parts pooled``, cases ``--pooled Cu:linear,Cu:kernel``): the coverage of the energy
   intervals (the default noise model's) over an element's training and test structures pooled, each predicted once by the fit on the other 4 of 5
   random outer folds: ~290 structures, so a coverage has a sampling error of ~0.03 instead of the test set's ~0.09.

    python benchmarks/uq.py [--shared ../shared] [--out benchmarks/results] [--parts calibration,gamma,fallback,nve,pooled]

Single-threaded torch (2-core machine shared with other jobs). Writes ``uq.json`` and
``uq_gamma.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from ase import Atoms, units
from ase.build import bulk
from ase.io import read, write
from scipy.stats import spearmanr

from mlearn import make_config as mlearn_config  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from hybridpot.active import fit_potential, label
from hybridpot.calculator import Calculator
from hybridpot.dataset import Dataset, from_frames
from hybridpot.empirical import load as load_empirical
from hybridpot.fitting.config import FitConfig, parse_config
from hybridpot.fitting.job import run_fit
from hybridpot.metrics import error_metrics
from hybridpot.potential import HybridPotential
from hybridpot.prediction import predict
from hybridpot.uq import SCOPES, disable_fallback, enable_fallback, extrapolation_grades, fallback_switches

REPO = Path(__file__).resolve().parents[1]
BASELINES = {"Cu": "Cu_mishin1.eam.alloy", "Si": "Si.tersoff"}
#: model -> ([descriptor] keys, [model] keys besides the type); "nn committee" is COMMITTEE
MODELS = {"linear": ({"nmax": 4, "lmax": 4}, {}), "quadratic": ({"nmax": 3, "lmax": 3}, {}), "kernel": None}
#: the kernel rows calibrate the sparse GP of the mlearn table as it is published there (benchmarks/mlearn.py SETTINGS:
#: its descriptor, weights and model), hybrid or pure ML: the better kernel row of that table (Si: the Tersoff hybrid
#: kernel is 3x worse than pure ML, benchmarks/README.md "Kernel model")
KERNEL_HYBRID = {"Cu": True, "Si": False}
IN_DIST = ("aimd", "elastic", "vacancy", "ground_state")
#: fallback bands (lower, upper) of the smooth grade ||x A^-1||_16
BANDS = [(0.5, 1.0), (1.0, 1.5), (1.0, 2.0), (1.5, 3.0), (2.0, 5.0), (1.0, 10.0), (2.0, 20.0)]
#: potential energy per atom above the ground state (eV) beyond which an AIMD snapshot is liquid
LIQUID_DE = 0.3
#: the NVE runs through the fallback band: (scope, band, timesteps in fs); None: no fallback
NVE_RUNS = [(None, None, (1.0, 0.5)), ("atom", (1.0, 2.0), (1.0, 0.5)), ("structure", (1.0, 2.0), (1.0, 0.5)),
            ("structure", (2.0, 5.0), (1.0, 0.5, 0.25))]


#: the NN committee of the calibration (Cu only, a quarter of the training structures: 2-core budget)
COMMITTEE = {"model": {"type": "nn", "hidden": [16, 16], "epochs": 300, "patience": 50, "committee": 4},
             "descriptor": {"nmax": 3, "lmax": 3}, "train_fraction": 0.25}


def raw_config(shared: Path, element: str, model: str, out: Path, test: bool = True) -> dict:
    if model == "kernel":
        raw = mlearn_config(shared, element, model, KERNEL_HYBRID[element], out)[1]
        if not test:
            del raw["data"]["test"]
        return raw
    mlearn = shared / "data" / "mlearn" / element
    raw = {
        "data": {"train": str(mlearn / "train.xyz"), **({"test": str(mlearn / "test.xyz")} if test else {})},
        "baseline": {"file": str(shared / "data" / "potentials" / BASELINES[element])},
        "descriptor": {"rcut": 5.0, **(MODELS[model][0] if model in MODELS else COMMITTEE["descriptor"])},
        "model": {"type": model, **MODELS[model][1]} if model in MODELS else dict(COMMITTEE["model"]),
        "fit": {"energy_weight": 1.0, "force_weight": 1.0, "seed": 0},
        "output": {"dir": str(out), "overwrite": True, "plots": False},
    }
    if model not in MODELS:
        raw["fit"]["train_fraction"] = COMMITTEE["train_fraction"]
    return raw


def config(shared: Path, element: str, model: str, out: Path) -> FitConfig:
    return parse_config(raw_config(shared, element, model, out), REPO, f"benchmark {element} {model}")


#: a predicted std at or below this (eV or eV/A) is round-off of zero
ZERO_STD = 1e-10


def interval_stats(err: np.ndarray, std: np.ndarray) -> dict[str, float]:
    """Coverage of the 68 % / 95 % intervals, RMS z-score, Spearman(std, |err|).

    A zero std (e.g. a committee's forces on a symmetric cell, where every member predicts zero, up to
    round-off: std <= ZERO_STD) is an interval of width zero: it covers only a zero error. Such entries
    count in the coverage; the RMS z-score is taken over the others only, and ``n_zero_std`` says how many
    were left out.
    """
    err, std = np.asarray(err).ravel(), np.asarray(std).ravel()
    positive = std > ZERO_STD
    z = np.where(positive, err / np.where(positive, std, 1.0), np.where(err == 0, 0.0, np.inf))
    rho = spearmanr(std, np.abs(err)).statistic if np.ptp(std) > 0 else float("nan")
    return {"n": int(err.size), "inside_68": float(np.mean(np.abs(z) <= 1.0)), "inside_95": float(np.mean(np.abs(z) <= 1.96)),
            "rms_z": float(np.sqrt(np.mean(z[positive] ** 2))) if positive.any() else float("nan"),
            "n_zero_std": int(np.sum(~positive)), "spearman_std_vs_abs_error": float(rho),
            "rmse": float(np.sqrt(np.mean(err**2))), "rms_std": float(np.sqrt(np.mean(std**2)))}


# ------------------------------------------------------------------------------- 1. calibration


def calibration(shared: Path, tmp: Path, log, models: list[str]) -> dict:
    """Coverage and rank correlation of each (element, model) in ``models`` (MODELS keys and "nn committee", Cu only)."""
    out = {}
    cases = [(e, m) for m in models for e in BASELINES if m in MODELS or e == "Cu"]
    for element, model in cases:
        t0 = time.perf_counter()
        result = run_fit(config(shared, element, model, tmp / f"{element}_{model}".replace(" ", "_")), progress=False,
                         log=lambda s: None)
        pot = result.potential
        test = read(shared / "data" / "mlearn" / element / "test.xyz", ":")
        posterior = pot.uq_data.posterior
        # committee: the spread scaled out of bag (what uncertainty() reports) and the raw spread (its "_model" part)
        rows = {"evidence": [], "residual": [], "cv": [], "local": []} if posterior is not None else {"committee spread (out-of-bag scaled)": [],
                                                                                "committee spread (raw)": []}
        for atoms in test:
            for noise in rows:
                u = pot.uncertainty(atoms, noise=noise if posterior is not None else None)
                raw = noise == "committee spread (raw)"
                rows[noise].append({
                    "config_type": atoms.info["config_type"], "n_atoms": len(atoms),
                    "energy_error": u["energy"] - atoms.get_potential_energy(),
                    "energy_std": u["energy_std_model" if raw else "energy_std"],
                    "energy_std_model": u["energy_std_model"], "max_gamma": u["max_gamma"],
                    "force_error": (u["forces"] - atoms.get_forces()).ravel(),
                    "force_std": u["force_std_model" if raw else "force_std"].ravel(),
                    **({"energy_interval": u["energy_interval"]} if "energy_interval" in u else {}),
                })
        entry = {"fit_seconds": result.report["total_seconds"], "test_errors": result.report["test"],
                 "noise": posterior.noise if posterior is not None else None, "by_noise": {},
                 "committee_scale": pot.uq_data.committee_scale}
        if model not in MODELS:
            entry["setting"] = COMMITTEE
        for noise, recs in rows.items():
            e_err = np.array([r["energy_error"] for r in recs])
            e_std = np.array([r["energy_std"] for r in recs])
            entry["by_noise"][noise] = {
                "energy": interval_stats(e_err, e_std),
                # elastic cells are strained perfect lattices: every model gives zero forces by symmetry
                # and the DFT forces there (< 0.02 eV/A) are numerical noise, so they are left out
                "forces": interval_stats(*(np.concatenate([r[k] for r in recs if r["config_type"] != "elastic"])
                                           for k in ("force_error", "force_std"))),
                "forces_all": interval_stats(*(np.concatenate([r[k] for r in recs]) for k in ("force_error", "force_std"))),
                "energy_by_config_type": {
                    ct: interval_stats(e_err[m], e_std[m]) for ct in sorted({r["config_type"] for r in recs})
                    if (m := np.array([r["config_type"] == ct for r in recs])).any()
                },
                "structures": [{k: (float(v) if np.isscalar(v) and not isinstance(v, str) else v)
                                for k, v in r.items() if k not in ("force_error", "force_std")} for r in recs],
            }
            if all("energy_interval" in r for r in recs):  # the intervals calibrated on held-out training structures
                entry["by_noise"][noise]["energy_intervals"] = {
                    f"inside_{k}": float(np.mean([abs(r["energy_error"]) <= r["energy_interval"][k] for r in recs]))
                    for k in ("68", "95") if all(k in r["energy_interval"] for r in recs)}
                entry["energy_interval_factors"] = dict(posterior.energy_interval_factors)
        if posterior is not None:  # the parametric part alone (what the posterior says about the coefficients)
            e_err = np.array([r["energy_error"] for r in rows["evidence"]])
            entry["parametric_only"] = interval_stats(e_err, np.array([r["energy_std_model"] for r in rows["evidence"]]))
        entry["seconds"] = time.perf_counter() - t0
        out[f"{element} {model}"] = entry
        log(f"calibration {element} {model}: {entry['seconds']:.0f} s")
    return out


#: the pooled calibration's outer folds (each structure of train + test predicted once, by a fit without it)
POOLED_FOLDS = 5


def pooled_calibration(shared: Path, tmp: Path, log, cases: list[tuple[str, str]], folds: int = POOLED_FOLDS) -> dict:
    """Coverage of the energy intervals (``energy_interval``, split-conformal on each fit's own held-out training
    structures) over many more structures than a test set has: an element's training and test structures pooled, split
    into ``folds`` random outer folds (seed 0), each fold predicted by the fit (its configuration as in
    :func:`calibration`) on the others. With ~290 structures the sampling error of a coverage is ~0.03, against ~0.09 on
    the 25-31 test structures, which is what tells a miscalibration from chance."""
    out = {}
    for element, model in cases:
        t0 = time.perf_counter()
        mlearn = shared / "data" / "mlearn" / element
        frames = read(mlearn / "train.xyz", ":") + read(mlearn / "test.xyz", ":")
        fold_of = np.random.default_rng(0).permutation(len(frames)) % folds
        recs = []
        for k in range(folds):
            fold_dir = tmp / f"pooled_{element}_{model}_{k}"
            fold_dir.mkdir(parents=True)
            write(fold_dir / "train.xyz", [a for a, f in zip(frames, fold_of) if f != k])
            raw = raw_config(shared, element, model, fold_dir / "fit", test=False)
            raw["data"]["train"] = str(fold_dir / "train.xyz")
            pot = run_fit(parse_config(raw, REPO, f"pooled {element} {model} fold {k}"), progress=False, log=lambda s: None).potential
            for atoms in (a for a, f in zip(frames, fold_of) if f == k):
                u = pot.uncertainty(atoms)  # the default noise model, the one the intervals were calibrated with
                recs.append({"config_type": atoms.info["config_type"], "error": u["energy"] - atoms.get_potential_energy(),
                             "std": u["energy_std"], **{f"q{n}": w for n, w in u["energy_interval"].items()}})
            log(f"pooled {element} {model}: fold {k + 1}/{folds} ({time.perf_counter() - t0:.0f} s)")
        err = np.array([r["error"] for r in recs])
        entry = {"n_structures": len(recs), "folds": folds, "seconds": time.perf_counter() - t0,
                 "std": interval_stats(err, np.array([r["std"] for r in recs])), "intervals": {}, "by_config_type": {}}
        for level in ("68", "95"):
            inside = np.array([abs(r["error"]) <= r[f"q{level}"] for r in recs])
            p = float(inside.mean())
            entry["intervals"][f"inside_{level}"] = p
            entry["intervals"][f"sampling_error_{level}"] = float(np.sqrt(p * (1 - p) / len(recs)))
            for ct in sorted({r["config_type"] for r in recs}):
                sel = np.array([r["config_type"] == ct for r in recs])
                entry["by_config_type"].setdefault(ct, {"n": int(sel.sum())})[f"inside_{level}"] = float(inside[sel].mean())
        out[f"{element} {model}"] = entry
        log(f"pooled {element} {model}: intervals cover {entry['intervals']['inside_68']:.2f} / {entry['intervals']['inside_95']:.2f}")
    return out


def pooled_table(pooled: dict) -> str:
    lines = ["| set, model | structures | E in 68% interval | E in 95% interval | E in +-1 / 1.96 std | Spearman(std, abs E err) "
             "| 68% by config type |", "|---|---|---|---|---|---|---|"]
    for name, e in pooled.items():
        c, s = e["intervals"], e["std"]
        by_type = ", ".join(f"{ct} {d['inside_68']:.2f} ({d['n']})" for ct, d in e["by_config_type"].items())
        lines.append(f"| {name} | {e['n_structures']} | {c['inside_68']:.2f} +- {c['sampling_error_68']:.2f} "
                     f"| {c['inside_95']:.2f} +- {c['sampling_error_95']:.2f} | {s['inside_68']:.2f} / {s['inside_95']:.2f} "
                     f"| {s['spearman_std_vs_abs_error']:.2f} | {by_type} |")
    return "\n".join(lines)


def calibration_table(cal: dict) -> str:
    head = ("| set, model | noise | test E RMSE (meV/atom) | E in 68% | E in 95% | E rms z | Spearman(std, abs E err) "
            "| F in 68% | F in 95% | F rms z | Spearman(std, abs F err) |")
    lines = [head, "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]
    for name, entry in cal.items():
        for noise, d in entry["by_noise"].items():
            e, f = d["energy"], d["forces"]
            lines.append(f"| {name} | {noise} | {entry['test_errors']['energy_rmse_meV_atom']:.2f} | {e['inside_68']:.2f} | {e['inside_95']:.2f} "
                         f"| {e['rms_z']:.2f} | {e['spearman_std_vs_abs_error']:.2f} | {f['inside_68']:.2f} | {f['inside_95']:.2f} "
                         f"| {f['rms_z']:.2f} | {f['spearman_std_vs_abs_error']:.2f} |")
            if "energy_intervals" in d:
                c = d["energy_intervals"]
                lines.append(f"| {name} | {noise}, intervals from held-out quantiles | | {c.get('inside_68', float('nan')):.2f} "
                             f"| {c.get('inside_95', float('nan')):.2f} | | | | | | |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------- structures


def compressed_structures(scales=(0.90, 0.88, 0.86), per_scale: int = 2, seed: int = 0) -> list[Atoms]:
    """108-atom fcc Cu cells with the lattice scaled (a0 = 3.615 A) and rattled by 0.03 A."""
    rng = np.random.default_rng(seed)
    out = []
    for s in scales:
        for _ in range(per_scale):
            a = bulk("Cu", "fcc", a=3.615 * s, cubic=True).repeat(3)
            a.positions += rng.normal(scale=0.03, size=a.positions.shape)
            a.info["config_type"] = f"compressed x{s:.2f}"
            out.append(a)
    return out


def hot_structures(eam_file: Path, n: int = 10, temperature: float = 2000.0, seed: int = 0) -> list[Atoms]:
    """Snapshots of Langevin MD at ``temperature`` (108 atoms, equilibrium volume) with an EAM:
    2 ps to melt, then one snapshot every 0.2 ps."""
    from ase.md.langevin import Langevin

    from hybridpot.md import initial_velocities

    atoms = bulk("Cu", "fcc", a=3.615, cubic=True).repeat(3)
    atoms.calc = Calculator(load_empirical(eam_file))
    atoms.set_velocities(initial_velocities(atoms, temperature, seed))
    dyn = Langevin(atoms, timestep=2.0 * units.fs, temperature_K=temperature, friction=0.02 / units.fs, fixcm=False,
                   rng=np.random.default_rng(seed))
    dyn.run(1000)
    out = []
    for _ in range(n):
        dyn.run(100)
        snap = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=True)
        snap.info["config_type"] = f"liquid {temperature:g} K"
        out.append(snap)
    return out


# ------------------------------------------------------------------------------- 2. gamma


def gamma_groups(pot: HybridPotential, groups: dict[str, list[Atoms]]) -> dict:
    out = {}
    for name, frames in groups.items():
        g = extrapolation_grades(pot, frames)
        per_structure = np.array([x.max() for x in g])
        atoms = np.concatenate(g)
        out[name] = {
            "n_structures": len(frames), "max_gamma_per_structure": per_structure.tolist(),
            "median_max_gamma": float(np.median(per_structure)), "min_max_gamma": float(per_structure.min()),
            "max_max_gamma": float(per_structure.max()), "fraction_structures_gamma_gt_1": float(np.mean(per_structure > 1)),
            "fraction_atoms_gamma_gt_1": float(np.mean(atoms > 1)), "atom_gamma_quantiles": {
                q: float(np.quantile(atoms, float(q))) for q in ("0.5", "0.9", "0.99")},
            "_atoms": atoms,
        }
    return out


def gamma_plot(result: dict, path: Path) -> None:
    from hybridpot.plots import _figure, save_figure

    fig, axes = _figure(2, size=5.0)
    ax0, ax1 = axes[0]
    bins = np.logspace(-1.5, 3.5, 80)
    for k, (name, d) in enumerate(result.items()):
        x = np.clip(d["_atoms"], bins[0], bins[-1])
        ax0.hist(x, bins=bins, histtype="step", weights=np.full(x.size, 1.0 / x.size), label=name, lw=1.4)
        y = np.asarray(d["max_gamma_per_structure"])
        ax1.scatter(y, k + np.random.default_rng(k).uniform(-0.2, 0.2, y.size), s=14)
    for ax in (ax0, ax1):
        ax.set_xscale("log")
        ax.axvline(1.0, color="k", lw=0.8, ls="--")
    ax0.set(xlabel="per-atom gamma", ylabel="fraction of the group's atoms", title="per-atom extrapolation grade")
    ax0.legend(fontsize=7)
    ax1.set_yticks(range(len(result)), list(result), fontsize=7)
    ax1.set(xlabel="max gamma of the structure", title="max gamma per structure")
    save_figure(fig, path)


# ------------------------------------------------------------------------------- 3. fallback


def fallback_name(scope: str, band: tuple[float, float]) -> str:
    return f"hybrid + fallback {scope} [{band[0]:g}, {band[1]:g}]"


def errors_with_fallback(pot: HybridPotential, groups: dict[str, Dataset], bands=BANDS, scopes=SCOPES) -> dict:
    """Energy/force errors of baseline only, hybrid and hybrid + fallback (each scope and band) per group."""
    ref = pot.uq_data.reference_energies
    out = {}
    for name, data in groups.items():
        offset = np.array([sum(ref[s] for s in a.get_chemical_symbols()) for a in data.frames])
        bl = predict(pot.baseline, data, progress=False)
        rows = {"baseline only": error_metrics(bl["energy"] + offset, data.energy, data.n_atoms, bl["forces"], data.forces)}
        p = predict(pot, data, progress=False)
        rows["hybrid"] = error_metrics(p["energy"], data.energy, data.n_atoms, p["forces"], data.forces)
        for scope in scopes:
            for band in bands:
                enable_fallback(pot, *band, scope=scope)
                p = predict(pot, data, progress=False)
                rows[fallback_name(scope, band)] = error_metrics(p["energy"], data.energy, data.n_atoms, p["forces"], data.forces)
                disable_fallback(pot)
        out[name] = rows
    return out


#: relative tolerance of "not worse than the baseline": a structure switched fully off is the
#: baseline up to the round-off of a different summation order (~1e-13 relative)
SAME = 1e-9
#: in the table, a setting worse than the baseline by less than this (relative) is marked apart
SLIGHTLY = 1e-3


def never_worse(errs: dict) -> dict:
    """Per group and setting: the ratio of its energy (force) MAE to the baseline-only one and
    whether it is at most 1 (+ SAME)."""
    out = {}
    for group, rows in errs.items():
        base = rows["baseline only"]
        out[group] = {}
        for name, r in rows.items():
            if name == "baseline only":
                continue
            ratio = {q: r[f"{q}_mae_{unit}"] / base[f"{q}_mae_{unit}"] for q, unit in (("energy", "meV_atom"), ("force", "eV_A"))}
            out[group][name] = {q: bool(v <= 1 + SAME) for q, v in ratio.items()} | {f"{q}_ratio": v for q, v in ratio.items()}
    return out


def fallback_table(errs: dict, bands=BANDS, scopes=SCOPES) -> str:
    """One row per group of structures and scope; cells "energy MAE (meV/atom) / force MAE (eV/A)",
    * where worse than the baseline alone by more than SLIGHTLY (relative), ' where worse by less."""
    flags = never_worse(errs)
    head = "| structures | scope | baseline only | hybrid | " + " | ".join(f"[{lo:g}, {hi:g}]" for lo, hi in bands) + " |"
    lines = [head, "|" + "---|" * (4 + len(bands))]

    def mark(group: str, name: str, q: str) -> str:
        f = flags[group].get(name)
        if f is None or f[q]:
            return ""
        return "*" if f[f"{q}_ratio"] > 1 + SLIGHTLY else "'"

    def cell(group: str, name: str) -> str:
        r = errs[group][name]
        return f"{r['energy_mae_meV_atom']:.2f}{mark(group, name, 'energy')} / {r['force_mae_eV_A']:.4f}{mark(group, name, 'force')}"

    for group in errs:
        for k, scope in enumerate(scopes):
            fixed = [cell(group, "baseline only"), cell(group, "hybrid")] if k == 0 else ["", ""]
            lines.append(f"| {group if k == 0 else ''} | {scope} | " + " | ".join(fixed + [cell(group, fallback_name(scope, b)) for b in bands]) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------- 4. NVE


def switching_forces(pot: HybridPotential, atoms: Atoms) -> np.ndarray:
    """(N, 3) the part of the forces that comes from the gradient of the fallback's switch,
    -sum_j (E_ML,j - e_t) grad S_j: the forces minus those with the switch factors held fixed."""
    fb = pot.fallback
    full = pot.compute(atoms, stress=False)["forces"].detach().numpy()
    switches = fb.switches
    fb.switches = lambda *args, **kwargs: switches(*args, **kwargs).detach()  # instance attribute: S held fixed
    try:
        frozen = pot.compute(atoms, stress=False)["forces"].detach().numpy()
    finally:
        del fb.switches
    return full - frozen


def nve(pot: HybridPotential, atoms: Atoms, dt_fs: float, time_fs: float, temperature: float, seed: int = 0) -> dict:
    """Velocity Verlet with hybridpot's calculator: drift and max deviation of the total energy,
    and (with a fallback, every 5 fs) the fraction of atom-steps whose residual factor is strictly
    between 0 and 1, between 0.01 and 0.99, and 0, and the largest force from the switch's gradient
    (``seconds`` includes these extra evaluations)."""
    from ase.md.verlet import VelocityVerlet

    from hybridpot.md import initial_velocities

    atoms = atoms.copy()
    atoms.calc = Calculator(pot)
    atoms.set_velocities(initial_velocities(atoms, temperature, seed))
    dyn = VelocityVerlet(atoms, timestep=dt_fs * units.fs)
    t, e, s_all, f_switch = [], [], [], []

    def record():
        t.append(dyn.nsteps * dt_fs / 1000.0)
        e.append(atoms.get_total_energy())
        if pot.fallback is not None and dyn.nsteps % max(1, int(round(5 / dt_fs))) == 0:
            s_all.append(fallback_switches(pot, atoms))  # the factor of each atom's residual (scope included)
            f_switch.append(float(np.max(np.linalg.norm(switching_forces(pot, atoms), axis=1))))

    dyn.attach(record, interval=1)
    t0 = time.perf_counter()
    dyn.run(int(round(time_fs / dt_fs)))
    e = np.array(e) / len(atoms)
    out = {"dt_fs": dt_fs, "steps": int(round(time_fs / dt_fs)), "drift_eV_atom_ps": float(np.polyfit(t, e, 1)[0]),
           "max_abs_dE_eV_atom": float(np.max(np.abs(e - e[0]))), "seconds": time.perf_counter() - t0,
           "final_temperature_K": float(atoms.get_temperature())}
    if s_all:
        s = np.concatenate(s_all)
        out["fraction_atom_steps_in_band"] = float(np.mean((s > 0) & (s < 1)))
        out["fraction_atom_steps_switched_off"] = float(np.mean(s == 0))
        out["fraction_atom_steps_factor_0.01_0.99"] = float(np.mean((s > 0.01) & (s < 0.99)))
        out["max_switching_force_eV_A"] = float(np.max(f_switch))
    return out


# ------------------------------------------------------------------------------- main


def void_cells(frames: list[Atoms], radius: float = 3.0) -> list[Atoms]:
    """2x2x2 supercells of ``frames`` with the atoms within ``radius`` (A) of the cell centre removed."""
    out = []
    for a in frames:
        big = Atoms(a.numbers, a.positions, cell=a.cell, pbc=a.pbc).repeat(2)
        centre = big.cell.array.sum(0) / 2
        big = big[np.linalg.norm(big.positions - centre, axis=1) > radius]
        big.info["config_type"] = "void"
        out.append(big)
    return out


def groups_of(frames: list[Atoms], e0: float) -> dict[str, list[Atoms]]:
    """mlearn Cu frames by kind: "in" (solid aimd, elastic, vacancy, ground state), "liquid"
    (aimd more than LIQUID_DE eV/atom above the ground-state energy ``e0``), "surface"."""
    out: dict[str, list[Atoms]] = {"in": [], "liquid": [], "surface": []}
    for a in frames:
        ct = a.info["config_type"]
        if ct == "surface":
            out["surface"].append(a)
        elif ct == "aimd" and a.get_potential_energy() / len(a) - e0 > LIQUID_DE:
            out["liquid"].append(a)
        elif ct in IN_DIST:
            out["in"].append(a)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("HYBRIDPOT_SHARED", REPO.parent / "shared")))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--parts", default="calibration,gamma,fallback,nve,pooled")
    parser.add_argument("--models", default=",".join([*MODELS, "nn committee"]),
                        help="the calibration's models (rows of earlier runs for other models are kept)")
    parser.add_argument("--pooled", default="Cu:linear,Cu:kernel", help="pooled: element:model cases (comma-separated)")
    args = parser.parse_args()
    if not (args.shared / "data" / "mlearn").is_dir():
        raise SystemExit(f"shared data not found at {args.shared} (pass --shared or set HYBRIDPOT_SHARED)")
    torch.set_num_threads(1)
    parts = set(args.parts.split(","))
    t_start = time.perf_counter()
    log = print
    result: dict = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": 1}}
    path = args.out / "uq.json"
    if path.is_file():  # keep the parts not rerun
        result = json.loads(path.read_text()) | {"machine": result["machine"]}
    tables = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if "calibration" in parts:
            result["calibration"] = {**result.get("calibration", {}), **calibration(args.shared, tmp, log, args.models.split(","))}
        if "calibration" in result:
            tables.append("## Calibration on the mlearn test sets\n\n" + calibration_table(result["calibration"]))
        if "pooled" in parts:
            cases = [tuple(c.split(":")) for c in args.pooled.split(",")]
            result["pooled_calibration"] = {**result.get("pooled_calibration", {}), **pooled_calibration(args.shared, tmp, log, cases)}
        if "pooled_calibration" in result:
            tables.append(f"## Energy intervals over train + test pooled ({POOLED_FOLDS} outer folds)\n\n"
                          + pooled_table(result["pooled_calibration"]))
        if parts & {"gamma", "fallback", "nve"}:
            cu = args.shared / "data" / "mlearn" / "Cu"
            train_all, test_all = read(cu / "train.xyz", ":"), read(cu / "test.xyz", ":")
            gs = next(a for a in train_all if a.info["config_type"] == "ground_state")
            e0 = gs.get_potential_energy() / len(gs)
            tr, te = groups_of(train_all, e0), groups_of(test_all, e0)
            cfg = config(args.shared, "Cu", "linear", tmp / "cu_in")
            t0 = time.perf_counter()
            pot, _ = fit_potential(cfg, tr["in"])
            log(f"Cu fit on {len(tr['in'])} solid aimd/elastic/vacancy structures: {time.perf_counter() - t0:.0f} s")
            mishin = args.shared / "data" / "potentials" / "Cu_mishin1.eam.alloy"
            compressed, hot = compressed_structures(), hot_structures(mishin)
            held_out = [a for a in te["in"] if a.info["config_type"] != "ground_state"]
            ood = {"surfaces (mlearn DFT)": tr["surface"] + te["surface"], "liquid ~2 Tm (mlearn DFT AIMD)": tr["liquid"] + te["liquid"],
                   "liquid 2000 K (EAM MD)": hot, "compressed x0.90-0.86": compressed}
        if "gamma" in parts:
            groups = {"held-out test aimd/elastic/vacancy": held_out} | ood
            g = gamma_groups(pot, groups)
            t0 = time.perf_counter()
            pot_liq, _ = fit_potential(cfg, tr["in"] + tr["liquid"])
            log(f"control fit with the DFT liquid: {time.perf_counter() - t0:.0f} s")
            control = gamma_groups(pot_liq, {"held-out test aimd/elastic/vacancy": held_out, "liquid 2000 K (EAM MD)": hot})
            g |= {f"control, liquid in training: {k}": v for k, v in control.items()}
            gamma_plot({k: v for k, v in g.items() if not k.startswith("control")}, args.out / "uq_gamma.png")
            result["gamma"] = {k: {q: v for q, v in d.items() if q != "_atoms"} for k, d in g.items()}
            result["gamma_training"] = {"structures": len(tr["in"]), "liquid_threshold_eV_atom": LIQUID_DE,
                                        "left_out": {"surface": len(tr["surface"]), "liquid aimd": len(tr["liquid"])}}
        if "gamma" in result:
            lines = ["| structures | N | max gamma per structure: median | min | max | structures with gamma > 1 | atoms with gamma > 1 |",
                     "|---|---|---|---|---|---|---|"]
            for k, d in result["gamma"].items():
                lines.append(f"| {k} | {d['n_structures']} | {d['median_max_gamma']:.3g} | {d['min_max_gamma']:.3g} | {d['max_max_gamma']:.3g} "
                             f"| {d['fraction_structures_gamma_gt_1']:.2f} | {d['fraction_atoms_gamma_gt_1']:.3f} |")
            tables.append("## Extrapolation grade, Cu (trained on solid aimd/elastic/vacancy)\n\n" + "\n".join(lines))
        if "fallback" in parts:
            dft = errors_with_fallback(pot, {"held-out test aimd/elastic/vacancy (DFT)": from_frames(held_out),
                                             "surfaces, not in training (DFT)": from_frames(ood["surfaces (mlearn DFT)"]),
                                             "liquid ~2 Tm, not in training (DFT)": from_frames(ood["liquid ~2 Tm (mlearn DFT AIMD)"])})
            zhou = Calculator(load_empirical(args.shared / "data" / "potentials" / "Cu_zhou.eam.alloy"))
            relabel = lambda frames: label(frames, zhou, log=log)[0]  # noqa: E731
            t0 = time.perf_counter()
            pot_z, _ = fit_potential(cfg, relabel(tr["in"]))
            log(f"Cu fit to Zhou labels: {time.perf_counter() - t0:.0f} s")
            voids = void_cells([a for a in held_out if a.info["config_type"] == "aimd"][:4])
            stand_in = errors_with_fallback(pot_z, {f"{k} (Zhou EAM labels)": from_frames(relabel(v)) for k, v in
                                                    {"held-out test aimd/elastic/vacancy": held_out, **ood,
                                                     f"{len(voids[0])}-atom cells with a void": voids}.items()})
            errs = dft | stand_in
            result["fallback"] = {"dft": dft, "zhou_stand_in": stand_in, "bands": BANDS, "scopes": list(SCOPES), "p": 16,
                                  "never_worse_than_baseline": never_worse(errs)}
        if "fallback" in result:
            tables.append("## Fallback errors, Cu (trained on solid aimd/elastic/vacancy): energy MAE meV/atom / force MAE eV/A "
                          "(* worse than the baseline alone, ' worse by less than 0.1 %)\n\n"
                          + fallback_table(result["fallback"]["dft"] | result["fallback"]["zhou_stand_in"]))
        if "nve" in parts:
            start = bulk("Cu", "fcc", a=3.615 * 0.96, cubic=True).repeat(3)
            start.positions += np.random.default_rng(1).normal(scale=0.05, size=start.positions.shape)
            runs = {}
            for scope, band, dts in NVE_RUNS:
                name = "no fallback" if band is None else f"fallback {scope} [{band[0]:g}, {band[1]:g}]"
                if band:
                    enable_fallback(pot, *band, scope=scope)
                for dt in dts:
                    runs[f"{name}, dt {dt:g} fs"] = nve(pot, start, dt, 1000.0, 1600.0)
                    log(f"NVE {name} dt {dt}: {runs[f'{name}, dt {dt:g} fs']}")
                disable_fallback(pot)
            result["nve"] = {"structure": "108-atom fcc Cu, lattice x0.96, rattled 0.05 A, initial 1600 K, 1 ps", "runs": runs}
        if "nve" in result:
            lines = ["| run | drift (eV/atom/ps) | max abs dE (eV/atom) | atom-steps with factor in (0, 1) | in (0.01, 0.99) | factor 0 "
                     "| max switching force (eV/A) | final T (K) |", "|---|---|---|---|---|---|---|---|"]
            nan = float("nan")
            for k, d in result["nve"]["runs"].items():
                lines.append(f"| {k} | {d['drift_eV_atom_ps']:.2e} | {d['max_abs_dE_eV_atom']:.2e} | {d.get('fraction_atom_steps_in_band', nan):.3f} "
                             f"| {d.get('fraction_atom_steps_factor_0.01_0.99', nan):.3f} | {d.get('fraction_atom_steps_switched_off', nan):.3f} "
                             f"| {d.get('max_switching_force_eV_A', nan):.2f} | {d['final_temperature_K']:.0f} |")
            tables.append(f"## NVE through the fallback band ({result['nve']['structure']})\n\n" + "\n".join(lines))
    result["seconds_last_run"] = time.perf_counter() - t_start
    result["parts_last_run"] = sorted(parts)
    from hybridpot.fitting.job import _jsonable
    from hybridpot.io.atomic import write_text_atomic

    write_text_atomic(path, json.dumps(_jsonable(result), indent=1, default=float))
    print("\n\n".join(tables))
    print(f"\nwrote {path} ({result['seconds_last_run']:.0f} s)")


if __name__ == "__main__":
    main()
