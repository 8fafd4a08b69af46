"""A batch of atomic structures as flat torch tensors.

All structures of a batch are concatenated: atom ``a`` of the batch belongs to structure
``batch[a]``, and the atoms of structure ``s`` are ``ptr[s]:ptr[s+1]``. Units: Angstrom.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from ase import Atoms

from hybridpot.errors import StructureError


@dataclass(frozen=True)
class AtomicSystem:
    """Positions, cells and species of one or more structures.

    Attributes:
        positions: (N, 3) Cartesian positions, Angstrom.
        numbers: (N,) atomic numbers, int64.
        cells: (S, 3, 3) lattice vectors as rows, Angstrom; all zeros for a structure with no cell.
        pbc: (S, 3) periodicity per lattice direction, bool.
        ptr: (S + 1,) offsets: atoms of structure s are ``ptr[s]:ptr[s+1]``.
    """

    positions: torch.Tensor
    numbers: torch.Tensor
    cells: torch.Tensor
    pbc: torch.Tensor
    ptr: torch.Tensor

    @property
    def n_atoms(self) -> int:
        return int(self.positions.shape[0])

    @property
    def n_structures(self) -> int:
        return int(self.cells.shape[0])

    @property
    def batch(self) -> torch.Tensor:
        """(N,) index of the structure each atom belongs to."""
        counts = self.ptr[1:] - self.ptr[:-1]
        return torch.repeat_interleave(torch.arange(self.n_structures, device=self.ptr.device), counts)

    @property
    def volumes(self) -> torch.Tensor:
        """(S,) cell volumes in Angstrom^3 (0 for a structure without a cell)."""
        return torch.linalg.det(self.cells).abs()

    @property
    def dtype(self) -> torch.dtype:
        return self.positions.dtype

    @property
    def device(self) -> torch.device:
        return self.positions.device

    @classmethod
    def from_atoms(
        cls,
        atoms: Atoms | Sequence[Atoms],
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
    ) -> "AtomicSystem":
        """Build a batch from one ``ase.Atoms`` or a sequence of them.

        Raises:
            StructureError: NaN or infinite positions, or a periodic direction whose cell vector
                is zero (naming the structure index).
        """
        frames = [atoms] if isinstance(atoms, Atoms) else list(atoms)
        if not frames:
            raise StructureError("no structures given")
        for s, frame in enumerate(frames):
            _validate(frame, s)
        positions = np.concatenate([f.positions for f in frames]) if frames else np.zeros((0, 3))
        numbers = np.concatenate([f.numbers for f in frames])
        cells = np.stack([f.cell.array for f in frames])
        pbc = np.stack([f.pbc for f in frames])
        counts = np.array([len(f) for f in frames])
        ptr = np.concatenate([[0], np.cumsum(counts)])
        return cls(
            positions=torch.as_tensor(positions, dtype=dtype, device=device),
            numbers=torch.as_tensor(numbers, dtype=torch.int64, device=device),
            cells=torch.as_tensor(cells, dtype=dtype, device=device),
            pbc=torch.as_tensor(pbc, dtype=torch.bool, device=device),
            ptr=torch.as_tensor(ptr, dtype=torch.int64, device=device),
        )

    def to_atoms(self) -> list[Atoms]:
        """The structures as a list of ``ase.Atoms`` (no calculators attached)."""
        out = []
        pos = self.positions.detach().cpu().numpy()
        num = self.numbers.cpu().numpy()
        cells = self.cells.detach().cpu().numpy()
        pbc = self.pbc.cpu().numpy()
        ptr = self.ptr.cpu().numpy()
        for s in range(self.n_structures):
            sl = slice(ptr[s], ptr[s + 1])
            out.append(Atoms(numbers=num[sl], positions=pos[sl], cell=cells[s], pbc=pbc[s]))
        return out

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "AtomicSystem":
        dtype = dtype or self.dtype
        return AtomicSystem(
            positions=self.positions.to(device=device, dtype=dtype),
            numbers=self.numbers.to(device=device),
            cells=self.cells.to(device=device, dtype=dtype),
            pbc=self.pbc.to(device=device),
            ptr=self.ptr.to(device=device),
        )


def _validate(atoms: Atoms, index: int, where: Callable[[], str] | None = None) -> None:
    """Raise :class:`StructureError` for a structure that cannot be evaluated.

    Args:
        index: its index, for the message.
        where: how the message names the structure (default "structure INDEX (FORMULA)"); called
            only on error (the formula costs as much as the checks, and this runs for every batch).
    """
    def name() -> str:
        return where() if where is not None else f"structure {index} ({atoms.get_chemical_formula()})"

    if len(atoms) == 0:
        raise StructureError(f"{where() if where is not None else f'structure {index}'} has no atoms")
    if not np.all(np.isfinite(atoms.positions)):
        bad = np.where(~np.all(np.isfinite(atoms.positions), axis=1))[0]
        raise StructureError(f"{name()}: positions of atoms {bad[:10].tolist()} are NaN or infinite")
    cell = atoms.cell.array
    if not np.all(np.isfinite(cell)):
        raise StructureError(f"{name()}: the cell contains NaN or infinite values")
    for d in range(3):
        if atoms.pbc[d] and np.linalg.norm(cell[d]) < 1e-10:
            raise StructureError(f"{name()}: periodic in direction {d} but cell vector {d} is zero; set a cell or set pbc=False")
    if np.any(atoms.pbc) and abs(np.linalg.det(cell)) < 1e-10 and np.all(atoms.pbc):
        raise StructureError(f"{name()}: periodic but the cell has zero volume")
