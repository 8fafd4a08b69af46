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
from functools import cached_property, lru_cache

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
        ptr: (S + 1,) pairs of structure s are ptr[s]:ptr[s + 1] (structures in batch order).
    """

    i: torch.Tensor
    j: torch.Tensor
    shifts: torch.Tensor
    cutoff: float
    ptr: tuple[int, ...]


@lru_cache(maxsize=8)
def _vesin_calculator(cutoff: float, full_list: bool = True) -> vesin.NeighborList:
    """One vesin calculator per cutoff (building one costs ~2 ms: as much as a 1000-atom list)."""
    return vesin.NeighborList(cutoff=cutoff, full_list=full_list)


#: The cutoff (Angstrom) :func:`overlapping_pair` searches with: vesin's cell list gets slow for
#: tiny cutoffs (bins of the cutoff's size: 0.35 s for the 27k-atom mlearn Cu set at 0.5 A, 0.02 s at 1.5 A).
_OVERLAP_SEARCH_CUTOFF = 1.5


def half_pairs(atoms, cutoff: float, quantities: str = "ijd") -> list[np.ndarray]:
    """Pairs of one ``ase.Atoms`` closer than ``cutoff`` (Angstrom), each pair once: vesin's
    ``quantities`` ("i", "j", "S", "d" as in vesin), no overlap check."""
    box = atoms.cell.array if np.any(atoms.pbc) else np.zeros((3, 3))
    out = _vesin_calculator(float(cutoff), full_list=False).compute(
        np.asarray(atoms.positions, dtype=np.float64), box, atoms.pbc.tolist(), quantities=quantities)
    return list(out) if isinstance(out, (tuple, list)) else [out]


def overlapping_pair(atoms, min_distance: float = DEFAULT_MIN_DISTANCE) -> tuple[int, int, float] | None:
    """The closest pair of atoms of one ``ase.Atoms`` nearer than ``min_distance`` (Angstrom), as
    (i, j, distance), or None: the overlap check of :func:`neighbor_list`, for one structure
    before any work is done on it (so that the message can name its file and index)."""
    i, j, d = half_pairs(atoms, max(float(min_distance), _OVERLAP_SEARCH_CUTOFF))
    if d.size == 0 or d.min() >= min_distance:
        return None
    k = int(np.argmin(d))
    return int(i[k]), int(j[k]), float(d[k])


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
    calculator = _vesin_calculator(float(cutoff))
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
        if np.any(i[1:] < i[:-1]):  # group pairs by centre (contiguous per-atom blocks downstream), unless vesin did
            key = i.astype(np.uint16) if hi - lo <= 1 << 16 else i  # numpy's stable sort of 16-bit keys is a radix sort, faster than the general one
            order = np.argsort(key, kind="stable")
            i, j, shifts = i[order], j[order], shifts[order]
        ii.append(i.astype(np.int64) + lo)
        jj.append(j.astype(np.int64) + lo)
        ss.append(shifts)
    device = system.device

    def joined(parts: list[np.ndarray]) -> np.ndarray:
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    return NeighborList(
        i=torch.as_tensor(joined(ii), device=device),
        j=torch.as_tensor(joined(jj), device=device),
        shifts=torch.as_tensor(joined(ss), dtype=system.dtype, device=device),
        cutoff=float(cutoff),
        ptr=tuple(int(n) for n in np.cumsum([0] + [len(i) for i in ii])),
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

    def one_direction(self) -> torch.Tensor:
        """(P/2,) indices of one direction of every pair: i < j, or, for an atom and its own
        periodic image (i = j), the vector that is positive in the first non-zero component.

        Relies on the graph being a full list (every r_ij has its reverse r_ji = -r_ij, exactly so
        in floating point for vectors from :func:`pair_vectors`).

        Raises:
            ValueError: the count shows that some pair lacks its reverse.
        """
        v = self.vectors.detach()
        positive = (v[:, 0] > 0) | ((v[:, 0] == 0) & ((v[:, 1] > 0) | ((v[:, 1] == 0) & (v[:, 2] > 0))))
        index = ((self.i < self.j) | ((self.i == self.j) & positive)).nonzero().squeeze(1)
        if 2 * index.shape[0] != self.i.shape[0]:
            raise ValueError(f"not a full neighbour list: {self.i.shape[0]} pairs, {index.shape[0]} in one direction")
        return index

    def within(self, cutoff: float) -> "PairGraph":
        """The sub-graph of pairs with r_ij < cutoff (same atoms)."""
        keep = self.distances < cutoff
        if bool(keep.all()):
            return self
        return PairGraph(self.numbers, self.batch, self.n_structures, self.i[keep], self.j[keep], self.vectors[keep])


def pair_vectors(system: AtomicSystem, nl: NeighborList) -> torch.Tensor:
    """(P, 3) r_ij = x_j - x_i + shifts @ cell, differentiable in positions and cells."""
    cells = system.cells
    offsets = [nl.shifts[a:b] @ cells[s] for s, (a, b) in enumerate(zip(nl.ptr[:-1], nl.ptr[1:]))]  # no per-pair copy of the cell
    offsets = offsets[0] if len(offsets) == 1 else torch.cat(offsets)
    return system.positions.index_select(0, nl.j) - system.positions.index_select(0, nl.i) + offsets


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


def pair_triplets(centres: torch.Tensor, bonds: torch.Tensor, n_atoms: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All pairs (p, q) of pair indices with p in ``bonds``, the same centre atom and q != p.

    Args:
        centres: (P,) centre atom of every pair.
        bonds: (B,) pair indices that act as the bond i -> j.

    Returns:
        (p, q): (T,) each, p the bond i -> j and q a pair i -> k of the same centre.
    """
    order = torch.argsort(centres, stable=True)
    counts = torch.bincount(centres, minlength=n_atoms)
    start = torch.cumsum(counts, 0) - counts
    per_bond = counts[centres[bonds]]
    p = torch.repeat_interleave(bonds, per_bond)
    first = torch.cumsum(per_bond, 0) - per_bond
    offset = torch.arange(p.shape[0], device=p.device) - torch.repeat_interleave(first, per_bond)
    q = order[start[centres[p]] + offset]
    keep = q != p
    return p[keep], q[keep]
