"""hybridpot.testing: its checks pass on correct potentials and fail on broken ones (they are not vacuous)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk

from hybridpot.dataset import bundled
from hybridpot.empirical import load
from hybridpot.potential import Potential
from hybridpot.testing import (
    assert_forces_match_finite_differences,
    assert_invariant,
    assert_stress_matches_finite_differences,
    random_rotation,
)


def cell():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.05, seed=1)
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.01 * np.random.default_rng(2).normal(size=(3, 3))), scale_atoms=True)
    return atoms


class Broken(Potential):
    """Pair repulsion whose forces miss a detached part of the energy, or whose energy depends on the absolute position."""

    def __init__(self, detach: bool = False, absolute: bool = False) -> None:
        super().__init__(4.0, None, "broken")
        self.detach, self.absolute = detach, absolute

    def forward(self, graph):
        r = graph.vectors.norm(dim=1)
        e = torch.exp(-r)
        if self.detach:
            e = e + 0.1 * torch.exp(-r).detach() * r.detach()
        out = torch.zeros(graph.n_atoms, dtype=e.dtype).index_add(0, graph.i, 0.5 * e)
        if self.absolute:
            out = out * (1 + 0.01 * torch.arange(graph.n_atoms, dtype=e.dtype))  # depends on the atom order
        return out


def test_checks_pass_on_the_eam():
    eam = load(bundled("Cu_mishin1.eam.alloy"))
    atoms = cell()
    assert_forces_match_finite_differences(eam, atoms, rel=1e-6, atoms_idx=[0, 5])
    assert_stress_matches_finite_differences(eam, atoms, rel=1e-6)
    assert_invariant(eam, atoms)


def test_checks_fail_on_broken_potentials():
    atoms = cell()
    with pytest.raises(AssertionError, match="forces differ from finite differences"):
        assert_forces_match_finite_differences(Broken(detach=True), atoms, atoms_idx=[0])
    with pytest.raises(AssertionError, match="stress differs from finite differences"):
        assert_stress_matches_finite_differences(Broken(detach=True), atoms)
    with pytest.raises(AssertionError, match=r"energies \(permuted\) not invariant"):
        assert_invariant(Broken(absolute=True), atoms)


def test_random_rotation_is_proper():
    for seed in range(5):
        q = random_rotation(seed)
        assert np.allclose(q @ q.T, np.eye(3), atol=1e-14) and np.isclose(np.linalg.det(q), 1.0)
