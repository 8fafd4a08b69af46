"""Write the conformance data of the Julia kernels (julia/HybridPotKernels/test/data) from hybridpot itself.

    python scripts/julia_conformance.py [OUTDIR]       # default: julia/HybridPotKernels/test/data

Every number in the output is computed by hybridpot (torch, float64) from fixed seeds, so the files
change only when hybridpot's numbers change. ``tests/test_julia_conformance.py`` regenerates them
into a temporary folder and fails if they differ from the committed ones; the Julia tests
(``julia/HybridPotKernels/test/runtests.jl``) read them and compare to 1e-12.

Two kinds of case:

* ``so3_*.json``: the numeric contract :func:`hybridpot.descriptors.so3_descriptors` on given pair
  lists: inputs (spline table, power-spectrum column table, pair vectors, centres, weights,
  channels) and outputs (density coefficients c, features B, a seeded cotangent dE/dB, the
  adjoint dE/dc = (dB/dc)^T dE/dB and the vector-Jacobian product dE/dr_p = (dc/dr_p)^T dE/dc).
* ``model_*.hybridpot.lmp`` + ``model_*.json``: a hybrid model (baseline none / EAM / LJ plus a
  linear, quadratic or NN residual) in the ``hybridpot-lammps`` text format of
  ``lammps-plugin/FORMAT.md``, and structures with hybridpot's energies, per-atom energies and
  forces.

JSON conventions (also in the files' "conventions" key): an array is ``{"shape": [...], "data":
[...]}`` with ``data`` in row-major (C, numpy) order -- read into Julia's column-major arrays as
``reshape(data, reverse(shape)...)``, which reverses the axes (numpy (P, 3) -> Julia (3, P)); all
indices are 0-based; floats are Python ``repr`` (shortest round-trip); units eV, Angstrom.

The model files are written by the project's writer of that format
(:func:`hybridpot.export.plugin_file.plugin_model_text`, the file ``pair_style hpot`` reads), with a coarse
radial table so that they stay small (the table is part of the model: hybridpot evaluates with the same one).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from ase import Atoms
from ase.build import bulk

from hybridpot.descriptors import SO3, so3_descriptors
from hybridpot.descriptors.invariants import PowerSpectrum
from hybridpot.descriptors.spline import RadialSpline, quintic_hermite_coefficients
from hybridpot.empirical.eam import EAM
from hybridpot.empirical.lj import LennardJones
from hybridpot.export.plugin_file import plugin_model_text
from hybridpot.models.nn import NNModel
from hybridpot.models.polynomial import PolynomialModel
from hybridpot.neighbors import build_graph
from hybridpot.potential import HybridPotential
from hybridpot.system import AtomicSystem

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "julia" / "HybridPotKernels" / "test" / "data"
FORMAT_VERSION = 1
#: Intervals of the radial spline tables written here. Coarser than hybridpot's default table
#: (tolerance 1e-11, hundreds of intervals): the contract is "given these tables", and 32
#: intervals keep the files small (the table is an input, its accuracy against the exact radial
#: functions is irrelevant to the conformance).
N_INTERVALS = 32
CONVENTIONS = (
    "arrays are {shape, data}, data in row-major (C) order: Julia reshape(data, reverse(shape)...) "
    "reverses the axes; indices 0-based; units eV and Angstrom; (l, m) columns l*l + l + m"
)


# ------------------------------------------------------------------------------------ helpers


def array(x: np.ndarray | torch.Tensor) -> dict[str, Any]:
    """{shape, data} of an array, data flattened in C order (floats as float64, ints as int)."""
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.dtype.kind in "iub":
        data = [int(v) for v in a.reshape(-1)]
    else:
        data = [float(v) for v in a.astype(np.float64).reshape(-1)]
    return {"shape": list(a.shape), "data": data}


def coarse_spline(descriptor: SO3, n_intervals: int = N_INTERVALS) -> RadialSpline:
    """The descriptor's radial functions as a quintic Hermite table on ``n_intervals`` intervals
    (public pieces of :mod:`hybridpot.descriptors.spline`; same layout as :func:`tabulate`)."""
    basis = descriptor.radial_basis
    h = basis.rcut / n_intervals
    g, dg, d2g = basis.evaluate(np.linspace(0.0, basis.rcut, n_intervals + 1))
    coefficients = quintic_hermite_coefficients(g, dg, d2g, h)
    return RadialSpline(coefficients, h, basis.rcut, basis.nmax, basis.lmax, float("nan"))


def spline_record(spline: RadialSpline) -> dict[str, Any]:
    return {
        "n_intervals": spline.n_intervals,
        "spacing": spline.spacing,
        "rcut": spline.rcut,
        "nmax": spline.nmax,
        "lmax": spline.lmax,
        "coefficients": array(spline.coefficients),  # (NI, 6, nmax (lmax + 1)), column n (lmax + 1) + l
    }


def power_table(power: PowerSpectrum) -> dict[str, Any]:
    """Column k of the power spectrum: B_k = norm_k sum_m c[a_k][l_k m] c[b_k][l_k m] (FORMAT.md order)."""
    big_l = power.lmax + 1
    pair = np.arange(power.n_features) // big_l
    return {
        "a": array(power.first.numpy()[pair]),
        "b": array(power.second.numpy()[pair]),
        "l": array(np.arange(power.n_features) % big_l),
        "norm": array(power.norms.numpy()[np.arange(power.n_features) % big_l]),
    }


def rattled(atoms: Atoms, amplitude: float, rng: np.random.Generator) -> Atoms:
    atoms = atoms.copy()
    atoms.positions += rng.uniform(-amplitude, amplitude, atoms.positions.shape)
    return atoms


def cluster(symbols: Sequence[str], rng: np.random.Generator, box: float = 4.0, min_distance: float = 2.1) -> Atoms:
    """A non-periodic cluster: random positions in a cube, no two atoms closer than ``min_distance``."""
    positions: list[np.ndarray] = []
    while len(positions) < len(symbols):
        x = rng.uniform(0.0, box, 3)
        if all(np.linalg.norm(x - y) >= min_distance for y in positions):
            positions.append(x)
    return Atoms(list(symbols), positions=np.array(positions), pbc=False)


def structures_one_element(rng: np.random.Generator, symbol: str = "Cu", forces: bool = False) -> list[tuple[str, Atoms]]:
    """Three structures; the second is a 1-atom primitive (triclinic) cell seeing its own images, or, with
    ``forces`` (model cases), a 2-atom cell: one atom in a periodic cell has zero force by symmetry,
    and rounding noise cannot be compared to 1e-12 relative."""
    fcc = rattled(bulk(symbol, "fcc", a=3.61, cubic=True), 0.12, rng)
    if forces:
        second = ("fcc_orthorhombic_rattled", rattled(bulk(symbol, "fcc", a=3.55, orthorhombic=True), 0.1, rng))
    else:
        second = ("fcc_primitive_rattled", rattled(bulk(symbol, "fcc", a=3.55), 0.1, rng))
    return [("fcc_cubic_rattled", fcc), second, ("cluster", cluster([symbol] * 5, rng))]


def structures_two_elements(rng: np.random.Generator, a: str, b: str) -> list[tuple[str, Atoms]]:
    fcc = bulk(a, "fcc", a=3.58, cubic=True)
    fcc.symbols[[1, 3]] = b
    cell = fcc.cell.array.copy()
    cell[2, 0] += 0.4  # shear: a triclinic cell
    fcc.set_cell(cell, scale_atoms=True)
    mixed = rattled(fcc, 0.1, rng)
    return [("fcc_sheared_mixed", mixed), ("cluster", cluster([a, b, a, b, b], rng))]


# --------------------------------------------------------------------------- contract cases


class _Coefficients(torch.nn.Module):
    """An 'invariants' module that returns the density coefficients c unchanged, so that
    :func:`so3_descriptors` (the public contract) hands out c itself (N, nu, (lmax + 1)^2)."""

    def __init__(self, n_radial: int, lmax: int) -> None:
        super().__init__()
        self.n_radial, self.lmax = n_radial, lmax
        self.n_features = n_radial * (lmax + 1) ** 2

    def forward(self, coefficients: torch.Tensor) -> torch.Tensor:
        return coefficients


def contract_structure(name: str, atoms: Atoms, descriptor: SO3, spline: RadialSpline, rng: np.random.Generator) -> dict[str, Any]:
    """Inputs and outputs of the contract for one structure (full pair list plus a few pairs beyond r_c)."""
    system = AtomicSystem.from_atoms(atoms)
    graph = build_graph(system, descriptor.rcut)
    types = descriptor._types(graph)
    vectors = graph.vectors.detach()
    centers, neighbours = graph.i, graph.j
    # three extra pairs just beyond the cutoff: the contract says they contribute nothing
    extra = torch.as_tensor(rng.choice(vectors.shape[0], 3, replace=False))
    beyond = vectors[extra] / torch.linalg.vector_norm(vectors[extra], dim=1, keepdim=True) * descriptor.rcut * torch.tensor([[1.0], [1.0001], [1.3]], dtype=torch.float64)
    vectors = torch.cat([vectors, beyond])
    centers, neighbours = torch.cat([centers, centers[extra]]), torch.cat([neighbours, neighbours[extra]])
    weights = descriptor._weight_table[graph.numbers[neighbours]]
    channels = types[neighbours] if descriptor.element_channels else None
    n_atoms = graph.n_atoms
    nu = descriptor.invariants.n_radial
    capture = _Coefficients(nu, descriptor.lmax)

    vectors = vectors.clone().requires_grad_(True)
    c = so3_descriptors(vectors, centers, weights, channels, n_atoms, spline, capture)
    c_leaf = c.detach().clone().requires_grad_(True)
    features = descriptor.invariants(c_leaf)
    direct = so3_descriptors(vectors.detach(), centers, weights, channels, n_atoms, spline, descriptor.invariants)
    if not torch.allclose(direct, features, rtol=1e-13, atol=1e-13 * float(features.detach().abs().max())):
        raise AssertionError(f"{name}: invariants of the captured c differ from so3_descriptors' B")
    d_features = torch.as_tensor(rng.standard_normal(tuple(features.shape)))
    (d_c,) = torch.autograd.grad(features, c_leaf, d_features)
    (d_r,) = torch.autograd.grad(c, vectors, d_c)
    return {
        "name": name,
        "n_atoms": n_atoms,
        "vectors": array(vectors.detach()),
        "centers": array(centers),
        "weights": array(weights),
        "channels": None if channels is None else array(channels),
        "c": array(c.detach()),
        "B": array(features.detach()),
        "dE_dB": array(d_features),
        "dE_dc": array(d_c),
        "dE_dr": array(d_r),
    }


def contract_case(descriptor: SO3, structures: list[tuple[str, Atoms]], rng: np.random.Generator) -> dict[str, Any]:
    spline = coarse_spline(descriptor)
    return {
        "format": "hybridpot-julia-conformance",
        "version": FORMAT_VERSION,
        "kind": "so3_contract",
        "generator": "scripts/julia_conformance.py",
        "conventions": CONVENTIONS,
        "descriptor": descriptor.to_dict(),
        "n_channels": descriptor.invariants.n_radial // descriptor.nmax,
        "spline": spline_record(spline),
        "power": power_table(descriptor.invariants),
        "structures": [contract_structure(name, atoms, descriptor, spline, rng) for name, atoms in structures],
    }


# ------------------------------------------------------------------------------ model files


def synthetic_eam(elements: Sequence[str], energy_scale: float = 1.0) -> EAM:
    """A small EAM on short tables (so the files stay small): f = A exp(-beta (r - 2.5)), F = -sqrt(rho)
    + c rho^2, Morse-like phi, all tapered to zero at 4.8 A; rhomax low enough that compressed
    structures use the linear extension of F above it."""
    nr, dr, nrho, drho, cutoff = 120, 0.05, 60, 0.25, 4.8
    r = np.arange(nr) * dr
    taper = np.where(r < cutoff, (1.0 - np.clip(r / cutoff, 0, 1) ** 4) ** 2, 0.0)
    rho = np.arange(nrho) * drho
    frho, rhor = [], []
    for t, _ in enumerate(elements):
        rhor.append((1.0 + 0.2 * t) * np.exp(-1.5 * (r - 2.5)) * taper)
        frho.append(-(1.1 + 0.1 * t) * np.sqrt(rho) + 0.002 * rho**2)
    z2r = []
    for a in range(len(elements)):
        for b in range(a + 1):
            depth, r0, alpha = 0.3 + 0.05 * (a + b), 2.45 + 0.05 * (a + b), 1.6
            phi = depth * (np.exp(-2 * alpha * (r - r0)) - 2 * np.exp(-alpha * (r - r0))) * taper
            z2r.append(r * phi)
    return EAM(list(elements), np.array(frho), np.array(rhor), np.array(z2r), drho, dr, cutoff, energy_scale=energy_scale, source="synthetic EAM")


def model_structures(potential: HybridPotential, structures: list[tuple[str, Atoms]]) -> list[dict[str, Any]]:
    out = []
    for name, atoms in structures:
        result = potential.compute(atoms, forces=True, stress=False)
        out.append(
            {
                "name": name,
                "symbols": list(atoms.get_chemical_symbols()),
                "positions": array(atoms.positions),
                "cell": array(atoms.cell.array),  # rows are the cell vectors
                "pbc": [bool(p) for p in atoms.pbc],
                "energy": float(result["energy"][0].detach()),
                "energies": array(result["energies"].detach()),
                "forces": array(result["forces"].detach()),
            }
        )
    return out


def model_case(name: str, potential: HybridPotential, structures: list[tuple[str, Atoms]]) -> tuple[dict[str, Any], str]:
    """(JSON record, model-file text) of one hybrid model; the descriptor gets a coarse table first."""
    potential.descriptor.radial = coarse_spline(potential.descriptor)  # evaluated and exported with the same coarse table
    text = plugin_model_text(potential)
    record = {
        "format": "hybridpot-julia-conformance",
        "version": FORMAT_VERSION,
        "kind": "model",
        "generator": "scripts/julia_conformance.py",
        "conventions": CONVENTIONS,
        "model_file": f"model_{name}.hybridpot.lmp",
        "description": potential.source,
        "structures": model_structures(potential, structures),
    }
    return record, text


def _seeded_polynomial(elements: list[str], k: int, quadratic: bool, rng: np.random.Generator, scale: float) -> PolynomialModel:
    model = PolynomialModel(elements, k, quadratic=quadratic)
    with torch.no_grad():
        coef = rng.standard_normal(tuple(model.coef.shape)) * scale
        coef[:, 0] = -3.0 - np.arange(len(elements))  # reference energies, eV
        model.coef.copy_(torch.as_tensor(coef))
    return model


def _seeded_nn(elements: list[str], k: int, hidden: list[int], activation: str, rng: np.random.Generator) -> NNModel:
    model = NNModel(elements, k, hidden, activation)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.as_tensor(rng.standard_normal(tuple(p.shape)) * 0.5))
        model.shift.copy_(torch.as_tensor(rng.standard_normal(tuple(model.shift.shape)) * 0.1))
        model.scale.copy_(torch.as_tensor(rng.uniform(0.5, 2.0, tuple(model.scale.shape))))
    return model


# ------------------------------------------------------------------------------------ cases


def build_all() -> dict[str, str]:
    """Every output file: name -> text. Deterministic (fixed seeds)."""
    files: dict[str, str] = {}

    def dump(record: dict[str, Any]) -> str:
        return json.dumps(record, sort_keys=True) + "\n"

    rng = np.random.default_rng(25)
    lammps_1 = SO3(rcut=4.2, nmax=3, lmax=3, alpha=2.0, basis="lammps", elements=["Cu"])
    files["so3_lammps_1element.json"] = dump(contract_case(lammps_1, structures_one_element(rng), rng))
    bessel_2 = SO3(rcut=4.2, nmax=2, lmax=3, basis="bessel", elements=["Cu", "Ni"], weights={"Cu": 1.0, "Ni": 0.7}, element_channels=True)
    files["so3_bessel_2elements_channels.json"] = dump(contract_case(bessel_2, structures_two_elements(rng, "Cu", "Ni"), rng))

    def add_model(name: str, potential: HybridPotential, structures: list[tuple[str, Atoms]]) -> None:
        record, text = model_case(name, potential, structures)
        files[f"model_{name}.json"] = dump(record)
        files[f"model_{name}.hybridpot.lmp"] = text

    cu = ["Cu"]
    d = SO3(rcut=4.2, nmax=3, lmax=3, alpha=2.0, basis="lammps", elements=cu)
    compressed = rattled(bulk("Cu", "fcc", a=3.3, cubic=True), 0.05, rng)  # rho above rhomax: F's linear extension
    add_model("eam_linear_1element", HybridPotential(synthetic_eam(cu), d, _seeded_polynomial(cu, d.n_features, False, rng, 0.05)),
              structures_one_element(rng, forces=True) + [("fcc_compressed", compressed)])

    cuni = ["Cu", "Ni"]
    d = SO3(rcut=4.0, nmax=2, lmax=2, alpha=1.5, basis="lammps", elements=cuni, weights={"Cu": 1.0, "Ni": 2.0})
    lj = LennardJones(cuni, {("Cu", "Cu"): 0.05, ("Ni", "Ni"): 0.07, ("Cu", "Ni"): 0.06}, {("Cu", "Cu"): 2.3, ("Ni", "Ni"): 2.2},
                      cutoff=4.5, cutoffs={("Cu", "Ni"): 4.1}, shift=True)
    add_model("lj_quadratic_2elements", HybridPotential(lj, d, _seeded_polynomial(cuni, d.n_features, True, rng, 0.02)),
              structures_two_elements(rng, "Cu", "Ni"))

    d = SO3(rcut=4.2, nmax=2, lmax=2, basis="bessel", elements=cuni, element_channels=True)
    add_model("eam_nn_2elements", HybridPotential(synthetic_eam(cuni, energy_scale=0.95), d, _seeded_nn(cuni, d.n_features, [5, 4], "tanh", rng)),
              structures_two_elements(rng, "Cu", "Ni"))

    d = SO3(rcut=4.0, nmax=2, lmax=2, alpha=2.0, basis="lammps", elements=cu)
    add_model("none_nn_1element", HybridPotential(None, d, _seeded_nn(cu, d.n_features, [4], "sigmoid", rng)), structures_one_element(rng, forces=True)[:2])
    return files


def write_all(out: Path) -> list[Path]:
    """Write every file into ``out`` (created if needed); returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in build_all().items():
        path = out / name
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUT
    for path in write_all(out):
        print(f"{path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
