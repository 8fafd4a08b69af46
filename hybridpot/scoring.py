"""Errors of predictions against a data set's labels: one path for ``fit``, ``eval`` and active learning.

Units: energies meV/atom, forces eV/Angstrom, stresses GPa (:func:`hybridpot.metrics.error_metrics`).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from hybridpot.dataset import Dataset
from hybridpot.metrics import error_metrics, format_table
from hybridpot.potential import matrix_to_voigt
from hybridpot.prediction import BaselinePredictions


def errors(data: Dataset, pred: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Energy, force and (where both exist) stress errors of ``pred`` (``energy`` (S,) eV, ``forces`` (N, 3) eV/A,
    optional ``stress`` (S, 6) eV/A^3) on ``data``."""
    return error_metrics(pred["energy"], data.energy, data.n_atoms, pred["forces"], data.forces, pred.get("stress"), data.stress)


def config_type_index(data: Dataset) -> dict[str, np.ndarray]:
    """The structure indices of each config_type of ``data`` (by name, in order of first appearance); empty when the
    data have one config_type only."""
    kinds = list(dict.fromkeys(data.config_type))
    if len(kinds) < 2:
        return {}
    labels = np.asarray(data.config_type)
    return {kind: np.flatnonzero(labels == kind) for kind in kinds}


def errors_by_config_type(data: Dataset, pred: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """:func:`errors` of each config_type of ``data`` (:func:`config_type_index`)."""
    return {kind: errors(data.subset(index), subset_predictions(data, pred, index)) for kind, index in config_type_index(data).items()}


def subset_predictions(data: Dataset, pred: Mapping[str, np.ndarray], index: np.ndarray) -> dict[str, np.ndarray]:
    """The predictions of the structures ``index`` of ``data`` (matching ``data.subset(index)``)."""
    out = {"energy": pred["energy"][index], "forces": pred["forces"][data.atom_rows(index)]}
    if pred.get("stress") is not None:
        out["stress"] = pred["stress"][index]
    return out


def baseline_only(data: Dataset, baseline: BaselinePredictions, reference: Mapping[str, float]) -> dict[str, np.ndarray]:
    """Predictions of the "baseline only" potential: the baseline plus per-element reference energies
    (``reference``: element -> eV, fitted on the training set), with its stress (NaN without a cell)."""
    volume = np.array([abs(a.cell.volume) for a in data.frames])
    stress = matrix_to_voigt(-baseline.virial / np.where(volume > 1e-10, volume, np.nan)[:, None, None])
    energy = baseline.energy + data.composition(list(reference)) @ np.array([float(v) for v in reference.values()])
    return {"energy": energy, "forces": baseline.forces, "stress": stress}


def config_type_table(by_type: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """The per-config_type errors ``{"baseline only": {kind: metrics}, "hybrid": {kind: metrics}}`` (either may be
    missing) as one text table, rows ``KIND baseline only`` then ``KIND hybrid``."""
    kinds = list(dict.fromkeys(k for table in by_type.values() for k in table))
    return format_table({f"{kind} {label}": by_type[label][kind] for kind in kinds
                         for label in ("baseline only", "hybrid") if kind in by_type.get(label, {})})


#: structures listed per kind by :func:`worst_structures`
WORST = 5


def worst_structures(data: Dataset, pred: Mapping[str, np.ndarray], n: int = WORST) -> dict[str, list[dict]]:
    """The structures of ``data`` that ``pred`` gets most wrong: where to look first.

    Returns:
        {"energy": the ``n`` largest |energy error| per atom, each {"index": in the file, "structure": its label
        ("structure 17 (config_type 'surface', Cu32)"), "error_meV_atom": predicted - label},
        "forces": the ``n`` largest force RMS errors over a structure's components (structures with force labels),
        each {"index", "structure", "force_rmse_eV_A", "max_atom_error_eV_A": the largest atom's |error| vector}}.
    """
    de = (pred["energy"] - data.energy) / data.n_atoms * 1000.0
    out: dict[str, list[dict]] = {"energy": [{"index": int(data.index[s]), "structure": data.describe(s), "error_meV_atom": float(de[s])}
                                             for s in np.argsort(-np.abs(de), kind="stable")[:n]]}
    atom = np.nan_to_num(np.linalg.norm(pred["forces"] - data.forces, axis=1))  # NaN: structures without force labels
    rmse = np.where(data.has_forces, np.sqrt(data.per_structure(atom**2) / (3 * data.n_atoms)), -1.0)
    worst_atom = data.per_structure(atom, np.maximum)
    out["forces"] = [{"index": int(data.index[s]), "structure": data.describe(s), "force_rmse_eV_A": float(rmse[s]),
                      "max_atom_error_eV_A": float(worst_atom[s])}
                     for s in np.argsort(-rmse, kind="stable")[:n] if rmse[s] >= 0]
    return out


def worst_text(worst: Mapping[str, list[dict]], shown: int = 3) -> str:
    """The first ``shown`` of each kind of :func:`worst_structures`, one line each."""
    lines = [f"  energy {w['error_meV_atom']:+9.3g} meV/atom             {w['structure']}" for w in worst["energy"][:shown]]
    lines += [f"  forces RMSE {w['force_rmse_eV_A']:7.3g} eV/A, one atom {w['max_atom_error_eV_A']:.3g}  {w['structure']}"
              for w in worst.get("forces", [])[:shown]]
    return "\n".join(lines)


#: the largest per-atom gamma above which :func:`errors_by_extrapolation` counts a structure as extrapolating: 1% beyond
#: the training set's hull (MaxVol stops at 1 + 1e-6, so the training structures themselves stay below)
EXTRAPOLATION_THRESHOLD = 1.01


def errors_by_extrapolation(data: Dataset, pred: Mapping[str, np.ndarray], grades: Sequence[np.ndarray],
                            threshold: float = EXTRAPOLATION_THRESHOLD) -> dict:
    """The errors of the structures that extrapolate (their largest per-atom extrapolation grade gamma above
    ``threshold``) and of the rest: whether the large errors are where the model says it extrapolates.

    Args:
        grades: (N_s,) per-atom gamma of each structure (:func:`hybridpot.uq.query.extrapolation_grades`).

    Returns:
        {"threshold", "n_structures", "n_extrapolating", "largest": the 3 structures with the largest gamma, each
        {"index": in the file, "structure": its label, "gamma"}, and :func:`errors` of "extrapolating" and
        "interpolating" (each only where it has structures)}.
    """
    largest = np.array([float(g.max()) if g.size else 0.0 for g in grades])
    out: dict = {"threshold": threshold, "n_structures": len(data), "n_extrapolating": int((largest > threshold).sum()),
                 "largest": [{"index": int(data.index[s]), "structure": data.describe(s), "gamma": float(largest[s])}
                             for s in np.argsort(-largest, kind="stable")[:3]]}
    for name, mask in (("extrapolating", largest > threshold), ("interpolating", largest <= threshold)):
        idx = np.flatnonzero(mask)
        if idx.size:
            out[name] = errors(data.subset(idx), subset_predictions(data, pred, idx))
    return out


def extrapolation_text(split: Mapping) -> str:
    """One line on :func:`errors_by_extrapolation`'s result."""
    top = split["largest"][0]
    line = (f"{split['n_extrapolating']} of {split['n_structures']} structures extrapolate (largest per-atom gamma above "
            f"{split['threshold']:g}; the largest {top['gamma']:.3f}, {top['structure']})")

    def cell(m: Mapping) -> str:
        return f"energy MAE {m['energy_mae_meV_atom']:.3g} meV/atom" + (
            f", force MAE {m['force_mae_eV_A']:.3g} eV/A" if np.isfinite(m.get("force_mae_eV_A", np.nan)) else "")

    if "extrapolating" in split and "interpolating" in split:
        n_in = split["n_structures"] - split["n_extrapolating"]
        line += f": {cell(split['extrapolating'])} on them, {cell(split['interpolating'])} on the other {n_in}"
    return line
