"""Export a fitted hybrid to LAMMPS (:mod:`hybridpot.export.lammps`).

``hybridpot.export.export_lammps(potential, "deck/")`` writes a deck (the hybridpot plugin's
``pair_style hpot`` by default, LAMMPS ML-IAP with ``format="mliap"``); ``read_lammps`` reads one back.
Imported on first use, like the rest of hybridpot.
"""

import importlib as _importlib

_NAMES = {"export_lammps": "hybridpot.export.lammps", "read_lammps": "hybridpot.export.lammps",
          "pair_lines": "hybridpot.export.lammps", "deck_pair_lines": "hybridpot.export.lammps",
          "plugin_model_text": "hybridpot.export.plugin_file"}


def __getattr__(name: str):
    if name not in _NAMES:
        raise AttributeError(f"module 'hybridpot.export' has no attribute {name!r}")
    value = getattr(_importlib.import_module(_NAMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_NAMES))


__all__ = sorted(_NAMES)
