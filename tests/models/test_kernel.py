"""The sparse-GP (kernel) model: derivatives, invariance, the projected-process solution against dense numpy references,
the posterior variance, uncertainty / fallback / selection wiring, model files, export refusal and bad settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

from hybridpot.dataset import from_frames
from hybridpot.descriptors import SO3
from hybridpot.design import DesignAssembler
from hybridpot.empirical.lj import LennardJones
from hybridpot.errors import ConfigError, HybridpotError, NotExportableError
from hybridpot.fallback import smoothstep_off
from hybridpot.fitting.assembly import Weights
from hybridpot.fitting.linear import fit_linear, fit_linear_joint
from hybridpot.models.kernel import KernelModel, KernelSettings, gap_weights
from hybridpot.potential import HybridPotential, evaluate, to_numpy
from hybridpot.prediction import baseline_predictions, predict
from hybridpot.prediction import descriptors as descriptors_of
from hybridpot.system import AtomicSystem
from hybridpot.testing import assert_forces_match_finite_differences, assert_invariant, assert_stress_matches_finite_differences
from tests.structures import random_triclinic


def _descriptor(elements):
    return SO3(rcut=4.0, nmax=3, lmax=3, basis="bessel", elements=elements)


def _random_kernel_potential(kernel: str, zeta: int, elements=("Cu", "Ni"), seed: int = 0, linear_term: float = 0.0) -> HybridPotential:
    """A two-element kernel hybrid with sparse points from random cells and random weights."""
    d = _descriptor(list(elements))
    model = KernelModel(list(elements), d.n_features, 6, kernel, zeta, linear_term=linear_term)
    pot = HybridPotential(None, d, model)
    frames = [random_triclinic(list(elements), repeat=(2, 2, 2), seed=s, rattle=0.15) for s in range(3)]
    B, types, _ = descriptors_of(pot, frames)
    model.choose_basis(B, types, seed)
    with torch.no_grad():
        model.coef.copy_(torch.from_numpy(np.random.default_rng(seed).normal(size=tuple(model.coef.shape))))
    return pot


@pytest.mark.parametrize("kernel,zeta,linear_term", [("polynomial", 2, 0.0), ("polynomial", 4, 1.0), ("se", 1, 0.5)])
def test_forces_and_stress_match_finite_differences_and_the_design_rows(kernel, zeta, linear_term):
    pot = _random_kernel_potential(kernel, zeta, linear_term=linear_term)
    assert pot.model.n_params == 1 + 6 + (pot.descriptor.n_features if linear_term else 0)
    atoms = random_triclinic(["Cu", "Ni"], repeat=(2, 2, 2), seed=7, rattle=0.1)
    assert_forces_match_finite_differences(pot, atoms)
    assert_stress_matches_finite_differences(pot, atoms)
    assert_invariant(pot, atoms)
    # the analytic feature gradients (the fit's force and virial rows) agree with autograd of the energy
    rows = DesignAssembler(pot.descriptor, pot.model, pot.types, pot.cutoff).rows([atoms])
    coef = pot.model.coef.detach().numpy().ravel()
    ref = to_numpy(evaluate(pot, AtomicSystem.from_atoms(atoms), forces=True, stress=True))
    np.testing.assert_allclose(rows["forces"] @ coef, ref["forces"], rtol=0, atol=1e-11 * np.abs(ref["forces"]).max())
    np.testing.assert_allclose(rows["energy"][0] @ coef * len(atoms), ref["energy"][0], rtol=1e-12)
    np.testing.assert_allclose(rows["virial"][0] @ coef * len(atoms), ref["virial"][0], atol=1e-11 * np.abs(ref["virial"]).max())


def test_permutation_of_atoms_changes_nothing():
    pot = _random_kernel_potential("polynomial", 4)
    atoms = random_triclinic(["Cu", "Ni"], repeat=(2, 2, 2), seed=8, rattle=0.1)
    perm = np.random.default_rng(0).permutation(len(atoms))
    a = to_numpy(evaluate(pot, AtomicSystem.from_atoms(atoms)))
    b = to_numpy(evaluate(pot, AtomicSystem.from_atoms(atoms[perm])))
    np.testing.assert_allclose(b["energies"], a["energies"][perm], rtol=1e-12)
    np.testing.assert_allclose(b["forces"], a["forces"][perm], atol=1e-12 * np.abs(a["forces"]).max())


# ------------------------------------------------------------------------------ dense references


def _labelled(frames, seed=0):
    """Frames labelled by a Lennard-Jones 'truth' (energies, forces)."""
    truth = LennardJones(["Cu"], {("Cu", "Cu"): 0.4}, {("Cu", "Cu"): 2.3}, 5.0, shift=True)
    out = []
    for atoms in frames:
        r = to_numpy(evaluate(truth, AtomicSystem.from_atoms(atoms), forces=True, stress=False))
        a = atoms.copy()
        a.calc = SinglePointCalculator(a, energy=float(r["energy"][0]), forces=r["forces"])
        out.append(a)
    return from_frames(out)


def _cells(n, seed, size=(1, 1, 2), rattle=0.25):
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        a = bulk("Cu", "fcc", a=3.6 * rng.uniform(0.95, 1.05), cubic=True).repeat(size)
        a.set_cell(a.cell.array @ (np.eye(3) + rng.uniform(-0.05, 0.05, (3, 3))), scale_atoms=True)
        a.positions += rng.normal(scale=rattle, size=a.positions.shape)
        frames.append(a)
    return frames


class _OneKernel(torch.nn.Module):
    """E_i = k(d_i, D_m) for one sparse point: its autograd forces are the raw GP derivative rows (independent of the
    model's analytic feature gradients)."""

    def __init__(self, point: torch.Tensor, zeta: int):
        super().__init__()
        self.elements = ["Cu"]
        self.point, self.zeta = point / point.norm(), zeta

    def forward(self, B, types):
        return ((B / B.norm(dim=1, keepdim=True)) @ self.point) ** self.zeta


def _raw_rows(d, points, zeta, data):
    """Unwhitened projected-process rows: per-atom energy rows [1, sum_i k(d_i, D) / N] (S, 1 + M) and force rows
    (3 N_total, 1 + M), from autograd of each kernel column."""
    E, F = [], []
    for p in points:
        pot = HybridPotential(None, d, _OneKernel(torch.from_numpy(p), zeta))
        r = [to_numpy(evaluate(pot, AtomicSystem.from_atoms(a), forces=True, stress=False)) for a in data.frames]
        E.append([x["energy"][0] / len(a) for x, a in zip(r, data.frames)])
        F.append(np.concatenate([x["forces"].ravel() for x in r]))
    E, F = np.array(E).T, np.array(F).T
    return np.hstack([np.ones((len(E), 1)), E]), np.hstack([np.zeros((len(F), 1)), F])


def _kmm(points, zeta):
    x = points / np.linalg.norm(points, axis=1, keepdims=True)
    return (x @ x.T) ** zeta


def test_the_sparse_solution_and_its_variance_equal_the_dense_projected_process():
    """alpha = (K_MM / delta^2 + K_MN L^-1 K_NM)^-1 K_MN L^-1 y (energies and forces, a free intercept, L = diag(sigma^2)
    of GAP's expected errors through gap_weights) written densely;
    the posterior covariance (beta K_MN L^-1 K_NM + a K_MM)^-1 gives the same predictive variance as pot.uncertainty."""
    from hybridpot.uq import attach_uq

    zeta, sigma_e, sigma_f, delta = 4, 0.002, 0.05, 0.5  # GAP's expected errors (eV/atom, eV/A) and signal std (eV)
    train = _labelled(_cells(8, 0))
    d = _descriptor(["Cu"])
    model = KernelModel(["Cu"], d.n_features, 12, "polynomial", zeta)
    pot = HybridPotential(None, d, model)
    bl = baseline_predictions(None, train, progress=False)
    w = gap_weights(len(train), 3 * int(train.n_atoms.sum()), 0, sigma_e, sigma_f)
    sol, weights = fit_linear(pot, train, bl, Weights(energy=w["energy"], force=w["force"]), regularization=1 / delta**2,
                              progress=False)
    points = model.sparse[0, : model.n_basis[0]].numpy()
    assert model.n_basis[0] == 12
    K = _kmm(points, zeta)
    assert np.linalg.cond(K) < 1e8  # a well-posed small problem
    PhiE, PhiF = _raw_rows(d, points, zeta, train)
    yE = train.energy / train.n_atoms
    yF = train.forces.ravel()
    lam_rows = np.concatenate([np.full(len(yE), sigma_e**-2), np.full(len(yF), sigma_f**-2)])  # L^-1
    Phi, y = np.vstack([PhiE, PhiF]), np.concatenate([yE, yF])
    prior = np.zeros((13, 13))
    prior[1:, 1:] = K
    dense = np.linalg.solve(prior / delta**2 + Phi.T @ (lam_rows[:, None] * Phi), Phi.T @ (lam_rows * y))
    got = np.concatenate([[model.coef[0, 0].item()], model.weights()[0, :12].detach().numpy()])
    np.testing.assert_allclose(got, dense, rtol=0, atol=1e-10 * np.abs(dense).max())
    ridge = np.linalg.solve(np.diag(np.r_[0.0, np.ones(12)]) / delta**2 + Phi.T @ (lam_rows[:, None] * Phi), Phi.T @ (lam_rows * y))
    assert np.abs(ridge - dense).max() > 1e-4 * np.abs(dense).max()  # the K_MM prior matters here: not an identity ridge
    test = _labelled(_cells(3, 1))
    TE, TF = _raw_rows(d, points, zeta, test)
    pred = predict(pot, test, progress=False)
    np.testing.assert_allclose(pred["energy"] / test.n_atoms, TE @ dense, rtol=1e-10)
    np.testing.assert_allclose(pred["forces"].ravel(), TF @ dense, rtol=0, atol=1e-10 * np.abs(TF @ dense).max())
    # the posterior: precision beta Phi^T L^-1 Phi + alpha diag(0, K_MM)
    attach_uq(pot, train, bl, weights, solution=sol, predictions=predict(pot, train, progress=False))
    cov = np.linalg.inv(sol.beta * Phi.T @ (lam_rows[:, None] * Phi) + sol.alpha * prior)
    for s, atoms in enumerate(test.frames):
        u = pot.uncertainty(atoms)
        phi = TE[s] * len(atoms)
        np.testing.assert_allclose(u["energy_std_model"] ** 2, phi @ cov @ phi, rtol=1e-9)
        G = TF[3 * test.ptr[s] : 3 * test.ptr[s + 1]]
        np.testing.assert_allclose(u["force_std_model"].ravel() ** 2, np.einsum("np,pq,nq->n", G, cov, G), rtol=1e-8,
                                   atol=1e-12 * np.max(u["force_std_model"]) ** 2)


@pytest.mark.parametrize("linear_term", [0.0, 1.0])
def test_as_many_sparse_points_as_environments_is_kernel_ridge_regression(linear_term):
    """One-atom cells, energies only, every environment a sparse point: the projected process is KRR with a free bias,
    f(x) = c + k(x)^T (K + lam' I)^-1 (y - c), c = 1^T G y / 1^T G 1, G = (K + lam' I)^-1, lam' = lam n / w_E; with the
    linear term the kernel is the sum (d_hat . d_hat')^zeta + linear_term^2 z . z' / K_d, z the standardised descriptor."""
    rng = np.random.default_rng(3)
    frames = []
    for _ in range(10):
        a = bulk("Cu", "fcc", a=3.6 * rng.uniform(0.93, 1.07))
        a.set_cell(a.cell.array @ (np.eye(3) + rng.uniform(-0.08, 0.08, (3, 3))), scale_atoms=True)
        frames.append(a)
    train, test = _labelled(frames[:7]), _labelled(frames[7:])
    zeta, lam, w_e = 2, 1e-4, 1.0
    d = _descriptor(["Cu"])
    model = KernelModel(["Cu"], d.n_features, len(train), "polynomial", zeta, linear_term=linear_term)
    pot = HybridPotential(None, d, model)
    fit_linear(pot, train, baseline_predictions(None, train, progress=False), Weights(energy=w_e, force=0.0),
               regularization=lam, progress=False)
    assert model.n_basis[0] == len(train)
    B, _, _ = descriptors_of(pot, train.frames)
    Bt, _, _ = descriptors_of(pot, test.frames)
    x, xt = B / np.linalg.norm(B, axis=1, keepdims=True), Bt / np.linalg.norm(Bt, axis=1, keepdims=True)
    K, Kt = (x @ x.T) ** zeta, (xt @ x.T) ** zeta
    if linear_term:
        std = B.std(0)
        kept = std > 1e-8 * std.max()  # the one-atom fcc cells' odd-l components are zero up to rounding
        assert 0 < kept.sum() < len(kept)
        z, zt = ((X[:, kept] - B.mean(0)[kept]) / std[kept] for X in (B, Bt))
        K, Kt = K + linear_term**2 * z @ z.T / B.shape[1], Kt + linear_term**2 * zt @ z.T / B.shape[1]
    G = np.linalg.inv(K + lam * len(train) / w_e * np.eye(len(train)))
    y = train.energy
    c = np.sum(G @ y) / np.sum(G)
    krr = c + Kt @ G @ (y - c)
    np.testing.assert_allclose(predict(pot, test, progress=False)["energy"], krr, rtol=1e-10)


# ------------------------------------------------------------------------------ uncertainty, files, export, settings


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A kernel hybrid (LJ baseline) fitted by evidence, with its uncertainty data."""
    from hybridpot.uq import attach_uq

    truth = _labelled(_cells(10, 5, size=(2, 2, 2), rattle=0.15))
    base = LennardJones(["Cu"], {("Cu", "Cu"): 0.3}, {("Cu", "Cu"): 2.4}, 5.0, shift=True)
    d = _descriptor(["Cu"])
    pot = HybridPotential(base, d, KernelModel(["Cu"], d.n_features, 40, "polynomial", 2, linear_term=1.0))
    bl = baseline_predictions(base, truth, progress=False)
    sol, weights = fit_linear(pot, truth, bl, Weights(energy=10.0), progress=False)
    attach_uq(pot, truth, bl, weights, solution=sol, predictions=predict(pot, truth, progress=False))
    return pot, truth, sol


def test_evidence_fit_beats_the_baseline_and_gives_a_growing_variance_away_from_the_data(fitted):
    pot, truth, sol = fitted
    assert sol.method == "evidence" and np.isfinite(sol.log_evidence) and sol.alpha > 0 and sol.beta > 0
    test = _labelled(_cells(4, 6, size=(2, 2, 2), rattle=0.15))
    hybrid = predict(pot, test, progress=False)
    alone = predict(pot.baseline, test, progress=False)
    err = np.abs(hybrid["forces"] - test.forces).mean()
    assert err < 0.5 * np.abs(alone["forces"] - test.forces).mean()
    near = pot.uncertainty(test.frames[0])
    assert near["source"] == "posterior" and near["energy_std"] > near["energy_std_model"] > 0
    far = test.frames[0].copy()
    far.set_cell(far.cell.array * 0.85, scale_atoms=True)  # compressed: outside the training data
    assert pot.uncertainty(far)["atom_energy_std"].mean() > 3 * near["atom_energy_std"].mean()


def test_std_fallback_and_selection_by_variance(fitted):
    import copy

    from hybridpot.active import select
    from hybridpot.uq import enable_fallback

    pot, truth, _ = fitted
    test = _labelled(_cells(4, 6, size=(2, 2, 2), rattle=0.15))
    far = test.frames[0].copy()
    far.set_cell(far.cell.array * 0.85, scale_atoms=True)
    std_far = pot.uncertainty(far)["atom_energy_std"]
    std_near = pot.uncertainty(test.frames[1])["atom_energy_std"]
    hp = copy.deepcopy(pot)
    lower, upper = np.median(std_near), np.median(std_far)
    enable_fallback(hp, lower=lower, upper=upper, measure="std")
    switch = {}
    for name, atoms, std in (("far", far, std_far), ("near", test.frames[1], std_near)):
        switch[name] = hp.uncertainty(atoms)["switch"]  # the switch reads the per-atom GP std
        np.testing.assert_allclose(switch[name], smoothstep_off(torch.from_numpy((std - lower) / (upper - lower))).numpy(),
                                   rtol=0, atol=1e-9)
    assert switch["far"].mean() < 0.6 < 0.9 < switch["near"].mean()
    a = test.frames[2].copy()
    enable_fallback(hp, lower=0.0, upper=3 * std_near.max(), measure="std")  # every atom inside the band
    assert 0 < hp.uncertainty(a)["switch"].min() < 1
    assert_forces_match_finite_differences(hp, a)
    chosen = select(pot, [test.frames[1], far, test.frames[2]], 1, "std", 0.0, np.random.default_rng(0))
    assert chosen.index == [1] and chosen.std[0] == pytest.approx(pot.uncertainty(far, forces=False)["energy_std_model"] / len(far))


def test_model_file_round_trip_and_plugin_file(fitted, tmp_path):
    from hybridpot.export.lammps import check_exportable
    from hybridpot.export.plugin_file import plugin_model_text
    from hybridpot.io.modelfile import load, save

    pot, truth, _ = fitted
    back = load(save(pot, tmp_path / "k.hybridpot.json"))
    assert back.model.kind == "kernel" and back.model.n_basis == pot.model.n_basis
    atoms = truth.frames[0]
    a, b = (to_numpy(evaluate(p, AtomicSystem.from_atoms(atoms))) for p in (pot, back))
    for key in ("energies", "forces", "virial"):
        np.testing.assert_array_equal(a[key], b[key])
    np.testing.assert_array_equal(pot.uncertainty(atoms)["force_std"], back.uncertainty(atoms)["force_std"])
    text = plugin_model_text(pot)  # parity with LAMMPS: tests/export/test_lammps_plugin.py::test_kernel_model_matches_hybridpot
    assert f"model kernel polynomial 2 1.0 {pot.model.n_sparse}\n" in text and "\nkernel_linear" in text
    assert back.model.linear_term == 1.0
    np.testing.assert_array_equal(back.model.linear_scale.numpy(), pot.model.linear_scale.numpy())
    # a model file written before the linear term (no linear_* keys) loads as a kernel without it
    plain = KernelModel(["Cu"], pot.descriptor.n_features, 5).to_dict()
    for key in ("linear_term", "linear_mean", "linear_scale"):
        del plain[key]
    assert KernelModel.from_dict(plain).n_linear == 0
    with pytest.raises(NotExportableError, match="cannot export to LAMMPS"):  # ML-IAP has no kernel model
        check_exportable(pot, format="mliap")
    unfitted = HybridPotential(None, pot.descriptor, KernelModel(["Cu"], pot.descriptor.n_features, 5))
    with pytest.raises(NotExportableError, match="kernel model without sparse points"):
        plugin_model_text(unfitted)


@pytest.mark.parametrize("table,message", [
    ({"zeta": 0}, r"zeta = 0: must be an integer >= 1"),
    ({"n_sparse": 0}, r"n_sparse = 0: need at least 1"),
    ({"kernel": "matern"}, r"kernel = 'matern': expected one of 'polynomial', 'se'"),
    ({"length": 1.0}, r"length = 1.0: only the 'se' kernel has a length scale"),
    ({"kernel": "se", "length": -1.0}, r"length = -1.0: must be > 0"),
    ({"selection": "random"}, r"selection = 'random': expected one of 'fps', 'cur'"),
    ({"linear_term": -1.0}, r"linear_term = -1.0: must be >= 0"),
    ({"zeta": 2.5}, r"zeta = 2.5: expected int"),
    ({"sigma": 1}, r"unknown key\(s\) \['sigma'\]"),
])
def test_bad_hyper_parameters_are_refused(table, message):
    with pytest.raises(ConfigError, match=r"fit.toml: \[model\].*" + message):
        KernelSettings.from_table(table, "fit.toml: [model]")


def test_the_configuration_builds_a_kernel_model_and_too_few_environments_are_clamped(tmp_path):
    from hybridpot.fitting.config import parse_config
    from hybridpot.fitting.job import make_potential

    (tmp_path / "train.xyz").write_text("")
    raw = {"data": {"train": "train.xyz"}, "baseline": {"type": "none"},
           "descriptor": {"basis": "bessel", "rcut": 4.0, "nmax": 2, "lmax": 2},
           "model": {"type": "kernel", "zeta": 2, "n_sparse": 50, "selection": "cur"}}
    config = parse_config(raw, tmp_path, "fit.toml")
    pot = make_potential(config, ["Cu"], None)
    # the default linear term adds a column per descriptor component
    assert pot.model.kind == "kernel" and pot.model.n_params == 51 + pot.descriptor.n_features and pot.model.selection == "cur"
    with pytest.raises(ConfigError, match=r"fit.toml: \[model\] zeta = 0"):
        parse_config({**raw, "model": {"type": "kernel", "zeta": 0}}, tmp_path, "fit.toml")
    train = _labelled(_cells(3, 2))  # 3 x 8 atoms < 50
    with pytest.warns(UserWarning, match=r"Cu has 24 distinct environments .* fewer than n_sparse = 50: using all 24"):
        fit_linear(pot, train, baseline_predictions(None, train, progress=False), Weights(), progress=False)
    assert pot.model.n_basis == [24]


def test_the_choice_of_sparse_points_is_deterministic_given_the_seed():
    d = _descriptor(["Cu"])
    frames = _cells(4, 9, size=(2, 2, 2))
    chosen = []
    for selection, seed in (("fps", 0), ("fps", 0), ("fps", 1), ("cur", 0), ("cur", 0)):
        model = KernelModel(["Cu"], d.n_features, 10, "polynomial", 4, selection=selection)
        B, types, _ = descriptors_of(HybridPotential(None, d, model), frames)
        model.choose_basis(B, types, seed)
        chosen.append(model.sparse.numpy().copy())
    np.testing.assert_array_equal(chosen[0], chosen[1])
    np.testing.assert_array_equal(chosen[3], chosen[4])
    assert not np.array_equal(chosen[0], chosen[2]) and not np.array_equal(chosen[0], chosen[3])


def test_the_active_learning_loop_selects_by_gp_variance(tmp_path):
    """`hybridpot active` with [model] type = "kernel" and criterion "std": each iteration's fresh model chooses its
    sparse points from the grown training set, and candidates are picked by the GP variance."""
    from hybridpot.active import read_active_config, run_active
    from tests.builders import write_active_config

    path = write_active_config(tmp_path, iterations=1, criterion="std")
    path.write_text(path.read_text().replace("[output]", '[model]\ntype = "kernel"\nzeta = 2\nn_sparse = 60\n[output]'))
    result = run_active(read_active_config(path), write=False)
    model = result.potential.model
    assert model.kind == "kernel" and [e["oracle_calls"] for e in result.log] == [3, 5]
    assert model.n_basis == [60]  # from 5 x 32 environments
    selected = result.log[1]["selected"]
    assert len(selected) == 2 and all(s["std_eV_atom"] > 0 for s in selected)
    assert selected[0]["std_eV_atom"] >= selected[1]["std_eV_atom"]


def test_an_identity_prior_solve_is_an_unscaled_ridge_in_the_fixed_evidence_and_cv_paths():
    """solve(..., scale_columns=False): the ridge acts on the parameters as given (a whitened kernel basis); fixed lam, the
    k-fold curve and fewer rows than parameters (a GP) against plain numpy ridge with a free intercept."""
    from hybridpot.fitting.solver import QRAccumulator, solve

    rng = np.random.default_rng(0)
    n, m = 60, 8
    A = np.hstack([np.ones((n, 1)), rng.normal(size=(n, m - 1)) * np.logspace(0, 2, m - 1)])
    y = A @ rng.normal(size=m) + rng.normal(scale=0.1, size=n)
    penalty = np.diag(np.r_[0.0, np.ones(m - 1)])

    def ridge(rows, lam):
        return np.linalg.solve(A[rows].T @ A[rows] + lam * penalty, A[rows].T @ y[rows])

    def acc(rows):
        a = QRAccumulator(m)
        a.add(A[rows], y[rows])
        return a

    everything = np.arange(n)
    np.testing.assert_allclose(solve(acc(everything), n_free=1, lam=3.0, scale_columns=False).coef, ridge(everything, 3.0), rtol=1e-10)
    assert not np.allclose(solve(acc(everything), n_free=1, lam=3.0).coef, ridge(everything, 3.0), rtol=1e-3)  # scaled: another prior
    few = np.arange(5)  # 5 rows, 8 parameters: a proper prior needs rows only for the intercept
    np.testing.assert_allclose(solve(acc(few), n_free=1, lam=0.5, scale_columns=False).coef, ridge(few, 0.5), rtol=1e-9)
    folds = np.arange(n) % 3
    sol = solve(acc(everything), n_free=1, folds=[acc(np.flatnonzero(folds == k)) for k in range(3)], scale_columns=False)
    assert sol.method == "cv"
    for lam, value in list(sol.cv_curve.items())[::8]:
        sse = 0.0
        for k in range(3):
            train, held = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
            lam_k = lam * len(train) / n  # the curve's lam is per row of the whole set
            sse += np.sum((A[held] @ ridge(train, lam_k) - y[held]) ** 2)
        assert value == pytest.approx(sse / n, rel=1e-8)
    ev = solve(acc(everything), n_free=1, scale_columns=False)
    np.testing.assert_allclose(ev.coef, ridge(everything, ev.lam), rtol=1e-9)
    assert ev.method == "evidence" and ev.alpha > 0


def test_set_basis_standardises_the_linear_term_over_the_given_descriptors():
    """``set_basis(points, standardise_from)``: the linear term's mean and scale come from those descriptors (not from
    the points), as choose_basis uses it; a count of descriptor sets other than the elements' is refused by name."""
    rng = np.random.default_rng(3)
    model = KernelModel(["Cu", "Ni"], 4, 3, linear_term=2.0)
    points = [rng.normal(size=(3, 4)), rng.normal(size=(2, 4))]
    wide = [rng.normal(1.0, 5.0, size=(50, 4)), rng.normal(-2.0, 0.5, size=(40, 4))]
    model.set_basis(points, wide)
    for t, X in enumerate(wide):
        assert np.allclose(model.linear_mean[t].numpy(), X.mean(0), rtol=1e-13)
        assert np.allclose(model.linear_scale[t].numpy(), 2.0 / (X.std(0) * np.sqrt(4)), rtol=1e-13)
    model.set_basis(points)  # default: the points themselves
    assert np.allclose(model.linear_mean[1].numpy(), points[1].mean(0), rtol=1e-13)
    with pytest.raises(HybridpotError, match=r"kernel model: 1 sets of descriptors to standardise over, for 2 elements"):
        model.set_basis(points, wide[:1])


@pytest.mark.parametrize("elements", [("Cu",), ("Cu", "Ni")])
def test_a_joint_fit_of_several_zetas_equals_each_fitted_alone(elements):
    """fit_linear_joint (the tune's zeta candidates: one design pass, KernelModel.joint) gives every member the fit it gets
    alone: coefficients, posterior covariance, the baseline check's and the CV's errors, to round-off (a member's
    columns of the family's factors are the factor of its own columns: QRAccumulator.columns); one and two elements."""
    from hybridpot.dataset import bundled, read_dataset
    from hybridpot.empirical import load

    if len(elements) == 1:
        train = read_dataset(bundled("Cu_train.xyz")).subset(np.arange(12))
        baseline = load(bundled("Cu_mishin1.eam.alloy"))
    else:  # labelled by a two-element Lennard-Jones truth, over another as the baseline
        pairs = [("Cu", "Cu"), ("Cu", "Ni"), ("Ni", "Ni")]
        truth = LennardJones(list(elements), dict(zip(pairs, (0.4, 0.5, 0.45))), dict(zip(pairs, (2.3, 2.25, 2.2))), 5.0, shift=True)
        baseline = LennardJones(list(elements), dict.fromkeys(pairs, 0.35), dict.fromkeys(pairs, 2.3), 5.0, shift=True)
        frames = []
        for seed in range(10):
            atoms = random_triclinic(list(elements), repeat=(2, 2, 2), seed=seed, rattle=0.15)
            r = to_numpy(evaluate(truth, AtomicSystem.from_atoms(atoms), forces=True, stress=False))
            atoms.calc = SinglePointCalculator(atoms, energy=float(r["energy"][0]), forces=r["forces"])
            frames.append(atoms)
        train = from_frames(frames)
    bl = baseline_predictions(baseline, train, progress=False)
    pure = Weights(energy=2.0, force=1.0)

    def potential(zeta):
        d = SO3(rcut=4.0, nmax=3, lmax=3, alpha=1.5, elements=list(elements))
        return HybridPotential(baseline, d, KernelModel(list(elements), d.n_features, 20, "polynomial", zeta, linear_term=1.0))

    kwargs = dict(cv_folds=3, seed=1, progress=False, pure_weights=pure, mode="auto", cv_score=True, batch_atoms=100)
    together = [potential(z) for z in (2, 3, 5)]
    joint = fit_linear_joint(together, train, bl, Weights(energy=3.0), **kwargs)
    for pot, (sol, weights) in zip(together, joint):
        alone = potential(pot.model.zeta)
        ref, ref_weights = fit_linear(alone, train, bl, Weights(energy=3.0), **kwargs)
        np.testing.assert_allclose(pot.model.sparse.numpy(), alone.model.sparse.numpy(), rtol=0, atol=0)
        scale = np.abs(ref.coef).max()
        np.testing.assert_allclose(sol.coef, ref.coef, rtol=0, atol=1e-8 * scale)
        np.testing.assert_allclose(pot.model.coef.detach().numpy(), alone.model.coef.detach().numpy(), rtol=0, atol=1e-8 * scale)
        np.testing.assert_allclose(sol.covariance, ref.covariance, rtol=0, atol=1e-8 * np.abs(ref.covariance).max())
        assert sol.baseline_check["used"] == ref.baseline_check["used"] and weights == ref_weights
        for key, value in ref.cv_errors.items():
            assert sol.cv_errors[key] == pytest.approx(value, rel=1e-7), key
        assert sol.lam == pytest.approx(ref.lam, rel=1e-7)
    assert len({sol.cv_errors["force_rmse_eV_A"] for sol, _ in joint}) == 3  # three different models


def test_a_joint_fit_refuses_potentials_with_other_descriptors_or_baselines_and_models_without_joint():
    from hybridpot.dataset import bundled, read_dataset

    train = read_dataset(bundled("Cu_train.xyz")).subset(np.arange(3))
    bl = baseline_predictions(None, train, progress=False)

    def potential(rcut, zeta, baseline=None):
        d = SO3(rcut=rcut, nmax=2, lmax=2, alpha=1.5, elements=["Cu"])
        return HybridPotential(baseline, d, KernelModel(["Cu"], d.n_features, 4, "polynomial", zeta))

    with pytest.raises(ValueError, match="share their baseline and descriptor"):
        fit_linear_joint([potential(4.0, 2), potential(4.5, 3)], train, bl, Weights(), progress=False)
    lj = LennardJones(["Cu"], {("Cu", "Cu"): 0.4}, {("Cu", "Cu"): 2.3}, 5.0, shift=True)
    with pytest.raises(ValueError, match="share their baseline and descriptor"):
        fit_linear_joint([potential(4.0, 2), potential(4.0, 3, lj)], train, bl, Weights(), progress=False)
    from hybridpot.models.polynomial import PolynomialModel

    d = SO3(rcut=4.0, nmax=2, lmax=2, alpha=1.5, elements=["Cu"])
    with pytest.raises(TypeError, match="cannot be fitted jointly"):
        fit_linear_joint([HybridPotential(None, d, PolynomialModel(["Cu"], d.n_features)) for _ in range(2)], train, bl, Weights(),
                         progress=False)


def test_a_family_refuses_members_that_differ_in_more_than_zeta():
    with pytest.raises(HybridpotError, match="differ in zeta alone"):
        KernelModel.joint([KernelModel(["Cu"], 10, 5, "polynomial", 2), KernelModel(["Cu"], 10, 6, "polynomial", 3)])
    with pytest.raises(HybridpotError, match="differ in zeta alone"):
        KernelModel.joint([KernelModel(["Cu"], 10, 5, "polynomial", 2), KernelModel(["Cu"], 10, 5, "polynomial", 2)])
    with pytest.raises(HybridpotError, match="differ in zeta alone"):
        KernelModel.joint([KernelModel(["Cu"], 10, 5, "se", 1), KernelModel(["Cu"], 10, 5, "polynomial", 2)])


def test_a_family_of_members_with_other_sparse_points_gives_each_members_rows():
    """Members whose sparse points differ (farthest points can differ by zeta where cosines are negative) each get their
    own pair gradients in the family's columns; members with the same points share one product with dB."""
    first, second = _random_kernel_potential("polynomial", 2, seed=0), _random_kernel_potential("polynomial", 3, seed=1)
    third = _random_kernel_potential("polynomial", 5, seed=0)
    assert not torch.equal(first.model.sparse, second.model.sparse) and torch.equal(first.model.sparse, third.model.sparse)
    family = KernelModel.joint([first.model, second.model, third.model])
    atoms = random_triclinic(["Cu", "Ni"], repeat=(2, 2, 2), seed=7, rattle=0.1)
    rows = DesignAssembler(first.descriptor, family, first.types, first.cutoff).rows([atoms])
    for i, pot in enumerate((first, second, third)):
        own = DesignAssembler(pot.descriptor, pot.model, pot.types, pot.cutoff).rows([atoms])
        T, W, Wm = 2, family.n_params, pot.model.n_params
        cols = (np.arange(T)[:, None] * W + family.member_columns(i)[None, :]).ravel()
        for kind in ("energy", "forces", "virial"):
            np.testing.assert_allclose(rows[kind][..., cols], own[kind], rtol=0, atol=1e-12 * np.abs(own[kind]).max(), err_msg=kind)
