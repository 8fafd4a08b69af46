"""Empirical potentials read from standard LAMMPS files, as torch modules giving per-atom energies.

Each kind is a :class:`~hybridpot.registry.BaselineType` entry of :data:`hybridpot.registry.baselines`
(its file-name endings, reader, LAMMPS style and settings); :func:`load` picks the kind from the file
name. ``hybridpot config`` lists the registered kinds.
"""

from __future__ import annotations

from pathlib import Path

from hybridpot.empirical.base import EmpiricalPotential, LammpsPair
from hybridpot.empirical.lj import LennardJones
from hybridpot.empirical.tersoff import Tersoff
from hybridpot.errors import HybridpotError, PotentialFileError
from hybridpot.registry import baseline_for_file

__all__ = ["EmpiricalPotential", "LammpsPair", "LennardJones", "Tersoff", "load"]


def load(path: str | Path) -> EmpiricalPotential:
    """Read an empirical potential file, choosing the kind from its name (see module docstring).

    Raises:
        PotentialFileError: missing file, unknown kind, or a file that cannot be parsed (with the
            file name and the problem).
    """
    path = Path(path)
    if not path.is_file():
        raise PotentialFileError(f"{path}: potential file not found")
    try:
        kind = baseline_for_file(path)
    except HybridpotError as exc:
        raise PotentialFileError(str(exc)) from exc
    if kind.read is None:
        raise PotentialFileError(f"{path}: baseline type {kind.name!r} has no file format")
    return kind.read(path)
