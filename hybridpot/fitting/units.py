"""Unit and sign-convention sanity checks of labelled data, against physics that does not depend on the fit.

Training data in Hartree or kcal/mol, or stresses in GPa or with the LAMMPS (pressure) sign, fit
"well" and give a useless model. These checks compare the labels with references that know
nothing about the residual model:

* with a baseline, its own predictions on the same structures: the spread of the per-atom
  energies (after removing per-element offsets, which DFT codes choose freely), the size of the
  forces and of the stresses, and the sign of their correlation. For the mlearn Cu, Ni and Si
  sets and their EAM/Tersoff baselines the ratios lie in 0.72-1.12 and the correlations above
  0.85; for random 8-structure subsets of one config type the energy ratio stays within
  0.71-1.62 down to baseline spreads of 3 meV/atom (below that, the comparison is not made).
  Unit mistakes are factors of 13.6 (Rydberg) or more, so the accepted band [1/4, 4] leaves a
  margin of 2.5 or more on both sides. A stress factor is only read where the labels resemble
  the baseline's (|correlation| >= 0.5): a unit multiplies every label by one number;
* stresses against the energies themselves: for copies of one structure that differ only by a
  homogeneous strain (elastic sets), E_b - E_a equals the work of the stress along the strain
  (trapezoid rule, :func:`strained_pairs`), which fixes sign and unit without any model. Where
  they agree, a mistake the baseline finds in the energies or the stresses alone is overruled
  (:func:`_overrule`): such a mistake would have broken the agreement, so the baseline is wrong;
* without a baseline, or where the comparison with it cannot conclude, typical DFT ranges: RMS
  force component below 10 eV/A, spread of per-atom energies below 5 eV/atom, stresses below
  0.3 eV/A^3 (48 GPa) typically and 2 eV/A^3 at most. These catch kcal/mol and GPa, not Hartree
  (which makes numbers smaller, like a cold data set).

Each check that cannot conclude (too few structures, a reference that barely varies) says so
in the record instead of guessing. A finding names the probable cause; :func:`check_units`
returns them, and the fit stops on any unless ``[data] check_units = false``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hybridpot.dataset import Dataset
from hybridpot.potential import matrix_to_voigt, voigt_to_matrix

#: data / reference magnitude ratios accepted as eV-based units
RATIO_BAND = (0.25, 4.0)
#: a correlation below this between data and reference means the opposite sign
SIGN_CORRELATION = -0.5
#: a stress scale finding needs labels that look like a scaled copy of the baseline's: |correlation| at least this (a
#: unit multiplies every label by one factor, so against a baseline that describes the labels at all the correlation
#: stays high; the refitted Tersoff of benchmarks/results/mlearn_search.md gives +0.17 for Si's stresses)
MIN_RESEMBLANCE = 0.5
#: smallest reference spread that makes a comparison conclusive: eV/atom, eV/A, eV/A^3
MIN_SPREAD = {"energy": 0.003, "forces": 0.01, "stress": 1e-3}
#: a single structure carrying more than this share of a finding's squared labels is named (:func:`_concentrated`)
CONCENTRATED = 0.7
#: typical DFT ranges, for data without a baseline
MAX_FORCE_RMS = 10.0  # eV/A
MAX_ENERGY_SPREAD = 5.0  # eV/atom, RMS after per-element offsets
MAX_STRESS_MEDIAN = 0.3  # eV/A^3 (48 GPa), median |component|
MAX_STRESS = 2.0  # eV/A^3 (320 GPa)
#: strained copies: largest |F - I| of a pair's deformation, fewest pairs for a verdict
MAX_PAIR_STRAIN = 0.05
MIN_PAIRS = 5

#: value in the file per value in eV units, for each common mistake
KNOWN_FACTORS = {
    "energy": {"Hartree": 1 / 27.211386, "Rydberg": 1 / 13.605693, "kcal/mol": 23.060548, "kJ/mol": 96.485332, "meV": 1000.0},
    "forces": {"Hartree/Bohr": 1 / 51.422067, "Rydberg/Bohr": 1 / 25.711034, "Hartree/A": 1 / 27.211386,
               "kcal/mol/A": 23.060548, "kJ/mol/A": 96.485332, "meV/A": 1000.0},
    "stress": {"GPa": 160.21766, "kbar": 1602.1766, "bar": 1.6021766e6, "meV/A^3": 1000.0},
}
UNITS = {"energy": "eV", "forces": "eV/A", "stress": "eV/A^3"}
#: a check's outcome: its record (for report.json) and the (cause, description) of a likely mistake, or None
Verdict = tuple[dict[str, Any], tuple[str, str] | None]
SIGN_CAUSE = {"energy": "the opposite sign", "forces": "the opposite sign (gradients stored as forces?)",
              "stress": "the LAMMPS (pressure) sign"}


@dataclass
class Finding:
    """A likely unit or sign mistake.

    Attributes:
        quantity: "energy", "forces" or "stress".
        check: which reference found it ("baseline", "strained copies", "typical range").
        cause: the probable cause, e.g. "kcal/mol" or "the LAMMPS (pressure) sign".
        message: what was measured against what, and the fix.
    """

    quantity: str
    check: str
    cause: str
    message: str


@dataclass
class UnitCheck:
    """The outcome of :func:`check_units` for one data set.

    Attributes:
        source: the data file.
        findings: likely mistakes (empty: none found).
        record: per quantity, what was compared and the numbers (for report.json).
    """

    source: str
    findings: list[Finding] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)


def probable_unit(quantity: str, ratio: float) -> str | None:
    """The common units whose factors (file value per eV-unit value) are within a factor of 2 of
    ``ratio``, nearest first ("Hartree or Rydberg"); None if there is none."""
    near = sorted((abs(np.log(ratio / f)), name) for name, f in KNOWN_FACTORS[quantity].items() if abs(np.log(ratio / f)) < np.log(2.0))
    return " or ".join(name for _, name in near) or None


def _without_offsets(data: Dataset, values: np.ndarray) -> np.ndarray:
    """Per-atom energies with the best per-element offsets removed (projection out of the composition space)."""
    composition = data.composition(data.elements) / data.n_atoms[:, None]
    coef, *_ = np.linalg.lstsq(composition, values, rcond=None)
    return values - composition @ coef


def _compare(quantity: str, data_values: np.ndarray, reference: np.ndarray, what: str, resemble: bool = False
             ) -> Verdict:
    """Ratio of RMS sizes and correlation of ``data_values`` against ``reference`` (same shape).

    ``resemble``: read a factor only where the labels resemble the reference (|correlation| >= MIN_RESEMBLANCE; else
    inconclusive). Used for the stresses, which a poor baseline gets furthest wrong and whose unit the magnitude and
    strained-copies checks judge without a model. Not for energies and forces: there a size ratio out of the band
    without resemblance is mostly one structure far from the rest, which the finding names (:func:`_concentrated`).

    Returns:
        (record, (cause, description) of a likely mistake or None).
    """
    ref_rms = float(np.sqrt(np.mean(reference**2)))
    record: dict[str, Any] = {"check": "baseline", "n": int(data_values.size), "reference_rms": ref_rms}
    if ref_rms < MIN_SPREAD[quantity]:
        record["verdict"] = f"inconclusive: the baseline's {what} vary by less than {MIN_SPREAD[quantity]} {UNITS[quantity]}"
        return record, None
    data_rms = float(np.sqrt(np.mean(data_values**2)))
    ratio = data_rms / ref_rms
    corr = float(np.sum(data_values * reference) / max(np.linalg.norm(data_values) * np.linalg.norm(reference), 1e-300))
    record |= {"ratio": ratio, "correlation": corr}
    flipped, scaled = corr < SIGN_CORRELATION, not RATIO_BAND[0] <= ratio <= RATIO_BAND[1]
    if resemble and scaled and not flipped and abs(corr) < MIN_RESEMBLANCE:
        record["verdict"] = (f"inconclusive: the labels' {what} correlate with the baseline's by {corr:+.2f} only, so the "
                             f"ratio of their sizes ({ratio:.3g}) says nothing about their unit")
        return record, None
    record["verdict"] = "likely mistake" if flipped or scaled else "ok"
    if not (flipped or scaled):
        return record, None
    unit = probable_unit(quantity, ratio) or f"values {ratio:.3g} times those in {UNITS[quantity]} (no common unit gives this factor)"
    cause = " with ".join(([unit] if scaled else []) + ([SIGN_CAUSE[quantity]] if flipped else []))
    description = (f"their RMS {what} are {ratio:.3g} times the baseline's on the same structures and correlate with them "
                   f"by {corr:+.2f} (eV-based labels: ratio {RATIO_BAND[0]:g}-{RATIO_BAND[1]:g}, correlation > {SIGN_CORRELATION:g})")
    return record, (cause, description)


def strained_pairs(data: Dataset, max_strain: float = MAX_PAIR_STRAIN) -> tuple[np.ndarray, np.ndarray]:
    """Energy differences of strained copies and the work of their stresses along the strain.

    Pairs are structures with the same atoms in the same order and the same fractional
    coordinates (to 1e-4), periodic in all directions, both with a stress, whose cells differ by a
    deformation F (x_b = x_a F) with max |F - I| <= ``max_strain``. The work is the trapezoid rule
    of dE = V sigma : d(epsilon) (ASE sign) between the two ends:
    W = (V_a sigma_a : sym(F - I) + V_b sigma_b : sym(I - F^-1)) / 2, accurate to second order.

    Returns:
        (E_b - E_a (P,) eV, W (P,) eV); they agree for labels in eV and eV/A^3 with the ASE sign.
    """
    groups: dict[bytes, list[int]] = {}
    for s, atoms in enumerate(data.frames):
        if data.has_stress[s] and atoms.pbc.all():
            frac = np.round(atoms.cell.scaled_positions(atoms.positions), 4) % 1.0  # 0.99996 and 0.00001 both give 0
            groups.setdefault(atoms.numbers.tobytes() + frac.tobytes(), []).append(s)
    d_energy, work = [], []
    eye = np.eye(3)
    for members in groups.values():
        for k, a in enumerate(members):
            for b in members[k + 1:]:
                A, B = data.frames[a], data.frames[b]
                F = np.linalg.solve(A.cell.array, B.cell.array)
                if np.abs(F - eye).max() > max_strain:
                    continue
                G, H = F - eye, eye - np.linalg.inv(F)
                w = 0.5 * (abs(A.cell.volume) * np.sum(voigt_to_matrix(data.stress[a]) * 0.5 * (G + G.T))
                           + abs(B.cell.volume) * np.sum(voigt_to_matrix(data.stress[b]) * 0.5 * (H + H.T)))
                d_energy.append(data.energy[b] - data.energy[a])
                work.append(w)
    return np.array(d_energy), np.array(work)


def _inconsistent_units(slope: float) -> str:
    """The probable cause of energy differences ``slope`` times the work of the stresses: stresses
    in GPa or kbar (slope 1/160, 1/1602), else energies in Hartree, kcal/mol, ..."""
    stress = probable_unit("stress", 1.0 / slope)
    if stress is not None:
        return f"stresses in {stress}"
    energy = probable_unit("energy", slope)
    if energy is not None:
        return f"energies in {energy}"
    return f"energies and stresses in inconsistent units (a factor {slope:.3g})"


def _strained_copies(data: Dataset) -> Verdict:
    d_energy, work = strained_pairs(data)
    record: dict[str, Any] = {"check": "strained copies", "pairs": int(d_energy.size)}
    if d_energy.size < MIN_PAIRS or not np.any(work):
        record["verdict"] = f"inconclusive: {d_energy.size} pairs of strained copies (need {MIN_PAIRS})"
        return record, None
    slope = float(d_energy @ work / (work @ work))
    cosine = float(d_energy @ work / max(np.linalg.norm(d_energy) * np.linalg.norm(work), 1e-300))
    record |= {"energy_over_work": slope, "correlation": cosine}
    if cosine < -0.7:
        cause = "the LAMMPS (pressure) sign"
    elif cosine > 0.7 and not 0.1 <= slope <= 10.0:
        cause = _inconsistent_units(slope)
    else:
        record["verdict"] = "ok" if cosine > 0.7 else "inconclusive: energies and stress work of the pairs barely correlate"
        return record, None
    record["verdict"] = "likely mistake"
    return record, (cause, f"over {d_energy.size} pairs of strained copies the energy differences are {slope:+.3g} times the "
                           f"work of the stresses along the strain (correlation {cosine:+.2f}; expected +1 for eV/A^3, ASE sign)")


def _typical_ranges(data: Dataset, quantity: str) -> Verdict:
    record: dict[str, Any] = {"check": "typical range"}
    if quantity == "energy":
        spread = float(np.sqrt(np.mean(_without_offsets(data, data.energy / data.n_atoms) ** 2)))
        record["energy_spread_eV_atom"] = spread
        if spread > MAX_ENERGY_SPREAD:
            return record | {"verdict": "likely mistake"}, (
                "kcal/mol, kJ/mol or meV", f"their per-atom energies spread by {spread:.3g} eV/atom (RMS after per-element "
                                           f"offsets; DFT training sets spread by less than {MAX_ENERGY_SPREAD:g})")
    elif quantity == "forces":
        f = data.forces[np.all(np.isfinite(data.forces), axis=1)]
        rms = float(np.sqrt(np.mean(f**2))) if f.size else 0.0
        record["force_rms_eV_A"] = rms
        if rms > MAX_FORCE_RMS:
            return record | {"verdict": "likely mistake"}, (
                "kcal/mol/A, kJ/mol/A or meV/A", f"their RMS force component is {rms:.3g} eV/A (DFT training sets: below {MAX_FORCE_RMS:g})")
    record["verdict"] = "ok (within typical DFT ranges; a baseline would check more)"
    return record, None


def _stress_magnitude(stress: np.ndarray) -> Verdict:
    median, largest = float(np.median(np.abs(stress))), float(np.abs(stress).max())
    record = {"check": "typical range", "median_abs_eV_A3": median, "max_abs_eV_A3": largest}
    if median > MAX_STRESS_MEDIAN or largest > MAX_STRESS:
        return record | {"verdict": "likely mistake"}, (
            "GPa or kbar", f"their median |component| is {median:.3g} eV/A^3 ({median * 160.2:.0f} GPa) and the largest "
                           f"{largest:.3g} eV/A^3 (DFT training sets: typically below {MAX_STRESS_MEDIAN:g}, at most {MAX_STRESS:g})")
    return record | {"verdict": "ok"}, None


def check_units(data: Dataset, baseline=None) -> UnitCheck:
    """Look for unit and sign mistakes in the energies, forces and stresses of ``data``.

    Args:
        baseline: the baseline's :class:`~hybridpot.fitting.assembly.BaselinePredictions` on
            ``data`` (None without a baseline: typical DFT ranges instead).

    Returns:
        the findings and the record of every comparison (see the module docstring): per quantity, and the strained
        copies' ("strained_copies") where the data have stresses.
    """
    out = UnitCheck(data.source)
    per_atom = data.energy / data.n_atoms
    checks: dict[str, Verdict] = {}
    if baseline is not None and len(data) >= len(data.elements) + 2:
        checks["energy"] = _or_typical_range(data, "energy", _compare(
            "energy", _without_offsets(data, per_atom), _without_offsets(data, baseline.energy / data.n_atoms),
            "per-atom energies (after per-element offsets)"))
    elif baseline is not None:
        checks["energy"] = _or_typical_range(data, "energy", ({"check": "baseline", "verdict": f"inconclusive: {len(data)} structures"}, None))
    else:
        checks["energy"] = _typical_ranges(data, "energy")
    has_f = np.repeat(data.has_forces, data.n_atoms)
    if has_f.any():
        checks["forces"] = _or_typical_range(data, "forces", _compare("forces", data.forces[has_f], baseline.forces[has_f], "force components")) \
            if baseline is not None else _typical_ranges(data, "forces")
    if data.has_stress.any():
        strained = _strained_copies(data)
        checks["stress"] = _check_stress(data, baseline, strained)
        _overrule(checks, strained[0])
        _energies_against_stresses(checks, strained)
    for quantity, (record, finding) in checks.items():
        out.record[quantity] = record
        if finding is not None:
            cause, description = finding
            if quantity in ("energy", "forces"):
                description += _concentrated(data, quantity, record)
            out.findings.append(Finding(quantity, record["check"], cause, f"{quantity}: likely {cause}: {description}"))
    if data.has_stress.any():
        out.record["strained_copies"] = strained[0]
    return out


def _concentrated(data: Dataset, quantity: str, record: dict[str, Any]) -> str:
    """Where one structure carries most of the labels' squared size: a hint that it, not the set's units, is wrong (the
    outlier check, :mod:`hybridpot.fitting.outliers`, names such structures itself in sets of 8 or more, before this
    check runs). The share goes into ``record["largest_share"]``."""
    if len(data) < 2:
        return ""
    if quantity == "energy":
        sq = _without_offsets(data, data.energy / data.n_atoms) ** 2
    else:
        has = np.repeat(data.has_forces, data.n_atoms)
        sq = data.per_structure(np.where(has, np.sum(np.nan_to_num(data.forces) ** 2, axis=1), 0.0))
    s = int(np.argmax(sq))
    share = float(sq[s] / max(sq.sum(), 1e-300))
    record["largest_share"] = share
    if share <= CONCENTRATED:
        return ""
    return f"; {data.describe(s)} alone carries {share:.0%} of that (one wrong structure rather than wrong units?)"


def _or_typical_range(data: Dataset, quantity: str, compared: Verdict) -> Verdict:
    """The comparison with the baseline, or where it cannot conclude the typical DFT range of ``quantity`` (the
    comparison's record kept under "baseline")."""
    record, _ = compared
    if not record["verdict"].startswith("inconclusive"):
        return compared
    fallback, finding = _typical_ranges(data, quantity)
    return fallback | {"baseline": record}, finding


def _check_stress(data: Dataset, baseline, strained: Verdict) -> Verdict:
    """Magnitude first (any data), then sign and unit against the baseline or, where that cannot conclude, the
    strained copies (``strained``: :func:`_strained_copies` of ``data``)."""
    s = data.has_stress
    record, finding = _stress_magnitude(data.stress[s])
    if finding is not None:
        return record, finding
    if baseline is not None and s.sum() >= 3:
        volume = np.array([abs(a.cell.volume) for a in data.frames])[s]
        reference = matrix_to_voigt(-baseline.virial[s] / volume[:, None, None])
        record, finding = _compare("stress", data.stress[s], reference, "stress components", resemble=True)
        if not record["verdict"].startswith("inconclusive"):
            return record, finding
        return strained[0] | {"baseline": record}, strained[1]
    return strained


def _energies_against_stresses(checks: dict[str, Verdict], strained: Verdict) -> None:
    """Strained copies that find energies and stresses inconsistent while the baseline confirms the stresses (and no
    check faults the energies): the energies' mistake, as their finding (in place; the energy check it replaces is
    kept in its record under "superseded")."""
    record, finding = strained
    stress = checks["stress"][0]
    if finding is None or checks["energy"][1] is not None or stress["check"] != "baseline" or stress["verdict"] != "ok":
        return
    slope, cosine = record["energy_over_work"], record["correlation"]
    if cosine < 0:
        cause = "the opposite sign"
    else:
        cause = probable_unit("energy", slope) or f"values {slope:.3g} times those in eV (no common unit gives this factor)"
    checks["energy"] = (record | {"superseded": checks["energy"][0]},
                        (cause, finding[1] + "; the baseline confirms the stresses' sign and unit, so the energies are wrong"))


def _overrule(checks: dict[str, Verdict], strained: dict[str, Any]) -> None:
    """Drop a baseline's finding that model-free evidence contradicts (in place; the record says so).

    Strained copies that agree with eV and eV/A^3 (``strained``: their record, verdict "ok") show that the energies and
    the stresses are consistent with each other. A sign or unit mistake in only one of the two would break that, so
    where the baseline finds one in exactly one of them, the baseline, not the labels, is the odd one out (a refitted
    or unusual potential). Findings in both are kept: one mistake in both (labels in Hartree and Hartree/A^3) leaves
    the strained copies consistent.
    """
    if strained["verdict"] != "ok":
        return
    flagged = [q for q in ("energy", "stress") if q in checks and checks[q][1] is not None and checks[q][0]["check"] == "baseline"]
    if len(flagged) != 1:
        return
    quantity = flagged[0]
    record, (cause, _) = checks[quantity]
    other = "stresses" if quantity == "energy" else "energies"
    record["verdict"] = (f"overruled: against the baseline the {quantity} labels look like {cause}, but {strained['pairs']} "
                         f"pairs of strained copies show them consistent with the {other} (energy differences "
                         f"{strained['energy_over_work']:.3g} times the work of the stresses, correlation "
                         f"{strained['correlation']:+.2f}), which a mistake in the {quantity} alone would break: the "
                         "baseline is the odd one out")
    checks[quantity] = (record, None)


def units_message(check: UnitCheck, section: str = "[data]") -> str:
    """The error message of a data set with findings: each finding, then the fix (``section``: where the key is set)."""
    lines = "; ".join(f.message for f in check.findings)
    trust = (" A comparison with the baseline trusts the baseline: where it is the odd one out (a refitted or unusual "
             "potential, structures far from what it was made for), such a finding says nothing about the labels (strained copies "
             f"of a structure in the data, where there are {MIN_PAIRS} pairs or more, overrule one in the energies or the "
             "stresses alone)."
             if any(f.check == "baseline" for f in check.findings) else "")
    return (f"{check.source}: the labels look like a unit or sign mistake. {lines}.{trust} Convert the labels to eV, eV/A and "
            "eV/A^3 with the ASE stress sign (positive = tensile; the LAMMPS pressure is its negative), or set "
            f"{section} check_units = false if they are right")
