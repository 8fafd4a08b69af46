"""Fitting linear and quadratic models: assemble (streamed), solve, set the coefficients.

The energy weight can be chosen by k-fold cross-validation over structures
(:func:`choose_energy_weight`): the rows are assembled once, with each fold's energy rows and
force (and stress) rows in separate triangular factors, so every candidate weight costs only
small QR and SVD steps, not another pass over the data.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from hybridpot.arrays import release_memory
from hybridpot.dataset import Dataset
from hybridpot.design import DesignAssembler
from hybridpot.distributed import ClusterArg
from hybridpot.fitting.assembly import ROW_KINDS, Weights, accumulate
from hybridpot.fitting.solver import LinearSolution, QRAccumulator, ridge_coef, solve
from hybridpot.potential import HybridPotential
from hybridpot.prediction import DEFAULT_BATCH_ATOMS, BaselinePredictions, baseline_predictions, descriptors
from hybridpot.registry import linear_in_parameters


def fit_linear(potential: HybridPotential, data: Dataset, baseline: BaselinePredictions, weights: Weights,
               *args: Any, **kwargs: Any) -> tuple[LinearSolution, Weights]:
    """Fit the (linear-in-parameters) model of ``potential`` to DFT minus baseline, in place: :func:`fit_linear_joint` of
    it alone (its arguments after ``potentials``)."""
    return fit_linear_joint([potential], data, baseline, weights, *args, **kwargs)[0]


def fit_linear_joint(
    potentials: Sequence[HybridPotential],
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
    pure_weights: Weights | None = None,
    mode: str = "on",
    cv_score: bool = False,
    cluster: ClusterArg = None,
) -> tuple[LinearSolution, Weights]:
    """Fit the (linear-in-parameters) model of each of ``potentials`` to DFT minus baseline, in place, from one design pass.

    Args:
        potentials: hybrids whose ``model`` is linear in its parameters (``features``, ``pair_feature_gradients``,
            ``n_params``, ``coef`` (T, M); :attr:`hybridpot.registry.ModelType.linear`); its ``coef`` is set, and a
            data-dependent basis chosen first where the model has one (:func:`prepare_basis`, seeded by ``seed``).
            Several: the same descriptor and baseline, and models that one model class's ``joint`` assembles as one
            (:meth:`hybridpot.models.kernel.KernelModel.joint`: polynomial kernels that differ in zeta alone, the costly
            part of whose pass is formed once), with ``member_columns(i)`` for the columns of each; each is
            then solved from its columns of the family's factors (:meth:`QRAccumulator.columns`), to round-off the fit
            it would get alone.
        data: training data; ``baseline``: the baseline's predictions on it.
        weights: row weights; with ``energy_weights``, ``weights.energy`` is the unit the candidates multiply.
        regularization: "evidence" (maximise the marginal likelihood), "cv" (k-fold over
            structures, ``cv_folds``, seeded by ``seed``) or a fixed ridge parameter on the scaled
            columns.
        energy_weights: candidate energy weights; when given, the one with the best k-fold
            cross-validated energy and force errors is used (:func:`choose_energy_weight`, same
            folds as ``regularization = "cv"``), scored with ``energy_weight_targets`` if given.
        pure_weights: given, the baseline check (:func:`baseline_check`) runs on the same factors:
            k-fold CV errors of the hybrid, of pure ML (no baseline, these weights, with the
            chosen energy factor) and of the baseline alone, in ``solution.baseline_check``.
        mode: with ``pure_weights``: "on" keeps the baseline, "off" fits pure ML, "auto" keeps the
            better of the two by the CV score (pure ML: the model then fits DFT itself, and the
            caller must drop the baseline: ``solution.baseline_check["used"] == "pure_ml"``).
        cv_score: assemble the folds (``cv_folds``) even without the above, for ``solution.cv_errors``.
        cluster: None (this process) or a Dask cluster for the passes over the data (``"local:N"``, a scheduler
            address or an open :class:`~hybridpot.distributed.Cluster`): the design matrix, and a kernel model's
            descriptors for its basis; the same model to round-off, for any number of workers.

    Returns:
        per potential, (the solution: coefficients, chosen regularisation, posterior covariance, diagnostics, and
        with ``energy_weights`` the selection record in ``solution.energy_weight_cv``; the weights
        used, i.e. ``weights`` with the chosen energy weight).
    """
    for potential in potentials:
        if not linear_in_parameters(potential.model):
            raise TypeError(f"fit_linear needs a model that is linear in its parameters (hybridpot.registry.ModelType.linear), "
                            f"got {type(potential.model).__name__}")
    first = potentials[0]
    if any(p.baseline is not first.baseline or p.descriptor.to_dict() != first.descriptor.to_dict() for p in potentials[1:]):
        raise ValueError("fit_linear_joint: the potentials fitted together must share their baseline and descriptor settings "
                         "(one design pass: only their models may differ)")
    prepare_basis(potentials, data, seed, batch_atoms, progress, cluster)
    model = first.model
    if len(potentials) > 1:
        if not hasattr(type(model), "joint"):
            raise TypeError(f"{type(model).__name__} models cannot be fitted jointly (no joint())")
        model = type(model).joint([p.model for p in potentials])
    assembler = DesignAssembler(first.descriptor, model, first.types, first.cutoff)
    choose = len(energy_weights) > 0
    check = pure_weights is not None and len(data) > 1
    n_folds = min(cv_folds, len(data)) if (regularization == "cv" or choose or check or cv_score) else 1
    folds = structure_folds(len(data), n_folds, seed) if n_folds > 1 else None  # 1 structure: evidence
    extra = (baseline_predictions(None, data, progress=False),) if check else ()  # the pure-ML targets share the rows
    parts, atoms, energy_rows = accumulate(assembler, data, baseline, weights, batch_atoms, folds, by_kind=choose or check or cv_score, progress=progress,
                              extra_baselines=extra, cluster=cluster)
    position = np.argsort(assembler.column_order())  # assembled column -> its place in the factors' order

    def own(i: int, potential: HybridPotential) -> tuple[dict[tuple[int, str], QRAccumulator], np.ndarray, np.ndarray]:
        """Potential i's factors, energy rows (its columns) and solver column order: the assembled ones where it is alone."""
        if len(potentials) == 1:
            return parts, energy_rows, assembler.column_order()
        cols = model.member_columns(i)
        design = (np.arange(assembler.T)[:, None] * assembler.M + cols[None, :]).ravel()  # its columns in the family's rows
        order = DesignAssembler(potential.descriptor, potential.model, potential.types, potential.cutoff).column_order()
        return {key: acc.columns(position[design[order]]) for key, acc in parts.items()}, energy_rows[:, design], order

    out = []
    for i, potential in enumerate(potentials):
        member_parts, member_rows, order = own(i, potential)
        out.append(_solve(potential.model, member_parts, atoms, member_rows, order, data, baseline, weights, regularization,
                          n_folds, folds, choose, check, cv_score, energy_weights, energy_weight_targets, pure_weights, mode,
                          progress))
        del member_parts
        release_memory()
    return out


def _solve(model, parts: dict[tuple[int, str], QRAccumulator], atoms: tuple[np.ndarray, np.ndarray], energy_rows: np.ndarray,
           order: np.ndarray, data: Dataset, baseline: BaselinePredictions, weights: Weights, regularization: str | float,
           n_folds: int, folds: np.ndarray | None, choose: bool, check: bool, cv_score: bool, energy_weights: Sequence[float],
           energy_weight_targets: tuple[float, float] | None, pure_weights: Weights | None, mode: str,
           progress: bool) -> tuple[LinearSolution, Weights]:
    """:func:`fit_linear_joint`'s solve of one ``model`` from its factors ``parts`` (its columns, in the solver's
    ``order``: intercepts first) and its unweighted energy rows (S, its columns in model order); sets its ``coef``."""
    scale_columns = not getattr(model, "identity_prior", False)
    assembled = weights
    lam = None if isinstance(regularization, str) else float(regularization)
    n_free = len(model.elements)
    record = None
    if choose:
        record = choose_energy_weight(parts, n_folds, energy_weights, n_free, weights.force, lam, progress, energy_weight_targets,
                                      scale_columns, energy_unit=weights.energy)
        weights = replace(weights, energy=weights.energy * record["chosen"])
        record["energy_weight"] = weights.energy

    totals: dict[tuple, QRAccumulator] = {}  # the last total factor, by its row factors: its targets share its SVD

    def full_solve(target: int, w: Weights, posterior: bool = True) -> LinearSolution:
        """The solve of target ``target`` of ``parts`` with the rows at weights ``w`` (``posterior``: with its covariance)."""
        fac = kind_factors(w, assembled)
        if regularization == "cv" and n_folds > 1:  # per-fold factors are held only where the regularisation is chosen by CV
            fold_acc = [QRAccumulator.combine([(acc, fac.get(kind, 1.0)) for (f, kind), acc in parts.items() if f == k]).target(target)
                        for k in range(n_folds)]
            out = solve(QRAccumulator.combine([(acc, 1.0) for acc in fold_acc]), n_free=n_free, lam=lam, folds=fold_acc,
                        posterior=posterior, scale_columns=scale_columns)
            del fold_acc
        else:
            key = _factor_key(fac)
            if key not in totals:
                totals.clear()
                release_memory()
                totals[key] = QRAccumulator.combine([(acc, fac.get(kind, 1.0)) for (_, kind), acc in sorted(parts.items())])
            out = solve(totals[key], n_free=n_free, lam=lam, posterior=posterior, scale_columns=scale_columns, target=target)
        release_memory()  # the solve's SVD work space, before the next solve fragments the heap further
        return out

    # the covariance (an M x M inverse) only for a solution that may be used (with mode "auto": both)
    sol, checked, target = full_solve(0, weights, posterior=not check or mode != "off"), None, 0
    fold_coefs: dict[tuple[int, int], np.ndarray] = {}  # (fit, fold) -> the fold's coefficients (the CV's fits)
    if check:
        pure = replace(pure_weights, energy=pure_weights.energy * (record["chosen"] if choose else 1.0))
        pure_sol = full_solve(1, pure, posterior=mode != "on")
        totals.clear()  # no solve follows: the total factor's memory goes before the CV's
        release_memory()
        checked = baseline_check(parts, n_folds, n_free, assembled, weights, pure,
                                 {"hybrid": sol.lam / sol.n_rows, "pure_ml": pure_sol.lam / pure_sol.n_rows}, mode, scale_columns,
                                 fold_coefs)
        if checked["used"] == "pure_ml":
            weights, target, sol = pure, 1, pure_sol
    coef = np.empty(order.size)
    coef[order] = sol.coef
    with torch.no_grad():
        model.coef.copy_(torch.from_numpy(coef.reshape(model.coef.shape)))
    # posterior covariance back in the model's (element, parameter) order
    cov = np.empty_like(sol.covariance)
    cov[np.ix_(order, order)] = sol.covariance
    sol.covariance = cov
    sol.coef = coef
    sol.training_descriptors = atoms
    sol.energy_rows = energy_rows
    sol.energy_weight_cv = record
    sol.baseline_check = checked
    if n_folds > 1 and (choose or check or cv_score):
        sol.cv_errors = (checked[checked["used"]] if checked else
                         cv_errors(parts, n_folds, n_free, sol.lam / sol.n_rows, kind_factors(weights, assembled), weights, target,
                                   scale_columns=scale_columns, fold_coefs=fold_coefs))
        fitted_to = data.energy - (0.0 if target == 1 else baseline.energy)  # target 1: pure ML, DFT itself
        sol.cv_energy_errors = held_out_energy_errors(energy_rows, fitted_to / data.n_atoms, folds,
                                                      [fold_coefs[(target, k)] for k in range(n_folds)], order)
        sol.cv_errors = {**sol.cv_errors, "energy_mae_meV_atom": 1000.0 * float(np.mean(np.abs(sol.cv_energy_errors)))}
    return sol, weights


def structure_folds(n_structures: int, n_folds: int, seed: int) -> np.ndarray:
    """(S,) the k-fold CV fold of each structure: a seeded random permutation, dealt round-robin, so that every fit
    and co-fit with the same seed scores the same folds."""
    return np.random.default_rng(seed).permutation(n_structures) % n_folds


def held_out_energy_errors(energy_rows: np.ndarray, targets: np.ndarray, folds: np.ndarray, coefs: Sequence[np.ndarray],
                           order: np.ndarray) -> np.ndarray:
    """(S,) the held-out per-atom energy error (eV/atom) of every structure: the prediction of the CV fit of the
    other folds (``coefs[k]``: fold k's coefficients in the solver's column ``order``, :func:`cv_errors_of`) minus
    its target.

    Args:
        energy_rows: (S, T*M) unweighted per-atom energy rows in model order (:func:`~hybridpot.fitting.assembly.accumulate`).
        targets: (S,) per-atom energy targets (eV/atom) of the fit (DFT minus the baseline, or DFT itself).
        folds: (S,) the fold of each structure.
    """
    out = np.empty(len(targets))
    for k, coef in enumerate(coefs):
        held = folds == k
        model_order = np.empty_like(coef)
        model_order[order] = coef
        out[held] = energy_rows[held] @ model_order - targets[held]
    return out


def prepare_basis(potentials: Sequence[HybridPotential], data: Dataset, seed: int = 0, batch_atoms: int = DEFAULT_BATCH_ATOMS,
                  progress: bool = False, cluster: ClusterArg = None) -> list[dict | None]:
    """Let each model with a data-dependent basis (``choose_basis``, e.g. a kernel model's sparse points) choose it from the
    training descriptors of ``data``, unless it has one already (``has_basis``: set by hand, or by an earlier fit). The
    potentials share their descriptor: the training descriptors are computed once, for all (and several models of a class
    with ``joint`` choose through it, sharing what they can).

    ``cluster``: None (this process) or a Dask cluster (:mod:`hybridpot.distributed`) for the descriptors' pass.

    Returns:
        per potential, its model's record of its choice, or None (no such model, or a basis already set).
    """
    need = [i for i, p in enumerate(potentials) if hasattr(p.model, "choose_basis") and not p.model.has_basis]
    out: list[dict | None] = [None] * len(potentials)
    if not need:
        return out
    B, types, _ = descriptors(potentials[need[0]], data.frames, batch_atoms, progress, cluster, desc="basis descriptors")
    chosen = [potentials[i].model for i in need]
    if len(chosen) > 1 and hasattr(type(chosen[0]), "joint"):  # what the members can share (a kernel family's cosines)
        records = type(chosen[0]).joint(chosen).choose_basis(B, types, seed)
    else:
        records = [model.choose_basis(B, types, seed) for model in chosen]
    for i, record in zip(need, records):
        out[i] = record
    return out


#: the Weights attribute of each row kind
_KIND_WEIGHT = {"energy": "energy", "force": "force", "stress": "stress", "baseline_stress": "baseline_stress"}


def kind_factors(target: Weights, assembled: Weights) -> dict[str, float]:
    """Row factor per kind that turns rows assembled at ``assembled`` weights into rows at ``target`` weights."""
    out = {}
    for kind, attr in _KIND_WEIGHT.items():
        a, t = getattr(assembled, attr), getattr(target, attr)
        out[kind] = float(np.sqrt(t / a)) if a > 0 else 0.0
    return out


def _factor_key(factors: dict[str, float]) -> tuple[tuple[str, float], ...]:
    """A hashable key of row factors per kind (:func:`kind_factors`): rows at equal keys share their merged factors."""
    return tuple(sorted(factors.items()))


@dataclass(frozen=True)
class CVFit:
    """One fit scored by :func:`cv_errors_of`: target ``target`` of the parts, with the rows at ``weights`` (``factors``
    from :func:`kind_factors`), at the ridge ``ridge_per_row`` times the rows fitted (None: unregularised least squares)."""

    target: int
    ridge_per_row: float | None
    factors: dict[str, float]
    weights: Weights


def cv_errors(parts: dict[tuple[int, str], QRAccumulator], n_folds: int, n_free: int, ridge_per_row: float, factors: dict[str, float],
              weights: Weights, target: int = 0, intercepts_only: bool = False, scale_columns: bool = True,
              fold_coefs: dict[tuple[int, int], np.ndarray] | None = None) -> dict[str, float]:
    """Pooled k-fold CV RMSE per kind of one fit (:func:`cv_errors_of` of one :class:`CVFit`, its fold coefficients in
    ``fold_coefs`` at (0, fold) where given); ``intercepts_only``: only the per-element reference energies are
    fitted (the baseline alone), by least squares."""
    if intercepts_only:  # only the leading columns matter: cut every part down first
        parts = {key: acc.target(target).leading(n_free) for key, acc in parts.items()}
        return cv_errors_of(parts, n_folds, n_free, [CVFit(0, None, factors, weights)])[0]
    return cv_errors_of(parts, n_folds, n_free, [CVFit(target, ridge_per_row, factors, weights)], scale_columns, fold_coefs)[0]


def fold_sse(parts: dict[tuple[int, str], QRAccumulator], n_folds: int, n_free: int, fits: Sequence[CVFit],
             scale_columns: bool = True, fold_coefs: dict[tuple[int, int], np.ndarray] | None = None) -> list[dict[str, float]]:
    """k-fold held-out sums of squared residuals of each of ``fits`` (:class:`CVFit`; its ``weights`` unused), per kind
    of the ``parts`` ((fold, kind) -> the factor of that fold's rows of that kind), each kind's rows scaled by the fit's
    ``factors`` (1 for a kind not in them): fold k's rows predicted by the fit of the other folds' rows.

    Each fold's training rows are fitted at the ridge parameter ``ridge_per_row`` times their number of rows (the
    full fit's lam / n_rows: the same penalty per row), not at one chosen again per fold: one QR of the training
    factor per fold instead of an SVD (15x cheaper for the quadratic model's 1326 columns), at the price of a
    regularisation chosen (by the evidence) on all the data, held-out folds included. Fits whose rows have the same
    ``factors`` (e.g. the hybrid and pure ML at the same weights) share each fold's training factor (one merge of the
    other folds' factors for all their targets). ``fold_coefs``: given, each fold's coefficients (solver column
    order) of fit n are stored at (n, fold), for :func:`held_out_energy_errors`.
    """
    kinds = sorted({kind for _, kind in parts})
    sse = [dict.fromkeys(kinds, 0.0) for _ in fits]
    groups: dict[tuple, list[int]] = {}
    for n, fit in enumerate(fits):
        groups.setdefault(_factor_key(fit.factors), []).append(n)
    for k in range(n_folds):  # one training factor at a time: memory of one factor, not of k
        for key, members in groups.items():
            factors = dict(key)
            rest = QRAccumulator.combine([(acc, factors.get(kd, 1.0)) for (f, kd), acc in parts.items() if f != k])
            for n in members:
                fit = fits[n]
                train = rest.target(fit.target)
                if fit.ridge_per_row is None:
                    coef = np.linalg.lstsq(train.R, train.z, rcond=None)[0]
                else:
                    coef = ridge_coef(train, n_free, fit.ridge_per_row * train.n_rows, scale_columns)
                if fold_coefs is not None:
                    fold_coefs[(n, k)] = coef
                for kind in sse[n]:
                    if (k, kind) in parts:
                        sse[n][kind] += factors.get(kind, 1.0) ** 2 * parts[(k, kind)].sse(coef, fit.target)
            del rest
    return sse


def cv_errors_of(parts: dict[tuple[int, str], QRAccumulator], n_folds: int, n_free: int, fits: Sequence[CVFit],
                 scale_columns: bool = True, fold_coefs: dict[tuple[int, int], np.ndarray] | None = None) -> list[dict[str, float]]:
    """Pooled k-fold CV RMSE per kind (energy meV/atom per atom, force eV/A per component, stress eV/atom per
    virial component; config weights applied) of each of ``fits`` (:class:`CVFit`) of ``parts``: :func:`fold_sse`
    (its arguments) over each kind's weight."""
    sse = fold_sse(parts, n_folds, n_free, fits, scale_columns, fold_coefs)
    out = []
    for fit, e in zip(fits, sse):
        errors = {}
        for kind, unit, scale in (("energy", "energy_rmse_meV_atom", 1000.0), ("force", "force_rmse_eV_A", 1.0),
                                  ("stress", "stress_rmse_eV_atom", 1.0)):
            w = getattr(fit.weights, kind)
            if w > 0 and any((k, kind) in parts for k in range(n_folds)):
                errors[unit] = scale * float(np.sqrt(e[kind] / w))
        out.append(errors)
    return out


def baseline_check(parts: dict[tuple[int, str], QRAccumulator], n_folds: int, n_free: int, assembled: Weights,
                   hybrid: Weights, pure: Weights, ridge_per_row: dict[str, float], mode: str = "on",
                   scale_columns: bool = True, fold_coefs: dict[tuple[int, int], np.ndarray] | None = None) -> dict[str, Any]:
    """k-fold CV errors of (a) the hybrid (target 0 of ``parts``, at ``hybrid`` weights), (b) pure ML
    (target 1: DFT itself, at ``pure`` weights) and (c) the baseline alone (with per-element reference
    energies), all from the same factors (``parts`` assembled at ``assembled`` weights); (a) and (b) at the ridge
    per row of their full fits (``ridge_per_row["hybrid"]``, ``["pure_ml"]``; :func:`cv_errors`).

    The score of (a) and (b): the sum over energies and forces of each error relative to the
    smaller of the two. ``mode`` "on" uses the hybrid, "off" pure ML, "auto" the one with the
    lower score. ``fold_coefs``: as :func:`cv_errors_of` (fit 0 the hybrid, 1 pure ML).

    Returns:
        {"hybrid", "pure_ml", "baseline_only": errors (:func:`cv_errors`), "score": {"hybrid", "pure_ml"},
        "better", "used", "mode", "n_folds", "ridge_per_row"}.
    """
    fa, fb = kind_factors(hybrid, assembled), kind_factors(pure, assembled)
    a, b = cv_errors_of(parts, n_folds, n_free, [CVFit(0, ridge_per_row["hybrid"], fa, hybrid),
                                                 CVFit(1, ridge_per_row["pure_ml"], fb, pure)], scale_columns, fold_coefs)
    c = cv_errors(parts, n_folds, n_free, 0.0, fa, hybrid, 0, intercepts_only=True)
    keys = [k for k in ("energy_rmse_meV_atom", "force_rmse_eV_A") if k in a and k in b]
    score = {name: float(sum(e[k] / max(min(a[k], b[k]), 1e-300) for k in keys)) for name, e in (("hybrid", a), ("pure_ml", b))}
    better = "pure_ml" if score["pure_ml"] < score["hybrid"] else "hybrid"
    used = {"on": "hybrid", "off": "pure_ml", "auto": better}[mode]
    return {"hybrid": a, "pure_ml": b, "baseline_only": c, "score": score, "better": better, "used": used, "mode": mode,
            "n_folds": n_folds, "ridge_per_row": dict(ridge_per_row)}


def choose_energy_weight(
    parts: dict[tuple[int, str], QRAccumulator],
    n_folds: int,
    candidates: Sequence[float],
    n_free: int,
    force_weight: float,
    lam: float | None = None,
    progress: bool = True,
    targets: tuple[float, float] | None = None,
    scale_columns: bool = True,
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
        scale_columns: as :func:`~hybridpot.fitting.solver.solve` (False for a model with ``identity_prior``).

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
            coef = solve(train, n_free=n_free, lam=lam, posterior=False, scale_columns=scale_columns).coef
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
