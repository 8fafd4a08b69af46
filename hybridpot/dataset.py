"""Labelled data sets: structures with DFT energies, forces and stresses, validated on reading (layer 3: the
fitting and prediction layers work on them; hybridpot.io reads and writes files around them).

Anything ``ase.io.read`` takes (extxyz, ASE db, VASP OUTCAR, ...) with energies/forces/stresses
stored through the calculator (extxyz keys ``energy``, ``forces``, ``stress``).

Every structure is checked on reading (labels present and finite, positions and cell usable,
no two atoms closer than :data:`hybridpot.neighbors.DEFAULT_MIN_DISTANCE`), and every message
names the file, the structure's index in that file and its config_type.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms

from hybridpot.errors import DataError, StructureError
from hybridpot.neighbors import DEFAULT_MIN_DISTANCE, overlapping_pair
from hybridpot.system import _validate

#: decimals (Angstrom) to which :meth:`Dataset.structure_keys` compares positions and cells
SAME_STRUCTURE_DECIMALS = 6


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
        index: (S,) position of each structure in ``source`` (kept by :meth:`subset`), for messages.
    """

    frames: list[Atoms]
    energy: np.ndarray
    forces: np.ndarray
    stress: np.ndarray
    has_forces: np.ndarray
    has_stress: np.ndarray
    config_type: list[str]
    source: str
    index: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.index is None:
            self.index = np.arange(len(self.frames))

    def describe(self, s: int) -> str:
        """"structure 17 (config_type 'surface', Cu32)": structure ``s`` of this set, by its index in the file."""
        return structure_label(self.frames[s], int(self.index[s]))

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

    def per_structure(self, per_atom: np.ndarray, reduce: np.ufunc = np.add) -> np.ndarray:
        """(S,) ``reduce`` (a numpy ufunc: np.add for sums, np.maximum for maxima) of a per-atom array (N,) over each
        structure's atoms."""
        return reduce.reduceat(np.asarray(per_atom), self.ptr[:-1])

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

    def atom_rows(self, index: Sequence[int], ptr: np.ndarray | None = None) -> np.ndarray:
        """Rows of ``forces`` (and of any per-atom array of this set) of the structures ``index``, in that order.

        ``ptr``: this set's :attr:`ptr` where the caller holds it (one batch after another of a pass: each then costs
        its own structures, not a count of the whole set's atoms).
        """
        ptr = self.ptr if ptr is None else ptr
        return np.concatenate([np.arange(ptr[s], ptr[s + 1]) for s in index]) if len(index) else np.zeros(0, int)

    def subset(self, index: Sequence[int], ptr: np.ndarray | None = None) -> "Dataset":
        """The structures ``index`` (in that order); ``ptr`` as in :meth:`atom_rows`."""
        index = list(index)
        rows = self.atom_rows(index, ptr)
        return Dataset(
            frames=[self.frames[s] for s in index],
            energy=self.energy[index],
            forces=self.forces[rows],
            stress=self.stress[index],
            has_forces=self.has_forces[index],
            has_stress=self.has_stress[index],
            config_type=[self.config_type[s] for s in index],
            source=self.source,
            index=self.index[index],
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

    @functools.cached_property
    def structure_keys(self) -> list[str]:
        """A digest (16 hex digits) per structure of its species in order, positions and cell (to 1e-6 A) and periodicity,
        not its labels: equal for a copy, different for a translated or permuted one (a model file keeps those of its
        training set, so that an evaluation can name the training structures among its own). Computed once: a data
        set's structures are not changed after it is made (:meth:`subset` makes a new one)."""
        import hashlib

        keys = []
        for a in self.frames:
            h = hashlib.sha1()
            for arr in (a.numbers.astype(np.int64), np.round(a.positions, SAME_STRUCTURE_DECIMALS) + 0.0,
                        np.round(a.cell.array, SAME_STRUCTURE_DECIMALS) + 0.0, a.pbc.astype(np.int8)):
                h.update(np.ascontiguousarray(arr).tobytes())
            keys.append(h.hexdigest()[:16])
        return keys


def structure_details(atoms: Atoms) -> str:
    """"config_type 'surface', Cu32" (the config_type only where the structure has one)."""
    ct = atoms.info.get("config_type")
    return f"{'' if ct is None else f'config_type {str(ct)!r}, '}{atoms.get_chemical_formula()}"


def structure_label(atoms: Atoms, index: int) -> str:
    """"structure 17 (config_type 'surface', Cu32)"."""
    return f"structure {index} ({structure_details(atoms)})"


def check_structures(frames: Sequence[Atoms], source: str, min_distance: float = DEFAULT_MIN_DISTANCE) -> list[Atoms]:
    """The structures as a list, after checking that each can be evaluated: atoms present, finite
    positions and cell, a cell where periodic, no two atoms closer than ``min_distance`` (Angstrom).

    Raises:
        DataError: naming ``source``, the structure's index and config_type, and the fix.
    """
    frames = list(frames)
    if not frames:
        raise DataError(f"{source}: no structures")
    for s, atoms in enumerate(frames):
        try:
            _validate(atoms, s, lambda: f"{source}: {structure_label(atoms, s)}")
        except StructureError as exc:
            raise DataError(str(exc)) from exc
        pair = overlapping_pair(atoms, min_distance)
        if pair is not None:
            i, j, d = pair
            raise DataError(f"{source}: {structure_label(atoms, s)}: atoms {i} and {j} are {d:.4f} A apart (closer than "
                            f"{min_distance} A): overlapping atoms; remove the structure or correct its positions")
    return frames


def from_frames(frames: Sequence[Atoms], source: str = "<frames>", min_distance: float = DEFAULT_MIN_DISTANCE) -> Dataset:
    """Build a :class:`Dataset` from structures carrying results (e.g. a SinglePointCalculator).

    Args:
        min_distance: atoms closer than this (Angstrom) are an error (overlapping atoms).

    Raises:
        DataError: a structure with no energy, NaN labels, wrongly shaped forces, overlapping
            atoms or otherwise unusable (naming ``source``, the structure's index and config_type).
    """
    frames = check_structures(frames, source, min_distance)
    energy = np.empty(len(frames))
    stress = np.full((len(frames), 6), np.nan)
    has_f = np.zeros(len(frames), bool)
    has_s = np.zeros(len(frames), bool)
    forces = []
    for s, atoms in enumerate(frames):
        results = atoms.calc.results if atoms.calc is not None else {}
        e = results.get("energy", atoms.info.get("energy"))
        if e is None:
            raise DataError(f"{source}: structure {s} has no energy ({structure_details(atoms)})")
        energy[s] = float(e)
        if not np.isfinite(energy[s]):
            raise DataError(f"{source}: structure {s} has a non-finite energy ({e}) ({structure_details(atoms)})")
        f = results.get("forces", atoms.arrays.get("forces"))
        if f is not None:
            f = np.asarray(f, dtype=float)
            if f.shape != (len(atoms), 3):
                raise DataError(f"{source}: structure {s} has forces of shape {f.shape}, expected ({len(atoms)}, 3) ({structure_details(atoms)})")
            if not np.all(np.isfinite(f)):
                raise DataError(f"{source}: structure {s} has NaN or infinite forces ({structure_details(atoms)})")
            has_f[s] = True
        forces.append(f if f is not None else np.full((len(atoms), 3), np.nan))
        st = results.get("stress", atoms.info.get("stress"))
        if st is not None:
            st = np.asarray(st, dtype=float)
            if st.shape == (3, 3):
                st = st[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
            if st.shape != (6,) or not np.all(np.isfinite(st)):
                raise DataError(f"{source}: structure {s} has an invalid stress {st.tolist()} ({structure_details(atoms)}): expected 6 or 3 x 3 finite values")
            if abs(atoms.cell.volume) < 1e-10:
                raise DataError(f"{source}: {structure_label(atoms, s)} has a stress but no cell (a stress needs a volume): remove the stress or set the cell")
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

    Args:
        index: which structures (ase's index syntax); other than ":" the messages name the
            selection (``path@index``) and count structures within it.

    Raises:
        DataError: missing or unreadable file, or invalid labels (see :func:`from_frames`).
    """
    from ase.io import read

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    try:
        frames = read(path, index=index)
    except Exception as exc:  # ase raises many types for unreadable files
        raise DataError(f"{path}: cannot read structures ({type(exc).__name__}: {exc})") from exc
    if isinstance(frames, Atoms):
        frames = [frames]
    return from_frames(frames, source=str(path) if index == ":" else f"{path}@{index}")


def bundled(name: str) -> Path:
    """Path of a file in the bundled default data (``hybridpot/data``)."""
    path = Path(__file__).resolve().parent / "data" / name
    if not path.is_file():
        raise DataError(f"bundled data file {name!r} not found in {path.parent}")
    return path
