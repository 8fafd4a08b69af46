"""The one neighbour list of hybridpot (vesin), and the pair graph every potential consumes.

The neighbour list is computed once per structure (vesin, any cell shape, periodic in any
subset of directions, cutoffs larger than the cell) and gives integer pairs and cell shifts.
Pair vectors are then formed in torch, ``r_ij = x_j - x_i + S_ij . cell``, so they are
differentiable with respect to positions and cell. Every potential and descriptor maps a
:class:`PairGraph` to per-atom quantities; forces and the virial follow from the gradient with
respect to the pair vectors (see :mod:`hybridpot.potential`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
import vesin

from hybridpot.errors import StructureError
from hybridpot.system import AtomicSystem

#: Pairs closer than this (Angstrom) are reported as overlapping atoms.
DEFAULT_MIN_DISTANCE = 0.5


@dataclass(frozen=True)
class NeighborList:
    """Full (both directions) neighbour list of a batch, pairs ordered by centre atom.

    Attributes:
        i: (P,) global index of the centre atom (non-decreasing).
        j: (P,) global index of the neighbour atom.
        shifts: (P, 3) integer cell shifts (as float) such that r_ij = x_j - x_i + shifts @ cell.
        cutoff: the cutoff used, Angstrom.
    """

    i: torch.Tensor
    j: torch.Tensor
    shifts: torch.Tensor
    cutoff: float


def neighbor_list(system: AtomicSystem, cutoff: float, min_distance: float = DEFAULT_MIN_DISTANCE) -> NeighborList:
    """Full neighbour list of every structure in ``system`` with r_ij < ``cutoff`` (Angstrom).

    Raises:
        StructureError: two atoms closer than ``min_distance`` (naming structure and atoms).
    """
    if not cutoff > 0:
        raise ValueError(f"cutoff must be positive, got {cutoff}")
    pos = system.positions.detach().cpu().numpy().astype(np.float64)
    cells = system.cells.detach().cpu().numpy().astype(np.float64)
    pbc = system.pbc.cpu().numpy()
    ptr = system.ptr.cpu().numpy()
    calculator = vesin.NeighborList(cutoff=float(cutoff), full_list=True)
    ii, jj, ss = [], [], []
    for s in range(system.n_structures):
        lo, hi = ptr[s], ptr[s + 1]
        box = cells[s] if np.any(pbc[s]) else np.zeros((3, 3))
        i, j, shifts, d = calculator.compute(pos[lo:hi], box, pbc[s].tolist(), quantities="ijSd")
        close = d < min_distance
        if np.any(close):
            k = int(np.argmax(close))
            raise StructureError(
                f"structure {s}: atoms {int(i[k])} and {int(j[k])} are {d[k]:.4f} A apart "
                f"(closer than {min_distance} A): overlapping atoms"
            )
        order = np.argsort(i, kind="stable")  # pairs grouped by centre (contiguous per-atom blocks downstream)
        ii.append(i[order].astype(np.int64) + lo)
        jj.append(j[order].astype(np.int64) + lo)
        ss.append(shifts[order])
    device = system.device
    return NeighborList(
        i=torch.as_tensor(np.concatenate(ii), device=device),
        j=torch.as_tensor(np.concatenate(jj), device=device),
        shifts=torch.as_tensor(np.concatenate(ss), dtype=system.dtype, device=device),
        cutoff=float(cutoff),
    )


@dataclass
class PairGraph:
    """Species and pair vectors: the input of every potential and descriptor.

    Attributes:
        numbers: (N,) atomic numbers.
        batch: (N,) structure index of each atom.
        n_structures: S.
        i: (P,) centre atoms.
        j: (P,) neighbour atoms.
        vectors: (P, 3) r_ij = x_j - x_i (with periodic images), Angstrom.
    """

    numbers: torch.Tensor
    batch: torch.Tensor
    n_structures: int
    i: torch.Tensor
    j: torch.Tensor
    vectors: torch.Tensor

    @property
    def n_atoms(self) -> int:
        return int(self.numbers.shape[0])

    @cached_property
    def distances(self) -> torch.Tensor:
        """(P,) |r_ij|, Angstrom."""
        return torch.linalg.vector_norm(self.vectors, dim=1)

    def within(self, cutoff: float) -> "PairGraph":
        """The sub-graph of pairs with r_ij < cutoff (same atoms)."""
        keep = self.distances < cutoff
        if bool(keep.all()):
            return self
        return PairGraph(self.numbers, self.batch, self.n_structures, self.i[keep], self.j[keep], self.vectors[keep])


def pair_vectors(system: AtomicSystem, nl: NeighborList) -> torch.Tensor:
    """(P, 3) r_ij = x_j - x_i + shifts @ cell, differentiable in positions and cells."""
    batch_i = system.batch[nl.i]
    offsets = torch.einsum("pk,pkd->pd", nl.shifts, system.cells[batch_i])
    return system.positions[nl.j] - system.positions[nl.i] + offsets


def build_graph(system: AtomicSystem, cutoff: float, nl: NeighborList | None = None) -> PairGraph:
    """Neighbour list (unless given) and pair vectors of ``system`` as a :class:`PairGraph`."""
    nl = nl if nl is not None else neighbor_list(system, cutoff)
    return PairGraph(
        numbers=system.numbers,
        batch=system.batch,
        n_structures=system.n_structures,
        i=nl.i,
        j=nl.j,
        vectors=pair_vectors(system, nl),
    )
