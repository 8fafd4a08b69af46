"""Per-structure label checks: the few structures of a data set whose labels do not belong with the rest.

:mod:`hybridpot.fitting.units` catches a whole set in the wrong units. A set can also hold a few bad structures
among good ones: a calculation that did not converge, a structure from another DFT setup, one structure's forces in
other units or with the other sign, a corrupted atom. A least-squares fit takes them in without a word, and a single
atom with a force label of 100 eV/A also sets the spread that normalises the force weight
(``[fit] weight_scale = "spread"``), so it de-weights every other force: where the fit goes on anyway
(``check_outliers = false``), that spread leaves out what this check flags (:attr:`OutlierCheck.energy_structures`,
:attr:`OutlierCheck.force_atoms`; :func:`hybridpot.fitting.assembly.target_scales`).

Each structure is compared with the rest of its set through its residual labels, r = label - baseline (the label
alone without a baseline), against the RMS of everyone else's (leave-one-out: an outlier does not hide itself by
raising the spread it is measured against):

* energy: the per-atom residual energy against per-element offsets fitted to the other structures, over the RMS of
  their residuals (the externally studentised residual of the offsets' least squares);
* forces of a structure: the RMS of its residual force components over the RMS of all the other structures';
* forces of an atom: the length of its residual force over the RMS of all the other atoms' components;
* force sign, with a baseline whose forces follow the labels (the lower quartile of the structures' correlations
  :data:`SIGN_GATE` or more): the correlation of a structure's force labels with the baseline's forces, where both have
  an RMS above :data:`MIN_SIGN_RMS` (a structure stored with the other sign gives about -1).

The thresholds leave a margin of 2.5 or more over what the mlearn sets reach (Cu, Ni, Si, Li; training and test;
with their EAM, Tersoff, Stillinger-Weber and MEAM baselines and without): energy ratios at most 5.8 (Li with LAMMPS's
MEAM; 4.4 otherwise; threshold :data:`ENERGY_RATIO` 15),
structure force ratios at most 2.9 (:data:`STRUCTURE_FORCE_RATIO` 10), atom force ratios at most 20.2
(:data:`ATOM_FORCE_RATIO` 60), per-structure force correlations at least 0.04 (:data:`SIGN_CORRELATION` -0.5). A unit
mistake in one structure is a factor of 13.6 (Rydberg) or more.
With fewer than :data:`MIN_STRUCTURES` structures the per-structure comparisons are not made (the record says so).
:func:`check_outliers` returns the findings; the fit stops on any unless ``[data] check_outliers = false``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hybridpot.dataset import Dataset

#: thresholds: a structure's (atom's) residual over the leave-one-out RMS of the rest
ENERGY_RATIO = 15.0
STRUCTURE_FORCE_RATIO = 10.0
ATOM_FORCE_RATIO = 60.0
#: a structure's force labels correlating with its baseline forces below this: the other sign
SIGN_CORRELATION = -0.5
#: the sign is judged only where labels and baseline forces both have an RMS above this, eV/A
MIN_SIGN_RMS = 0.05
#: ...and only where the lower quartile of the structures' correlations is at least this
SIGN_GATE = 0.7
#: fewest structures for the per-structure comparisons
MIN_STRUCTURES = 8
#: structures named per finding in a message
SHOWN = 5


@dataclass
class OutlierCheck:
    """What :func:`check_outliers` found in one data set.

    Attributes:
        source: the data set (file name), for messages.
        findings: one message per kind of outlier, naming the structures (and atoms) and their ratios.
        record: for report.json: per check, its threshold, the largest ratio seen and the outliers' indices in the file.
        energy_structures: positions in the data set of the structures whose energies are outliers.
        force_atoms: atom rows (in the data set's concatenated atoms) whose forces are outliers: single atoms, and every
            atom of a structure whose forces are outliers or point against the baseline's.
    """

    source: str
    findings: list[str] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)
    energy_structures: list[int] = field(default_factory=list)
    force_atoms: list[int] = field(default_factory=list)


def _ratios(sq: np.ndarray, count: np.ndarray) -> np.ndarray:
    """sqrt(sq_i / count_i) over the RMS of all the others: sq (n,) sums of squares, count (n,) their numbers of values."""
    rest = np.maximum(sq.sum() - sq, 0.0) / np.maximum(count.sum() - count, 1)
    return np.sqrt(sq / np.maximum(count, 1)) / np.sqrt(np.maximum(rest, 1e-300))


def _studentized(composition: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-atom energies against per-element offsets fitted to all the other structures (least squares).

    Args:
        composition: (S, E) the structures' element fractions.
        values: (S,) per-atom energies, eV/atom.

    Returns:
        each structure's residual from the offsets of the others, eV/atom, and that residual over the RMS of the others'
        residuals (the externally studentised residual: hat-matrix formulas, no refit per structure); 0 where a
        structure alone fixes an offset (no other structure has its composition's direction).
    """
    coef, _, rank, _ = np.linalg.lstsq(composition, values, rcond=None)
    e = values - composition @ coef
    h = np.einsum("se,ef,sf->s", composition, np.linalg.pinv(composition.T @ composition), composition)
    free = 1.0 - h
    judged = free > 1e-9
    loo = np.where(judged, e / np.where(judged, free, 1.0), 0.0)
    dof = len(values) - rank - 1
    rest = (e @ e - e * loo) / max(dof, 1)  # the others' residual variance, from the offsets fitted without the structure
    scale = np.sqrt(np.maximum(rest, 1e-300) / np.where(judged, free, 1.0))
    return loo, np.where(judged & (dof > 0), np.abs(loo) / scale, 0.0)


def _named(data: Dataset, items: list[tuple[int, str]]) -> str:
    """"structure 3 (config_type 'vacancy', Cu107): ratio 25; ..." for the first :data:`SHOWN` items, and a count of the rest."""
    text = "; ".join(f"{data.describe(s)}{what}" for s, what in items[:SHOWN])
    return text + (f"; and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def check_outliers(data: Dataset, baseline=None) -> OutlierCheck:
    """Look for structures and atoms whose labels do not belong with the rest of ``data`` (module docstring).

    Args:
        baseline: the baseline's :class:`~hybridpot.prediction.BaselinePredictions` on ``data`` (None: the labels alone).

    Returns:
        the findings and the record.
    """
    out = OutlierCheck(data.source)
    if len(data) < MIN_STRUCTURES:
        out.record["verdict"] = f"not checked: {len(data)} structures (fewer than {MIN_STRUCTURES})"
        return out
    energy = data.energy - (baseline.energy if baseline is not None else 0.0)
    e, ratio = _studentized(data.composition(data.elements) / data.n_atoms[:, None], energy / data.n_atoms)
    out.record["energy"] = _flag(out, data, ratio, ENERGY_RATIO, "energy",
                                 lambda s: f": {e[s] * 1000:+.4g} meV/atom from the per-element offsets of the rest, "
                                           f"{ratio[s]:.3g}x the RMS of their residuals")
    out.energy_structures = [int(s) for s in np.flatnonzero(ratio > ENERGY_RATIO)]

    has_f = data.has_forces
    if has_f.sum() >= MIN_STRUCTURES:
        ptr = data.ptr
        forces = data.forces - (baseline.forces if baseline is not None else 0.0)
        atoms_with = np.repeat(has_f, data.n_atoms)
        sq_atom = np.where(atoms_with, np.sum(np.nan_to_num(forces) ** 2, axis=1), 0.0)
        sq = data.per_structure(sq_atom)
        count = np.where(has_f, 3 * data.n_atoms, 0)
        ratio_s = np.where(has_f, _ratios(sq, count), 0.0)
        out.record["forces"] = _flag(out, data, ratio_s, STRUCTURE_FORCE_RATIO, "force",
                                     lambda s: f": residual RMS {np.sqrt(sq[s] / count[s]):.3g} eV/A, {ratio_s[s]:.3g}x the rest's")
        n_comp = 3.0 * atoms_with
        rest = np.sqrt(np.maximum(sq_atom.sum() - sq_atom, 0.0) / np.maximum(n_comp.sum() - n_comp, 1))
        ratio_a = np.where(atoms_with, np.sqrt(sq_atom) / np.maximum(rest, 1e-300), 0.0)
        bad = np.flatnonzero(ratio_a > ATOM_FORCE_RATIO)
        structure = np.searchsorted(ptr, bad, side="right") - 1
        out.record["atom_forces"] = {"threshold": ATOM_FORCE_RATIO, "largest_ratio": float(ratio_a.max()),
                                     "outliers": [[int(data.index[s]), int(a - ptr[s])] for s, a in zip(structure, bad)]}
        if len(bad):
            items = [(int(s), f" atom {int(a - ptr[s])}: |residual force| {np.sqrt(sq_atom[a]):.3g} eV/A, {ratio_a[a]:.3g}x the RMS "
                              "of the other components") for s, a in zip(structure, bad)]
            out.findings.append(f"{len(bad)} atom(s) with force labels far outside the rest: {_named(data, items)}")
        structures = set(np.flatnonzero(ratio_s > STRUCTURE_FORCE_RATIO).tolist())
        if baseline is not None:
            out.record["force_sign"], flipped = _flag_signs(out, data, baseline)
            structures |= set(flipped)
        rows = [np.arange(ptr[s], ptr[s + 1]) for s in sorted(structures)]
        out.force_atoms = sorted(set(np.concatenate([bad, *rows]).astype(int).tolist()))
    out.record["verdict"] = "outliers" if out.findings else "ok"
    return out


def _flag(out: OutlierCheck, data: Dataset, ratio: np.ndarray, threshold: float, quantity: str, what) -> dict[str, Any]:
    """Add a finding for the structures whose ``ratio`` exceeds ``threshold``; the check's record."""
    bad = np.flatnonzero(ratio > threshold)
    if len(bad):
        bad = bad[np.argsort(-ratio[bad])]
        out.findings.append(f"{len(bad)} structure(s) with {quantity} labels far outside the rest: "
                            f"{_named(data, [(int(s), what(s)) for s in bad])}")
    return {"threshold": threshold, "largest_ratio": float(ratio.max()), "outliers": [int(data.index[s]) for s in bad]}


def _flag_signs(out: OutlierCheck, data: Dataset, baseline) -> tuple[dict[str, Any], list[int]]:
    """Add a finding for the structures whose force labels anti-correlate with the baseline's forces; the check's record
    and those structures' positions in ``data``.

    Judged only where the baseline's forces follow the labels structure by structure: the lower quartile of the
    per-structure correlations at least :data:`SIGN_GATE` (a quartile, so that a minority of flipped structures does
    not switch the check off). With a poor baseline a structure dominated by one strained bond can rightly point the
    other way: ReaxFF on stretched C/H/O molecules (``examples/reaxff_retrain``) has lower quartiles 0.43-0.51 and two
    molecules at -0.72 and -0.87. On the mlearn sets (training and test): the EAMs 0.99, Tersoff 0.80-0.83 and
    Stillinger-Weber 0.74-0.76 (judged; their smallest structure correlations 0.04-0.16), Li's MEAM 0.67 (not judged)."""
    a, b = np.nan_to_num(data.forces), baseline.forces  # a structure's components: its atoms' three
    n = 3.0 * data.n_atoms
    sa, sb, saa, sbb, sab = (data.per_structure(x.sum(axis=1)) for x in (a, b, a * a, b * b, a * b))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (sab - sa * sb / n) / np.sqrt((saa - sa * sa / n) * (sbb - sb * sb / n))
    judged = data.has_forces & (np.sqrt(saa / n) > MIN_SIGN_RMS) & (np.sqrt(sbb / n) > MIN_SIGN_RMS) & np.isfinite(corr)
    corr = np.where(judged, corr, np.nan)
    record: dict[str, Any] = {"threshold": SIGN_CORRELATION, "judged": int(judged.sum())}
    if judged.sum() < MIN_STRUCTURES:
        return record | {"verdict": f"not judged: {int(judged.sum())} structures with forces of both above {MIN_SIGN_RMS} eV/A RMS"}, []
    quartile = float(np.percentile(corr[judged], 25))
    record |= {"lower_quartile": quartile, "smallest_correlation": float(corr[judged].min())}
    if quartile < SIGN_GATE:
        return record | {"verdict": f"not judged: the baseline's forces follow the labels by {quartile:.2f} in the lower quartile "
                                    f"of the structures (below {SIGN_GATE:g})"}, []
    flipped = np.flatnonzero(corr < SIGN_CORRELATION)
    if len(flipped):
        items = [(int(s), f": correlation {corr[s]:+.2f}") for s in flipped]
        out.findings.append(f"{len(flipped)} structure(s) whose forces point against the baseline's (the other sign? "
                            f"gradients stored as forces?): {_named(data, items)}")
    return record | {"verdict": "judged", "outliers": [int(data.index[s]) for s in flipped]}, [int(s) for s in flipped]


def outliers_message(check: OutlierCheck, section: str = "[data]") -> str:
    """The error message of a data set with outliers: each finding, then what to do (``section``: where the key is set)."""
    return (f"{check.source}: some labels do not belong with the rest of the set. " + ". ".join(check.findings)
            + ". Check those calculations (converged? the same DFT settings, units and sign as the rest?) and correct or "
            f"remove them, or set {section} check_outliers = false if they are right")
