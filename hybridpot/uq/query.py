"""The uncertainty data a fitted hybrid carries (:class:`UQData`) and the queries on it: predictive
std, extrapolation grades, the fallback switches, enabling the fallback.

Predictive std of the total energy from the posterior: sqrt(phi_E Sigma phi_E^T + N^2 sigma_E^2)
(the fit models per-atom energy noise; under the "local" noise model sigma_E depends on the structure,
:mod:`hybridpot.uq.local_noise`), of a force component: sqrt(g Sigma g^T + sigma_F^2), the
rows phi, g from :meth:`~hybridpot.design.DesignAssembler.rows`; per-atom energies are not
observed, so their std is the parametric part only. From a committee: the spread of the members,
times the out-of-bag factors when they exist (:func:`hybridpot.uq.calibration.committee_calibration`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from ase import Atoms

from hybridpot.design import DesignAssembler
from hybridpot.errors import HybridpotError, UncertaintyDataError
from hybridpot.fallback import Fallback
from hybridpot.models.committee import CommitteeModel
from hybridpot.neighbors import build_graph
from hybridpot.potential import HybridPotential, evaluate, to_numpy
from hybridpot.prediction import DESCRIPTOR_BATCH_ATOMS, descriptors
from hybridpot.registry import linear_in_parameters
from hybridpot.system import AtomicSystem
from hybridpot.uq.active_set import ActiveSet
from hybridpot.uq.posterior import Posterior


@dataclass
class UQData:
    """What the uncertainty queries and the fallback need, stored with the model (``potential.uq_data``).

    Attributes:
        posterior: coefficient posterior (linear/quadratic models) or None.
        active_set: MaxVol active set of the training atoms' rows [1, B], or None.
        reference_energies: element -> eV, the per-element constant of the "baseline only"
            potential (the fallback's target far from the data).
        noise_model: default noise model of the predictive std ("local", "cv", "residual" or "evidence").
        committee_scale: out-of-bag factors of a committee's spread, {"energy": ..., "forces": ...,
            "n_structures": ...} (:func:`committee_calibration`), or None (no committee, or members
            not trained on bootstrap resamples: the raw spread is reported).
    """

    posterior: Posterior | None = None
    active_set: ActiveSet | None = None
    reference_energies: dict[str, float] = field(default_factory=dict)
    noise_model: str = "residual"
    committee_scale: dict[str, float] | None = None

    def uncertainty(self, potential: HybridPotential, atoms: Atoms, forces: bool = True, noise: str | None = None) -> dict[str, Any]:
        """:func:`uncertainty` of ``potential`` (which carries this data) on ``atoms``."""
        return uncertainty(potential, atoms, forces=forces, noise=noise)

    def to_dict(self) -> dict[str, Any]:
        return {
            "posterior": None if self.posterior is None else self.posterior.to_dict(),
            "active_set": None if self.active_set is None else self.active_set.to_dict(),
            "reference_energies": {k: float(v) for k, v in self.reference_energies.items()},
            "noise_model": self.noise_model,
            "committee_scale": self.committee_scale,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "UQData":
        return cls(
            posterior=None if d.get("posterior") is None else Posterior.from_dict(d["posterior"]),
            active_set=None if d.get("active_set") is None else ActiveSet.from_dict(d["active_set"]),
            reference_energies={k: float(v) for k, v in d.get("reference_energies", {}).items()},
            noise_model=str(d.get("noise_model", "residual")),
            committee_scale=None if d.get("committee_scale") is None else {k: float(v) for k, v in d["committee_scale"].items()},
        )


def uq_data(potential: HybridPotential) -> UQData:
    """``potential.uq_data``.

    Raises:
        UncertaintyDataError: the potential carries none.
    """
    data = getattr(potential, "uq_data", None)
    if data is None:
        raise UncertaintyDataError()
    return data


def quad_diag(rows: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """(n,) diag(rows cov rows^T) for rows (n, P), clipped at 0 (round-off)."""
    return np.maximum(np.einsum("np,np->n", rows @ cov, rows), 0.0)


def uncertainty(potential: HybridPotential, atoms: Atoms, forces: bool = True, noise: str | None = None) -> dict[str, Any]:
    """Predictive uncertainty and extrapolation grade of one structure.

    Args:
        potential: a fitted hybrid with ``uq_data`` (set by ``hybridpot fit`` / :func:`attach_uq`).
        atoms: the structure.
        forces: also the force std (costs the force rows / committee forces).
        noise: "local", "cv", "residual" or "evidence" noise model (posterior only; default: the stored one;
            :mod:`hybridpot.uq.calibration`).

    Returns:
        dict (numpy / float) with

        * ``energy`` (eV), ``energies`` (N,) eV and ``forces`` (N, 3) eV/A: the prediction
          (with the fallback switch if enabled);
        * ``energy_interval`` {"68": eV, "95": eV}: half-widths of the total energy's 68.27 % / 95 % intervals,
          calibrated on held-out training structures (:func:`hybridpot.uq.calibration.interval_factors`; with the
          noise model they were calibrated for, "local" or, in older models, "cv", where the fit has CV errors);
        * ``energy_noise_local`` (eV/atom): the "local" noise model's per-atom energy noise of this structure;
        * ``energy_std`` (eV, total energy; parametric + noise), ``energy_std_model`` (eV,
          parametric / committee part only), ``atom_energy_std`` (N,) eV, ``force_std`` (N, 3)
          eV/A per component -- from the posterior (linear/quadratic) or the committee spread
          (NN committee); these describe the fitted residual model without the fallback switch;
        * ``gamma`` (N,) MaxVol extrapolation grade and ``max_gamma``, when an active set exists;
        * ``switch`` (N,) the fallback factor s in [0, 1] (1: residual fully on) when enabled;
        * ``source``: "posterior", "committee" or "none" (gamma only).

    Raises:
        HybridpotError: no uncertainty data at all, or not an ``ase.Atoms``.
    """
    if not isinstance(atoms, Atoms):
        raise HybridpotError(f"uncertainty() takes one ase.Atoms, got {type(atoms).__name__}")
    uq = uq_data(potential)
    system = AtomicSystem.from_atoms(atoms, dtype=potential.dtype)
    pred = to_numpy(evaluate(potential, system, forces=forces, stress=False))
    out: dict[str, Any] = {"energy": float(pred["energy"][0]), "energies": pred["energies"]}
    if forces:
        out["forces"] = pred["forces"]
    B = None
    types = None
    model = potential.model
    N = len(atoms)
    if uq.posterior is not None and linear_in_parameters(model):
        cov = uq.posterior.covariance
        if cov.shape[0] != model.coef.numel():
            raise HybridpotError(f"posterior covariance of shape {cov.shape} does not fit the model's {model.coef.numel()} coefficients")
        noise = noise or uq.noise_model
        sig_e, sig_f = uq.posterior.noise_std(noise)
        rows = DesignAssembler(potential.descriptor, model, potential.types, potential.cutoff).rows([atoms], forces=forces)
        B, types = rows["descriptors"], rows["types"]
        if noise == "local":
            sig_e = float(uq.posterior.local_noise.sigma(B, types, np.zeros(N, dtype=int), 1)[0])
            out["energy_noise_local"] = sig_e
        var_e = float(quad_diag(N * rows["energy"], cov)[0])
        out["energy_std_model"] = np.sqrt(var_e)
        out["energy_std"] = float(np.sqrt(var_e + (N * sig_e) ** 2)) if np.isfinite(sig_e) else float("nan")
        if noise == uq.posterior.interval_noise and uq.posterior.energy_interval_factors:
            out["energy_interval"] = {k: q * out["energy_std"] for k, q in uq.posterior.energy_interval_factors.items()}
        out["atom_energy_std"] = np.sqrt(quad_diag(rows["atoms"], cov))
        if forces:
            G = rows["forces"].reshape(3 * N, -1)
            var_f = quad_diag(G, cov).reshape(N, 3)
            out["force_std_model"] = np.sqrt(var_f)
            out["force_std"] = np.sqrt(var_f + sig_f**2) if np.isfinite(sig_f) else np.full((N, 3), np.nan)
        out["source"] = "posterior"
    elif isinstance(model, CommitteeModel):
        members = [member_potential(potential, m) for m in model.members]
        res = [to_numpy(evaluate(p, system, forces=forces, stress=False)) for p in members]
        e = np.array([r["energy"][0] for r in res])
        scale = uq.committee_scale or {}
        out["energy_std_model"] = float(np.std(e, ddof=1))
        out["energy_std"] = out["energy_std_model"] * scale.get("energy", 1.0)
        out["atom_energy_std"] = np.std(np.stack([r["energies"] for r in res]), axis=0, ddof=1)
        if forces:
            out["force_std_model"] = np.std(np.stack([r["forces"] for r in res]), axis=0, ddof=1)
            a_f = scale.get("forces", 1.0)
            out["force_std"] = out["force_std_model"] * (a_f if np.isfinite(a_f) else 1.0)
        out["member_energies"] = e
        out["source"] = "committee"
    else:
        out["source"] = "none"
    if uq.active_set is not None:
        if B is None:
            B, types, _ = descriptors(potential, [atoms])
        out["gamma"] = uq.active_set.grade(B, types)
        out["max_gamma"] = float(np.max(out["gamma"]))
    if getattr(potential, "fallback", None) is not None:
        out["switch"] = fallback_switches(potential, atoms)
    if out["source"] == "none" and "gamma" not in out:
        raise UncertaintyDataError("no posterior, committee or active set: nothing to estimate the uncertainty from")
    return out


def fallback_switches(potential: HybridPotential, atoms: Atoms) -> np.ndarray:
    """(N,) the factor in [0, 1] by which the enabled fallback scales each atom's residual in
    ``atoms`` (1: residual fully on, 0: baseline + reference energy)."""
    fallback = getattr(potential, "fallback", None)
    if fallback is None:
        raise UncertaintyDataError("this potential has no fallback enabled (hybridpot.uq.enable_fallback)")
    system = AtomicSystem.from_atoms(atoms, dtype=potential.dtype)
    with torch.no_grad():
        graph = build_graph(system, float(potential.descriptor.rcut))
        B = potential.descriptor(graph)
        return fallback.switches(B, potential.types(graph.numbers), graph, potential.model).numpy()


def member_potential(potential: HybridPotential, member: torch.nn.Module) -> HybridPotential:
    """A hybrid sharing baseline, descriptor (and fallback) with ``potential`` but one committee member as model."""
    hp = HybridPotential(potential.baseline, potential.descriptor, member)
    fallback = getattr(potential, "fallback", None)
    if fallback is not None:
        hp.fallback = fallback
    return hp


def extrapolation_grades(potential: HybridPotential, frames: Sequence[Atoms], batch_atoms: int = DESCRIPTOR_BATCH_ATOMS) -> list[np.ndarray]:
    """Per-atom gamma of many structures (one (N_s,) array per structure)."""
    uq = uq_data(potential)
    if uq.active_set is None:
        raise UncertaintyDataError("this potential has no MaxVol active set (see the fit report's uq.active_set)")
    B, types, owner = descriptors(potential, frames, batch_atoms)
    g = uq.active_set.grade(B, types)
    return [g[owner == s] for s in range(len(frames))]


def _measure_data(potential: HybridPotential, uq: UQData, measure: str) -> np.ndarray:
    """What the fallback's measure needs: (T, M, M) inverse active rows A_t^-1 ("gamma") or the
    (T, P, P) per-element blocks of the posterior covariance ("std")."""
    T = len(potential.elements)
    if measure == "gamma":
        if uq.active_set is None:
            raise UncertaintyDataError("fallback on gamma needs a MaxVol active set (fit with `hybridpot fit`)")
        missing = [e for e, r in zip(uq.active_set.elements, uq.active_set.rows) if r is None]
        if missing:
            raise UncertaintyDataError(f"fallback on gamma: no active set for {missing}")
        return np.stack([uq.active_set.inverse(t) for t in range(T)])
    if measure == "std":
        n = getattr(potential.model, "n_params", None)
        if uq.posterior is None or n is None:
            raise UncertaintyDataError("fallback on std needs the posterior of a model linear in its parameters (linear, quadratic, kernel)")
        cov = uq.posterior.covariance
        return np.stack([cov[t * n : (t + 1) * n, t * n : (t + 1) * n] for t in range(T)])
    raise HybridpotError(f"fallback measure {measure!r}: expected 'gamma' or 'std'")


def enable_fallback(potential: HybridPotential, lower: float = 1.0, upper: float = 2.0, measure: str = "gamma", p: int = 16,
                    reference: Mapping[str, float] | None = None, scope: str = "atom") -> Fallback:
    """Switch the residual of ``potential`` off smoothly outside the training data (in place).

    The band is a trade-off (measured in benchmarks/README.md, Uncertainty): the residual of an atom with gamma
    just above 1 may already be badly extrapolated (a narrow band near 1 protects energies), while
    inside the band every atom feels the extra force -(E_ML - e_t) grad S, which grows as the
    band narrows (and, with the structure scope, with the cell's total residual energy). The
    default [1, 2] leaves in-distribution atoms (gamma <= ~1) untouched. The scope
    (:mod:`hybridpot.fallback`): "atom" switches each atom on its own grade; "structure" makes a
    structure the baseline once one atom is beyond the band (coarse and stiff in MD of big cells).

    Args:
        lower, upper: the band of the measure (gamma: dimensionless; std: eV per atom).
        measure: "gamma" or "std".
        p: even p-norm exponent for "gamma".
        reference: element -> eV reference energies (default: ``uq_data.reference_energies``).
        scope: "atom" (each atom's own grade) or "structure" (one switch per structure, the product
            of its atoms' switches).

    Returns:
        The :class:`Fallback` now at ``potential.fallback``.
    """
    uq = uq_data(potential)
    ref = dict(reference) if reference is not None else uq.reference_energies
    missing = [e for e in potential.elements if e not in ref]
    if missing:
        raise HybridpotError(f"fallback: no reference energy for {missing} (pass reference={{element: eV}})")
    fb = Fallback(potential.elements, [ref[e] for e in potential.elements], lower, upper, measure, p,
                  _measure_data(potential, uq, measure), scope)
    potential.fallback = fb
    return fb


def disable_fallback(potential: HybridPotential) -> None:
    """Remove the fallback switch (the residual is on everywhere again)."""
    potential.fallback = None


def fallback_from_dict(potential: HybridPotential, d: Mapping[str, Any]) -> Fallback:
    """Re-enable a fallback from :meth:`Fallback.to_dict` output (used by the model file reader;
    records written before scopes existed are "atom")."""
    return enable_fallback(potential, float(d["lower"]), float(d["upper"]), str(d["measure"]), int(d["p"]), d["reference"],
                           str(d.get("scope", "atom")))
