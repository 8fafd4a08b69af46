"""Fitting linear and quadratic models: assemble (streamed), solve, set the coefficients."""

from __future__ import annotations

import numpy as np
import torch

from hybridpot.fitting.assembly import DEFAULT_BATCH_ATOMS, BaselinePredictions, DesignAssembler, Weights, accumulate
from hybridpot.fitting.solver import LinearSolution, solve
from hybridpot.io.data import Dataset
from hybridpot.models.polynomial import PolynomialModel
from hybridpot.potential import HybridPotential


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
) -> LinearSolution:
    """Fit the (linear-in-parameters) model of ``potential`` to DFT minus baseline, in place.

    Args:
        potential: hybrid whose ``model`` is a :class:`PolynomialModel` (coefficients are set).
        data: training data; ``baseline``: the baseline's predictions on it.
        regularization: "evidence" (maximise the marginal likelihood), "cv" (k-fold over
            structures, ``cv_folds``, seeded by ``seed``) or a fixed ridge parameter on the scaled
            columns.

    Returns:
        The solution (coefficients, chosen regularisation, posterior covariance, diagnostics).
    """
    model = potential.model
    if not isinstance(model, PolynomialModel):
        raise TypeError(f"fit_linear needs a PolynomialModel, got {type(model).__name__}")
    assembler = DesignAssembler(potential.descriptor, model, potential.types, potential.cutoff)
    folds, n_folds = None, 0
    if regularization == "cv":
        n_folds = min(cv_folds, len(data))
        folds = np.random.default_rng(seed).permutation(len(data)) % n_folds
    acc, fold_acc, atoms = accumulate(assembler, data, baseline, weights, batch_atoms, folds, n_folds, progress)
    lam = None if isinstance(regularization, str) else float(regularization)
    sol = solve(acc, n_free=len(model.elements), lam=lam, folds=fold_acc or None)
    coef = np.empty(assembler.n_columns)
    coef[assembler.column_order()] = sol.coef
    with torch.no_grad():
        model.coef.copy_(torch.from_numpy(coef.reshape(model.coef.shape)))
    # posterior covariance back in the model's (element, parameter) order
    order = assembler.column_order()
    cov = np.empty_like(sol.covariance)
    cov[np.ix_(order, order)] = sol.covariance
    sol.covariance = cov
    sol.coef = coef
    sol.training_descriptors = atoms
    return sol
