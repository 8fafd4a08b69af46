"""The Julia backend of the SO(3) descriptors: ``julia/HybridPotKernels`` through juliacall.

``SO3(..., backend="julia")`` computes the density coefficients, the power spectrum and, in the
backward pass, the adjoint and the VJP dE/dr_p with the Julia kernels (CPU threads: set
``PYTHON_JULIACALL_THREADS``). Same numbers as the torch backend (the contract
:func:`hybridpot.descriptors.so3_descriptors`), to rounding.

Nothing imports juliacall until a descriptor with this backend is evaluated, and importing
juliacall without a Julia executable makes it try to download Julia, so :func:`julia_status`
checks for everything first without importing it:

* the Python package ``juliacall`` (``pip install juliacall``),
* a Julia executable: ``PYTHON_JULIACALL_EXE``, ``PYTHON_JULIACALL_BINDIR``, ``PYTHON_JULIAPKG_EXE``
  or ``julia`` on the PATH,
* the Julia package: ``HYBRIDPOT_JULIA_PACKAGE``, or ``julia/HybridPotKernels`` of the source
  checkout hybridpot is imported from.

Where one is missing, :func:`kernels` raises :class:`JuliaUnavailable` naming it. On first use the
package is registered with juliapkg as a development dependency (its Julia dependencies are then
installed by Julia's package manager) unless ``PYTHON_JULIACALL_PROJECT`` names a Julia
environment to use as it is.

Limits: power spectrum only (no bispectrum); first derivatives only (the backward pass is not
differentiable again, so no training on forces with this backend); no pair form
(``compute(..., gradients=True)``); CPU only from Python (the GPU path is for Julia callers).
juliacall warns when torch was imported first (hybridpot always imports torch first): its note
says this "may cause a segfault"; not seen here, since nothing Julia can run here at all.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hybridpot.errors import HybridpotError

#: Name of the Julia package (its Project.toml ``name``).
PACKAGE = "HybridPotKernels"
#: The package in a source checkout: <repo>/julia/HybridPotKernels.
DEFAULT_PACKAGE_DIR = Path(__file__).resolve().parents[2] / "julia" / PACKAGE


class JuliaUnavailable(HybridpotError):
    """The Julia backend cannot run here; the message names what is missing."""


@dataclass(frozen=True)
class JuliaStatus:
    """What :func:`julia_status` found.

    Attributes:
        available: everything the backend needs is present (not yet started: that can still fail).
        reason: what is missing (empty when available).
        executable: the Julia executable found, or None.
        package_dir: the HybridPotKernels folder found, or None.
    """

    available: bool
    reason: str
    executable: str | None
    package_dir: Path | None


def find_julia_executable() -> str | None:
    """A Julia executable juliacall would use, found without importing juliacall (None if none)."""
    for variable in ("PYTHON_JULIACALL_EXE", "PYTHON_JULIAPKG_EXE"):
        value = os.environ.get(variable)
        if value and shutil.which(value):
            return shutil.which(value)
    bindir = os.environ.get("PYTHON_JULIACALL_BINDIR")
    if bindir and shutil.which(str(Path(bindir) / "julia")):
        return shutil.which(str(Path(bindir) / "julia"))
    return shutil.which("julia")


def package_dir() -> Path:
    """The HybridPotKernels folder: ``$HYBRIDPOT_JULIA_PACKAGE`` or the checkout's ``julia/HybridPotKernels``."""
    return Path(os.environ.get("HYBRIDPOT_JULIA_PACKAGE", DEFAULT_PACKAGE_DIR))


def julia_status() -> JuliaStatus:
    """Check, without importing juliacall (which would try to download Julia), whether the backend can run."""
    directory = package_dir()
    found_package = directory if (directory / "Project.toml").is_file() else None
    executable = find_julia_executable()
    missing = []
    if importlib.util.find_spec("juliacall") is None:
        missing.append("the Python package juliacall (pip install juliacall)")
    if executable is None:
        missing.append("a Julia executable (julia on the PATH, or PYTHON_JULIACALL_EXE / PYTHON_JULIACALL_BINDIR / PYTHON_JULIAPKG_EXE)")
    if found_package is None:
        missing.append(f"the Julia package {PACKAGE} (no Project.toml in {directory}; set HYBRIDPOT_JULIA_PACKAGE)")
    reason = "" if not missing else "the Julia backend needs " + "; ".join(missing)
    return JuliaStatus(not missing, reason, executable, found_package)


def require_julia() -> JuliaStatus:
    """:func:`julia_status`, raising :class:`JuliaUnavailable` with the reason where something is missing."""
    status = julia_status()
    if not status.available:
        raise JuliaUnavailable(status.reason)
    return status


def _package_uuid(directory: Path) -> str:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    with open(directory / "Project.toml", "rb") as f:
        return str(tomllib.load(f)["uuid"])


@lru_cache(maxsize=1)
def kernels() -> Any:
    """The HybridPotKernels Julia module (juliacall is imported here, once per process).

    Raises:
        JuliaUnavailable: juliacall, Julia or the package is missing, or Julia fails to load it
            (the message says which, with Julia's error).
    """
    status = require_julia()
    if not os.environ.get("PYTHON_JULIACALL_PROJECT"):
        import juliapkg
        from juliapkg.deps import load_cur_deps

        directory = str(status.package_dir)
        current = load_cur_deps().get("packages", {}).get(PACKAGE)
        if not (isinstance(current, dict) and current.get("path") == directory and current.get("dev")):
            # a development dependency of the juliapkg environment juliacall starts in (written to its
            # juliapkg.json once; Julia's package manager installs the package's own dependencies)
            juliapkg.add(PACKAGE, _package_uuid(status.package_dir), dev=True, path=directory)
    try:
        from juliacall import Main as jl  # noqa: PLC0415 - lazy by design

        jl.seval(f"import {PACKAGE}")
        return getattr(jl, PACKAGE)
    except Exception as exc:  # juliacall raises its own JuliaError, or plain exceptions while starting
        raise JuliaUnavailable(f"Julia started but could not load {PACKAGE} from {status.package_dir}: {exc}") from exc


def _julia_inputs(vectors: torch.Tensor, centers: torch.Tensor, weights: torch.Tensor, channels: torch.Tensor | None) -> tuple:
    """numpy views in the Julia layout (axes reversed: vectors (3, P)) with 0-based indices."""
    v = np.ascontiguousarray(vectors.detach().cpu().to(torch.float64).numpy())
    return (
        v.T,  # (3, P), Fortran-contiguous: the same memory Julia reads as a 3 x P matrix
        np.ascontiguousarray(centers.detach().cpu().numpy().astype(np.int64)),
        np.ascontiguousarray(weights.detach().cpu().to(torch.float64).numpy()),
        None if channels is None else np.ascontiguousarray(channels.detach().cpu().numpy().astype(np.int64)),
    )


def _from_julia(array: Any) -> np.ndarray:
    """A Julia array as numpy with its axes reversed back (Julia (K, N) -> numpy (N, K)), copied."""
    a = np.asarray(array)
    return np.ascontiguousarray(a.transpose(tuple(range(a.ndim - 1, -1, -1))))


class _JuliaPowerSpectrum(torch.autograd.Function):
    """B (N, K) from pair vectors through the Julia kernels; backward: dE/dr_p = (dB/dr_p)^T dE/dB in Julia."""

    @staticmethod
    def forward(ctx: Any, vectors: torch.Tensor, inputs: "JuliaInputs") -> torch.Tensor:
        module = kernels()
        coefficients = inputs.spline.coefficients.detach().cpu().to(torch.float64).numpy()
        evaluation = module.python_so3(
            *_julia_inputs(vectors, inputs.centers, inputs.weights, inputs.channels),
            int(inputs.n_atoms), int(inputs.n_channels), coefficients.T, float(inputs.spline.spacing), float(inputs.spline.rcut),
            int(inputs.spline.nmax), int(inputs.spline.lmax),
        )
        ctx.evaluation = evaluation
        ctx.like = vectors
        return torch.as_tensor(_from_julia(evaluation.B), dtype=vectors.dtype, device=vectors.device)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        d_b = np.ascontiguousarray(grad.detach().cpu().to(torch.float64).numpy())
        dr = kernels().python_so3_vjp(ctx.evaluation, d_b.T)
        like = ctx.like
        return torch.as_tensor(_from_julia(dr), dtype=like.dtype, device=like.device), None


@dataclass(frozen=True)
class JuliaInputs:
    """The non-differentiable inputs of :func:`so3_power_spectrum` (kept together for autograd)."""

    centers: torch.Tensor
    weights: torch.Tensor
    channels: torch.Tensor | None
    n_atoms: int
    n_channels: int
    spline: Any


def so3_power_spectrum(
    vectors: torch.Tensor, centers: torch.Tensor, weights: torch.Tensor, channels: torch.Tensor | None, n_atoms: int, n_channels: int, spline: Any
) -> torch.Tensor:
    """The power-spectrum features B (N, K) of :func:`hybridpot.descriptors.so3_descriptors`, computed in Julia.

    Same arguments as the contract (``vectors`` (P, 3) Angstrom, 0-based ``centers`` (P,), ``weights``
    (P,), ``channels`` (P,) or None, ``spline`` a :class:`~hybridpot.descriptors.spline.RadialSpline`),
    with the number of density channels given. Differentiable once with respect to ``vectors``
    (the backward pass runs in Julia too). The result is on the device and in the dtype of ``vectors``.
    """
    inputs = JuliaInputs(centers, weights, channels, int(n_atoms), int(n_channels), spline)
    return _JuliaPowerSpectrum.apply(vectors, inputs)
