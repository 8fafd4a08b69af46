"""Empirical potentials read from standard LAMMPS files, as torch modules giving per-atom energies.

:func:`load` picks the class from the file name:

| file | class | LAMMPS style |
|---|---|---|
| ``*.eam.alloy`` (setfl) | :class:`~hybridpot.empirical.eam.EAM` | ``eam/alloy`` |
| ``*.eam`` (funcfl) | :class:`~hybridpot.empirical.eam.EAM` | ``eam`` |
| ``*.tersoff`` | :class:`~hybridpot.empirical.tersoff.Tersoff` | ``tersoff`` |
| ``*.lj.toml`` | :class:`~hybridpot.empirical.lj.LennardJones` | ``lj/cut`` |
"""

from __future__ import annotations

from pathlib import Path

from hybridpot.empirical.base import EmpiricalPotential, LammpsPair
from hybridpot.empirical.eam import EAM
from hybridpot.empirical.lj import LennardJones
from hybridpot.empirical.tersoff import Tersoff
from hybridpot.errors import PotentialFileError

__all__ = ["EmpiricalPotential", "LammpsPair", "LennardJones", "Tersoff", "load", "SUFFIXES"]

#: file-name endings understood by :func:`load`
SUFFIXES = (".eam.alloy", ".eam", ".tersoff", ".lj.toml")


def load(path: str | Path) -> EmpiricalPotential:
    """Read an empirical potential file, choosing the class from its name (see module docstring).

    Raises:
        PotentialFileError: missing file, unknown kind, or a file that cannot be parsed (with the
            file name and the problem).
    """
    path = Path(path)
    if not path.is_file():
        raise PotentialFileError(f"{path}: potential file not found")
    name = path.name.lower()
    if name.endswith(".eam.alloy"):
        return EAM.read_setfl(path)
    if name.endswith(".eam"):
        return EAM.read_funcfl(path)
    if name.endswith(".tersoff"):
        return Tersoff.read(path)
    if name.endswith(".lj.toml"):
        return LennardJones.read(path)
    raise PotentialFileError(
        f"{path}: cannot tell the potential kind from the file name; expected one of {', '.join(SUFFIXES)}"
    )
