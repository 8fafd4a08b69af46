"""Co-fitting the baseline: NLopt over selected empirical parameters, residual solved exactly inside.

Variable projection: for baseline parameters theta, the linear residual model is solved exactly
(ridge with the regularisation chosen at the starting point), so the objective is

    f(theta) = min_w || A w - y(theta) ||^2,   y(theta) = weighted (DFT - baseline(theta))

The design matrix A of the descriptors does not depend on theta: it is assembled once and held
in memory (its size is checked against ``max_design_bytes``); each evaluation re-runs only the
baseline. Parameters move within theta0 * (1 +/- refit_range); NLopt's derivative-free
algorithms (default BOBYQA) drive the search.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from hybridpot.dataset import Dataset
from hybridpot.design import DesignAssembler
from hybridpot.errors import HybridpotError
from hybridpot.fitting.assembly import Weights, weighted_rows
from hybridpot.fitting.linear import prepare_basis
from hybridpot.fitting.solver import QRAccumulator, solve
from hybridpot.potential import HybridPotential
from hybridpot.prediction import DEFAULT_BATCH_ATOMS, baseline_predictions, batches
from hybridpot.registry import linear_in_parameters

#: the largest design matrix co-fitting keeps in memory
MAX_DESIGN_BYTES = 2 * 1024**3


def cofit(potential: HybridPotential, data: Dataset, weights: Weights, config, progress: bool = True,
          log: Callable[[str], None] = print, batch_atoms: int = DEFAULT_BATCH_ATOMS) -> dict[str, Any]:
    """Optimise the baseline parameters named in ``[baseline] refit`` jointly with the residual.

    The baseline's parameters are set to the optimum in place; the caller then fits the model.

    Returns:
        Record of the optimisation: parameters (initial, final), objective values, evaluations.
    """
    import nlopt

    b = config["baseline"]
    baseline = potential.baseline
    if not linear_in_parameters(potential.model):
        raise HybridpotError(f"{config.source}: [baseline] refit needs a linear or quadratic model, not {potential.model.kind}")
    params = dict(baseline.named_parameters())
    unknown = [n for n in b["refit"] if n not in params]
    if unknown:
        raise HybridpotError(f"{config.source}: [baseline] refit names {unknown}, not parameters of {baseline.source}; "
                             f"available: {sorted(params)}")
    chosen = [params[n] for n in b["refit"]]
    theta0 = np.concatenate([p.detach().numpy().ravel() for p in chosen])
    prepare_basis(potential, data, config["fit"]["seed"], batch_atoms)
    scale_columns = not getattr(potential.model, "identity_prior", False)
    assembler = DesignAssembler(potential.descriptor, potential.model, potential.types, potential.cutoff)
    groups = list(batches(data.n_atoms, batch_atoms))
    blocks = []
    size = 0
    no_baseline = baseline_predictions(None, data, progress=False)  # A does not depend on the targets
    for idx in tqdm(groups, desc="co-fit design matrix", unit="batch", disable=not progress, leave=False):
        A = weighted_rows(data, no_baseline, weights, idx, assembler.rows([data.frames[s] for s in idx]))[0]
        size += A.nbytes
        if size > MAX_DESIGN_BYTES:
            raise HybridpotError(f"co-fitting holds the design matrix in memory and it exceeds {MAX_DESIGN_BYTES / 1024**3:.0f} GiB; "
                                 "use fewer structures (train_fraction) or a smaller descriptor")
        blocks.append(A[:, assembler.column_order()])
    A = np.concatenate(blocks)

    def set_theta(theta: np.ndarray) -> None:
        k = 0
        with torch.no_grad():
            for p in chosen:
                p.copy_(torch.as_tensor(theta[k : k + p.numel()].reshape(p.shape), dtype=p.dtype))
                k += p.numel()
        # parameters that set the range (Tersoff R, D) move the baseline's cutoff, and with it the
        # neighbour list the hybrid needs
        if hasattr(baseline, "update_cutoff"):
            baseline.update_cutoff()
        potential.cutoff = max(float(potential.descriptor.rcut), float(baseline.cutoff))

    def targets() -> np.ndarray:
        bl = baseline_predictions(baseline, data, batch_atoms, progress=False)
        return np.concatenate([weighted_rows(data, bl, weights, idx)[1] for idx in groups])

    def factor(y: np.ndarray) -> QRAccumulator:
        acc = QRAccumulator(A.shape[1])
        acc.add(A, y)
        return acc

    n_free = len(potential.model.elements)
    start = solve(factor(targets()), n_free=n_free, scale_columns=scale_columns)
    lam = start.lam
    history: list[float] = []
    bar = tqdm(total=b["refit_max_evals"], desc="co-fit baseline", unit="eval", disable=not progress, leave=False)

    def objective(u: np.ndarray, grad: np.ndarray) -> float:
        set_theta(theta0 * (1.0 + b["refit_range"] * u))
        value = solve(factor(targets()), n_free=n_free, lam=lam, scale_columns=scale_columns).rss
        history.append(value)
        bar.update(1)
        bar.set_postfix(objective=f"{value:.6e}")
        return value

    opt = nlopt.opt(getattr(nlopt, b["refit_algorithm"]), theta0.size)
    opt.set_lower_bounds(-np.ones(theta0.size))
    opt.set_upper_bounds(np.ones(theta0.size))
    opt.set_min_objective(objective)
    opt.set_maxeval(b["refit_max_evals"])
    opt.set_xtol_rel(1e-8)
    opt.set_ftol_rel(1e-12)
    u = opt.optimize(np.zeros(theta0.size))
    bar.close()
    theta = theta0 * (1.0 + b["refit_range"] * u)
    set_theta(theta)
    at_bound = np.abs(u) > 1 - 1e-6
    if at_bound.any():
        log(f"co-fit: parameters {np.where(at_bound)[0].tolist()} ended at the refit_range bound; widen refit_range")
    log(f"co-fit: objective {history[0]:.6e} -> {opt.last_optimum_value():.6e} in {len(history)} evaluations")
    return {
        "parameters": b["refit"],
        "initial": theta0.tolist(),
        "final": theta.tolist(),
        "objective_initial": history[0],
        "objective_final": float(opt.last_optimum_value()),
        "evaluations": len(history),
        "ridge_lambda": lam,
        "nlopt_result": int(opt.last_optimize_result()),
        "at_bound": at_bound.tolist(),
    }
