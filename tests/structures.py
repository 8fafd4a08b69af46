"""Test structures: random triclinic periodic cells, slabs, clusters, several elements."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from ase import Atoms
from ase.build import bulk, fcc111
from ase.cluster import Icosahedron
from ase.io import read

from hybridpot.dataset import bundled


def random_triclinic(
    symbols: Sequence[str], lattice: str = "fcc", a: float = 3.6, repeat=(3, 3, 3), seed: int = 0, rattle: float = 0.1,
    strain: float = 0.08,
) -> Atoms:
    """A supercell with a random (right-handed) triclinic strain, random species and rattled positions."""
    rng = np.random.default_rng(seed)
    atoms = bulk(symbols[0], lattice, a=a, cubic=True).repeat(repeat)
    eps = rng.uniform(-strain, strain, (3, 3))
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
    atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
    atoms.set_chemical_symbols(rng.choice(list(symbols), len(atoms)).tolist())
    return atoms


def slab(symbols: Sequence[str], a: float = 3.6, seed: int = 1, rattle: float = 0.08) -> Atoms:
    """An fcc(111) slab, periodic in x and y, 10 A of vacuum in z, non-periodic in z."""
    rng = np.random.default_rng(seed)
    atoms = fcc111(symbols[0], size=(3, 3, 4), a=a, vacuum=5.0)
    atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
    atoms.set_chemical_symbols(rng.choice(list(symbols), len(atoms)).tolist())
    atoms.pbc = (True, True, False)
    return atoms


def cluster(symbols: Sequence[str], a: float = 3.6, seed: int = 2, rattle: float = 0.08) -> Atoms:
    """A 55-atom icosahedral cluster with no cell and no periodicity."""
    rng = np.random.default_rng(seed)
    atoms = Icosahedron(symbols[0], noshells=3, latticeconstant=a)
    atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
    atoms.set_chemical_symbols(rng.choice(list(symbols), len(atoms)).tolist())
    atoms.set_cell(np.zeros((3, 3)))
    atoms.pbc = False
    return atoms


def reference_structures(symbols: Sequence[str], lattice: str = "fcc", a: float = 3.6) -> dict[str, Atoms]:
    """The structures every empirical potential is compared on."""
    return {
        "triclinic_a": random_triclinic(symbols, lattice, a, seed=0),
        "triclinic_b": random_triclinic(symbols, lattice, a, repeat=(2, 3, 2), seed=5, strain=0.12),
        "slab": slab(symbols, a),
        "cluster": cluster(symbols, a),
    }


def cu_frames(n: int = 8) -> list[Atoms]:
    """The first ``n`` structures of the bundled Cu training set (DFT labels)."""
    return read(bundled("Cu_train.xyz"), index=f":{n}")
