"""hybridpot: hybrid interatomic potentials, E = E_empirical + E_ML.

A legacy empirical potential (EAM, Tersoff, Lennard-Jones, from standard LAMMPS files) stays in
place and a machine-learned residual on SO(3) descriptors is fitted to what it gets wrong.
Units throughout: eV, Angstrom, eV/Angstrom, eV/Angstrom^3 (LAMMPS ``metal``).
"""

import os as _os

# torch's OpenMP threads spin while they wait for each other. On a machine where other processes
# are busy, even niced ones, that made `hybridpot demo` 50x slower (96 s instead of 1.8 s, 2 cores,
# two niced busy processes); passive waiting took 3.8 s there and cost nothing measurable on an idle
# machine (1.8-1.9 s against 1.6-1.8 s). It takes effect only if torch is not imported yet; an
# OMP_WAIT_POLICY in the environment wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from hybridpot.calculator import Calculator
from hybridpot.errors import HybridpotError, PotentialFileError, StructureError
from hybridpot.neighbors import PairGraph, neighbor_list
from hybridpot.potential import Potential, evaluate
from hybridpot.system import AtomicSystem

__version__ = "0.1.0"


def load(path):
    """Load a fitted model (``*.hybridpot.json``) or an empirical potential file (by its suffix)."""
    from pathlib import Path

    if str(path).endswith(".hybridpot.json"):
        from hybridpot.io.modelfile import load as load_model

        return load_model(path)
    from hybridpot.empirical import load as load_empirical

    return load_empirical(Path(path))


__all__ = [
    "AtomicSystem",
    "Calculator",
    "HybridpotError",
    "PairGraph",
    "Potential",
    "PotentialFileError",
    "StructureError",
    "evaluate",
    "load",
    "neighbor_list",
]
