"""Per-structure label checks (hybridpot.fitting.outliers): no finding on real data (the bundled data: with the unit
checks in tests/io/test_faults_inputs.py), the leave-one-out arithmetic
against explicit refits, and the key that lets a user go on. The bad inputs themselves are corpus cases
(tests/corpus.py, "outlier-*" and "copy-*": one structure twice with other labels)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read

from hybridpot.dataset import bundled, read_dataset
from hybridpot.empirical import load as load_empirical
from hybridpot.fitting.config import parse_config
from hybridpot.fitting.job import make_baseline
from hybridpot.fitting.outliers import (ATOM_FORCE_RATIO, ENERGY_RATIO, MIN_STRUCTURES, SIGN_CORRELATION, STRUCTURE_FORCE_RATIO,
                                        _studentized, check_outliers)
from hybridpot.prediction import BaselinePredictions, baseline_predictions
from tests.corpus import EAM, fit_with_check_off, relabelled

#: the margin the module docstring promises between the thresholds and what the mlearn sets reach
MARGIN = 2.5


def test_studentized_residuals_match_refits_without_the_structure():
    """The hat-matrix shortcut gives what fitting the offsets to the other structures gives, structure by structure."""
    rng = np.random.default_rng(3)
    counts = rng.integers(1, 20, size=(15, 2)).astype(float)
    composition = counts / counts.sum(axis=1, keepdims=True)
    values = composition @ np.array([-3.5, -4.2]) + rng.normal(0.0, 0.01, 15)
    loo, ratio = _studentized(composition, values)
    for s in range(15):
        keep = np.arange(15) != s
        coef, *_ = np.linalg.lstsq(composition[keep], values[keep], rcond=None)
        rest = values[keep] - composition[keep] @ coef
        resid = values[s] - composition[s] @ coef
        # the others' residual variance with the offsets fitted to them, over n - p - 1 degrees of freedom
        sigma = np.sqrt(rest @ rest / (14 - 2))
        leverage = composition[s] @ np.linalg.inv(composition[keep].T @ composition[keep]) @ composition[s]
        assert loo[s] == pytest.approx(resid, rel=1e-9, abs=1e-14)
        assert ratio[s] == pytest.approx(abs(resid) / (sigma * np.sqrt(1.0 + leverage)), rel=1e-8)


def _assert_well_inside(data, bl, sign_judged: bool) -> None:
    check = check_outliers(data, bl)
    assert check.findings == [], check.findings
    rec = check.record
    assert rec["energy"]["largest_ratio"] * MARGIN < ENERGY_RATIO
    assert rec["forces"]["largest_ratio"] * MARGIN < STRUCTURE_FORCE_RATIO
    assert rec["atom_forces"]["largest_ratio"] * MARGIN < ATOM_FORCE_RATIO
    if bl is not None:
        assert (rec["force_sign"]["verdict"] == "judged") is sign_judged, rec["force_sign"]
        assert rec["force_sign"]["smallest_correlation"] > SIGN_CORRELATION


@pytest.mark.parametrize("element, potential", [("Cu", "Cu_mishin1.eam.alloy"), ("Ni", "Ni_u3.eam"), ("Si", "Si.tersoff"),
                                                ("Si", "Si.sw"), ("Li", None)])
def test_mlearn_sets_stay_well_inside_the_thresholds(shared, element, potential):
    """Real DFT sets, with their baselines and without: no finding, and the margin the module docstring states."""
    base = load_empirical(shared / "data/potentials" / potential) if potential else None
    for part in ("train", "test"):
        data = read_dataset(shared / "data/mlearn" / element / f"{part}.xyz")
        for pot in ([base, None] if base else [None]):
            _assert_well_inside(data, baseline_predictions(pot, data, progress=False) if pot else None, True)


def test_mlearn_li_with_lammps_meam_stays_well_inside(shared, lammps_module):
    """Li with LAMMPS's MEAM (the largest energy ratio of the mlearn sets); its forces follow the labels too loosely
    for the sign to be judged."""
    raw = {"data": {"train": str(shared / "data/mlearn/Li/train.xyz")},
           "baseline": {"type": "lammps", "pair_style": "meam", "pair_coeff": ["* * library.meam Li NULL Li"], "elements": ["Li"],
                        "files": [str(shared / "data/potentials/library.meam")]},
           "output": {"dir": "out"}}
    base = make_baseline(parse_config(raw, shared, "li-meam"))
    for part in ("train", "test"):
        data = read_dataset(shared / "data/mlearn/Li" / f"{part}.xyz")
        _assert_well_inside(data, baseline_predictions(base, data, progress=False), False)


def test_force_signs_are_judged_only_against_a_baseline_that_follows_the_labels():
    """A flipped structure is found against a good reference; against one whose forces barely follow the labels (a
    poor baseline: some structures rightly point the other way) the sign is not judged at all."""
    data = read_dataset(bundled("Cu_train.xyz"))
    rng = np.random.default_rng(0)
    good = BaselinePredictions(data.energy.copy(), data.forces + rng.normal(0.0, 0.05, data.forces.shape), np.zeros((len(data), 3, 3)))
    flipped = good.forces.copy()
    rows = slice(int(data.n_atoms[:4].sum()), int(data.n_atoms[:5].sum()))  # structure 4
    flipped[rows] *= -1.0
    check = check_outliers(data, BaselinePredictions(good.energy, flipped, good.virial))
    assert check.record["force_sign"]["outliers"] == [4]
    assert any("structure 4 (config_type" in f and "point against the baseline's" in f for f in check.findings)
    poor = BaselinePredictions(good.energy, data.forces + rng.normal(0.0, 3.0 * np.nanstd(data.forces), data.forces.shape), good.virial)
    rec = check_outliers(data, poor).record["force_sign"]
    assert rec["verdict"].startswith("not judged: the baseline's forces follow the labels by") and "outliers" not in rec


def test_small_sets_are_not_judged():
    data = read_dataset(bundled("Cu_test.xyz")).subset(np.arange(MIN_STRUCTURES - 1))
    check = check_outliers(data, None)
    assert check.findings == [] and check.record["verdict"].startswith("not checked: 7 structures")


def test_check_outliers_false_fits_and_records(tmp_path):
    """The key lets a user who knows better go on: the fit runs, the finding is logged and in report.json."""
    frames = relabelled(read(bundled("Cu_train.xyz"), index=":8"))
    frames[3].calc.results["forces"][11] = [0.0, 80.0, 0.0]
    checks, logged, res = fit_with_check_off(tmp_path, frames, "check_outliers")
    assert checks["check_outliers"] is False
    outliers = checks["train"]["outliers"]
    assert outliers["checks"]["atom_forces"]["outliers"] == [[3, 11]]
    assert any("structure 3 (config_type 'vacancy', Cu107) atom 11" in f for f in outliers["findings"])
    assert any(m.startswith("warning: ") and "([data] check_outliers = false: fitting anyway)" in m for m in logged)
    assert checks["test"]["outliers"]["checks"]["verdict"].startswith("not checked")  # 4 test structures
    assert res.model_path.is_file()
    # the 80 eV/A atom is fitted, but left out of the spread that normalises the force weight, with its structure (107
    # atoms), whose force RMS it makes 67x the rest's: the check flags both
    assert res.report["fit"]["weights"]["scales_leave_out"] == {"energy_structures": 0, "force_atoms": 107}
    assert any("the spread leaves out the outliers: 0 structures' energies, 107 atoms' forces" in m for m in logged)


def test_the_force_scale_leaves_out_the_atoms_the_outlier_check_flags():
    """One 80 eV/A force label among ~0.3 eV/A residuals: left in, it sets the force scale (and so de-weights every other
    force by its square); left out with its structure, which the outlier check flags too, the scale is the RMS of the
    other structures' residual forces, and clean data give the same scale either way."""
    from hybridpot.fitting.assembly import target_scales

    data = read_dataset(bundled("Cu_train.xyz")).subset(np.arange(8))
    bl = baseline_predictions(load_empirical(EAM), data, progress=False)
    clean = check_outliers(data, bl)
    assert clean.energy_structures == [] and clean.force_atoms == []
    assert target_scales(data, bl, ["Cu"], clean) == target_scales(data, bl, ["Cu"])
    row = int(data.ptr[3]) + 11
    data.forces = data.forces.copy()
    data.forces[row] = [0.0, 80.0, 0.0]
    check = check_outliers(data, bl)
    structure = list(range(int(data.ptr[3]), int(data.ptr[4])))
    assert check.force_atoms == structure and check.energy_structures == []
    others = np.delete(data.forces - bl.forces, structure, axis=0)
    assert target_scales(data, bl, ["Cu"], check)["force"] == pytest.approx(np.sqrt(np.mean(others**2)), rel=1e-12)
    assert target_scales(data, bl, ["Cu"])["force"] > 5 * target_scales(data, bl, ["Cu"], check)["force"]


def test_conflicting_copies_compare_each_kind_both_copies_have():
    """A copy of a structure with its own labels is a repeat, not a conflict; one whose energy, force or stress label
    differs by more than SAME_LABELS_TOLERANCE is, with each difference in report units; a kind one copy lacks is not
    compared."""
    from hybridpot.dataset import Dataset
    from hybridpot.fitting.checks import SAME_LABELS_TOLERANCE, conflicting_copies, repeated_structures

    base = read_dataset(bundled("Cu_test.xyz")).subset([0, 1])
    n = len(base.frames[0])
    stress = np.where(np.isnan(base.stress[0]), 0.0, base.stress[0])

    def with_copy(de: float = 0.0, df: float = 0.0, ds: float = 0.0, forces: bool = True) -> Dataset:
        f0 = base.forces[: n]
        extra = f0 + np.array([df, 0.0, 0.0]) * (np.arange(n) == 0)[:, None] if forces else np.full_like(f0, np.nan)
        return Dataset(frames=base.frames + [base.frames[0]], energy=np.append(base.energy, base.energy[0] + de * n),
                       forces=np.concatenate([base.forces, extra]),
                       stress=np.vstack([np.vstack([stress, base.stress[1]]), stress + ds]),
                       has_forces=np.array([True, True, forces]), has_stress=np.array([True, base.has_stress[1], True]),
                       config_type=base.config_type + [base.config_type[0]], source="copies")

    def conflicts(data: Dataset) -> list:
        pairs = repeated_structures(data)
        assert pairs == [(2, 0)]
        return conflicting_copies(data, pairs)

    assert conflicts(with_copy()) == []
    assert conflicts(with_copy(de=0.5 * SAME_LABELS_TOLERANCE["energy"], df=0.5 * SAME_LABELS_TOLERANCE["force"])) == []
    (c,) = conflicts(with_copy(de=0.004))
    assert c["structure"] == 2 and c["first"] == 0 and c["energy_meV_atom"] == pytest.approx(4.0) and c["force_eV_A"] == 0.0
    (c,) = conflicts(with_copy(df=0.3))
    assert c["force_eV_A"] == pytest.approx(0.3) and c["energy_meV_atom"] == pytest.approx(0.0, abs=1e-9)
    (c,) = conflicts(with_copy(ds=0.5 / 160.21766208))
    assert c["stress_GPa"] == pytest.approx(0.5)
    (c,) = conflicts(with_copy(de=0.004, df=3.0, forces=False))  # the copy has no forces: energy only
    assert c["force_eV_A"] is None and c["energy_meV_atom"] == pytest.approx(4.0)


def test_conflicting_copies_with_check_outliers_false_fit_and_are_recorded(tmp_path):
    """check_outliers = false fits a set with a copy of one structure under other labels: warned, and in report.json's
    data_checks by the structures' positions in the file."""
    frames = relabelled(read(bundled("Cu_train.xyz"), index=":8"))
    copy = frames[5].copy()
    copy.calc = SinglePointCalculator(copy, energy=frames[5].calc.results["energy"] - 0.002 * len(copy),
                                      forces=frames[5].calc.results["forces"])
    checks, logged, res = fit_with_check_off(tmp_path, frames + [copy], "check_outliers")
    (c,) = checks["train"]["conflicting_copies"]
    assert (c["structure"], c["first"]) == (8, 5) and c["energy_meV_atom"] == pytest.approx(2.0) and c["force_eV_A"] == 0.0
    assert any(m.startswith("warning: ") and "structure 8 (config_type 'vacancy', Cu107) is structure 5" in m
               and "energy by 2 meV/atom" in m and "([data] check_outliers = false: fitting anyway)" in m for m in logged)
    assert checks["test"]["conflicting_copies"] == [] and res.model_path.is_file()
