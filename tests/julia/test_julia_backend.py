"""SO3(..., backend="julia"): the same numbers as the torch backend where Julia is present, and a
clear error naming what is missing (without importing juliacall, which would try to download Julia)
where it is not."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from ase.build import bulk

from hybridpot.backends.julia import JuliaUnavailable, julia_status
from hybridpot.descriptors import SO3
from hybridpot.errors import HybridpotError
from hybridpot.models.polynomial import PolynomialModel
from hybridpot.potential import HybridPotential


def _structure():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.symbols[[1, 2]] = "Ni"
    atoms.positions += np.random.default_rng(3).uniform(-0.1, 0.1, atoms.positions.shape)
    return atoms


def test_unknown_backend_and_unsupported_kind_are_refused() -> None:
    with pytest.raises(HybridpotError, match="unknown so3 backend"):
        SO3(rcut=4.0, nmax=2, lmax=2, alpha=2.0, backend="fortran")
    with pytest.raises(HybridpotError, match="power spectrum only"):
        SO3(rcut=4.0, nmax=2, lmax=2, basis="bessel", kind="bispectrum", backend="julia")


def test_missing_julia_is_named_without_importing_juliacall() -> None:
    """Run in a fresh interpreter: after the failed construction juliacall must not have been imported."""
    status = julia_status()
    if status.available:
        pytest.skip("Julia is available here: nothing is missing")
    code = (
        "import sys\n"
        "from hybridpot.descriptors import SO3\n"
        "from hybridpot.backends.julia import JuliaUnavailable\n"
        "try:\n"
        "    SO3(rcut=4.0, nmax=2, lmax=2, alpha=2.0, backend='julia')\n"
        "except JuliaUnavailable as exc:\n"
        "    print('ERROR:', exc)\n"
        "print('juliacall imported:', 'juliacall' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "juliacall imported: False" in out
    assert "ERROR: the Julia backend needs" in out
    assert status.reason in out


def test_status_names_a_missing_executable(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for variable in ("PYTHON_JULIACALL_EXE", "PYTHON_JULIACALL_BINDIR", "PYTHON_JULIAPKG_EXE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no julia on this PATH
    status = julia_status()
    assert not status.available
    assert "a Julia executable" in status.reason
    with pytest.raises(JuliaUnavailable, match="Julia executable"):
        SO3(rcut=4.0, nmax=2, lmax=2, alpha=2.0, backend="julia")


def test_status_names_a_missing_package(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("HYBRIDPOT_JULIA_PACKAGE", str(tmp_path / "nowhere"))
    status = julia_status()
    assert "HybridPotKernels" in status.reason and "nowhere" in status.reason


@pytest.mark.parametrize(
    "settings",
    [
        dict(rcut=4.2, nmax=3, lmax=3, alpha=2.0, basis="lammps", elements=["Cu", "Ni"], weights={"Cu": 1.0, "Ni": 2.0}),
        dict(rcut=4.2, nmax=2, lmax=3, basis="bessel", elements=["Cu", "Ni"], element_channels=True),
    ],
    ids=["lammps", "bessel-channels"],
)
def test_julia_values_match_torch(julia_backend, settings) -> None:
    atoms = _structure()
    torch_values = SO3(**settings).compute(atoms)
    julia_values = SO3(**settings, backend="julia").compute(atoms)
    np.testing.assert_allclose(julia_values, torch_values, rtol=1e-12, atol=1e-12 * np.abs(torch_values).max())


def test_julia_energies_and_forces_match_torch(julia_backend) -> None:
    atoms = _structure()
    settings = dict(rcut=4.2, nmax=3, lmax=3, alpha=2.0, basis="lammps", elements=["Cu", "Ni"])
    results = []
    for backend in ("torch", "julia"):
        descriptor = SO3(**settings, backend=backend)
        model = PolynomialModel(["Cu", "Ni"], descriptor.n_features, quadratic=True)
        with torch.no_grad():
            model.coef.copy_(torch.as_tensor(np.random.default_rng(1).standard_normal(tuple(model.coef.shape)) * 0.01))
        results.append(HybridPotential(None, descriptor, model).compute(atoms, stress=False))
    for key in ("energies", "forces"):
        a, b = results[1][key].detach().numpy(), results[0][key].detach().numpy()
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * np.abs(b).max())


def test_julia_refuses_the_pair_form(julia_backend) -> None:
    with pytest.raises(HybridpotError, match="pair-form"):
        SO3(rcut=4.0, nmax=2, lmax=2, alpha=2.0, backend="julia").compute(_structure(), gradients=True)
