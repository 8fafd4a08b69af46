"""SO(3) descriptors: invariances, cutoff smoothness, derivatives, numerical stability, errors."""

from __future__ import annotations

import shutil
from functools import lru_cache

import mpmath
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from scipy.spatial.transform import Rotation
from scipy.special import sph_harm_y, spherical_jn

from hybridpot.descriptors import SO3, BesselRadialBasis, LammpsRadialBasis, Mirror, so3_descriptors, tabulate
from hybridpot.descriptors.angular import real_clebsch_gordan, real_from_complex, spherical_harmonics
from hybridpot.descriptors.invariants import Bispectrum, PowerSpectrum
from hybridpot.descriptors.radial import _lammps_orthonormalisation, lammps_polynomials
from hybridpot.descriptors.spline import quintic_hermite_coefficients
from hybridpot.errors import HybridpotError, StructureError
from hybridpot.neighbors import PairGraph, build_graph
from hybridpot.potential import evaluate, to_numpy
from hybridpot.system import AtomicSystem
from hybridpot.testing import max_rel
from tests.structures import cluster, random_triclinic, slab

#: descriptor variants exercised by the generic tests: (id, constructor keywords)
VARIANTS = {
    "lammps-power": dict(rcut=4.2, nmax=3, lmax=3, alpha=2.0, basis="lammps", kind="power"),
    "lammps-bispectrum": dict(rcut=4.2, nmax=2, lmax=3, alpha=1.5, basis="lammps", kind="bispectrum"),
    "bessel-power": dict(rcut=4.2, nmax=3, lmax=3, basis="bessel", kind="power"),
    "bessel-bispectrum-channels": dict(rcut=4.2, nmax=2, lmax=2, basis="bessel", kind="bispectrum", element_channels=True),
}


@lru_cache(maxsize=None)
def descriptor(name: str) -> SO3:
    kw = dict(VARIANTS[name])
    elements = ["Cu", "Ni"]
    weights = None if kw.get("element_channels") else {"Cu": 1.0, "Ni": 2.5}
    return SO3(elements=elements, weights=weights, **kw)


def small_cell(seed: int = 0) -> Atoms:
    """8 rattled atoms, Cu and Ni, in a strained triclinic cell smaller than twice the cutoff."""
    atoms = random_triclinic(["Cu", "Ni"], a=3.6, repeat=(1, 1, 2), seed=seed, rattle=0.12, strain=0.06)
    return atoms


def jacobian(gradients, n_atoms: int) -> np.ndarray:
    """dB_i/dx_j (N, N, K, 3) from the pair form."""
    k = gradients.values.shape[1]
    out = np.zeros((n_atoms, n_atoms, k, 3))
    np.add.at(out, (gradients.i, gradients.j), gradients.values)
    np.add.at(out, (gradients.i, gradients.i), -gradients.values)
    return out


# ------------------------------------------------------------------------------- angular


def test_sphericart_is_orthonormal_wikipedia_convention():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(50, 3))
    lmax = 6
    y = spherical_harmonics(torch.tensor(v), lmax)[0].numpy()
    assert np.allclose(y[:, 0], 1.0 / (2.0 * np.sqrt(np.pi)), rtol=1e-14, atol=0)
    r = np.linalg.norm(v, axis=1)
    theta, phi = np.arccos(v[:, 2] / r), np.arctan2(v[:, 1], v[:, 0])
    for l in range(lmax + 1):
        block = y[:, l * l : (l + 1) ** 2]
        # addition theorem: sum_m Y_lm^2 = (2l + 1) / 4 pi for orthonormal harmonics
        assert np.allclose((block**2).sum(1), (2 * l + 1) / (4 * np.pi), rtol=1e-13)
        complex_y = np.stack([sph_harm_y(l, m, theta, phi) for m in range(-l, l + 1)], axis=1)
        assert np.allclose(complex_y @ real_from_complex(l).T, block, atol=1e-13)


# ------------------------------------------------------------------------------- radial


@pytest.mark.parametrize("nmax", [4, 8, 12])
def test_lammps_polynomials_orthonormal(nmax):
    x, w = np.polynomial.legendre.leggauss(40)
    rcut = 5.0
    x, w = 0.5 * rcut * (x + 1), 0.5 * rcut * w
    u = lammps_polynomials(rcut, nmax, x)
    gram = (u * w * x * x) @ u.T
    assert np.max(np.abs(gram - np.eye(nmax))) < 1e-12


def _mp_lammps_radial(rcut: float, nmax: int, lmax: int, alpha: float, r: float) -> np.ndarray:
    """R_nl(r) (without cutoff) in mpmath: i_l from besseli, Gauss-Legendre panels; the
    orthonormalisation W = S^-1/2 is the library's (checked on its own by the Gram test above)."""
    w = _lammps_orthonormalisation(nmax)
    with mpmath.workdps(30):
        rc, al, rr = mpmath.mpf(rcut), mpmath.mpf(alpha), mpmath.mpf(r)
        norms = [mpmath.sqrt(2 * rc ** (2 * a + 7) / ((2 * a + 5) * (2 * a + 6) * (2 * a + 7))) for a in range(1, nmax + 1)]
        t, tw = np.polynomial.legendre.leggauss(40)
        out = [[mpmath.mpf(0)] * (lmax + 1) for _ in range(nmax)]
        edges = np.linspace(0.0, rcut, 13)
        for lo, hi in zip(edges[:-1], edges[1:]):
            for tk, wk in zip(t, tw):
                x = mpmath.mpf(float(lo)) + (mpmath.mpf(float(hi)) - float(lo)) * (1 + mpmath.mpf(float(tk))) / 2
                weight = (mpmath.mpf(float(hi)) - float(lo)) / 2 * mpmath.mpf(float(wk))
                phi = [(rc - x) ** (a + 2) / norms[a - 1] for a in range(1, nmax + 1)]
                z = 2 * al * x * rr
                bessel = [mpmath.besseli(l + mpmath.mpf(1) / 2, z) * mpmath.sqrt(mpmath.pi / (2 * z)) for l in range(lmax + 1)]
                common = weight * x * x * mpmath.exp(-al * (rr * rr + x * x))
                for n in range(nmax):
                    u = mpmath.fsum(w[n, a] * phi[a] for a in range(nmax))
                    for l in range(lmax + 1):
                        out[n][l] += common * u * bessel[l]
        return np.array([[float(4 * mpmath.pi * out[n][l]) for l in range(lmax + 1)] for n in range(nmax)])


@pytest.mark.parametrize("params", [(5.0, 4, 4, 2.0), (5.5, 5, 6, 4.0)])
def test_lammps_radial_integral_matches_mpmath(params):
    rcut, nmax, lmax, alpha = params
    basis = LammpsRadialBasis(rcut, nmax, lmax, alpha)
    for r in (0.7, 2.3, 4.4):
        ours = basis.radial_integral(np.array([r]))[0][0]
        ref = _mp_lammps_radial(rcut, nmax, lmax, alpha, r)
        assert max_rel(ours, ref) < 1e-13


def test_bessel_basis_zeros_and_normalisation():
    basis = BesselRadialBasis(rcut=4.0, nmax=5, lmax=6)
    for l in range(7):
        assert np.max(np.abs(spherical_jn(l, basis.zeros[:, l]))) < 1e-13
        assert np.all(np.diff(basis.zeros[:, l]) > 0) and basis.zeros[0, l] > l
    x, w = np.polynomial.legendre.leggauss(200)
    r, w = 2.0 * (x + 1), 2.0 * w
    j = basis.norms[None] * spherical_jn(np.arange(7)[None, None, :], r[:, None, None] * basis.zeros[None] / 4.0)
    gram = np.einsum("rnl,rml,r->lnm", j, j, w * r * r)
    assert np.max(np.abs(gram - np.eye(5)[None])) < 1e-12


@pytest.mark.parametrize("basis", [LammpsRadialBasis(5.0, 4, 5, 3.0), BesselRadialBasis(5.0, 4, 5)], ids=["lammps", "bessel"])
def test_radial_table_accuracy(basis):
    spline = tabulate(basis)
    r = np.random.default_rng(1).uniform(0.0, basis.rcut, 3000)
    g, dg, _ = basis.evaluate(r)
    sg, sdg = (t.numpy() for t in spline(torch.tensor(r), 1))
    assert np.max(np.abs(sg - g)) <= 1e-11 * np.max(np.abs(g))
    assert np.max(np.abs(sdg - dg)) <= 1e-11 * np.max(np.abs(dg))
    # the table's derivative is the derivative of the table
    h = 1e-6
    plus, minus = spline(torch.tensor(r + h), 0)[0].numpy(), spline(torch.tensor(r - h), 0)[0].numpy()
    inside = (r > h) & (r < basis.rcut - h)
    assert max_rel(((plus - minus) / (2 * h))[inside], sdg[inside]) < 1e-7


def test_quintic_hermite_interpolates_node_data():
    g, dg, d2g = np.array([[1.0], [-2.0]]), np.array([[0.5], [3.0]]), np.array([[-1.0], [4.0]])
    h = 0.3
    a = quintic_hermite_coefficients(g, dg, d2g, h)[0, :, 0]
    k = np.arange(6)
    assert np.isclose(a[0], 1.0) and np.isclose(a[1] / h, 0.5) and np.isclose(2 * a[2] / h**2, -1.0)
    assert np.isclose(a.sum(), -2.0) and np.isclose((k * a).sum() / h, 3.0) and np.isclose((k * (k - 1) * a).sum() / h**2, 4.0)


# --------------------------------------------------------------------------- invariants


@pytest.mark.parametrize("name", list(VARIANTS))
def test_invariance_rotation_translation_permutation(name):
    d = descriptor(name)
    atoms = small_cell(seed=2)
    ref, grads = d.compute(atoms, gradients=True)
    ref_forces = grads.position_gradient(len(atoms))
    rot = Rotation.random(random_state=3).as_matrix()
    turned = atoms.copy()
    turned.set_cell(atoms.cell.array @ rot.T, scale_atoms=False)
    turned.positions = atoms.positions @ rot.T + np.array([0.3, -1.7, 2.2])
    b, g = d.compute(turned, gradients=True)
    assert max_rel(b, ref) < 1e-12
    assert max_rel(g.position_gradient(len(atoms)), ref_forces @ rot.T) < 1e-11
    perm = np.random.default_rng(4).permutation(len(atoms))
    assert max_rel(d.compute(atoms[perm]), ref[perm]) < 1e-12


@pytest.mark.parametrize("name", list(VARIANTS))
def test_features_independent(name):
    """No feature vanishes identically and none is a linear combination of the others."""
    d = descriptor(name)
    frames = [cluster(["Cu", "Ni"], seed=s, rattle=0.3) for s in range(6)]
    b = d.compute(frames)
    assert b.shape == (6 * len(frames[0]), d.n_features)
    s = np.linalg.svd(b / np.linalg.norm(b, axis=0), compute_uv=False)
    assert s[-1] / s[0] > 1e-9, f"rank deficient: smallest singular value ratio {s[-1] / s[0]:.1e}"


def test_feature_counts():
    assert PowerSpectrum(4, 4).n_features == 50
    assert PowerSpectrum(6, 6).n_features == 147
    # (l1 <= l2, l) parity-even triangles for lmax 2: (0,0,0) (0,1,1) (0,2,2) (1,1,0) (1,1,2) (1,2,1) (2,2,0) (2,2,2)
    # nu = 2: 2 * 8 for n != n' plus 2 * 5 for n = n' with l >= l2: (0,0,0) (0,1,1) (0,2,2) (1,1,2) (2,2,2)
    assert Bispectrum(2, 2).n_features == 2 * 8 + 2 * 5


@pytest.mark.parametrize("nu, lmax", [(3, 4), (2, 6)])
def test_bispectrum_matches_its_definition(nu, lmax):
    """The bispectrum's grouped products (all triples at once) against its definition, feature by feature, and its
    Jacobian against autograd of the features."""
    inv = Bispectrum(nu, lmax)
    c = torch.randn(3, nu, (lmax + 1) ** 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    block = lambda x, l: x[:, l * l : (l + 1) ** 2]  # noqa: E731
    expected = torch.stack([torch.einsum("xyz,nx,ny,nz->n", torch.as_tensor(real_clebsch_gordan(*inv.triples[t])),
                                         block(c[:, b], inv.triples[t][0]), block(c[:, b], inv.triples[t][1]),
                                         block(c[:, a], inv.triples[t][2])) for a, b, t in inv.features.tolist()], dim=1)
    assert max_rel(inv(c).numpy(), expected.numpy()) < 1e-13
    jac = torch.autograd.functional.jacobian(lambda x: inv(x).sum(0), c)  # (K, N, nu, L^2): atoms are independent
    assert max_rel(inv.jacobians(c).numpy(), jac.permute(1, 2, 3, 0).reshape(3, -1, inv.n_features).numpy()) < 1e-13


# ----------------------------------------------------------------------------- smoothness


@pytest.mark.parametrize("name", list(VARIANTS))
def test_value_and_slope_continuous_at_cutoff(name):
    """A neighbour leaving the sphere changes B and dB continuously: its contribution and its
    derivative vanish as the distance d = r_c - r goes to 0 (at least like d^2 and d)."""
    d = descriptor(name)
    rc = d.rcut
    direction = np.array([0.48, -0.6, 0.64])

    def centre(distance: float | None) -> tuple[np.ndarray, np.ndarray]:
        positions = [[0.0, 0.0, 0.0], [2.4, 0.3, -0.2], [-0.5, 2.2, 1.1]]
        symbols = ["Cu", "Ni", "Cu"]
        if distance is not None:
            positions.append(list(direction * distance))
            symbols.append("Ni")
        atoms = Atoms(symbols, positions=positions)
        b, g = d.compute(atoms, gradients=True)
        jac = jacobian(g, len(atoms))
        return b[0], jac[0, 3] if distance is not None else np.zeros_like(jac[0, 0])

    base, _ = centre(None)
    deltas = [1e-2, 1e-3]
    values, slopes = [], []
    for delta in deltas:
        b, slope = centre(rc - delta)
        values.append(np.max(np.abs(b - base)))
        slopes.append(np.max(np.abs(slope)))
    assert values[0] > 0 and slopes[0] > 0
    assert values[1] <= 0.05 * values[0], f"value does not vanish at least quadratically: {values}"
    assert slopes[1] <= 0.2 * slopes[0], f"slope does not vanish at the cutoff: {slopes}"
    beyond, _ = centre(rc * (1 + 1e-12))
    assert np.array_equal(beyond, base)


# ---------------------------------------------------------------------------- derivatives


@pytest.mark.parametrize("name", list(VARIANTS))
def test_pair_gradients_match_finite_differences(name):
    d = descriptor(name)
    atoms = small_cell(seed=5)
    _, g = d.compute(atoms, gradients=True)
    ana = jacobian(g, len(atoms))  # (i, j, k, a)
    h = 1e-5
    fd = np.zeros_like(ana)
    for j in range(len(atoms)):
        for a in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[j, a] += h
            minus.positions[j, a] -= h
            fd[:, j, :, a] = (d.compute(plus) - d.compute(minus)) / (2 * h)
    assert max_rel(ana, fd) < 1e-6


@pytest.mark.parametrize("name", ["lammps-power", "bessel-bispectrum-channels"])
def test_virial_matches_strain_derivative(name):
    d = descriptor(name)
    atoms = small_cell(seed=6)
    _, g = d.compute(atoms, gradients=True)
    virial = g.virial(1)[0]  # (K, 3, 3)
    h = 1e-6
    fd = np.zeros_like(virial)
    for a in range(3):
        for b in range(3):
            eps = np.zeros((3, 3))
            eps[a, b] = h
            vals = []
            for sign in (1, -1):
                strained = atoms.copy()
                strained.set_cell(atoms.cell.array @ (np.eye(3) + sign * eps), scale_atoms=True)
                vals.append(d.compute(strained).sum(0))
            # W_ab = -sum_p r_a dB/dr_b = -d(sum B)/d(eps_ab) for x -> x (1 + eps)
            fd[:, a, b] = -(vals[0] - vals[1]) / (2 * h)
    assert max_rel(virial, fd) < 1e-6


class _Quadratic(torch.nn.Module):
    """E_i = sum_k beta_k B_ik + (sum_k gamma_k B_ik)^2: a non-linear model for the autograd path."""

    def __init__(self, d: SO3) -> None:
        super().__init__()
        self.d, self.cutoff = d, d.cutoff
        gen = torch.Generator().manual_seed(0)
        self.beta = torch.randn(d.n_features, generator=gen, dtype=torch.float64)
        self.gamma = 0.1 * torch.randn(d.n_features, generator=gen, dtype=torch.float64)

    def forward(self, graph):
        b = self.d(graph)
        return b @ self.beta + (b @ self.gamma) ** 2


@pytest.mark.parametrize("name", list(VARIANTS))
def test_autograd_forces_and_virial_match_pair_form(name):
    d = descriptor(name)
    model = _Quadratic(d)
    frames = [small_cell(seed=7), slab(["Cu", "Ni"], a=3.6)]
    res = to_numpy(evaluate(model, AtomicSystem.from_atoms(frames)))
    b, g = d.compute(frames, gradients=True)
    de_db = model.beta.numpy()[None, :] + 2 * (b @ model.gamma.numpy())[:, None] * model.gamma.numpy()[None, :]
    per_pair = np.einsum("pka,pk->pa", g.values, de_db[g.i])  # dE/dr_p
    forces = np.zeros((len(b), 3))
    np.add.at(forces, g.i, per_pair)
    np.add.at(forces, g.j, -per_pair)
    assert max_rel(res["forces"], forces) < 1e-12
    virial = np.zeros((2, 3, 3))
    np.add.at(virial, g.structure, -np.einsum("pa,pb->pab", g.vectors, per_pair))
    virial = 0.5 * (virial + virial.transpose(0, 2, 1))
    assert max_rel(res["virial"], virial) < 1e-12


@pytest.mark.parametrize("name", ["lammps-power", "bessel-bispectrum-channels"])
def test_double_backward(name):
    """Forces are differentiable again (training on forces, Hessian-vector products)."""
    d = descriptor(name)
    atoms = small_cell(seed=8)[:5]
    atoms.pbc = False
    graph = build_graph(AtomicSystem.from_atoms(atoms), d.rcut)
    vectors = graph.vectors.detach().clone().requires_grad_(True)
    beta = torch.linspace(-1.0, 1.0, d.n_features, dtype=torch.float64)

    def energy(v):
        graph.vectors = v
        return (d(graph) ** 2 @ beta).sum()

    assert torch.autograd.gradcheck(energy, (vectors,), eps=1e-6, atol=1e-8, rtol=1e-6)
    assert torch.autograd.gradgradcheck(energy, (vectors,), eps=1e-6, atol=1e-7, rtol=1e-5)


def _atom_and_cell_gradients(graph, per_pair: torch.Tensor) -> torch.Tensor:
    """Pair gradients mapped to what is independent of the pair list: per-atom sums and the virial."""
    atoms = torch.zeros((graph.n_atoms, 3), dtype=per_pair.dtype).index_add_(0, graph.j, per_pair).index_add_(0, graph.i, -per_pair)
    return torch.cat([atoms.ravel(), torch.einsum("pa,pb->ab", graph.vectors.detach(), per_pair).ravel()])


@pytest.mark.parametrize("name", list(VARIANTS))
def test_half_list_with_mirror_equals_full_list(name):
    """SO3.forward (one direction per pair plus the mirror) against the contract on the full list:
    values, forces and virial, and both second-derivative paths (d/d beta and d/dr of a force loss).
    The small triclinic cell has pairs of an atom with its own periodic images."""
    d = descriptor(name)
    graph = build_graph(AtomicSystem.from_atoms(small_cell(seed=5)), d.rcut)
    assert bool((graph.i == graph.j).any())
    weights, channels = d._pair_inputs(graph, graph.j)
    tangent = torch.randn((graph.n_atoms, 3), generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def run(full: bool):
        vectors = graph.vectors.detach().clone().requires_grad_(True)
        beta = torch.linspace(-1.0, 1.0, d.n_features, dtype=torch.float64).requires_grad_(True)
        graph.vectors = vectors
        if full:
            b = so3_descriptors(vectors, graph.i, weights, channels, graph.n_atoms, d.radial, d.invariants, chunk_size=17)
        else:
            b = d(graph)
        (g,) = torch.autograd.grad((b**2 @ beta).sum(), vectors, create_graph=True)
        forces = torch.zeros((graph.n_atoms, 3), dtype=g.dtype).index_add(0, graph.j, -g).index_add(0, graph.i, g)
        loss = (forces * tangent).sum()
        d_vectors, d_beta = torch.autograd.grad(loss, (vectors, beta))
        return b.detach(), _atom_and_cell_gradients(graph, g.detach()), _atom_and_cell_gradients(graph, d_vectors), d_beta

    for full, half in zip(run(True), run(False)):
        assert max_rel(half.numpy(), full.numpy()) < 1e-11


def test_half_list_needs_a_full_graph():
    d = descriptor("lammps-power")
    graph = build_graph(AtomicSystem.from_atoms(small_cell(seed=5)), d.rcut)
    weights, channels = d._pair_inputs(graph, graph.j)
    mirror = Mirror(graph.j, weights, channels)
    with pytest.raises(HybridpotError, match="needs the full pair list"):
        so3_descriptors(graph.vectors, graph.i, weights, channels, graph.n_atoms, d.radial, d.invariants, gradients=True, mirror=mirror)
    keep = torch.arange(1, graph.i.shape[0])
    broken = PairGraph(graph.numbers, graph.batch, 1, graph.i[keep], graph.j[keep], graph.vectors[keep])
    with pytest.raises(ValueError, match="not a full neighbour list"):
        d(broken)


# -------------------------------------------------------------------------------- stability


def _mp_power_spectrum(positions: np.ndarray, radial) -> np.ndarray:
    """LAMMPS-normalised power spectrum of atom 0 in mpmath, complex Y_lm from mpmath.spherharm."""
    vectors = positions[1:] - positions[0]
    coefficients = None
    for v in vectors:
        r = float(np.linalg.norm(v))
        g = radial(r)  # (nmax, L) floats from a high-precision evaluation
        theta, phi = mpmath.acos(mpmath.mpf(v[2]) / r), mpmath.atan2(v[1], v[0])
        lmax = g.shape[1] - 1
        y = [[mpmath.spherharm(l, m, theta, phi) for m in range(-l, l + 1)] for l in range(lmax + 1)]
        c = [[[g[n, l] * y[l][m] for m in range(2 * l + 1)] for l in range(lmax + 1)] for n in range(g.shape[0])]
        coefficients = c if coefficients is None else [[[coefficients[n][l][m] + c[n][l][m] for m in range(2 * l + 1)] for l in range(lmax + 1)] for n in range(g.shape[0])]
    nmax, lmax = len(coefficients), len(coefficients[0]) - 1
    out = []
    for n1 in range(nmax):
        for n2 in range(n1 + 1):
            for l in range(lmax + 1):
                s = mpmath.fsum(coefficients[n1][l][m] * mpmath.conj(coefficients[n2][l][m]) for m in range(2 * l + 1))
                out.append(float(mpmath.re(s) * 2 * mpmath.sqrt(2) * mpmath.pi / mpmath.sqrt(2 * l + 1)))
    return np.array(out)


def _environment() -> np.ndarray:
    rng = np.random.default_rng(11)
    directions = rng.normal(size=(6, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    distances = np.array([1.9, 2.45, 2.6, 3.3, 4.05, 4.8])
    return np.vstack([np.zeros(3), directions * distances[:, None]])


@pytest.mark.slow
def test_lammps_basis_nmax12_lmax12_matches_mpmath():
    rcut, alpha = 5.0, 2.0
    d = SO3(rcut=rcut, nmax=12, lmax=12, alpha=alpha)
    positions = _environment()
    ours, g = d.compute(Atoms("Cu7", positions=positions), gradients=True)
    assert np.all(np.isfinite(ours)) and np.all(np.isfinite(g.values))

    def radial(r: float) -> np.ndarray:
        return _mp_lammps_radial(rcut, 12, 12, alpha, r) * 0.5 * (np.cos(np.pi * r / rcut) + 1.0)

    ref = _mp_power_spectrum(positions, radial)
    assert max_rel(ours[0], ref) <= 1e-8


@pytest.mark.slow
def test_bessel_basis_nmax12_lmax12_matches_mpmath():
    rcut = 5.0
    d = SO3(rcut=rcut, nmax=12, lmax=12, basis="bessel")
    positions = _environment()
    ours, g = d.compute(Atoms("Cu7", positions=positions), gradients=True)
    assert np.all(np.isfinite(ours)) and np.all(np.isfinite(g.values))

    def radial(r: float) -> np.ndarray:
        with mpmath.workdps(30):
            out = np.zeros((12, 13))
            cutoff = (mpmath.cos(mpmath.pi * r / rcut) + 1) / 2
            for l in range(13):
                nu = l + mpmath.mpf(1) / 2
                for n in range(12):
                    z = mpmath.besseljzero(nu, n + 1)
                    jl = lambda x, order=nu: mpmath.besselj(order, x) * mpmath.sqrt(mpmath.pi / (2 * x))  # noqa: E731
                    norm = mpmath.sqrt(2 / mpmath.mpf(rcut) ** 3) / abs(jl(z, nu + 1))
                    out[n, l] = float(cutoff * norm * jl(z * r / rcut))
        return out

    ref = _mp_power_spectrum(positions, radial)
    assert max_rel(ours[0], ref) <= 1e-8


# --------------------------------------------------------------------------- API and errors


def test_dict_round_trip_and_batches():
    d = descriptor("bessel-bispectrum-channels")
    again = SO3.from_dict(d.to_dict())
    frames = [small_cell(seed=1), slab(["Cu", "Ni"], a=3.6)]
    both = d.compute(frames)
    assert np.array_equal(again.compute(frames), both)
    assert np.array_equal(np.vstack([d.compute(f) for f in frames]), both)
    d2 = descriptor("lammps-power")
    assert SO3.from_dict(d2.to_dict()).to_dict() == d2.to_dict() == {
        "type": "so3", "basis": "lammps", "rcut": 4.2, "nmax": 3, "lmax": 3, "alpha": 2.0, "kind": "power",
        "elements": ["Cu", "Ni"], "weights": {"Cu": 1.0, "Ni": 2.5}, "element_channels": False,
    }


def test_contract_any_pair_order_chunking_and_dtype():
    d = descriptor("lammps-bispectrum")
    atoms = small_cell(seed=9)
    graph = build_graph(AtomicSystem.from_atoms(atoms), d.rcut)
    weights, channels = d._pair_inputs(graph, graph.j)
    args = (graph.i, weights, channels, len(atoms), d.radial, d.invariants)
    b_ref, g_ref = so3_descriptors(graph.vectors, *args, gradients=True, chunk_size=100000)
    perm = torch.randperm(len(graph.i), generator=torch.Generator().manual_seed(0))
    b, g = so3_descriptors(graph.vectors[perm], graph.i[perm], weights[perm], None, len(atoms), d.radial, d.invariants, gradients=True, chunk_size=7)
    assert torch.allclose(b, b_ref, rtol=1e-13, atol=0) and torch.allclose(g, g_ref[perm], rtol=1e-12, atol=1e-15)
    assert torch.allclose(so3_descriptors(graph.vectors, *args, chunk_size=13), b_ref, rtol=1e-13, atol=0)
    b32 = so3_descriptors(graph.vectors.float(), *args)
    assert b32.dtype == torch.float32 and max_rel(b32.double().numpy(), b_ref.numpy()) < 1e-5
    with pytest.raises(ValueError, match="out must be"):
        so3_descriptors(graph.vectors, *args, gradients=True, out=torch.empty(3, 3, 3, dtype=torch.float64))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None, reason="torch.compile needs a C++ compiler")
@pytest.mark.parametrize("name", ["lammps-power", "lammps-bispectrum"])
def test_compiled_kernels_match_eager(name):
    """compile=True runs the same chunk kernels through torch.compile (the bispectrum's pair form, with its padding
    width read from the data, breaks the graph there and runs the rest eagerly: the same numbers)."""
    kw = dict(VARIANTS[name], elements=["Cu", "Ni"], weights={"Cu": 1.0, "Ni": 2.5})
    eager, compiled = SO3(**kw), SO3(**kw, compile=True)
    atoms = small_cell(seed=12)
    b, g = eager.compute(atoms, gradients=True)
    bc, gc = compiled.compute(atoms, gradients=True)
    assert max_rel(bc, b) < 1e-13 and max_rel(gc.values, g.values) < 1e-13
    system = AtomicSystem.from_atoms(atoms)
    model, model_c = _Quadratic(eager), _Quadratic(compiled)
    f = to_numpy(evaluate(model, system))["forces"]
    assert max_rel(to_numpy(evaluate(model_c, system))["forces"], f) < 1e-12


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    kw = dict(VARIANTS["lammps-power"], elements=["Cu", "Ni"], weights={"Cu": 1.0, "Ni": 2.5})
    cpu, gpu = SO3(**kw), SO3(**kw).to("cuda")
    atoms = small_cell(seed=10)
    b, g = cpu.compute(atoms, gradients=True)
    b_gpu, g_gpu = gpu.compute(atoms, gradients=True)
    assert max_rel(b_gpu, b) < 1e-12 and max_rel(g_gpu.values, g.values) < 1e-12
    grads = []
    for d, device in ((cpu, "cpu"), (gpu, "cuda")):
        graph = build_graph(AtomicSystem.from_atoms(atoms, device=device), d.rcut)
        vectors = graph.vectors.detach().requires_grad_(True)
        graph.vectors = vectors
        (grad,) = torch.autograd.grad((d(graph) ** 2).sum(), vectors)
        assert grad.device.type == device
        grads.append(grad.cpu().numpy())
    assert max_rel(grads[1], grads[0]) < 1e-12


def test_lammps_export_check():
    SO3(rcut=5.0, nmax=4, lmax=4, alpha=2.0).check_lammps_exportable()
    SO3(rcut=5.0, nmax=5, lmax=4, alpha=2.0).check_lammps_exportable()
    with pytest.raises(HybridpotError, match="condition number .* nmax <= 5"):
        SO3(rcut=5.0, nmax=6, lmax=4, alpha=2.0).check_lammps_exportable()
    with pytest.raises(HybridpotError, match="upward recurrence"):
        SO3(rcut=5.0, nmax=4, lmax=7, alpha=2.0).check_lammps_exportable()
    with pytest.raises(HybridpotError, match="upward recurrence"):
        SO3(rcut=5.0, nmax=4, lmax=5, alpha=0.5).check_lammps_exportable()
    with pytest.raises(HybridpotError, match="bessel"):
        SO3(rcut=5.0, nmax=4, lmax=4, basis="bessel").check_lammps_exportable()
    with pytest.raises(HybridpotError, match="power spectrum only"):
        SO3(rcut=5.0, nmax=2, lmax=2, alpha=2.0, kind="bispectrum").check_lammps_exportable()
    with pytest.raises(HybridpotError, match="integers"):
        SO3(rcut=5.0, nmax=2, lmax=2, alpha=2.0, elements=["Cu", "Ni"], weights={"Cu": 1, "Ni": 1.5}).check_lammps_exportable()
    # hybridpot still evaluates the refused parameter sets (see the nmax = lmax = 12 tests)
    assert np.all(np.isfinite(SO3(rcut=5.0, nmax=4, lmax=7, alpha=2.0).compute(bulk("Cu", "fcc", a=3.6))))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(basis="gaussian", alpha=1.0), "unknown radial basis 'gaussian'"),
        (dict(kind="trispectrum", alpha=1.0), "unknown descriptor kind 'trispectrum'"),
        (dict(nmax=0, alpha=1.0), "nmax must be an integer >= 1"),
        (dict(lmax=0, alpha=1.0), "lmax must be an integer >= 1"),
        (dict(nmax=2.5, alpha=1.0), "nmax must be an integer >= 1"),
        (dict(rcut=0.0, alpha=1.0), "rcut must be a positive number"),
        (dict(rcut=-3.0, alpha=1.0), "rcut must be a positive number"),
        (dict(alpha=0.0), "alpha must be a positive number"),
        (dict(alpha=-1.0), "alpha must be a positive number"),
        (dict(), "basis='lammps' needs alpha"),
        (dict(basis="bessel", alpha=1.0), "basis='bessel' takes no alpha"),
        (dict(alpha=1.0, elements=["Cu", "Ni"], weights={"Cu": 1.0}), r"weights missing for element\(s\) \['Ni'\]"),
        (dict(alpha=1.0, elements=["Cu"], weights={"Cu": 1.0, "Ag": 2.0}), r"not in elements"),
        (dict(alpha=1.0, elements=["Cu", "Xx"]), "unknown chemical symbol"),
        (dict(alpha=1.0, element_channels=True), "element_channels=True needs basis='bessel'"),
        (dict(alpha=1.0, chunk_size=0), "chunk_size must be a positive integer"),
    ],
)
def test_bad_parameters(kwargs, message):
    base = dict(rcut=4.0, nmax=2, lmax=2)
    with pytest.raises(HybridpotError, match=message):
        SO3(**{**base, **kwargs})


@pytest.mark.parametrize("name", ["lammps-power", "lammps-bispectrum"])
def test_atoms_without_neighbours(name):
    d = descriptor(name)
    lone = Atoms("Cu", positions=[[0.0, 0.0, 0.0]])
    b, g = d.compute(lone, gradients=True)
    assert np.array_equal(b, np.zeros((1, d.n_features))) and g.values.shape == (0, d.n_features, 3)
    atoms = Atoms("CuNiCu", positions=[[0.0, 0.0, 0.0], [2.5, 0.0, 0.0], [12.0, 0.0, 0.0]])
    b, g = d.compute(atoms, gradients=True)
    assert np.array_equal(b[2], np.zeros(d.n_features)) and np.all(b[0] != 0) and np.array_equal(b, d.compute(atoms))


def test_unknown_element_in_structure():
    d = SO3(rcut=4.0, nmax=2, lmax=2, alpha=1.0, elements=["Cu"])
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.symbols[1] = "Ag"
    with pytest.raises(StructureError, match=r"structure\(s\) \[1\]: element\(s\) Ag not covered"):
        d.compute([bulk("Cu", "fcc", a=3.6), atoms])
