"""Fitting linear and quadratic models: assemble (streamed), solve, set the coefficients.

The energy weight can be chosen by k-fold cross-validation over structures
(:func:`choose_energy_weight`): the rows are assembled once, with each fold's energy rows and
force (and stress) rows in separate triangular factors, so every candidate weight costs only
small QR and SVD steps, not another pass over the data.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from hybridpot.dataset import Dataset
from hybridpot.design import DesignAssembler
from hybridpot.fitting.assembly import ROW_KINDS, Weights, accumulate
from hybridpot.fitting.solver import LinearSolution, QRAccumulator, solve
from hybridpot.potential import HybridPotential
from hybridpot.prediction import DEFAULT_BATCH_ATOMS, BaselinePredictions
from hybridpot.registry import linear_in_parameters


def fit_linear(
    potential: HybridPotential,
    data: Dataset,
    baseline: BaselinePredictions,
    weights: Weights,
    regularization: str | float = "evidence",
    cv_folds: int = 5,
    seed: int = 0,
    batch_atoms: int = DEFAULT_BATCH_ATOMS,
    progress: bool = True,
    energy_weights: Sequence[float] = (),
    energy_weight_targets: tuple[float, float] | None = None,
) -> tuple[LinearSolution, Weights]:
    """Fit the (linear-in-parameters) model of ``potential`` to DFT minus baseline, in place.

    Args:
        potential: hybrid whose ``model`` is linear in its parameters (``features``, ``pair_feature_gradients``,
            ``n_params``, ``coef`` (T, M); :attr:`hybridpot.registry.ModelType.linear`); its ``coef`` is set.
        data: training data; ``baseline``: the baseline's predictions on it.
        weights: row weights; with ``energy_weights``, ``weights.energy`` is the unit the candidates multiply.
        regularization: "evidence" (maximise the marginal likelihood), "cv" (k-fold over
            structures, ``cv_folds``, seeded by ``seed``) or a fixed ridge parameter on the scaled
            columns.
        energy_weights: candidate energy weights; when given, the one with the best k-fold
            cross-validated energy and force errors is used (:func:`choose_energy_weight`, same
            folds as ``regularization = "cv"``), scored with ``energy_weight_targets`` if given.

    Returns:
        (the solution: coefficients, chosen regularisation, posterior covariance, diagnostics, and
        with ``energy_weights`` the selection record in ``solution.energy_weight_cv``; the weights
        used, i.e. ``weights`` with the chosen energy weight).
    """
    model = potential.model
    if not linear_in_parameters(model):
        raise TypeError(f"fit_linear needs a model that is linear in its parameters (hybridpot.registry.ModelType.linear), "
                        f"got {type(model).__name__}")
    assembler = DesignAssembler(potential.descriptor, model, potential.types, potential.cutoff)
    choose = len(energy_weights) > 0
    n_folds = min(cv_folds, len(data)) if (regularization == "cv" or choose) else 1
    folds = np.random.default_rng(seed).permutation(len(data)) % n_folds if n_folds > 1 else None  # 1 structure: evidence
    parts, atoms = accumulate(assembler, data, baseline, weights, batch_atoms, folds, by_kind=choose, progress=progress)
    lam = None if isinstance(regularization, str) else float(regularization)
    n_free = len(model.elements)
    record = None
    if choose:
        record = choose_energy_weight(parts, n_folds, energy_weights, n_free, weights.force, lam, progress, energy_weight_targets,
                                      energy_unit=weights.energy)
        weights = replace(weights, energy=weights.energy * record["chosen"])
        record["energy_weight"] = weights.energy
    energy_row = float(np.sqrt(record["chosen"])) if choose else 1.0  # the energy rows were assembled at weights.energy
    fold_acc = [QRAccumulator.combine([(acc, energy_row if kind == "energy" else 1.0) for (f, kind), acc in parts.items() if f == k])
                for k in range(n_folds)]
    total = QRAccumulator.combine([(acc, 1.0) for acc in fold_acc])
    sol = solve(total, n_free=n_free, lam=lam, folds=fold_acc if regularization == "cv" and n_folds > 1 else None)
    order = assembler.column_order()
    coef = np.empty(assembler.n_columns)
    coef[order] = sol.coef
    with torch.no_grad():
        model.coef.copy_(torch.from_numpy(coef.reshape(model.coef.shape)))
    # posterior covariance back in the model's (element, parameter) order
    cov = np.empty_like(sol.covariance)
    cov[np.ix_(order, order)] = sol.covariance
    sol.covariance = cov
    sol.coef = coef
    sol.training_descriptors = atoms
    sol.energy_weight_cv = record
    return sol, weights


def choose_energy_weight(
    parts: dict[tuple[int, str], QRAccumulator],
    n_folds: int,
    candidates: Sequence[float],
    n_free: int,
    force_weight: float,
    lam: float | None = None,
    progress: bool = True,
    targets: tuple[float, float] | None = None,
    energy_unit: float = 1.0,
) -> dict[str, Any]:
    """The energy weight with the best k-fold cross-validated energy and force errors.

    ``parts``' energy rows were assembled at energy weight ``energy_unit``; the candidates are
    factors of it (the chosen weight is ``energy_unit * chosen``).

    For each fold k and candidate weight w, the model is fitted (evidence maximisation, or the
    fixed ``lam``) to the other folds' rows with the energy rows scaled by sqrt(w), and scored on
    fold k's unit-weight energy rows and force rows. Pooled over folds, these give the CV energy
    RMSE (eV/atom; per-atom energies, config weights applied) and force RMSE (eV/A per component)
    of each w. The chosen w minimises

        score(w) = E_rmse(w) / min_w' E_rmse(w') + F_rmse(w) / min_w' F_rmse(w')

    i.e. the sum of each error relative to the best any candidate reaches: no error target is
    needed, and neither kind of error may be traded away for a small gain in the other. With
    ``targets`` = (E_t meV/atom, F_t eV/A) the score is E_rmse / E_t + F_rmse / F_t instead (errors
    in units of what the user aims for; better when one error hardly responds to the weight, e.g.
    energies dominated by a few structures the model cannot fit). Stress rows (if any) are fitted
    at their own weight but not scored.

    Args:
        parts: {(fold, kind): accumulator} from :func:`~hybridpot.fitting.assembly.accumulate`
            with ``by_kind=True``, the energy rows at weight ``energy_unit``.
        force_weight: the force rows' weight (to undo it in the force error).

    Returns:
        {"chosen": w, "candidates": [...], "energy_rmse_meV_atom": [...], "force_rmse_eV_A": [...],
        "score": [...], "targets": targets or None, "n_folds": k, "at_edge": whether w is the smallest or
        largest candidate}.

    Raises:
        ValueError: no candidates, a non-positive candidate, fewer than 2 folds, or no energy or
            force rows.
    """
    cands = [float(w) for w in candidates]
    if not cands or min(cands) <= 0:
        raise ValueError(f"energy weight candidates must be positive numbers, got {candidates}")
    if n_folds < 2:
        raise ValueError("choosing the energy weight needs at least 2 cross-validation folds (structures)")
    if force_weight <= 0 or not any(kind == "force" for _, kind in parts) or not any(kind == "energy" for _, kind in parts):
        raise ValueError("choosing the energy weight needs energy and force rows (force_weight > 0 and forces in the data)")
    sse = np.zeros((len(cands), 2))
    steps = tqdm(total=n_folds * len(cands), desc="energy weight CV", unit="fit", disable=not progress, leave=False)
    for k in range(n_folds):
        rest = {kind: QRAccumulator.combine([(acc, 1.0) for (f, kd), acc in parts.items() if f != k and kd == kind])
                for kind in ROW_KINDS if any(f != k and kd == kind for (f, kd) in parts)}  # fixed order: reproducible
        for c, w in enumerate(cands):
            train = QRAccumulator.combine([(acc, np.sqrt(w) if kind == "energy" else 1.0) for kind, acc in rest.items()])
            coef = solve(train, n_free=n_free, lam=lam, posterior=False).coef
            for col, kind in enumerate(("energy", "force")):
                if (k, kind) in parts:
                    sse[c, col] += parts[(k, kind)].sse(coef)
            steps.update(1)
    steps.close()
    e_rmse = np.sqrt(sse[:, 0] / energy_unit)
    f_rmse = np.sqrt(sse[:, 1] / force_weight)
    e_unit, f_unit = (targets[0] / 1000.0, targets[1]) if targets else (e_rmse.min(), f_rmse.min())
    score = e_rmse / e_unit + f_rmse / f_unit
    best = int(np.argmin(score))
    return {
        "chosen": cands[best], "candidates": cands, "energy_rmse_meV_atom": (1000 * e_rmse).tolist(),
        "force_rmse_eV_A": f_rmse.tolist(), "score": score.tolist(), "targets": list(targets) if targets else None, "n_folds": n_folds,
        "at_edge": bool(len(cands) > 1 and cands[best] in (min(cands), max(cands))),
    }
