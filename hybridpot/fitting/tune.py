"""``[fit] tune = true`` (``hybridpot fit --tune``): a small, budgeted search of the descriptor's rcut, nmax and lmax.

Coordinate search scored by k-fold cross-validation on the training set only (never the test set): first rcut over
``tune_rcut_factors`` times the typical nearest-neighbour distance of the training structures (at the configured nmax,
lmax), then nmax over ``tune_nmax`` at the best rcut, then lmax over ``tune_lmax``. Each candidate is one streamed
assembly with per-fold, per-kind QR factors (:func:`hybridpot.fitting.linear.fit_linear` with ``cv_score``); the ridge
strength is chosen per fit as configured (evidence or CV), the energy weight too where ``energy_weight = "cv"``, and
with ``[baseline] mode = "auto"`` each candidate is scored in the mode it would use. A candidate is scored by
E_cv / min E_cv + F_cv / min F_cv over every candidate tried. No candidate is started once ``tune_budget_s`` has
passed (the first always runs).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
from ase.neighborlist import neighbor_list

from hybridpot.dataset import Dataset
from hybridpot.distributed import ClusterArg
from hybridpot.errors import ConfigError
from hybridpot.fitting.config import FitConfig
from hybridpot.fitting.linear import fit_linear
from hybridpot.potential import HybridPotential
from hybridpot.prediction import BaselinePredictions, baseline_predictions
from hybridpot.registry import models

#: the CV errors a candidate is scored by
SCORED = ("energy_rmse_meV_atom", "force_rmse_eV_A")


def nearest_neighbour_distance(data: Dataset, n_structures: int = 50, search: float = 6.0) -> float:
    """The median over (up to ``n_structures``) training structures of each one's shortest interatomic distance, Angstrom."""
    shortest = []
    for atoms in data.frames[:n_structures]:
        d = neighbor_list("d", atoms, search)
        if d.size:
            shortest.append(float(d.min()))
    if not shortest:
        raise ConfigError(f"{data.source}: no two atoms within {search} A in the first {n_structures} structures: "
                          "[fit] tune cannot scale its rcut candidates")
    return float(np.median(shortest))


def scores(table: list[dict[str, Any]]) -> list[float]:
    """Each row's E / min E + F / min F over the table (the kinds every row has)."""
    keys = [k for k in SCORED if all(k in r for r in table)]
    best = {k: max(min(r[k] for r in table), 1e-300) for k in keys}
    return [float(sum(r[k] / best[k] for k in keys)) for r in table]


def tune_descriptor(config: FitConfig, train: Dataset, bl_train: BaselinePredictions, elements: list[str],
                    build: Callable[[FitConfig], HybridPotential], weights_of: Callable, log: Callable[[str], None] = print,
                    cluster: ClusterArg = None) -> dict[str, Any]:
    """Search rcut, nmax, lmax as described in the module docstring.

    Args:
        build: the potential of a configuration (baseline + descriptor + unfitted model).
        weights_of: ``(config, data, baseline predictions) -> (weights, energy weight choice, record)``
            (:func:`hybridpot.fitting.job.config_weights` with the elements bound).
        cluster: None (this process) or a Dask cluster (:mod:`hybridpot.distributed`) for each candidate's design pass.

    Returns:
        the record for report.json's "fit.tune": {"chosen": {rcut, nmax, lmax}, "table": one row per candidate
        (settings, CV errors, score, seconds, baseline mode used), "nearest_neighbour_A", "budget_s", "seconds",
        "stopped_by_budget", "skipped": candidates not tried for the budget}.
    """
    f, m, b, d = config["fit"], config["model"], config["baseline"], config["descriptor"]
    if not models.get(m["type"]).linear:
        raise ConfigError(f"{config.source}: [fit] tune (--tune) scores candidates by CV from the solver's factors: it needs a linear "
                          f"or quadratic model, not {m['type']!r}")
    if "rcut" not in d or "nmax" not in d or "lmax" not in d:
        raise ConfigError(f"{config.source}: [fit] tune searches rcut, nmax and lmax; descriptor type {d['type']!r} has not all of them")
    t0 = time.perf_counter()
    d1 = nearest_neighbour_distance(train)
    table: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    zero = baseline_predictions(None, train, progress=False)

    def trial(settings: dict[str, Any]) -> None:
        if any(all(r[k] == v for k, v in settings.items()) for r in table):
            return
        if table and time.perf_counter() - t0 > f["tune_budget_s"]:
            skipped.append(settings)
            return
        cfg = FitConfig({**config.sections, "descriptor": {**d, **settings}}, config.source, config.kind)
        start = time.perf_counter()
        potential = build(cfg)
        weights, choice, _ = weights_of(cfg, train, bl_train)
        pure = weights_of(cfg, train, zero)[0] if potential.baseline is not None and b["mode"] != "on" else None
        sol, _ = fit_linear(potential, train, bl_train, weights, m["regularization"], m["cv_folds"], f["seed"], f["batch_atoms"],
                            False, **choice, pure_weights=pure, mode=b["mode"], cv_score=True, cluster=cluster)
        row = {**settings, **{k: sol.cv_errors[k] for k in SCORED if k in sol.cv_errors},
               "baseline_mode": sol.baseline_check["used"] if sol.baseline_check else ("hybrid" if potential.baseline else "pure_ml"),
               "seconds": time.perf_counter() - start}
        table.append(row)
        log(f"tune: rcut {row['rcut']:g} nmax {row['nmax']} lmax {row['lmax']}: CV "
            + ", ".join(f"{k} {row[k]:.4g}" for k in SCORED if k in row) + f" ({row['seconds']:.1f} s)")

    def best() -> dict[str, Any]:
        r = table[int(np.argmin(scores(table)))]
        return {"rcut": r["rcut"], "nmax": r["nmax"], "lmax": r["lmax"]}

    for factor in f["tune_rcut_factors"]:
        trial({"rcut": round(float(factor) * d1, 2), "nmax": d["nmax"], "lmax": d["lmax"]})
    for nmax in f["tune_nmax"]:
        trial({**best(), "nmax": int(nmax)})
    for lmax in f["tune_lmax"]:
        trial({**best(), "lmax": int(lmax)})
    for row, score in zip(table, scores(table)):
        row["score"] = score
    chosen = best()
    seconds = time.perf_counter() - t0
    log(f"tune: chose rcut {chosen['rcut']:g} nmax {chosen['nmax']} lmax {chosen['lmax']} from {len(table)} candidates "
        f"({m['cv_folds']}-fold CV on train, {seconds:.0f} s" + (f"; {len(skipped)} not tried: budget {f['tune_budget_s']:g} s)"
                                                             if skipped else ")"))
    return {"chosen": chosen, "table": table, "nearest_neighbour_A": d1, "budget_s": f["tune_budget_s"], "seconds": seconds,
            "stopped_by_budget": bool(skipped), "skipped": skipped}
