"""Labelled data sets: structures with DFT energies, forces and stresses, validated on reading.

Anything ``ase.io.read`` takes (extxyz, ASE db, VASP OUTCAR, ...) with energies/forces/stresses
stored through the calculator (extxyz keys ``energy``, ``forces``, ``stress``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms

from hybridpot.errors import HybridpotError
from hybridpot.system import _validate


@dataclass
class Dataset:
    """Structures and their reference labels.

    Attributes:
        frames: the structures (positions in Angstrom).
        energy: (S,) total energies, eV.
        forces: (N, 3) forces of all atoms concatenated, eV/Angstrom (NaN where a structure has none).
        stress: (S, 6) stress, eV/Angstrom^3, ASE Voigt order and sign (NaN where absent).
        has_forces, has_stress: (S,) bool.
        config_type: (S,) labels (``info["config_type"]``, or "default").
        source: where the data came from (file name), for messages and reports.
    """

    frames: list[Atoms]
    energy: np.ndarray
    forces: np.ndarray
    stress: np.ndarray
    has_forces: np.ndarray
    has_stress: np.ndarray
    config_type: list[str]
    source: str

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def n_atoms(self) -> np.ndarray:
        """(S,) atoms per structure."""
        return np.array([len(a) for a in self.frames])

    @property
    def ptr(self) -> np.ndarray:
        """(S + 1,) offsets of each structure's atoms in ``forces``."""
        return np.concatenate([[0], np.cumsum(self.n_atoms)])

    @property
    def elements(self) -> list[str]:
        """Chemical symbols present, sorted by atomic number."""
        numbers = sorted({int(z) for a in self.frames for z in set(a.numbers)})
        from ase.data import chemical_symbols

        return [chemical_symbols[z] for z in numbers]

    def composition(self, elements: Sequence[str]) -> np.ndarray:
        """(S, T) number of atoms of each of ``elements`` in each structure."""
        from ase.data import atomic_numbers

        z = np.array([atomic_numbers[e] for e in elements])
        return np.array([[np.count_nonzero(a.numbers == zt) for zt in z] for a in self.frames], dtype=float)

    def subset(self, index: Sequence[int]) -> "Dataset":
        """The structures ``index`` (in that order)."""
        index = list(index)
        ptr = self.ptr
        rows = np.concatenate([np.arange(ptr[s], ptr[s + 1]) for s in index]) if index else np.zeros(0, int)
        return Dataset(
            frames=[self.frames[s] for s in index],
            energy=self.energy[index],
            forces=self.forces[rows],
            stress=self.stress[index],
            has_forces=self.has_forces[index],
            has_stress=self.has_stress[index],
            config_type=[self.config_type[s] for s in index],
            source=self.source,
        )

    def checksum(self) -> str:
        """SHA-256 of positions, cells, species and labels (to trace a fit to its data)."""
        import hashlib

        h = hashlib.sha256()
        for a in self.frames:
            for arr in (a.numbers, a.positions, a.cell.array, a.pbc):
                h.update(np.ascontiguousarray(arr).tobytes())
        for arr in (self.energy, self.forces, self.stress):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()


def from_frames(frames: Sequence[Atoms], source: str = "<frames>") -> Dataset:
    """Build a :class:`Dataset` from structures carrying results (e.g. a SinglePointCalculator).

    Raises:
        HybridpotError: a structure with no energy, NaN labels, wrongly shaped forces, or a bad
            structure (naming ``source`` and the structure index).
    """
    frames = list(frames)
    if not frames:
        raise HybridpotError(f"{source}: no structures")
    energy = np.empty(len(frames))
    stress = np.full((len(frames), 6), np.nan)
    has_f = np.zeros(len(frames), bool)
    has_s = np.zeros(len(frames), bool)
    forces = []
    for s, atoms in enumerate(frames):
        try:
            _validate(atoms, s)
        except HybridpotError as exc:
            raise HybridpotError(f"{source}: {exc}") from exc
        results = atoms.calc.results if atoms.calc is not None else {}
        e = results.get("energy", atoms.info.get("energy"))
        if e is None:
            raise HybridpotError(f"{source}: structure {s} ({atoms.get_chemical_formula()}) has no energy")
        energy[s] = float(e)
        if not np.isfinite(energy[s]):
            raise HybridpotError(f"{source}: structure {s} has a non-finite energy ({e})")
        f = results.get("forces", atoms.arrays.get("forces"))
        if f is not None:
            f = np.asarray(f, dtype=float)
            if f.shape != (len(atoms), 3):
                raise HybridpotError(f"{source}: structure {s} has forces of shape {f.shape}, expected ({len(atoms)}, 3)")
            if not np.all(np.isfinite(f)):
                raise HybridpotError(f"{source}: structure {s} has NaN or infinite forces")
            has_f[s] = True
        forces.append(f if f is not None else np.full((len(atoms), 3), np.nan))
        st = results.get("stress", atoms.info.get("stress"))
        if st is not None:
            st = np.asarray(st, dtype=float)
            if st.shape == (3, 3):
                st = st[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
            if st.shape != (6,) or not np.all(np.isfinite(st)):
                raise HybridpotError(f"{source}: structure {s} has an invalid stress {st.tolist()}")
            stress[s] = st
            has_s[s] = True
    return Dataset(
        frames=frames,
        energy=energy,
        forces=np.concatenate(forces),
        stress=stress,
        has_forces=has_f,
        has_stress=has_s,
        config_type=[str(a.info.get("config_type", "default")) for a in frames],
        source=source,
    )


def read_dataset(path: str | Path, index: str = ":") -> Dataset:
    """Read a labelled data set with ``ase.io.read``.

    Raises:
        HybridpotError: missing or unreadable file, or invalid labels (see :func:`from_frames`).
    """
    from ase.io import read

    path = Path(path)
    if not path.is_file():
        raise HybridpotError(f"{path}: data file not found")
    try:
        frames = read(path, index=index)
    except Exception as exc:  # ase raises many types for unreadable files
        raise HybridpotError(f"{path}: cannot read structures ({type(exc).__name__}: {exc})") from exc
    if isinstance(frames, Atoms):
        frames = [frames]
    return from_frames(frames, source=str(path))


def bundled(name: str) -> Path:
    """Path of a file in the bundled default data (``hybridpot/data``)."""
    path = Path(__file__).resolve().parents[1] / "data" / name
    if not path.is_file():
        raise HybridpotError(f"bundled data file {name!r} not found in {path.parent}")
    return path
