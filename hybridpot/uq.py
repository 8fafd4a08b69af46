"""Uncertainty of a fitted hybrid: Bayesian posterior, committees, extrapolation grade, fallback.

Three sources of uncertainty, all attached to a :class:`~hybridpot.potential.HybridPotential` as
``potential.uq_data`` (a :class:`UQData`) and kept by the model file:

* **Posterior** (linear and quadratic models). The solver's evidence maximisation gives the
  prior precision alpha, the noise precision beta of the *weighted* rows and the posterior
  covariance Sigma of the coefficients (model order, (T*M, T*M)). A quantity that is linear in
  the coefficients, q = phi . w, has the parametric (epistemic) variance phi Sigma phi^T; the
  rows phi come from :meth:`~hybridpot.fitting.assembly.DesignAssembler.rows` (per-atom energy,
  total energy = N x energy-per-atom row, force components). The noise of an observation
  follows from the row weights of the fit, weight^2 = w_kind / n_kind:
  sigma_E^2 = n_E / (beta w_E) (energy per atom, eV/atom) and sigma_F^2 = n_F / (beta w_F)
  (force component, eV/A) -- the likelihood the fit actually used ("evidence" noise). The
  "residual" noise is the RMS training residual of each kind, i.e. a separate noise level for
  energies and forces. It is the default: one noise precision for both kinds ties the energy
  noise to the force noise through the user's row weights (sigma_E / sigma_F =
  sqrt(n_E w_F / (n_F w_E))), which on the mlearn sets puts the energy noise 2-4x off
  (benchmarks/uq.py reports both). Predictive std of
  the total energy: sqrt(phi_E Sigma phi_E^T + N^2 sigma_E^2) (the fit models per-atom energy
  noise), of a force component: sqrt(g Sigma g^T + sigma_F^2); per-atom energies are not
  observed, so their std is the parametric part only.
* **Committee** (NN models, :class:`~hybridpot.models.committee.CommitteeModel`): the spread
  (standard deviation over members) of energies, per-atom energies and forces. Where the members
  were trained on bootstrap resamples, the spread is calibrated out of bag
  (:func:`committee_calibration`): each training structure is predicted by the members that did
  not see it, and one factor per kind (energy per atom, force component) scales the spread to the
  RMS of those held-out errors. Without the factor, members fitted closely (L-BFGS) agree far
  better than they predict: on Cu, 13-22 % of the test force components fell inside the 68 %
  interval (benchmarks/uq.py).
* **Extrapolation grade** gamma (D-optimality, MaxVol; :mod:`hybridpot.maxvol`): per element an
  active set of M = K + 1 training rows x = [1, B] of maximal volume; gamma(x) = max_k
  |(x A^-1)_k| <= 1 means interpolation, > 1 extrapolation.

**Fallback** (:class:`Fallback`, set with :func:`enable_fallback`): the residual of atom i is
scaled by a smooth switch S_i built from the smooth grades g_j of the atoms,

    E_i = E_baseline,i + e_t + S_i (E_ML,i - e_t),
    s(g) = 1 (g <= lower), 0 (g >= upper), 1 - (10 u^3 - 15 u^4 + 6 u^5), u = (g - lower) / (upper - lower),

where e_t is the element's reference energy (the best per-element constant with the baseline
alone, fitted on the training set) so that far from the data the hybrid is exactly the
"baseline only" potential of the fit report. g is the p-norm ||x A^-1||_p (p even; a smooth
upper bound of gamma: gamma <= g <= M^(1/p) gamma) or the per-atom predictive std (eV). The
scope says which grades S_i sees:

* "atom" (default): S_i = s(g_i). Local, but no bound per structure: in a structure that
  extrapolates somewhere, the atoms that look in-distribution (the bulk-like layers of a slab)
  keep a residual that can be wrong there.
* "structure": S_i = prod_j s(g_j) over the atoms j of i's structure (per structure of a batch):
  exactly 1 while every atom is below the band, exactly 0 (baseline + reference energies) once
  one atom is beyond it, C^2 in between. A product rather than a smooth maximum (p-norm) of the
  g_j, which exceeds the maximum by up to N^(1/p) and so switches large in-distribution cells
  partly off (measured once while choosing: held-out Cu cells with the band [1, 1.5], energy
  MAE 2.3 instead of 0.96 meV/atom, and the same cells repeated 3x3x3 got S down to 0.91; the
  product leaves both untouched). A "neighbourhood" product over the atoms within the cutoff was
  tried too and was never the better choice on these sets (DFT surfaces with [1, 2]: forces
  0.047 eV/A vs the baseline's 0.044; 851-atom cells with a void: 1.96 meV/atom vs 1.47 for the
  atom scope), so it is not offered.

The switch is part of the energy, so forces and stress follow by autograd like everything else;
they include -sum_j (E_ML,j - e_t) grad S_j, which for the structure scope has the residual
energy of the whole cell as its prefactor.

Measured (benchmarks/uq.py, Cu, linear residual trained on solid AIMD/elastic/vacancy; energy
MAE meV/atom / force MAE eV/A). Structure scope: with the bands [0.5, 1] to [1.5, 3] the DFT
surfaces, the DFT liquid and compressed cells are exactly the baseline (surfaces 9.50 / 0.0435;
the atom scope gives 13.06 / 0.0389 with [1, 2], and none of its bands reaches 9.50). With
[2, 5] no group is worse than the baseline by more than 1.1e-4 relative (structures whose S is just
above 0), a 2000 K EAM liquid inside the band is better than it (9.69 / 0.118 vs 41.6 / 0.284),
and held-out structures of the training kinds keep the hybrid's 0.97 / 0.0034. The costs: inside
the band the switch's gradient gives large forces (that liquid with [1, 2]: 0.69 eV/A, worse
than the baseline's 0.28; held-out cells with [1, 1.5]: 0.0067 vs 0.0034); one extrapolating
atom turns a whole big cell into the baseline (851-atom cells with a small void: 5.95 / 0.089 vs
the hybrid's 0.27 / 0.0081 and the atom scope's 1.47 / 0.016 with [1, 2]); and an MD cell that
crosses the band is stiff (108 atoms, band [2, 5]: switching forces up to 66 eV/A, max |dE|
10.6, 1.6, 0.37 meV/atom at dt = 1, 0.5, 0.25 fs -- approaching dt^2, so the forces are the
gradient, but far from the 0.07 meV/atom of the run without fallback at 1 fs). Use "structure"
for single points and small cells that must not be worse than the baseline, "atom" for MD.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from ase import Atoms

from hybridpot.errors import HybridpotError
from hybridpot.maxvol import grade, maxvol
from hybridpot.neighbors import PairGraph, build_graph
from hybridpot.potential import HybridPotential, evaluate, to_numpy
from hybridpot.system import AtomicSystem

# ------------------------------------------------------------------------------- array coding


def encode_array(a: np.ndarray) -> dict[str, Any]:
    """A float64 array as JSON data: shape and little-endian bytes in base64 (bit-exact)."""
    a = np.ascontiguousarray(a, dtype="<f8")
    return {"shape": list(a.shape), "dtype": "<f8", "base64": base64.b64encode(a.tobytes()).decode("ascii")}


def decode_array(d: Mapping[str, Any]) -> np.ndarray:
    """Inverse of :func:`encode_array`.

    Raises:
        HybridpotError: malformed record (wrong dtype or a byte count that does not fit the shape).
    """
    if d.get("dtype") != "<f8":
        raise HybridpotError(f"array record with dtype {d.get('dtype')!r}, expected '<f8'")
    raw = base64.b64decode(d["base64"])
    shape = tuple(int(n) for n in d["shape"])
    if len(raw) != 8 * int(np.prod(shape, dtype=np.int64)):
        raise HybridpotError(f"array record of {len(raw)} bytes does not fit shape {shape}")
    return np.frombuffer(raw, dtype="<f8").reshape(shape).copy()


# ------------------------------------------------------------------------------- active set


@dataclass
class ActiveSet:
    """Per-element MaxVol active sets of descriptor rows x = [1, B].

    Attributes:
        elements: chemical symbols (type index = position).
        rows: per element the (M, M) active rows, M = K + 1 (or None for an element without
            enough training atoms).
    """

    elements: list[str]
    rows: list[np.ndarray | None]
    _inverse: list[np.ndarray | None] = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.rows) != len(self.elements):
            raise HybridpotError(f"active set: {len(self.rows)} row blocks for {len(self.elements)} elements")
        self._inverse = [None if r is None else np.linalg.inv(r) for r in self.rows]

    @property
    def n_columns(self) -> int:
        """M = K + 1."""
        return next(r.shape[1] for r in self.rows if r is not None)

    def inverse(self, t: int) -> np.ndarray:
        """(M, M) A_t^-1.

        Raises:
            HybridpotError: the element has no active set.
        """
        inv = self._inverse[t]
        if inv is None:
            raise HybridpotError(f"no active set for {self.elements[t]}: too few or degenerate training environments")
        return inv

    @classmethod
    def from_descriptors(cls, B: np.ndarray, types: np.ndarray, elements: Sequence[str], strict: bool = True,
                         tol: float = 1.0 + 1e-6) -> "ActiveSet":
        """MaxVol active sets of the rows [1, B] of each element.

        Args:
            B: (N, K) descriptors; types: (N,) type index of each row.
            strict: raise if an element has fewer than M independent rows (else leave it out).
            tol: MaxVol stops when every |coefficient| <= tol (so training rows have gamma <= tol).

        Raises:
            HybridpotError: (strict) an element with too few or rank-deficient rows.
        """
        X = _rows(B, types)
        out: list[np.ndarray | None] = []
        for t, element in enumerate(elements):
            Xt = X[np.asarray(types) == t]
            try:
                out.append(Xt[_maxvol_scaled(Xt, tol)])
            except ValueError as exc:
                if strict:
                    raise HybridpotError(
                        f"MaxVol active set for {element}: {exc} ({Xt.shape[0]} atoms, {X.shape[1]} columns [1, B]); "
                        "add more varied training environments or use fewer descriptor components"
                    ) from exc
                out.append(None)
        return cls(list(elements), out)

    def extend(self, B: np.ndarray, types: np.ndarray, tol: float = 1.0 + 1e-6) -> "ActiveSet":
        """The active set of (current active rows + new rows [1, B]): MaxVol over their union.

        Elements without an active set are built from the new rows alone when possible.
        """
        X = _rows(B, types)
        out: list[np.ndarray | None] = []
        for t, (element, A) in enumerate(zip(self.elements, self.rows)):
            new = X[np.asarray(types) == t]
            Xt = new if A is None else np.vstack([A, new])
            try:
                out.append(Xt[_maxvol_scaled(Xt, tol)])
            except ValueError:
                out.append(A)
        return ActiveSet(list(self.elements), out)

    def coefficients(self, B: np.ndarray, types: np.ndarray) -> np.ndarray:
        """(N, M) c = x A_t^-1 of each row (NaN for elements without an active set)."""
        X = _rows(B, types)
        C = np.full(X.shape, np.nan)
        for t in range(len(self.elements)):
            sel = np.asarray(types) == t
            if sel.any() and self._inverse[t] is not None:
                C[sel] = X[sel] @ self._inverse[t]
        return C

    def grade(self, B: np.ndarray, types: np.ndarray) -> np.ndarray:
        """(N,) extrapolation grade gamma = max_k |(x A^-1)_k| (inf for elements without an active set)."""
        X = _rows(B, types)
        out = np.full(X.shape[0], np.inf)
        for t in range(len(self.elements)):
            sel = np.asarray(types) == t
            if sel.any() and self._inverse[t] is not None:
                out[sel] = grade(X[sel], self._inverse[t])
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"elements": list(self.elements), "rows": [None if r is None else encode_array(r) for r in self.rows]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ActiveSet":
        return cls(list(d["elements"]), [None if r is None else decode_array(r) for r in d["rows"]])


def _rows(B: np.ndarray, types: np.ndarray) -> np.ndarray:
    """(N, K + 1) rows [1, B] (checking ``types`` has one entry per row)."""
    B = np.asarray(B, dtype=np.float64)
    if B.ndim != 2 or np.shape(types) != (B.shape[0],):
        raise HybridpotError(f"{B.shape} rows of descriptors with {np.shape(types)} types: expected (N, K) and (N,)")
    return np.hstack([np.ones((B.shape[0], 1)), B])


def _maxvol_scaled(X: np.ndarray, tol: float) -> np.ndarray:
    """MaxVol row indices of X with columns scaled to unit RMS first (gamma does not depend on the
    scaling, but the pivoting and the rank test do)."""
    scale = np.sqrt(np.mean(X**2, axis=0))
    scale = np.where(scale > 0, scale, 1.0)
    return maxvol(X / scale, tol=tol)


# ------------------------------------------------------------------------------- posterior


@dataclass
class Posterior:
    """Gaussian posterior of a linear-in-parameters model's coefficients and the noise model.

    Attributes:
        covariance: (T*M, T*M) posterior covariance, model order (element-major, as ``coef.ravel()``).
        alpha, beta: prior precision and noise precision of the weighted rows (evidence).
        noise: {"evidence": {"energy": eV/atom, "forces": eV/A}, "residual": {...}}: noise std of
            one per-atom energy / one force component under each noise model (NaN: not defined,
            e.g. a kind with weight 0).
    """

    covariance: np.ndarray
    alpha: float
    beta: float
    noise: dict[str, dict[str, float]]

    def noise_std(self, model: str) -> tuple[float, float]:
        """(energy per atom eV/atom, force component eV/A) noise std of noise model ``model``."""
        if model not in self.noise:
            raise HybridpotError(f"noise model {model!r}: expected one of {sorted(self.noise)}")
        return float(self.noise[model]["energy"]), float(self.noise[model]["forces"])

    def to_dict(self) -> dict[str, Any]:
        return {"covariance": encode_array(self.covariance), "alpha": float(self.alpha), "beta": float(self.beta),
                "noise": {k: {q: float(v) for q, v in d.items()} for k, d in self.noise.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Posterior":
        cov = decode_array(d["covariance"])
        if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
            raise HybridpotError(f"posterior covariance of shape {cov.shape}: expected square")
        return cls(cov, float(d["alpha"]), float(d["beta"]), {k: dict(v) for k, v in d["noise"].items()})


@dataclass
class UQData:
    """What :func:`uncertainty` and :class:`Fallback` need, stored with the model.

    Attributes:
        posterior: coefficient posterior (linear/quadratic models) or None.
        active_set: MaxVol active set of the training atoms' rows [1, B], or None.
        reference_energies: element -> eV, the per-element constant of the "baseline only"
            potential (the fallback's target far from the data).
        noise_model: default noise model of the predictive std ("residual" or "evidence").
        committee_scale: out-of-bag factors of a committee's spread, {"energy": ..., "forces": ...,
            "n_structures": ...} (:func:`committee_calibration`), or None (no committee, or members
            not trained on bootstrap resamples: the raw spread is reported).
    """

    posterior: Posterior | None = None
    active_set: ActiveSet | None = None
    reference_energies: dict[str, float] = field(default_factory=dict)
    noise_model: str = "residual"
    committee_scale: dict[str, float] | None = None

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


# ------------------------------------------------------------------------------- from a fit


#: Atoms per batch when only descriptor values are needed (no pair-form derivatives, which set the
#: fit's smaller DEFAULT_BATCH_ATOMS): the values path keeps ~64 bytes per pair (vector, indices,
#: shift) plus one chunk of temporaries, ~11 MB per batch of Cu at rcut 5 A.
DESCRIPTOR_BATCH_ATOMS = 4000


def descriptors(potential: HybridPotential, frames: Sequence[Atoms], batch_atoms: int = DESCRIPTOR_BATCH_ATOMS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Descriptors of many structures, in batches of about ``batch_atoms`` atoms.

    Returns:
        (B (N, K), types (N,), structure (N,) index of each atom's structure in ``frames``).
    """
    from types import SimpleNamespace

    from hybridpot.fitting.assembly import batches

    counts = np.array([len(a) for a in frames])
    Bs, ts, ss = [], [], []
    for idx in batches(SimpleNamespace(n_atoms=counts), batch_atoms):  # batches() reads only n_atoms
        system = AtomicSystem.from_atoms([frames[s] for s in idx])
        graph = build_graph(system, float(potential.descriptor.rcut))
        with torch.no_grad():
            Bs.append(potential.descriptor(graph).numpy())
        ts.append(potential.types(graph.numbers).numpy())
        ss.append(np.repeat(idx, counts[idx]))
    return np.concatenate(Bs), np.concatenate(ts), np.concatenate(ss)


def posterior_from_fit(solution, data, weights, predictions: Mapping[str, np.ndarray] | None = None) -> Posterior:
    """The :class:`Posterior` of a linear fit.

    Args:
        solution: the :class:`~hybridpot.fitting.solver.LinearSolution` returned by
            :func:`~hybridpot.fitting.linear.fit_linear` (covariance in model order).
        data: the training :class:`~hybridpot.io.data.Dataset`; weights: the fit's
            :class:`~hybridpot.fitting.assembly.Weights`.
        predictions: the fitted hybrid's ``energy`` (S,) and ``forces`` (N, 3) on ``data`` (for the
            "residual" noise model; omitted: NaN).
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
    return Posterior(
        covariance=np.asarray(solution.covariance, dtype=np.float64),
        alpha=float(solution.alpha),
        beta=beta,
        noise={"evidence": {"energy": float(ev_e), "forces": float(ev_f)}, "residual": {"energy": res_e, "forces": res_f}},
    )


def attach_uq(potential: HybridPotential, data, baseline, weights, solution=None, predictions=None,
              reference_energies: Mapping[str, float] | None = None, batch_atoms: int = DESCRIPTOR_BATCH_ATOMS,
              strict: bool = False, committee_resamples: Sequence[Sequence[int]] | None = None) -> dict[str, Any]:
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

    Returns:
        A JSON-able summary (noise levels, active set status, largest training gamma).
    """
    from hybridpot.fitting.assembly import reference_energies as fit_reference

    elements = list(potential.elements)
    if reference_energies is None:
        reference_energies = dict(zip(elements, map(float, fit_reference(data, baseline, elements))))
    summary: dict[str, Any] = {}
    posterior = posterior_from_fit(solution, data, weights, predictions) if solution is not None else None
    if posterior is not None:
        summary["noise"] = posterior.noise
        summary["alpha"], summary["beta"] = posterior.alpha, posterior.beta
    if solution is not None and solution.training_descriptors is not None:
        B, types = solution.training_descriptors  # kept from the design-matrix assembly
    else:
        B, types, _ = descriptors(potential, data.frames, batch_atoms)
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
    if posterior is not None and not np.isfinite(posterior.noise["residual"]["energy"]):
        noise_model = "evidence"  # no predictions given: the residual noise is unknown
    if posterior is not None:
        summary["noise_model"] = noise_model
    scale = None if committee_resamples is None else committee_calibration(potential, data, baseline, committee_resamples, batch_atoms)
    if scale is not None:
        summary["committee_scale"] = scale
    potential.uq_data = UQData(posterior, active, {k: float(v) for k, v in reference_energies.items()}, noise_model, scale)
    return summary


def committee_calibration(potential: HybridPotential, data, baseline, resamples: Sequence[Sequence[int]],
                          batch_atoms: int | None = None) -> dict[str, float] | None:
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

    Returns:
        {"energy": a_E, "forces": a_F (NaN without forces), "n_structures": structures out of bag
        for at least one member}, or None when no structure is out of bag for any member (members
        trained on the full set) or the members agree exactly.
    """
    from hybridpot.fitting.assembly import DEFAULT_BATCH_ATOMS
    from hybridpot.fitting.predict import predict
    from hybridpot.models.committee import CommitteeModel

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
    preds = [predict(_member_potential(potential, m), sub, batch_atoms or DEFAULT_BATCH_ATOMS, progress=False, baseline=bl)
             for m in model.members]
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


# ------------------------------------------------------------------------------- uncertainty


def _uq_data(potential: HybridPotential) -> UQData:
    data = getattr(potential, "uq_data", None)
    if data is None:
        raise HybridpotError(
            "this potential carries no uncertainty data: fit it with `hybridpot fit` (or call hybridpot.uq.attach_uq after fitting)"
        )
    return data


def _quad_diag(rows: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """(n,) diag(rows cov rows^T) for rows (n, P), clipped at 0 (round-off)."""
    return np.maximum(np.einsum("np,np->n", rows @ cov, rows), 0.0)


def uncertainty(potential: HybridPotential, atoms: Atoms, forces: bool = True, noise: str | None = None) -> dict[str, Any]:
    """Predictive uncertainty and extrapolation grade of one structure.

    Args:
        potential: a fitted hybrid with ``uq_data`` (set by ``hybridpot fit`` / :func:`attach_uq`).
        atoms: the structure.
        forces: also the force std (costs the force rows / committee forces).
        noise: "evidence" or "residual" noise model (posterior only; default: the stored one).

    Returns:
        dict (numpy / float) with

        * ``energy`` (eV), ``energies`` (N,) eV and ``forces`` (N, 3) eV/A: the prediction
          (with the fallback switch if enabled);
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
    from hybridpot.models.committee import CommitteeModel
    from hybridpot.models.polynomial import PolynomialModel

    if not isinstance(atoms, Atoms):
        raise HybridpotError(f"uncertainty() takes one ase.Atoms, got {type(atoms).__name__}")
    uq = _uq_data(potential)
    system = AtomicSystem.from_atoms(atoms, dtype=potential.dtype)
    pred = to_numpy(evaluate(potential, system, forces=forces, stress=False))
    out: dict[str, Any] = {"energy": float(pred["energy"][0]), "energies": pred["energies"]}
    if forces:
        out["forces"] = pred["forces"]
    B = None
    types = None
    model = potential.model
    N = len(atoms)
    if uq.posterior is not None and isinstance(model, PolynomialModel):
        from hybridpot.fitting.assembly import DesignAssembler

        cov = uq.posterior.covariance
        if cov.shape[0] != model.coef.numel():
            raise HybridpotError(f"posterior covariance of shape {cov.shape} does not fit the model's {model.coef.numel()} coefficients")
        sig_e, sig_f = uq.posterior.noise_std(noise or uq.noise_model)
        rows = DesignAssembler(potential.descriptor, model, potential.types, potential.cutoff).rows([atoms], forces=forces)
        B, types = rows["descriptors"], rows["types"]
        var_e = float(_quad_diag(N * rows["energy"], cov)[0])
        out["energy_std_model"] = np.sqrt(var_e)
        out["energy_std"] = float(np.sqrt(var_e + (N * sig_e) ** 2)) if np.isfinite(sig_e) else float("nan")
        out["atom_energy_std"] = np.sqrt(_quad_diag(rows["atoms"], cov))
        if forces:
            G = rows["forces"].reshape(3 * N, -1)
            var_f = _quad_diag(G, cov).reshape(N, 3)
            out["force_std_model"] = np.sqrt(var_f)
            out["force_std"] = np.sqrt(var_f + sig_f**2) if np.isfinite(sig_f) else np.full((N, 3), np.nan)
        out["source"] = "posterior"
    elif isinstance(model, CommitteeModel):
        members = [_member_potential(potential, m) for m in model.members]
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
        raise HybridpotError("no posterior, committee or active set: nothing to estimate the uncertainty from")
    return out


def fallback_switches(potential: HybridPotential, atoms: Atoms) -> np.ndarray:
    """(N,) the factor in [0, 1] by which the enabled fallback scales each atom's residual in
    ``atoms`` (1: residual fully on, 0: baseline + reference energy)."""
    fallback = getattr(potential, "fallback", None)
    if fallback is None:
        raise HybridpotError("this potential has no fallback enabled (hybridpot.uq.enable_fallback)")
    system = AtomicSystem.from_atoms(atoms, dtype=potential.dtype)
    with torch.no_grad():
        graph = build_graph(system, float(potential.descriptor.rcut))
        B = potential.descriptor(graph)
        return fallback.switches(B, potential.types(graph.numbers), graph, potential.model).numpy()


def _member_potential(potential: HybridPotential, member: torch.nn.Module) -> HybridPotential:
    """A hybrid sharing baseline, descriptor (and fallback) with ``potential`` but one committee member as model."""
    hp = HybridPotential(potential.baseline, potential.descriptor, member)
    fallback = getattr(potential, "fallback", None)
    if fallback is not None:
        hp.fallback = fallback
    return hp


def extrapolation_grades(potential: HybridPotential, frames: Sequence[Atoms], batch_atoms: int = DESCRIPTOR_BATCH_ATOMS) -> list[np.ndarray]:
    """Per-atom gamma of many structures (one (N_s,) array per structure)."""
    uq = _uq_data(potential)
    if uq.active_set is None:
        raise HybridpotError("this potential has no MaxVol active set (see the fit report's uq.active_set)")
    B, types, owner = descriptors(potential, frames, batch_atoms)
    g = uq.active_set.grade(B, types)
    return [g[owner == s] for s in range(len(frames))]


# ------------------------------------------------------------------------------- fallback


def smoothstep_off(u: torch.Tensor) -> torch.Tensor:
    """1 for u <= 0, 0 for u >= 1, 1 - (10u^3 - 15u^4 + 6u^5) between (C^2: value, slope and
    curvature continuous at both ends)."""
    u = u.clamp(0.0, 1.0)
    return 1.0 - u**3 * (10.0 - 15.0 * u + 6.0 * u**2)


#: what an atom's fallback switch looks at: its own grade, or the grades of all atoms of its structure
SCOPES = ("atom", "structure")


class Fallback(torch.nn.Module):
    """Smooth switch of the ML residual (see the module docstring).

    Args:
        elements: chemical symbols (the model's order).
        reference: (T,) per-element reference energies e_t, eV.
        lower, upper: the band of the measure over which the residual goes from on to off.
        measure: "gamma" (smooth p-norm grade, dimensionless) or "std" (per-atom parametric
            energy std, eV; linear/quadratic models with a posterior).
        p: even exponent of the p-norm (measure "gamma").
        active_set: needed for "gamma"; posterior: needed for "std".
        scope: "atom" (S_i = s(g_i)) or "structure" (S_i = the product of s(g_j) over the atoms j
            of atom i's structure).
    """

    def __init__(self, elements: Sequence[str], reference: Sequence[float], lower: float, upper: float, measure: str = "gamma",
                 p: int = 16, active_set: ActiveSet | None = None, posterior: Posterior | None = None,
                 n_params: int | None = None, scope: str = "atom") -> None:
        super().__init__()
        if measure not in ("gamma", "std"):
            raise HybridpotError(f"fallback measure {measure!r}: expected 'gamma' or 'std'")
        if scope not in SCOPES:
            raise HybridpotError(f"fallback scope {scope!r}: expected one of {', '.join(map(repr, SCOPES))}")
        if not (np.isfinite(lower) and np.isfinite(upper) and 0 <= lower < upper):
            raise HybridpotError(f"fallback band lower = {lower}, upper = {upper}: need 0 <= lower < upper")
        if not (isinstance(p, (int, np.integer)) and p >= 2 and p % 2 == 0):
            raise HybridpotError(f"fallback p = {p!r}: need an even integer >= 2 (|c|^p must be smooth)")
        T = len(elements)
        reference = np.asarray(reference, dtype=np.float64)
        if reference.shape != (T,):
            raise HybridpotError(f"fallback: {reference.shape} reference energies for {T} elements")
        self.elements = list(elements)
        self.lower, self.upper, self.measure, self.p, self.scope = float(lower), float(upper), measure, int(p), scope
        self.register_buffer("reference", torch.as_tensor(reference), persistent=False)
        if measure == "gamma":
            if active_set is None:
                raise HybridpotError("fallback on gamma needs a MaxVol active set (fit with `hybridpot fit`)")
            if any(r is None for r in active_set.rows):
                missing = [e for e, r in zip(active_set.elements, active_set.rows) if r is None]
                raise HybridpotError(f"fallback on gamma: no active set for {missing}")
            inv = np.stack([active_set.inverse(t) for t in range(T)])
            self.register_buffer("a_inv", torch.as_tensor(inv), persistent=False)
        else:
            if posterior is None or n_params is None:
                raise HybridpotError("fallback on std needs the posterior of a linear or quadratic model")
            cov = posterior.covariance
            blocks = np.stack([cov[t * n_params : (t + 1) * n_params, t * n_params : (t + 1) * n_params] for t in range(T)])
            self.register_buffer("cov_blocks", torch.as_tensor(blocks), persistent=False)

    def measure_of(self, B: torch.Tensor, types: torch.Tensor, model: torch.nn.Module | None = None) -> torch.Tensor:
        """(N,) the smooth measure g of each atom (differentiable in B)."""
        g = torch.zeros(B.shape[0], dtype=B.dtype, device=B.device)
        for t in range(len(self.elements)):
            mask = types == t
            if not bool(mask.any()):
                continue
            idx = mask.nonzero().squeeze(1)
            if self.measure == "gamma":
                x = torch.cat([torch.ones((idx.shape[0], 1), dtype=B.dtype, device=B.device), B[idx]], dim=1)
                c = x @ self.a_inv[t].to(B.dtype)
                # ||c||_p = m ||c / m||_p for any m > 0: m = max|c| (no gradient) avoids overflow,
                # the value and gradient are those of the p-norm itself
                m = c.detach().abs().amax(dim=1, keepdim=True).clamp_min(1e-300)
                val = m.squeeze(1) * ((c / m) ** self.p).sum(dim=1) ** (1.0 / self.p)
            else:
                if model is None or not hasattr(model, "features"):
                    raise HybridpotError("fallback on std needs a linear or quadratic model")
                X = model.features(B[idx])
                val = torch.sqrt(((X @ self.cov_blocks[t].to(B.dtype)) * X).sum(dim=1).clamp_min(1e-300))
            g = g.index_put((idx,), val)
        return g

    def switch(self, g: torch.Tensor) -> torch.Tensor:
        """(N,) s(g) in [0, 1] of each atom's own measure."""
        return smoothstep_off((g - self.lower) / (self.upper - self.lower))

    def switches(self, B: torch.Tensor, types: torch.Tensor, graph: PairGraph, model: torch.nn.Module | None = None) -> torch.Tensor:
        """(N,) the factor S_i in [0, 1] that scales each atom's residual, for this scope.

        Args:
            B: (N, K) descriptors; types: (N,); graph: the descriptor's pair graph (its ``batch``
                gives each atom's structure).
        """
        s = self.switch(self.measure_of(B, types, model))
        if self.scope == "atom":
            return s
        # product over each structure: exactly 1 while every atom is below the band, exactly 0 once
        # one is above it, C^2 in between (scatter_reduce's gradient of a product is exact with zeros)
        S = torch.ones(graph.n_structures, dtype=s.dtype, device=s.device).scatter_reduce(0, graph.batch, s, "prod")
        return S[graph.batch]

    def forward(self, energies: torch.Tensor, B: torch.Tensor, types: torch.Tensor, graph: PairGraph,
                model: torch.nn.Module | None = None) -> torch.Tensor:
        """(N,) e_t + S (E_ML - e_t) from the ML per-atom energies (N,) eV, descriptors (N, K),
        types (N,) and the descriptor's pair graph."""
        ref = self.reference.to(energies.dtype)[types]
        return ref + self.switches(B, types, graph, model) * (energies - ref)

    def to_dict(self) -> dict[str, Any]:
        return {"measure": self.measure, "lower": self.lower, "upper": self.upper, "p": self.p, "scope": self.scope,
                "reference": dict(zip(self.elements, map(float, self.reference.tolist())))}


def enable_fallback(potential: HybridPotential, lower: float = 1.0, upper: float = 2.0, measure: str = "gamma", p: int = 16,
                    reference: Mapping[str, float] | None = None, scope: str = "atom") -> Fallback:
    """Switch the residual of ``potential`` off smoothly outside the training data (in place).

    The band is a trade-off (benchmarks/uq.py, Cu): the residual of an atom with gamma just
    above 1 may already be badly extrapolated (a narrow band near 1 protects energies), while
    inside the band every atom feels the extra force -(E_ML - e_t) grad S, which grows as the
    band narrows (and, with the structure scope, with the cell's total residual energy). The
    default [1, 2] leaves in-distribution atoms (gamma <= ~1) untouched. The scope (module
    docstring): "atom" switches each atom on its own grade; "structure" makes a structure the
    baseline once one atom is beyond the band (on the Cu benchmark, with [2, 5], never worse than
    the baseline alone; coarse and stiff in MD of big cells).

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
    uq = _uq_data(potential)
    ref = dict(reference) if reference is not None else uq.reference_energies
    missing = [e for e in potential.elements if e not in ref]
    if missing:
        raise HybridpotError(f"fallback: no reference energy for {missing} (pass reference={{element: eV}})")
    n_params = getattr(potential.model, "n_params", None)
    fb = Fallback(potential.elements, [ref[e] for e in potential.elements], lower, upper, measure, p, uq.active_set,
                  uq.posterior, n_params, scope)
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
