"""The committed model files alone reproduce the expected energies and forces, read by a second,
independent reader written from FORMAT.md (here in Python, on hybridpot's own modules).

This checks the conformance inputs of the Julia calculator -- the writer of
scripts/julia_conformance.py and this project's reading of FORMAT.md -- so that a failure of the
Julia tests points at the Julia code. It does not check the Julia code itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms

from hybridpot.descriptors import so3_descriptors
from hybridpot.descriptors.invariants import PowerSpectrum
from hybridpot.descriptors.spline import RadialSpline
from hybridpot.empirical.eam import EAM
from hybridpot.empirical.lj import LennardJones
from hybridpot.models.nn import NNModel
from hybridpot.models.polynomial import PolynomialModel
from hybridpot.neighbors import build_graph
from hybridpot.system import AtomicSystem

DATA = Path(__file__).resolve().parents[2] / "julia" / "HybridPotKernels" / "test" / "data"


class Tokens:
    def __init__(self, text: str) -> None:
        body = text.split("\n", 2)[2]
        self.words = [w for line in body.splitlines() for w in line.split("#", 1)[0].split()]
        self.k = 0

    def next(self) -> str:
        self.k += 1
        return self.words[self.k - 1]

    def expect(self, word: str) -> None:
        assert self.next() == word

    def ints(self, n: int) -> list[int]:
        return [int(self.next()) for _ in range(n)]

    def floats(self, n: int) -> np.ndarray:
        return np.array([float(self.next()) for _ in range(n)])


def _tables_from_coefficients(c: np.ndarray) -> np.ndarray:
    """Knot values of LAMMPS cubic splines from their (rows, intervals, 4) coefficients: c6 per interval, then the last value."""
    last = c[:, -1, :].sum(axis=1)  # p = 1 on the last interval
    return np.concatenate([c[:, :, 3], last[:, None]], axis=1)


def read_model(text: str):
    t = Tokens(text)
    t.expect("elements")
    elements = [t.next() for _ in range(int(t.next()))]
    n_t = len(elements)
    t.expect("cutoff")
    cutoff = float(t.next())
    t.expect("descriptor"), t.expect("so3"), t.expect("rcut")
    rcut = float(t.next())
    t.expect("nmax")
    nmax = int(t.next())
    t.expect("lmax")
    lmax = int(t.next())
    t.expect("channels")
    n_ch = int(t.next())
    t.expect("weights")
    weights = t.floats(n_t)
    t.expect("channel")
    channel = t.ints(n_t)
    t.expect("spline")
    n_int, h = int(t.next()), float(t.next())
    spline = RadialSpline(t.floats(n_int * 6 * nmax * (lmax + 1)).reshape(n_int, 6, -1), h, rcut, nmax, lmax, float("nan"))
    t.expect("invariants"), t.expect("power")
    k = int(t.next())
    table = [(int(t.next()), int(t.next()), int(t.next()), float(t.next())) for _ in range(k)]
    power = PowerSpectrum(n_ch * nmax, lmax)
    big_l = lmax + 1
    assert [(a, b, l) for a, b, l, _ in table] == [
        (int(power.first[q // big_l]), int(power.second[q // big_l]), q % big_l) for q in range(k)
    ]
    np.testing.assert_allclose([x[3] for x in table], power.norms.numpy()[np.arange(k) % big_l], rtol=1e-15)
    t.expect("model")
    kind = t.next()
    if kind in ("linear", "quadratic"):
        m = int(t.next())
        model = PolynomialModel(elements, k, quadratic=kind == "quadratic")
        with torch.no_grad():
            model.coef.copy_(torch.as_tensor(t.floats(n_t * m).reshape(n_t, m)))
    else:
        assert kind == "nn"
        hidden = t.ints(int(t.next()))
        model = NNModel(elements, k, hidden, t.next())
        sizes = [k, *hidden, 1]
        with torch.no_grad():
            for e in range(n_t):
                model.shift[e] = torch.as_tensor(t.floats(k))
                model.scale[e] = torch.as_tensor(t.floats(k))
                for layer, (n_in, n_out) in zip([m for m in model.nets[e] if isinstance(m, torch.nn.Linear)], zip(sizes[:-1], sizes[1:])):
                    layer.weight.copy_(torch.as_tensor(t.floats(n_in * n_out).reshape(n_out, n_in)))
                    layer.bias.copy_(torch.as_tensor(t.floats(n_out)))
    t.expect("active_set"), t.expect("none"), t.expect("fallback"), t.expect("none"), t.expect("baseline")
    kind = t.next()
    baseline = None
    if kind == "eam":
        nrho, drho, nr, dr = int(t.next()), float(t.next()), int(t.next()), float(t.next())
        eam_cut, rhomax, scale = float(t.next()), float(t.next()), float(t.next())
        tables = {}
        for name, rows, n in (("frho", n_t, nrho), ("rhor", n_t, nr), ("z2r", n_t * (n_t + 1) // 2, nr)):
            t.expect(name)
            tables[name] = _tables_from_coefficients(t.floats(rows * (n - 1) * 4).reshape(rows, n - 1, 4))
        baseline = EAM(elements, tables["frho"], tables["rhor"], tables["z2r"], drho, dr, eam_cut, rhomax=rhomax, energy_scale=scale)
    elif kind == "lj":
        shift = bool(int(t.next()))
        pairs = [(a, b) for a in range(n_t) for b in range(a, n_t)]
        eps, sig, cut = {}, {}, {}
        for a, b in pairs:
            key = (elements[a], elements[b])
            eps[key], sig[key], cut[key] = float(t.next()), float(t.next()), float(t.next())
        baseline = LennardJones(elements, eps, sig, max(cut.values()), cut, shift=shift)
    else:
        assert kind == "none"
    t.expect("end")
    assert t.k == len(t.words)
    return elements, cutoff, weights, channel, n_ch, spline, power, model, baseline


@pytest.mark.parametrize("path", sorted(DATA.glob("model_*.json")), ids=lambda p: p.name)
def test_model_file_alone_reproduces_the_expected_numbers(path: Path) -> None:
    case = json.loads(path.read_text())
    elements, cutoff, weights, channel, n_ch, spline, power, model, baseline = read_model((DATA / case["model_file"]).read_text())
    for s in case["structures"]:
        atoms = Atoms(s["symbols"], positions=np.reshape(s["positions"]["data"], (-1, 3)), cell=np.reshape(s["cell"]["data"], (3, 3)), pbc=s["pbc"])
        graph = build_graph(AtomicSystem.from_atoms(atoms), cutoff)
        graph.vectors = graph.vectors.detach().requires_grad_(True)
        types = torch.as_tensor([elements.index(x) for x in s["symbols"]])
        inside = graph.within(spline.rcut)
        nb = types[inside.j]
        B = so3_descriptors(inside.vectors, inside.i, torch.as_tensor(weights)[nb], torch.as_tensor(channel)[nb] if n_ch > 1 else None,
                            graph.n_atoms, spline, power)
        energies = model(B, types)
        if baseline is not None:
            energies = energies + baseline(graph.within(baseline.cutoff))
        (g,) = torch.autograd.grad(energies.sum(), graph.vectors)
        forces = torch.zeros((graph.n_atoms, 3), dtype=g.dtype).index_add(0, graph.i, g).index_add(0, graph.j, -g)
        expected_e = np.array(s["energies"]["data"])
        expected_f = np.reshape(s["forces"]["data"], (-1, 3))
        np.testing.assert_allclose(energies.detach().numpy(), expected_e, rtol=0, atol=1e-12 * np.abs(expected_e).max())
        np.testing.assert_allclose(forces.numpy(), expected_f, rtol=0, atol=1e-12 * np.abs(expected_f).max())
        assert abs(float(energies.detach().sum()) - s["energy"]) <= 1e-12 * abs(s["energy"])
