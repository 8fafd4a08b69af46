"""Uncertainty data from a fit: the coefficient posterior and its noise models, the MaxVol active
set, the reference energies and the out-of-bag calibration of a committee's spread.

Noise models of the posterior: the "evidence" noise follows from the row weights of the fit,
weight^2 = w_kind / n_kind: sigma_E^2 = n_E / (beta w_E) (energy per atom, eV/atom) and
sigma_F^2 = n_F / (beta w_F) (force component, eV/A) -- the likelihood the fit actually used. The
"residual" noise is the RMS training residual of each kind, a separate noise level for energies
and forces. The "cv" noise is the k-fold cross-validated RMS error of each kind of the fit as
solved (``solution.cv_errors``: held-out structures, the folds of the baseline check), so it
includes what the model gets wrong away from its training structures, which the training residual
of a flexible model (quadratic, kernel) leaves out; it counts the parametric part of a held-out
prediction twice (once in the CV error, once in phi Sigma phi^T), which is small next to it on the
mlearn sets. "cv" is the default where the fit has CV errors, else "residual": one noise precision
for both kinds (the evidence) ties the energy noise to the force noise through the user's row
weights (sigma_E / sigma_F = sqrt(n_E w_F / (n_F w_E))), which on the mlearn sets puts the energy
noise off by a factor of a few (benchmarks/uq.py reports all three).

The "local" noise model (:mod:`.local_noise`, the default where the fit has CV errors) is the "cv" one with the
energy noise of each structure taken from the held-out errors of its nearest training structures instead of all of
them, so that the std is wide where the fit was wrong before (surfaces, liquids) and narrow where it was right.

Energy intervals: a single noise level cannot give both the 68 % and the 95 % coverage when the errors are
heavier-tailed than a Gaussian (a few hard structures: surfaces, hot AIMD). The total energy's intervals are
therefore +- q times its "local" predictive std, with q the split-conformal quantile of the held-out
|error| / std of the training structures (:func:`interval_factors`): each training structure predicted by the CV
fit of the folds it is not in, its local noise taken from the other training structures. The parametric part of that
std uses the full fit's posterior, which is narrower than each fold's (the q lean to the cautious side).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from hybridpot.distributed import ClusterArg
from hybridpot.errors import HybridpotError
from hybridpot.models.committee import CommitteeModel
from hybridpot.potential import HybridPotential
from hybridpot.prediction import DEFAULT_BATCH_ATOMS, DESCRIPTOR_BATCH_ATOMS, descriptors, predict
from hybridpot.prediction import reference_energies as fit_reference_energies
from hybridpot.uq.active_set import ActiveSet
from hybridpot.uq.local_noise import LocalNoise
from hybridpot.uq.posterior import Posterior
from hybridpot.uq.query import UQData, member_potential, quad_diag

#: the energy intervals' levels: name -> coverage (68.27 %: +-1 std of a Gaussian)
INTERVAL_LEVELS = {"68": 0.6827, "95": 0.95}


def interval_factors(z: np.ndarray, levels: Mapping[str, float] = INTERVAL_LEVELS) -> dict[str, float]:
    """Split-conformal factors: for each level p, the ceil((n + 1) p)-th smallest of the n held-out scores
    ``z`` = |error| / predictive std, so that +- factor * std covers a new exchangeable structure with
    probability at least p; a level with ceil((n + 1) p) > n (too few structures) is left out."""
    z = np.sort(np.abs(np.asarray(z, dtype=np.float64)))
    out = {}
    for name, p in levels.items():
        rank = int(np.ceil((z.size + 1) * p))
        if 1 <= rank <= z.size:
            out[name] = float(z[rank - 1])
    return out


def posterior_from_fit(solution, data, weights, predictions: Mapping[str, np.ndarray] | None = None,
                       training_descriptors: tuple[np.ndarray, np.ndarray] | None = None, n_types: int = 1) -> Posterior:
    """The :class:`Posterior` of a linear fit.

    Args:
        solution: the :class:`~hybridpot.fitting.solver.LinearSolution` returned by
            :func:`~hybridpot.fitting.linear.fit_linear` (covariance in model order).
        data: the training :class:`~hybridpot.dataset.Dataset`; weights: the fit's
            :class:`~hybridpot.fitting.assembly.Weights`.
        predictions: the fitted hybrid's ``energy`` (S,) and ``forces`` (N, 3) on ``data`` (for the
            "residual" noise model; omitted: NaN).
        training_descriptors: (B (N, K), element indices (N,)) of ``data``'s atoms in data order, for the "local"
            noise model (None: no "local" model); n_types: the model's elements.

    The "cv" noise model comes from ``solution.cv_errors`` (NaN where the fit has none), the "local" one and the
    energy intervals' factors from ``solution.cv_energy_errors`` (:func:`interval_factors`; calibrated for "local"
    where it exists, else for "cv").
    """
    n_e = len(data)
    n_f = max(int(3 * data.n_atoms[data.has_forces].sum()), 1)
    beta = float(solution.beta)
    ev_e = np.sqrt(n_e / (beta * weights.energy)) if weights.energy > 0 else float("nan")
    ev_f = np.sqrt(n_f / (beta * weights.force)) if weights.force > 0 else float("nan")
    res_e = res_f = float("nan")
    if predictions is not None:
        res_e = float(np.sqrt(np.mean(((predictions["energy"] - data.energy) / data.n_atoms) ** 2)))
        ok = np.all(np.isfinite(data.forces), axis=1)
        if ok.any():
            res_f = float(np.sqrt(np.mean((predictions["forces"][ok] - data.forces[ok]) ** 2)))
    cv = getattr(solution, "cv_errors", None) or {}
    cv_e = float(cv.get("energy_rmse_meV_atom", float("nan"))) / 1000.0
    cv_f = float(cv.get("force_rmse_eV_A", float("nan")))
    cov = np.asarray(solution.covariance, dtype=np.float64)
    factors, local, interval_noise = {}, None, "cv"
    held_out = getattr(solution, "cv_energy_errors", None)
    if held_out is not None and np.isfinite(cv_e):
        n = data.n_atoms.astype(np.float64)
        sigma = np.full(len(n), cv_e)
        if training_descriptors is not None:
            local = LocalNoise.from_training(*training_descriptors, data.n_atoms, held_out, n_types)
            sigma, interval_noise = local.training_sigma(), "local"
        std = np.sqrt(quad_diag(n[:, None] * solution.energy_rows, cov) + (n * sigma) ** 2)  # total energy, eV
        factors = interval_factors(np.abs(held_out) * n / std)
    noise = {"evidence": {"energy": float(ev_e), "forces": float(ev_f)}, "residual": {"energy": res_e, "forces": res_f},
             "cv": {"energy": cv_e, "forces": cv_f}}
    return Posterior(covariance=cov, alpha=float(solution.alpha), beta=beta, noise=noise, energy_interval_factors=factors,
                     local_noise=local, interval_noise=interval_noise)


def attach_uq(potential: HybridPotential, data, baseline, weights, solution=None, predictions=None,
              reference_energies: Mapping[str, float] | None = None, batch_atoms: int = DESCRIPTOR_BATCH_ATOMS,
              strict: bool = False, committee_resamples: Sequence[Sequence[int]] | None = None, cluster: ClusterArg = None,
              progress: bool = False) -> dict[str, Any]:
    """Build and attach ``potential.uq_data`` after a fit: posterior, active set, reference energies
    and, for a committee trained on bootstrap resamples, the out-of-bag scale of its spread.

    Args:
        data: training data; baseline: the baseline's predictions on it (for the reference energies).
        solution: the linear solution (None for NN models).
        predictions: the fitted hybrid's predictions on ``data`` (residual noise model).
        reference_energies: per-element constants of the baseline-only potential (computed from
            ``data`` and ``baseline`` when None).
        strict: raise if the active set cannot be built (else it is left out, with the reason
            in the returned summary).
        committee_resamples: for a committee model, the indices into ``data`` each member was
            trained on (bootstrap resamples); None: no calibration of the spread.
        cluster: None (this process) or a Dask cluster (:mod:`hybridpot.distributed`) for the passes over ``data``
            (the training descriptors when the solution does not carry them, the committee members' predictions).
        progress: a bar for each of those passes.

    Returns:
        A JSON-able summary (noise levels, active set status, largest training gamma).
    """
    elements = list(potential.elements)
    if reference_energies is None:
        reference_energies = dict(zip(elements, map(float, fit_reference_energies(data, baseline, elements))))
    summary: dict[str, Any] = {}
    if solution is not None and solution.training_descriptors is not None:
        B, types = solution.training_descriptors  # kept from the design-matrix assembly
    else:
        B, types, _ = descriptors(potential, data.frames, batch_atoms, progress, cluster, desc="uq descriptors")
    posterior = (posterior_from_fit(solution, data, weights, predictions, (B, types), len(elements))
                 if solution is not None else None)
    if posterior is not None:
        summary["noise"] = posterior.noise
        summary["energy_interval_factors"] = dict(posterior.energy_interval_factors)
        summary["energy_interval_noise"] = posterior.interval_noise
        if posterior.local_noise is not None:
            summary["local_noise"] = {"neighbours": posterior.local_noise.neighbours,
                                      "log_likelihood": {str(k): v for k, v in posterior.local_noise.log_likelihood.items()}}
        summary["alpha"], summary["beta"] = posterior.alpha, posterior.beta
    error = None
    try:
        active: ActiveSet | None = ActiveSet.from_descriptors(B, types, elements, strict=True)
    except HybridpotError as exc:
        if strict:
            raise
        error = str(exc)  # keep the elements that do have an active set
        active = ActiveSet.from_descriptors(B, types, elements, strict=False)
    missing = [e for e, r in zip(elements, active.rows) if r is None]
    if len(missing) == len(elements):
        active = None
        summary["active_set"] = {"error": error}
    else:
        g = active.grade(B, types)
        summary["active_set"] = {"columns": active.n_columns, "max_training_gamma": float(np.max(g[np.isfinite(g)]))}
        if missing:
            summary["active_set"] |= {"missing_elements": missing, "error": error}
    noise_model = "residual"
    if posterior is not None:  # the first with a known energy noise: local and cv (held-out), residual (training), evidence
        noise_model = next(m for m in ("local", "cv", "residual", "evidence")
                           if m == "evidence" or (m in posterior.noise_models() and np.isfinite(posterior.noise_std(m)[0])))
        summary["noise_model"] = noise_model
    scale = None if committee_resamples is None else committee_calibration(potential, data, baseline, committee_resamples, batch_atoms,
                                                                             cluster, progress)
    if scale is not None:
        summary["committee_scale"] = scale
    potential.uq_data = UQData(posterior, active, {k: float(v) for k, v in reference_energies.items()}, noise_model, scale)
    return summary


def committee_calibration(potential: HybridPotential, data, baseline, resamples: Sequence[Sequence[int]],
                          batch_atoms: int | None = None, cluster: ClusterArg = None, progress: bool = False) -> dict[str, float] | None:
    """Out-of-bag factors that scale a committee's spread to its held-out errors.

    Member c was trained on the structures ``resamples[c]`` of ``data``; a structure s it never saw
    is out of bag for it. For every structure with at least one such member, the mean prediction of
    those members is a held-out prediction; with e_s its energy error per atom (eV/atom) and s_s the
    committee's spread (std over all members, ddof 1) of the energy per atom,

        a_E = sqrt(sum_s e_s^2 / sum_s s_s^2),

    and a_F likewise over the force components (eV/A) of those structures that have reference
    forces. Multiplying the spread by a_E (a_F) makes its RMS equal to the RMS held-out error on the
    training structures. The out-of-bag mean averages fewer members (about C/e) than the committee
    mean, so the factors lean to the cautious side.

    Args:
        potential: hybrid whose model is the :class:`~hybridpot.models.committee.CommitteeModel`.
        data, baseline: training data and the baseline's predictions on it.
        resamples: per member, indices into ``data`` (repeats allowed).
        batch_atoms: atoms per batch of the members' predictions (None: the fit's default).
        cluster: None (this process) or a Dask cluster (:mod:`hybridpot.distributed`) for the members' predictions.
        progress: a bar for each member's pass.

    Returns:
        {"energy": a_E, "forces": a_F (NaN without forces), "n_structures": structures out of bag
        for at least one member}, or None when no structure is out of bag for any member (members
        trained on the full set) or the members agree exactly.
    """
    model = potential.model
    if not isinstance(model, CommitteeModel) or len(resamples) != len(model.members):
        raise HybridpotError(f"committee calibration needs a committee with one resample per member, got "
                             f"{type(model).__name__} and {len(resamples)} resamples")
    S = len(data)
    out_of_bag = np.ones((len(resamples), S), dtype=bool)
    for c, index in enumerate(resamples):
        out_of_bag[c, np.asarray(index, dtype=int)] = False
    used = out_of_bag.any(axis=0)
    if not used.any():
        return None
    sub, bl = data.subset(np.flatnonzero(used)), baseline.subset(data, np.flatnonzero(used))
    preds = [predict(member_potential(potential, m), sub, batch_atoms or DEFAULT_BATCH_ATOMS, progress, f"committee member {c}", bl,
                     cluster) for c, m in enumerate(model.members)]
    oob = out_of_bag[:, used].astype(float)  # (C, S')
    weight = oob / oob.sum(axis=0)
    energy = np.stack([p["energy"] for p in preds]) / sub.n_atoms  # (C, S') eV/atom
    e_err = (weight * energy).sum(axis=0) - sub.energy / sub.n_atoms
    e_std = energy.std(axis=0, ddof=1)
    forces = np.stack([p["forces"] for p in preds])  # (C, N', 3)
    atom_weight = np.repeat(weight, sub.n_atoms, axis=1)[:, :, None]
    ok = np.isfinite(sub.forces).all(axis=1)
    f_err = ((atom_weight * forces).sum(axis=0) - sub.forces)[ok]
    f_std = forces.std(axis=0, ddof=1)[ok]
    if not np.sum(e_std**2) > 0:
        return None
    a_f = float(np.sqrt(np.sum(f_err**2) / np.sum(f_std**2))) if ok.any() and np.sum(f_std**2) > 0 else float("nan")
    return {"energy": float(np.sqrt(np.sum(e_err**2) / np.sum(e_std**2))), "forces": a_f, "n_structures": int(used.sum())}
