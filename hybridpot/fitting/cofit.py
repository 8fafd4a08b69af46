"""Co-fitting the baseline: NLopt over selected empirical parameters, residual solved exactly inside.

Variable projection: for baseline parameters theta, the linear residual model is solved exactly
(ridge with the regularisation chosen at the starting point), so the objective is

    f(theta) = min_w || A w - y(theta) ||^2,   y(theta) = weighted (DFT - baseline(theta))

The design matrix A of the descriptors does not depend on theta: it is assembled once and held
in memory (its size is checked against ``max_design_bytes``); each evaluation re-runs only the
baseline, through a callable theta -> baseline predictions (:func:`variable_projection`). For every
baseline it is the same one: set the parameters (:meth:`~hybridpot.empirical.base.EmpiricalPotential.set_parameter_values`:
torch parameters of the native baselines, numbers rewritten in the potential files of a LAMMPS
baseline) and evaluate the baseline on the training set.

Parameters move within theta0 * (1 +/- refit_range), or within explicit ``refit_bounds``; NLopt's
bounded derivative-free algorithms (default BOBYQA; COBYLA, Nelder-Mead, Sbplx) drive the search
over the normalised parameters u in [-1, 1] (theta = mid + half u). The objective need not be convex in
theta (a Tersoff refit on a small training set ends in different optima from different starts):
``refit_starts = N`` runs the search from the initial parameters and from N - 1 seeded random points
in the bounds, each with ``refit_max_evals`` evaluations, and keeps the lowest objective, or, with
``refit_choose = "cv"``, the start whose parameters give the lowest k-fold held-out error of the residual (the
rows of each fold's structures predicted by the residual fitted to the other folds' rows at the same ridge per
row): on a small training set the starts' final objectives differ by a few percent while their test errors
differ by up to 2x (benchmarks/rough_baseline.py).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import nlopt
import numpy as np
from tqdm.auto import tqdm

from hybridpot.dataset import Dataset
from hybridpot.design import DesignAssembler
from hybridpot.errors import ConfigError, HybridpotError
from hybridpot.fitting.assembly import RowCounts, Weights, weighted_rows
from hybridpot.fitting.linear import CVFit, fold_sse, prepare_basis, structure_folds
from hybridpot.fitting.solver import FixedRows, QRAccumulator, solve
from hybridpot.potential import HybridPotential
from hybridpot.prediction import DEFAULT_BATCH_ATOMS, BaselinePredictions, baseline_predictions, batches
from hybridpot.registry import linear_in_parameters

#: the largest design matrix co-fitting keeps in memory
MAX_DESIGN_BYTES = 2 * 1024**3


def refit_bounds(names: Sequence[str], labels: Sequence[str], theta0: np.ndarray, refit_range: float,
                 explicit: Mapping[str, Sequence[float]], where: str) -> tuple[np.ndarray, np.ndarray]:
    """(mid, half) of every refitted value: theta = mid + half u with u in [-1, 1].

    A parameter of ``explicit`` (name -> [lower, upper], applied to each of its values) spans those bounds; the others
    theta0 * (1 +/- refit_range) (mid = theta0, half = theta0 refit_range, of theta0's sign: the mapping of earlier
    versions).

    Raises:
        ConfigError: a parameter at 0 without explicit bounds, or a start outside its explicit bounds.
    """
    mid, half = theta0.astype(np.float64).copy(), theta0 * refit_range
    owner = _owners(names, labels)
    for k, (name, label) in enumerate(zip(owner, labels)):
        if name in explicit:
            lo, hi = (float(x) for x in explicit[name])
            mid[k], half[k] = 0.5 * (lo + hi), 0.5 * (hi - lo)
            if not lo <= theta0[k] <= hi:
                raise ConfigError(f"{where}: [baseline] refit_bounds.{name} = [{lo}, {hi}]: {label} starts at {float(theta0[k])!r}, "
                                  "outside them")
        elif half[k] == 0:
            raise ConfigError(f"{where}: [baseline] refit: {label} is 0, so refit_range gives it no room; give its bounds, "
                              f"refit_bounds = {{\"{name}\" = [lower, upper]}}")
    return mid, half


def _owners(names: Sequence[str], labels: Sequence[str]) -> list[str]:
    """The name each label belongs to (labels are NAME or NAME[k], in the order of ``names``)."""
    out = []
    for label in labels:
        out.append(next(n for n in names if label == n or label.startswith(f"{n}[")))
    return out


def held_out_rss(A: np.ndarray, y: np.ndarray, row_folds: np.ndarray, n_free: int, lam: float, scale_columns: bool) -> float:
    """k-fold held-out residual sum of squares (:func:`~hybridpot.fitting.linear.fold_sse`): each fold's rows
    (``row_folds`` (R,), fold of each row's structure) predicted by the ridge fit of the other folds' rows at the ridge
    ``lam`` of all R rows scaled to their number (the same penalty per row)."""
    parts = {}
    for n, k in enumerate(np.unique(row_folds)):
        held = row_folds == k
        parts[(n, "rows")] = acc = QRAccumulator(A.shape[1])
        acc.add(A[held], y[held])
    fit = CVFit(0, lam / len(y), {}, Weights())
    return fold_sse(parts, len(parts), n_free, [fit], scale_columns)[0]["rows"]


def variable_projection(A: np.ndarray, y_at: Callable[[np.ndarray], np.ndarray], n_free: int, scale_columns: bool,
                        mid: np.ndarray, half: np.ndarray, starts: Sequence[np.ndarray], algorithm: str, max_evals: int,
                        progress: bool = True, row_folds: np.ndarray | None = None) -> dict[str, Any]:
    """Minimise f(theta) = min_w ||A w - y(theta)||^2 over theta = mid + half u, u in [-1, 1], from each of ``starts``.

    Args:
        A: (R, M) weighted design matrix (columns in the solver's order, the ``n_free`` unpenalised ones first).
        y_at: theta -> (R,) weighted targets (the baseline evaluated at theta).
        scale_columns: as :func:`~hybridpot.fitting.solver.solve`.
        starts: the u each local search starts from (the first: the initial parameters; the ridge is chosen there).
        algorithm: an NLopt algorithm name (``LN_BOBYQA``, ...); max_evals: objective evaluations per start.
        row_folds: (R,) the CV fold of each row's structure: keep the start with the lowest :func:`held_out_rss`
            (None: the lowest objective).

    Returns:
        {"theta": best theta over the starts, "u": its u, "history": objective per evaluation (all starts, in order),
        "starts": per start its u0, u_final, final objective (and held-out RSS "cv_rss" with ``row_folds``),
        evaluations and NLopt result, "best_start": the index of the start kept,
        "objective_final", "nlopt_result" (of the best start), "ridge_lambda": the regularisation, chosen at the first
        start and kept}.
    """
    factor = FixedRows(A).accumulator  # A is factorised once; each evaluation applies its Q^T to the new targets
    # the objective needs the residual alone: no posterior covariance (an M x M inverse, ~1 s at M = 2850) per trial
    lam = solve(factor(y_at(mid + half * starts[0])), n_free=n_free, scale_columns=scale_columns, posterior=False).lam
    history: list[float] = []
    bar = tqdm(total=max_evals * len(starts), desc="co-fit baseline", unit="eval", disable=not progress, leave=False)

    def objective(u: np.ndarray, grad: np.ndarray) -> float:
        value = solve(factor(y_at(mid + half * u)), n_free=n_free, lam=lam, scale_columns=scale_columns, posterior=False).rss
        history.append(value)
        bar.update(1)
        bar.set_postfix(objective=f"{value:.6e}")
        return value

    runs = []
    for u0 in starts:
        opt = nlopt.opt(getattr(nlopt, algorithm), u0.size)
        opt.set_lower_bounds(-np.ones(u0.size))
        opt.set_upper_bounds(np.ones(u0.size))
        opt.set_min_objective(objective)
        opt.set_maxeval(max_evals)
        opt.set_xtol_rel(1e-8)
        opt.set_ftol_rel(1e-12)
        n_before = len(history)
        u = opt.optimize(np.asarray(u0, dtype=np.float64))
        runs.append({"u0": np.asarray(u0, dtype=np.float64).tolist(), "u": u, "u_final": u.tolist(),
                     "objective_final": float(opt.last_optimum_value()),
                     "evaluations": len(history) - n_before, "nlopt_result": int(opt.last_optimize_result())})
    bar.close()
    if row_folds is not None:
        for r in runs:
            r["cv_rss"] = held_out_rss(A, y_at(mid + half * r["u"]), row_folds, n_free, lam, scale_columns)
    best = int(np.argmin([r["cv_rss" if row_folds is not None else "objective_final"] for r in runs]))
    u = runs[best]["u"]
    return {"theta": mid + half * u, "u": u, "history": history, "objective_final": runs[best]["objective_final"],
            "nlopt_result": runs[best]["nlopt_result"], "ridge_lambda": lam, "best_start": best,
            "starts": [{k: v for k, v in r.items() if k != "u"} for r in runs]}


def cofit(potential: HybridPotential, data: Dataset, weights: Weights, config, progress: bool = True,
          log: Callable[[str], None] = print, batch_atoms: int = DEFAULT_BATCH_ATOMS) -> dict[str, Any]:
    """Optimise the baseline parameters named in ``[baseline] refit`` jointly with the residual.

    The baseline's parameters are set to the optimum in place; the caller then fits the model.

    Returns:
        Record of the optimisation: parameters (labels, initial, final, bounds), the objective per evaluation
        (``history``), evaluations, the NLopt result.
    """
    b = config["baseline"]
    baseline = potential.baseline
    if not linear_in_parameters(potential.model):
        raise HybridpotError(f"{config.source}: [baseline] refit needs a model linear in its parameters (linear, quadratic, kernel), not {potential.model.kind}")
    names = list(b["refit"])
    theta0 = baseline.parameter_values(names, config.source)
    labels = baseline.parameter_labels(names, config.source)
    mid, half = refit_bounds(names, labels, theta0, b["refit_range"], b["refit_bounds"], config.source)
    prepare_basis([potential], data, config["fit"]["seed"], batch_atoms)
    scale_columns = not getattr(potential.model, "identity_prior", False)
    assembler = DesignAssembler(potential.descriptor, potential.model, potential.types, potential.cutoff)
    groups = list(batches(data.n_atoms, batch_atoms))
    ptr, counts = data.ptr, RowCounts.of(data)
    blocks, owners = [], []
    size = 0
    no_baseline = baseline_predictions(None, data, progress=False)  # A does not depend on the targets
    for idx in tqdm(groups, desc="co-fit design matrix", unit="batch", disable=not progress, leave=False):
        batch = data.subset(idx, ptr)
        A, _, owner, _ = weighted_rows(batch, no_baseline.subset(data, idx, ptr), weights, counts, assembler.rows(batch.frames))
        owners.append(np.asarray(idx)[owner])
        size += A.nbytes
        if size > MAX_DESIGN_BYTES:
            raise HybridpotError(f"co-fitting holds the design matrix in memory and it exceeds {MAX_DESIGN_BYTES / 1024**3:.0f} GiB; "
                                 "use fewer structures (train_fraction) or a smaller descriptor")
        blocks.append(A[:, assembler.column_order()])
    A = np.concatenate(blocks)

    def set_at(theta: np.ndarray) -> None:
        baseline.set_parameter_values(names, theta, config.source)
        # parameters that set the range (Tersoff R, D) move the baseline's cutoff, and with it the neighbour list the hybrid needs
        potential.cutoff = max(float(potential.descriptor.rcut), 0.0 if baseline.external else float(baseline.cutoff))

    def predictions_at(theta: np.ndarray) -> BaselinePredictions:
        set_at(theta)
        return baseline_predictions(baseline, data, batch_atoms, progress=False)

    def targets(theta: np.ndarray) -> np.ndarray:
        bl = predictions_at(theta)
        return np.concatenate([weighted_rows(data.subset(idx, ptr), bl.subset(data, idx, ptr), weights, counts)[1] for idx in groups])

    u0 = np.where(half != 0, (theta0 - mid) / np.where(half != 0, half, 1.0), 0.0)
    rng = np.random.default_rng(config["fit"]["seed"])
    starts = [u0] + [rng.uniform(-1.0, 1.0, u0.size) for _ in range(b["refit_starts"] - 1)]
    row_folds = None
    if b["refit_choose"] == "cv" and len(starts) > 1:
        n_folds = min(int(config["model"].get("cv_folds", 5)), len(data))
        row_folds = structure_folds(len(data), n_folds, config["fit"]["seed"])[np.concatenate(owners)]
    result = variable_projection(A, targets, len(potential.model.elements), scale_columns, mid, half, starts, b["refit_algorithm"],
                                 b["refit_max_evals"], progress, row_folds)
    theta = result["theta"]
    set_at(theta)
    history = result["history"]
    at_bound = np.abs(result["u"]) > 1 - 1e-6
    lower, upper = np.minimum(mid - half, mid + half), np.maximum(mid - half, mid + half)
    for label, a, z, lo, hi in zip(labels, theta0, theta, lower, upper):
        log(f"co-fit: {label} {float(a)!r} -> {float(z)!r} (bounds {lo:.6g} .. {hi:.6g})")
    if at_bound.any():
        log(f"co-fit: {', '.join(l for l, f in zip(labels, at_bound) if f)} ended at the bound; widen refit_range or refit_bounds")
    if len(starts) > 1:
        finals = ", ".join(f"{r['objective_final']:.6e}" + (f" (held-out {r['cv_rss']:.6e})" if "cv_rss" in r else "")
                           for r in result["starts"])
        log(f"co-fit: final objective per start {finals}; kept start {result['best_start']}"
            + (" (the initial parameters)" if result["best_start"] == 0 else " (random)")
            + (", the lowest held-out error" if row_folds is not None else ", the lowest objective"))
    log(f"co-fit: objective {history[0]:.6e} -> {result['objective_final']:.6e} in {len(history)} evaluations ({b['refit_algorithm']})")
    return {
        "parameters": names,
        "labels": labels,
        "initial": theta0.tolist(),
        "final": theta.tolist(),
        "lower": lower.tolist(),
        "upper": upper.tolist(),
        "objective_initial": history[0],
        "objective_final": result["objective_final"],
        "history": history,
        "evaluations": len(history),
        "algorithm": b["refit_algorithm"],
        "starts": [{**r, "theta0": (mid + half * np.asarray(r["u0"])).tolist(), "theta_final": (mid + half * np.asarray(r["u_final"])).tolist()}
                   for r in result["starts"]],
        "best_start": result["best_start"],
        "choose": b["refit_choose"] if len(starts) > 1 else "only start",
        "ridge_lambda": result["ridge_lambda"],
        "nlopt_result": result["nlopt_result"],
        "at_bound": at_bound.tolist(),
    }
