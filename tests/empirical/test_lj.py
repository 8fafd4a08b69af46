"""Lennard-Jones: parity with LAMMPS lj/cut, finite differences, file errors."""

from __future__ import annotations

import numpy as np
import pytest

from hybridpot.empirical import LennardJones, load
from hybridpot.errors import PotentialFileError, StructureError
from hybridpot.potential import to_numpy
from hybridpot.testing import assert_matches_lammps, fd_forces, fd_stress, max_rel
from tests.structures import reference_structures

LJ_TOML = """
style = "lj/cut"
elements = ["Ar", "Kr"]
cutoff = 8.0
shift = {shift}
[[pair]]
elements = ["Ar", "Ar"]
epsilon = 0.0104
sigma = 3.40
[[pair]]
elements = ["Kr", "Kr"]
epsilon = 0.0140
sigma = 3.65
cutoff = 8.5
[[pair]]
elements = ["Ar", "Kr"]
epsilon = 0.0121
sigma = 3.52
cutoff = 7.5
"""


@pytest.fixture(params=[False, True], ids=["noshift", "shift"])
def lj(request, tmp_path):
    path = tmp_path / "ArKr.lj.toml"
    path.write_text(LJ_TOML.format(shift=str(request.param).lower()))
    return load(path)


STRUCTURES = reference_structures(["Ar", "Kr"], "fcc", a=5.4)


@pytest.mark.lammps
@pytest.mark.parametrize("name", list(STRUCTURES))
def test_lj_matches_lammps(lj, name, lammps_module):
    assert_matches_lammps(lj, STRUCTURES[name], ["Ar", "Kr"], label=name)


@pytest.mark.parametrize("name", ["triclinic_b", "cluster"])
def test_lj_forces_finite_differences(lj, name):
    atoms = STRUCTURES[name]
    res = to_numpy(lj.compute(atoms))
    idx = list(range(0, len(atoms), max(1, len(atoms) // 6)))
    fd = fd_forces(lj, atoms, atoms_idx=idx)
    assert max_rel(res["forces"][idx], fd[idx]) < 1e-6


def test_lj_stress_finite_differences(lj):
    atoms = STRUCTURES["triclinic_b"]
    res = to_numpy(lj.compute(atoms))
    assert max_rel(res["stress"][0], fd_stress(lj, atoms)) < 1e-6


def test_lj_dict_round_trip(lj):
    again = LennardJones.from_dict(lj.to_dict())
    atoms = STRUCTURES["triclinic_a"]
    assert np.array_equal(to_numpy(again.compute(atoms))["forces"], to_numpy(lj.compute(atoms))["forces"])


def test_lj_bad_files(tmp_path):
    bad = tmp_path / "bad.lj.toml"
    bad.write_text("elements = ['Ar']\ncutoff = 5.0\n[[pair]]\nelements = ['Ar', 'Ar']\nsigma = 3.4\n")
    with pytest.raises(PotentialFileError, match=r"bad\.lj\.toml: pair entry 0"):
        load(bad)
    bad.write_text("elements = ['Ar']\ncutoff = 5.0\nepsilon = 3\n[[pair]]\nelements = ['Ar', 'Ar']\n")
    with pytest.raises(PotentialFileError, match=r"unknown key\(s\) \['epsilon'\]"):
        load(bad)
    bad.write_text("elements = ['Ar'\n")
    with pytest.raises(Exception, match=r"bad\.lj\.toml: not valid TOML"):
        load(bad)
    with pytest.raises(PotentialFileError, match="potential file not found"):
        load(tmp_path / "missing.lj.toml")
    with pytest.raises(PotentialFileError, match="cannot tell the potential kind"):
        other = tmp_path / "x.params"
        other.write_text("")
        load(other)


def test_lj_unknown_element(lj):
    atoms = STRUCTURES["triclinic_a"].copy()
    atoms[0].symbol = "Xe"
    with pytest.raises(StructureError, match=r"Xe not covered by .*ArKr\.lj\.toml"):
        lj.compute(atoms)
