"""Uncertainty quantification: posterior std, calibration on a correctly specified model, MaxVol
grade, fallback switch (finite differences, limits, invariance, NVE), committees, model files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from scipy.spatial.distance import cdist
from scipy.spatial.transform import Rotation

from hybridpot.arrays import decode_array, encode_array
from hybridpot.dataset import Dataset, bundled, from_frames, read_dataset
from hybridpot.errors import HybridpotError
from hybridpot.fallback import smoothstep_off
from hybridpot.fitting.assembly import Weights
from hybridpot.fitting.linear import fit_linear
from hybridpot.io.modelfile import load, save
from hybridpot.maxvol import grade
from hybridpot.models.committee import CommitteeModel
from hybridpot.models.nn import NNModel
from hybridpot.potential import HybridPotential, to_numpy
from hybridpot.prediction import baseline_predictions, descriptors, predict
from hybridpot.testing import assert_forces_match_finite_differences, assert_stress_matches_finite_differences, labelled
from hybridpot.uq.calibration import interval_factors
from hybridpot.uq.local_noise import NEIGHBOUR_CANDIDATES, LocalNoise, fingerprints
from hybridpot.uq import ActiveSet, attach_uq, disable_fallback, enable_fallback, fallback_switches
from tests.builders import cu_eam_hybrid
from tests.structures import cu_frames


def fit(potential: HybridPotential, data: Dataset, weights: Weights):
    """Fit the residual and attach the uncertainty data as ``hybridpot fit`` does."""
    bl = baseline_predictions(potential.baseline, data, progress=False)
    sol, _ = fit_linear(potential, data, bl, weights, progress=False)
    summary = attach_uq(potential, data, bl, weights, solution=sol, predictions=predict(potential, data, progress=False), strict=True)
    return sol, summary


@pytest.fixture(scope="module")
def bundled_train() -> Dataset:
    return read_dataset(bundled("Cu_train.xyz"))


@pytest.fixture(scope="module")
def fitted(bundled_train) -> HybridPotential:
    pot = cu_eam_hybrid(nmax=2, lmax=2, alpha=2.0, scale=0)
    fit(pot, bundled_train, Weights())
    return pot


def rattled(a: float = 3.6, rattle: float = 0.2, seed: int = 2, repeat: int = 2) -> Atoms:
    atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat(repeat)
    atoms.positions += np.random.default_rng(seed).normal(scale=rattle, size=atoms.positions.shape)
    return atoms


# ------------------------------------------------------------------------------ MaxVol / gamma


def test_active_set_grades_training_rows_at_most_one_and_is_scale_invariant():
    rng = np.random.default_rng(0)
    B = rng.normal(size=(400, 6)) * np.logspace(-3, 2, 6)
    types = np.zeros(400, int)
    active = ActiveSet.from_descriptors(B, types, ["Cu"])
    g = active.grade(B, types)
    assert g.max() <= 1 + 1e-6
    assert g.max() == pytest.approx(1.0)  # the active rows themselves
    # far outside the training cloud: extrapolation
    assert np.all(active.grade(B[:5] * 10, types[:5]) > 1)
    # gamma is the same function as maxvol.grade on [1, B] rows
    X = np.hstack([np.ones((400, 1)), B])
    assert np.allclose(g, grade(X, active.inverse(0)))
    # for given active rows, gamma is invariant to an affine change of descriptor coordinates
    D, shift = np.diag(rng.uniform(0.1, 10, 6)), rng.normal(size=6)
    affine = np.block([[np.ones((1, 1)), shift[None]], [np.zeros((6, 1)), D]])
    moved = ActiveSet(["Cu"], [active.rows[0] @ affine])
    probe = rng.normal(size=(50, 6)) * 3 * np.logspace(-3, 2, 6)
    assert np.allclose(moved.grade(probe @ D + shift, types[:50]), active.grade(probe, types[:50]), rtol=1e-8)
    # and the selection does not depend on the units of the descriptor components
    rescaled = ActiveSet.from_descriptors(B @ D, types, ["Cu"])
    assert np.allclose(rescaled.grade(probe @ D, types[:50]), active.grade(probe, types[:50]), rtol=1e-8)


def test_active_set_extend_covers_new_rows_and_errors():
    rng = np.random.default_rng(1)
    B = rng.normal(size=(200, 4))
    types = np.zeros(200, int)
    active = ActiveSet.from_descriptors(B, types, ["Cu"])
    new = rng.normal(size=(30, 4)) * 4
    assert active.grade(new, types[:30]).max() > 1
    assert active.extend(new, types[:30]).grade(np.vstack([B, new]), np.zeros(230, int)).max() <= 1 + 1e-6
    with pytest.raises(HybridpotError, match="rows of descriptors"):
        active.grade(B, types[:10])
    with pytest.raises(HybridpotError, match="MaxVol active set for Cu"):
        ActiveSet.from_descriptors(B[:3], types[:3], ["Cu"])  # 3 rows for 5 columns
    loose = ActiveSet.from_descriptors(B[:3], types[:3], ["Cu"], strict=False)
    assert np.all(np.isinf(loose.grade(B, types)))


def test_array_record_round_trip_and_corruption():
    a = np.random.default_rng(2).normal(size=(7, 5))
    assert np.array_equal(decode_array(json.loads(json.dumps(encode_array(a)))), a)
    bad = encode_array(a) | {"shape": [7, 6]}
    with pytest.raises(HybridpotError, match="does not fit shape"):
        decode_array(bad)


def test_fit_keeps_training_descriptors_equal_to_a_fresh_computation(bundled_train):
    """The descriptors kept from the assembly (used for the active set) are those of the data, in order."""
    pot = cu_eam_hybrid(nmax=2, lmax=2, alpha=2.0, scale=0)
    data = from_frames(bundled_train.frames[:7])
    bl = baseline_predictions(pot.baseline, data, progress=False)
    sol, _ = fit_linear(pot, data, bl, Weights(), batch_atoms=150, progress=False)  # several batches
    B_kept, types_kept = sol.training_descriptors
    B, types, owner = descriptors(pot, data.frames, batch_atoms=10_000)
    assert B_kept.shape == B.shape == (int(data.n_atoms.sum()), pot.descriptor.n_features)
    np.testing.assert_allclose(B_kept, B, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(types_kept, types)


def test_fitted_gamma_training_atoms_and_extrapolation(fitted, bundled_train):
    B, types, _ = descriptors(fitted, bundled_train.frames)
    assert fitted.uq_data.active_set.grade(B, types).max() <= 1 + 1e-6
    u = fitted.uncertainty(rattled(a=3.0, rattle=0.05))  # 17 % compressed: far outside the data
    assert u["max_gamma"] > 1
    # gamma (and all the stds) are invariant under rotation and translation
    atoms = rattled()
    moved = atoms.copy()
    R = Rotation.random(random_state=3).as_matrix()
    moved.set_cell(atoms.cell.array @ R.T, scale_atoms=False)
    moved.positions = atoms.positions @ R.T + [0.3, -1.2, 2.0]
    u0, u1 = fitted.uncertainty(atoms), fitted.uncertainty(moved)
    assert np.allclose(u0["gamma"], u1["gamma"], rtol=1e-8)
    assert u0["energy_std"] == pytest.approx(u1["energy_std"], rel=1e-8)
    assert np.allclose(u0["atom_energy_std"], u1["atom_energy_std"], rtol=1e-8)
    # the force covariance of an atom turns with the structure: its trace is invariant
    assert np.allclose(np.sum(u0["force_std_model"] ** 2, 1), np.sum(u1["force_std_model"] ** 2, 1), rtol=1e-8)


# ------------------------------------------------------------------------------ posterior std


def coefficient_jacobian(potential: HybridPotential, atoms: Atoms) -> dict[str, np.ndarray]:
    """d(energy, per-atom energies, forces)/d(coef) by evaluating the hybrid at unit coefficient
    vectors (exact: the model is linear in its coefficients) -- independent of the design rows."""
    model = potential.model
    saved = model.coef.detach().clone()
    try:
        with torch.no_grad():
            model.coef.zero_()
        base = to_numpy(potential.compute(atoms, stress=False))
        cols = []
        for k in range(model.coef.numel()):
            with torch.no_grad():
                model.coef.zero_()
                model.coef.view(-1)[k] = 1.0
            r = to_numpy(potential.compute(atoms, stress=False))
            cols.append({q: r[q] - base[q] for q in ("energy", "energies", "forces")})
    finally:
        with torch.no_grad():
            model.coef.copy_(saved)
    return {q: np.stack([c[q].reshape(-1) for c in cols], axis=1) for q in ("energy", "energies", "forces")}


@pytest.mark.parametrize("quadratic", [False, True])
def test_posterior_std_equals_jacobian_covariance(quadratic, fitted, bundled_train):
    pot = fitted
    if quadratic:
        pot = cu_eam_hybrid(nmax=2, lmax=2, alpha=2.0, quadratic=quadratic, scale=0)
        fit(pot, bundled_train.subset(range(0, 40, 3)), Weights())
    atoms = rattled(rattle=0.1, repeat=1)
    J = coefficient_jacobian(pot, atoms)
    cov = pot.uq_data.posterior.covariance
    u = pot.uncertainty(atoms, noise="evidence")
    sig_e, sig_f = pot.uq_data.posterior.noise_std("evidence")
    var_e = float(J["energy"][0] @ cov @ J["energy"][0])
    assert u["energy_std_model"] == pytest.approx(np.sqrt(var_e), rel=1e-9)
    assert u["energy_std"] == pytest.approx(np.sqrt(var_e + (len(atoms) * sig_e) ** 2), rel=1e-9)
    assert np.allclose(u["atom_energy_std"], np.sqrt(np.einsum("ip,pq,iq->i", J["energies"], cov, J["energies"])), rtol=1e-9)
    var_f = np.einsum("ip,pq,iq->i", J["forces"], cov, J["forces"]).reshape(-1, 3)
    assert np.allclose(u["force_std_model"], np.sqrt(var_f), rtol=1e-8, atol=1e-14)
    assert np.allclose(u["force_std"], np.sqrt(var_f + sig_f**2), rtol=1e-8)
    # the residual noise model (the default) is the training RMS error of each kind
    res = pot.uncertainty(atoms)
    sig_e, sig_f = pot.uq_data.posterior.noise_std("residual")
    assert pot.uq_data.noise_model == "residual"
    assert res["energy_std"] == pytest.approx(np.sqrt(var_e + (len(atoms) * sig_e) ** 2), rel=1e-9)
    assert np.allclose(res["force_std"], np.sqrt(var_f + sig_f**2), rtol=1e-8)
    with pytest.raises(HybridpotError, match="noise model"):
        pot.uncertainty(atoms, noise="bogus")


def cv_fitted() -> tuple[HybridPotential, Dataset, object]:
    """A linear hybrid fitted with 3 CV folds (seed 4, fixed ridge 3e-4, energy weight 7) to 9 cells labelled by another
    one plus noise, with its uncertainty data: (potential, data, solution)."""
    truth = cu_eam_hybrid(seed=1)
    data = from_frames(labelled(truth, cu_frames(9), stress=False, sigma_e=2e-3, sigma_f=0.02))
    pot = cu_eam_hybrid(seed=2)
    bl = baseline_predictions(pot.baseline, data, progress=False)
    w = Weights(energy=7.0)
    sol, _ = fit_linear(pot, data, bl, w, regularization=3e-4, cv_folds=3, seed=4, progress=False, cv_score=True)
    attach_uq(pot, data, bl, w, solution=sol, predictions=predict(pot, data, progress=False), strict=True)
    return pot, data, sol


def test_cv_noise_is_the_held_out_error_of_explicit_refits(tmp_path):
    """The "cv" noise model is the k-fold CV error of the fit as solved: refitting on the other folds' structures (at
    the full fit's ridge per row) and predicting the held-out ones gives the same RMS errors; it is the default noise
    model where the fit has CV errors, the residual one where it has none."""
    pot, data, sol = cv_fitted()
    folds = np.random.default_rng(4).permutation(len(data)) % 3
    n_e, n_f = len(data), 3 * int(data.n_atoms.sum())
    e_sq = f_sq = 0.0
    held_out = np.empty(len(data))
    for k in range(3):
        train, held = data.subset(np.where(folds != k)[0]), data.subset(np.where(folds == k)[0])
        n_e_k, n_f_k = len(train), 3 * int(train.n_atoms.sum())
        # the full fit's rows (weights normalised by the whole set's row counts) and its ridge per row
        sub_w = Weights(energy=7.0 * n_e_k / n_e, force=n_f_k / n_f)
        refit = cu_eam_hybrid(seed=2)
        fit_linear(refit, train, baseline_predictions(refit.baseline, train, progress=False), sub_w,
                   regularization=3e-4 * (n_e_k + n_f_k) / (n_e + n_f), progress=False)
        p = predict(refit, held, progress=False)
        held_out[folds == k] = (p["energy"] - held.energy) / held.n_atoms
        e_sq += np.sum(((p["energy"] - held.energy) / held.n_atoms) ** 2)
        f_sq += np.sum((p["forces"] - held.forces) ** 2)
    # each structure's held-out energy error, from the CV's own fold coefficients and the kept energy rows
    assert np.allclose(sol.cv_energy_errors, held_out, rtol=1e-7, atol=1e-12)
    assert sol.cv_errors["energy_mae_meV_atom"] == pytest.approx(1000 * np.mean(np.abs(held_out)), rel=1e-7)
    sig_e, sig_f = pot.uq_data.posterior.noise_std("cv")
    assert sig_e == pytest.approx(np.sqrt(e_sq / n_e), rel=1e-7)
    assert sig_f == pytest.approx(np.sqrt(f_sq / n_f), rel=1e-7)
    assert pot.uq_data.noise_model == "local"  # the cv noise per structure (test_local_noise_...)
    assert sig_f > pot.uq_data.posterior.noise_std("residual")[1]  # held-out errors exceed the training ones
    atoms = rattled(rattle=0.1, repeat=1)
    u = pot.uncertainty(atoms, noise="cv")
    assert u["energy_std"] == pytest.approx(np.sqrt(u["energy_std_model"] ** 2 + (len(atoms) * sig_e) ** 2), rel=1e-9)
    assert "energy_interval" not in u and "energy_interval" not in pot.uncertainty(atoms, noise="residual")
    # no CV errors (no folds assembled): NaN, and the residual noise model is the default
    plain = cu_eam_hybrid(seed=2)
    fit(plain, data, Weights(energy=7.0))
    assert np.isnan(plain.uq_data.posterior.noise_std("cv")).all() and plain.uq_data.noise_model == "residual"
    # undefined noise levels are written as null and read back as NaN: the model file stays loadable
    save(plain, tmp_path / "plain.hybridpot.json")
    back = load(tmp_path / "plain.hybridpot.json")
    assert np.isnan(back.uq_data.posterior.noise_std("cv")).all()
    assert back.uq_data.posterior.noise_std("residual") == plain.uq_data.posterior.noise_std("residual")
    assert plain.uq_data.posterior.energy_interval_factors == {} and "energy_interval" not in plain.uncertainty(atoms)
    save(pot, tmp_path / "cv.hybridpot.json")
    assert load(tmp_path / "cv.hybridpot.json").uq_data.posterior.energy_interval_factors == pot.uq_data.posterior.energy_interval_factors


def reference_fingerprints(B: np.ndarray, types: np.ndarray, owner: np.ndarray, n_structures: int, n_types: int) -> np.ndarray:
    """Per structure and element the mean and std of the atoms' descriptors, one structure at a time (zeros: absent)."""
    out = np.zeros((n_structures, n_types, 2, B.shape[1]))
    for s in range(n_structures):
        for t in range(n_types):
            rows = B[(owner == s) & (types == t)]
            if len(rows):
                out[s, t] = rows.mean(axis=0), rows.std(axis=0)
    return out.reshape(n_structures, -1)


def reference_local_sigma(train_fp: np.ndarray, errors: np.ndarray, query_fp: np.ndarray, k: int,
                          leave_out_self: bool = False) -> np.ndarray:
    """The RMS error of the k nearest training structures, fingerprints standardised over the training set."""
    mu, sd = train_fp.mean(axis=0), train_fp.std(axis=0)
    sd[sd == 0] = 1.0
    d = cdist((query_fp - mu) / sd, (train_fp - mu) / sd)
    if leave_out_self:
        np.fill_diagonal(d, np.inf)
    k = min(k, len(errors) - int(leave_out_self))
    near = np.argsort(d, axis=1)[:, :k]
    return np.sqrt(np.mean(errors[near] ** 2, axis=1))


def reference_neighbours(fp: np.ndarray, errors: np.ndarray) -> int:
    """The candidate k with the largest mean Gaussian log-likelihood of the errors under their leave-one-out sigma."""
    def log_likelihood(k: int) -> float:
        sigma = reference_local_sigma(fp, errors, fp, k, leave_out_self=True)
        return float(np.mean(-np.log(sigma) - 0.5 * (errors / sigma) ** 2))
    return max(sorted({min(k, len(errors) - 1) for k in NEIGHBOUR_CANDIDATES}), key=log_likelihood)


def test_local_noise_is_the_error_of_the_nearest_training_structures(tmp_path):
    """LocalNoise against a loop-by-loop reference on two-element synthetic descriptors: fingerprints, the noise of new
    structures, the leave-one-out noise of the training ones, the choice of k; a query equal to a training structure
    finds it; a round trip through the record keeps every number; bad input is refused."""
    rng = np.random.default_rng(3)
    n_atoms = rng.integers(1, 9, size=30)
    B = rng.normal(size=(int(n_atoms.sum()), 5)) + np.repeat(rng.normal(scale=2.0, size=(30, 5)), n_atoms, axis=0)
    types = rng.integers(0, 2, size=len(B))
    types[0] = 0  # structure 0's first atoms: both elements present somewhere
    errors = rng.standard_t(3, size=30) * 1e-3
    noise = LocalNoise.from_training(B, types, n_atoms, errors, 2, neighbours=3)
    owner = np.repeat(np.arange(30), n_atoms)
    fp = reference_fingerprints(B, types, owner, 30, 2)
    assert np.allclose(fingerprints(B, types, owner, 30, 2), fp, atol=1e-12)
    assert np.allclose(noise.training_sigma(), reference_local_sigma(fp, errors, fp, 3, leave_out_self=True), rtol=1e-12)
    chosen = LocalNoise.from_training(B, types, n_atoms, errors, 2)
    assert chosen.neighbours == reference_neighbours(fp, errors) and sorted(chosen.log_likelihood) == [3, 5, 7, 10, 15, 20, 29]
    q_atoms = np.array([4, 1, 6])
    qB = rng.normal(size=(int(q_atoms.sum()), 5)) * 2.0
    q_types, q_owner = rng.integers(0, 2, size=len(qB)), np.repeat(np.arange(3), q_atoms)
    expected = reference_local_sigma(fp, errors, reference_fingerprints(qB, q_types, q_owner, 3, 2), 3)
    assert np.allclose(noise.sigma(qB, q_types, q_owner, 3), expected, rtol=1e-12)
    # structure 7 as a query: itself among its 3 neighbours (distance 0), which leave-one-out excludes
    seven = owner == 7
    own = noise.sigma(B[seven], types[seven], np.zeros(int(seven.sum()), dtype=int), 1)[0]
    assert own == pytest.approx(reference_local_sigma(fp, errors, fp[7:8], 3)[0], rel=1e-12)
    back = LocalNoise.from_dict(json.loads(json.dumps(chosen.to_dict(), allow_nan=False)))
    assert np.array_equal(back.sigma(qB, q_types, q_owner, 3), chosen.sigma(qB, q_types, q_owner, 3))
    assert back.neighbours == chosen.neighbours and back.log_likelihood == chosen.log_likelihood
    with pytest.raises(HybridpotError, match="do not fit together"):
        LocalNoise.from_training(B, types, n_atoms[:-1], errors[:-1], 2)
    with pytest.raises(HybridpotError, match="needs finite, not all zero"):
        LocalNoise.from_training(B, types, n_atoms, np.where(np.arange(30) == 4, np.nan, errors), 2)
    with pytest.raises(HybridpotError, match="not all zero"):
        LocalNoise.from_training(B, types, n_atoms, np.zeros(30), 2)
    with pytest.raises(HybridpotError, match="another descriptor"):
        noise.sigma(qB[:, :4], q_types, q_owner, 3)


def test_local_intervals_cover_each_group_where_one_width_does_not():
    """Two kinds of structure, far apart in descriptor space, with held-out errors 10x apart (Gaussian, 1 and 10 meV):
    split-conformal intervals on the local noise cover about 68 % / 95 % of new structures of EACH kind, while one width
    for all (the "cv" noise) over-covers the quiet kind and under-covers the noisy one."""
    rng = np.random.default_rng(5)

    def draw(n: int):
        kind = rng.integers(0, 2, size=n)
        centre = np.where(kind[:, None] == 0, 0.0, 6.0) + rng.normal(size=(n, 4))
        B = np.repeat(centre, 3, axis=0) + 0.1 * rng.normal(size=(3 * n, 4))  # 3 atoms per structure
        return B, kind, rng.normal(size=n) * np.where(kind == 0, 1e-3, 1e-2)

    B, kind, errors = draw(300)
    noise = LocalNoise.from_training(B, np.zeros(len(B), dtype=int), np.full(300, 3), errors, 1)
    local = interval_factors(np.abs(errors) / noise.training_sigma())
    one = interval_factors(np.abs(errors) / np.sqrt(np.mean(errors**2)))
    nB, n_kind, n_err = draw(20000)
    sigma = noise.sigma(nB, np.zeros(len(nB), dtype=int), np.repeat(np.arange(20000), 3), 20000)
    for k in (0, 1):
        sel = n_kind == k
        for level, p in (("68", 0.6827), ("95", 0.95)):
            assert np.mean(np.abs(n_err[sel]) <= local[level] * sigma[sel]) == pytest.approx(p, abs=0.06)
    assert np.mean(np.abs(n_err[n_kind == 0]) <= one["68"] * np.sqrt(np.mean(errors**2))) > 0.95
    assert np.mean(np.abs(n_err[n_kind == 1]) <= one["68"] * np.sqrt(np.mean(errors**2))) < 0.5


def test_fit_intervals_are_calibrated_on_the_local_noise(tmp_path):
    """After a fit with CV errors the default noise model is "local": its per-atom energy noise of a structure comes
    from the held-out errors and fingerprints of the nearest training structures, the intervals' factors are the
    conformal quantiles of the held-out |error| / std with the leave-one-out noise, and the model file keeps all of it."""
    pot, data, sol = cv_fitted()
    posterior = pot.uq_data.posterior
    assert pot.uq_data.noise_model == "local" and posterior.interval_noise == "local"
    held_out, n = sol.cv_energy_errors, data.n_atoms
    B, types, owner = descriptors(pot, data.frames)
    fp = reference_fingerprints(B, types, owner, len(data), 1)
    k = reference_neighbours(fp, held_out)
    assert posterior.local_noise.neighbours == k
    loo = reference_local_sigma(fp, held_out, fp, k, leave_out_self=True)
    cov = posterior.covariance
    std = np.array([np.sqrt(pot.uncertainty(a, forces=False, noise="evidence")["energy_std_model"] ** 2 + (len(a) * s) ** 2)
                    for a, s in zip(data.frames, loo)])
    z = np.sort(np.abs(held_out) * n / std)  # 68 %: the 7th smallest of 9; 95 %: ceil(10 * 0.95) > 9, left out
    assert posterior.energy_interval_factors == pytest.approx({"68": z[6]}, rel=1e-7)
    atoms = rattled(rattle=0.1, repeat=1)
    u = pot.uncertainty(atoms)
    sigma = reference_local_sigma(fp, held_out, reference_fingerprints(*descriptors(pot, [atoms]), 1, 1), k)[0]
    assert u["energy_noise_local"] == pytest.approx(sigma, rel=1e-9)
    assert u["energy_std"] == pytest.approx(np.sqrt(u["energy_std_model"] ** 2 + (len(atoms) * sigma) ** 2), rel=1e-9)
    assert u["energy_interval"] == pytest.approx({"68": z[6] * u["energy_std"]}, rel=1e-9)
    assert cov.shape[0] == pot.model.coef.numel()
    save(pot, tmp_path / "local.hybridpot.json")
    back = load(tmp_path / "local.hybridpot.json")
    again = back.uncertainty(atoms)
    assert again["energy_interval"] == pytest.approx(u["energy_interval"], rel=1e-12)
    assert again["energy_std"] == pytest.approx(u["energy_std"], rel=1e-12)


def test_interval_factors_cover_new_heavy_tailed_errors():
    """Split-conformal factors from 200 heavy-tailed (Student t, 3 degrees of freedom) scores cover new scores of the
    same distribution at their nominal levels, where +-1 RMS does not; too few scores leave a level out."""
    rng = np.random.default_rng(0)
    draw = lambda n: np.abs(rng.standard_t(3, size=n))  # noqa: E731
    factors = interval_factors(draw(200))
    new = draw(200_000)
    # the coverage of a split-conformal interval from n scores is Beta distributed around (ceil((n+1)p))/(n+1)
    assert np.mean(new <= factors["68"]) == pytest.approx(0.6827, abs=0.07)
    assert np.mean(new <= factors["95"]) == pytest.approx(0.95, abs=0.03)
    rms = np.sqrt(3.0)  # the t(3) variance is 3
    assert np.mean(new <= rms) > 0.78  # +-1 RMS: far over the 68 % (0.82 here)
    assert interval_factors(np.arange(1.0, 11.0)) == {"68": 8.0}  # ceil(11 * 0.6827) = 8; ceil(11 * 0.95) = 11 > 10
    assert interval_factors(np.arange(1.0, 20.0)) == {"68": 14.0, "95": 19.0}


def noisy_cells(truth: HybridPotential, n: int, seed: int, sigma_e: float, sigma_f: float) -> list[Atoms]:
    """Rattled, strained 32-atom fcc cells labelled by ``truth`` plus Gaussian noise: sigma_e
    (eV/atom) on the energy per atom, sigma_f (eV/A) on every force component."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        atoms = rattled(a=rng.uniform(3.5, 3.75), rattle=0.08, seed=int(rng.integers(1 << 30)))
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + rng.uniform(-0.02, 0.02, (3, 3))), scale_atoms=True)
        frames.append(atoms)
    return labelled(truth, frames, stress=False, sigma_e=sigma_e, sigma_f=sigma_f, seed=seed + 1000)


@pytest.mark.slow
def test_predictive_intervals_calibrated_for_a_correct_model(fitted):
    """Labels = a linear hybrid + Gaussian noise whose energy/force ratio matches the fit's row
    weights: the evidence noise recovers sigma and the predictive intervals cover ~68 % / 95 %."""
    sigma_e, sigma_f = 0.002, 0.03
    train = from_frames(noisy_cells(fitted, 40, 0, sigma_e, sigma_f))
    n_e, n_f = len(train), 3 * int(train.n_atoms.sum())
    weights = Weights(energy=(n_e / n_f) * (sigma_f / sigma_e) ** 2, force=1.0)
    pot = cu_eam_hybrid(nmax=2, lmax=2, alpha=2.0, scale=0)
    fit(pot, train, weights)
    est_e, est_f = pot.uq_data.posterior.noise_std("evidence")
    assert est_f == pytest.approx(sigma_f, rel=0.05)
    assert est_e == pytest.approx(sigma_e, rel=0.05)
    assert pot.uq_data.posterior.noise_std("residual")[1] == pytest.approx(sigma_f, rel=0.05)  # 3840 force rows
    z_e, z_f = [], []
    for atoms in noisy_cells(fitted, 60, 1, sigma_e, sigma_f):
        u = pot.uncertainty(atoms, noise="evidence")
        z_e.append((u["energy"] - atoms.get_potential_energy()) / u["energy_std"])
        z_f.append(((u["forces"] - atoms.get_forces()) / u["force_std"]).ravel())
    z_e, z_f = np.abs(z_e), np.abs(np.concatenate(z_f))
    # binomial standard errors: energies sqrt(.68 * .32 / 60) = 0.06, forces sqrt(.68 * .32 / 5760) = 0.006
    assert np.mean(z_e <= 1) == pytest.approx(0.683, abs=3 * 0.06)
    assert np.mean(z_e <= 1.96) == pytest.approx(0.95, abs=3 * 0.028)
    assert np.mean(z_f <= 1) == pytest.approx(0.683, abs=3 * 0.006)
    assert np.mean(z_f <= 1.96) == pytest.approx(0.95, abs=3 * 0.003)


def test_uncertainty_errors(bundled_train):
    pot = cu_eam_hybrid(nmax=2, lmax=2, alpha=2.0, scale=0)
    with pytest.raises(HybridpotError, match="no uncertainty data"):
        pot.uncertainty(rattled())
    with pytest.raises(HybridpotError, match="one ase.Atoms"):
        from hybridpot.uq import uncertainty

        uncertainty(pot, [rattled()])


# ------------------------------------------------------------------------------ fallback


def test_smoothstep_is_c2():
    u = torch.linspace(-0.5, 1.5, 2001, dtype=torch.float64, requires_grad=True)
    s = smoothstep_off(u)
    (d1,) = torch.autograd.grad(s.sum(), u, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), u)
    d1 = d1.detach()
    s_, u_ = s.detach(), u.detach()
    assert float(s_[u_ <= 0].min()) == 1.0 and float(s_[u_ >= 1].max()) == 0.0
    assert torch.all(torch.diff(s_) <= 0)
    ends = (u.detach() - 0).abs().argmin(), (u.detach() - 1).abs().argmin()
    for k in ends:
        assert abs(float(d1[k])) < 1e-12 and abs(float(d2[k])) < 1e-9


def band_of(potential: HybridPotential, atoms: Atoms, measure: str) -> tuple[float, float]:
    """A band putting part of ``atoms`` fully on, part switching and part off."""
    fb = enable_fallback(potential, 0.0, 1.0, measure=measure)
    B, types, _ = descriptors(potential, [atoms])
    with torch.no_grad():
        g = fb.measure_of(torch.as_tensor(B), torch.as_tensor(types), potential.model).numpy()
    disable_fallback(potential)
    return float(np.quantile(g, 0.25)), float(np.quantile(g, 0.85))


def strained_rattled() -> Atoms:
    """A rattled cell under a general (non-symmetric) strain, for the finite-difference checks."""
    atoms = rattled(rattle=0.2, seed=2)
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + [[0.03, 0.02, 0], [0, -0.02, 0.01], [0.01, 0, 0.02]]), scale_atoms=True)
    return atoms


def assert_forces_and_stress_match_finite_differences(potential, atoms: Atoms) -> None:
    assert_forces_match_finite_differences(potential, atoms, rel=1e-6, h=1e-4)
    assert_stress_matches_finite_differences(potential, atoms, rel=1e-6)


@pytest.mark.parametrize("measure", ["gamma", "std"])
def test_fallback_forces_and_stress_match_finite_differences(fitted, measure):
    atoms = strained_rattled()
    lower, upper = band_of(fitted, atoms, measure)
    enable_fallback(fitted, lower, upper, measure=measure)
    try:
        s = fitted.uncertainty(atoms)["switch"]
        assert np.sum((s > 0.01) & (s < 0.99)) >= 3, "some atoms must be inside the switching band"
        assert np.any(s == 0) and np.any(s == 1)
        assert_forces_and_stress_match_finite_differences(fitted, atoms)
    finally:
        disable_fallback(fitted)


def test_fallback_limits_are_baseline_only_and_full_hybrid(fitted):
    atoms = rattled(rattle=0.15, seed=4)
    full = to_numpy(fitted.compute(atoms))
    base = to_numpy(fitted.baseline.compute(atoms))
    ref = fitted.uq_data.reference_energies["Cu"]
    try:
        enable_fallback(fitted, 1e3, 2e3)  # nothing reaches the band: the plain hybrid
        on = to_numpy(fitted.compute(atoms))
        assert np.array_equal(on["energies"], full["energies"]) and np.array_equal(on["forces"], full["forces"])
        enable_fallback(fitted, 0.0, 1e-6)  # everything beyond it: baseline + reference energies
        off = to_numpy(fitted.compute(atoms))
        assert np.allclose(off["energies"], base["energies"] + ref, rtol=0, atol=1e-12)
        assert np.allclose(off["forces"], base["forces"], rtol=0, atol=1e-12)
        assert np.allclose(off["stress"], base["stress"], rtol=0, atol=1e-14)
    finally:
        disable_fallback(fitted)


def test_fallback_rotation_invariant_and_bad_settings(fitted):
    atoms = rattled(rattle=0.2, seed=5)
    lower, upper = band_of(fitted, atoms, "gamma")
    enable_fallback(fitted, lower, upper)
    try:
        moved = atoms.copy()
        R = Rotation.random(random_state=7).as_matrix()
        moved.set_cell(atoms.cell.array @ R.T, scale_atoms=False)
        moved.positions = atoms.positions @ R.T
        r0, r1 = to_numpy(fitted.compute(atoms)), to_numpy(fitted.compute(moved))
        assert r1["energy"][0] == pytest.approx(r0["energy"][0], rel=1e-12)
        assert np.allclose(r1["forces"], r0["forces"] @ R.T, atol=1e-10)
    finally:
        disable_fallback(fitted)
    with pytest.raises(HybridpotError, match="even integer"):
        enable_fallback(fitted, 1.0, 2.0, p=5)
    with pytest.raises(HybridpotError, match="lower < upper"):
        enable_fallback(fitted, 2.0, 1.0)
    with pytest.raises(HybridpotError, match="measure"):
        enable_fallback(fitted, 1.0, 2.0, measure="entropy")
    with pytest.raises(HybridpotError, match="no reference energy"):
        enable_fallback(fitted, 1.0, 2.0, reference={"Ni": -4.0})
    with pytest.raises(HybridpotError, match="fallback scope 'cell': expected one of 'atom', 'structure'"):
        enable_fallback(fitted, 1.0, 2.0, scope="cell")
    assert fitted.fallback is None
    with pytest.raises(HybridpotError, match="no fallback enabled"):
        fallback_switches(fitted, atoms)


# structure scope: one switch per structure, the product of its atoms' switches

#: a band of the smooth grade of the small fitted model: rattled(rattle=0.2, seed=2) has grades
#: 0.48 ... 4.47 (a few atoms inside, none beyond), rattled(rattle=0.1, seed=3) 0.43 ... 0.99 (a
#: few inside), the 17 % compressed cell 5.0 ... 10.9 (all beyond)
STRUCTURE_BAND = (0.9, 5.0)


def grades(potential: HybridPotential, atoms: Atoms) -> np.ndarray:
    """(N,) the smooth grade g of each atom (the fallback's measure)."""
    saved = potential.fallback
    fb = enable_fallback(potential, 0.0, 1.0)
    B, types, _ = descriptors(potential, [atoms])
    with torch.no_grad():
        g = fb.measure_of(torch.as_tensor(B), torch.as_tensor(types)).numpy()
    potential.fallback = saved
    return g


def test_structure_scope_forces_and_stress_match_finite_differences(fitted):
    atoms = strained_rattled()
    lower, upper = STRUCTURE_BAND
    g = grades(fitted, atoms)
    assert np.sum((g > lower) & (g < upper)) >= 3 and g.max() < upper, "several atoms inside the band, none beyond"
    enable_fallback(fitted, lower, upper, scope="structure")
    try:
        S = fitted.uncertainty(atoms)["switch"]
        assert np.all(S == S[0]) and 0.01 < S[0] < 0.99, S[0]
        assert_forces_and_stress_match_finite_differences(fitted, atoms)
    finally:
        disable_fallback(fitted)


def test_structure_scope_is_exactly_the_baseline_once_one_atom_is_beyond_the_band(fitted):
    """Atoms inside the data keep the residual with the atom scope; with the structure scope the
    whole structure is baseline + reference energies as soon as one atom is beyond the band."""
    ref = fitted.uq_data.reference_energies["Cu"]
    for atoms in (rattled(rattle=0.2, seed=2), rattled(a=3.0, rattle=0.05)):
        g = grades(fitted, atoms)
        assert g.max() >= 2.0
        base = to_numpy(fitted.baseline.compute(atoms))
        try:
            enable_fallback(fitted, 1.0, 2.0, scope="structure")
            assert np.all(fallback_switches(fitted, atoms) == 0.0)
            off = to_numpy(fitted.compute(atoms))
            assert np.allclose(off["energies"], base["energies"] + ref, rtol=0, atol=1e-12)
            assert np.allclose(off["forces"], base["forces"], rtol=0, atol=1e-12)
            assert np.allclose(off["stress"], base["stress"], rtol=0, atol=1e-14)
            if g.min() < 1.0:  # the per-atom switch leaves those atoms' residual on
                enable_fallback(fitted, 1.0, 2.0, scope="atom")
                s = fallback_switches(fitted, atoms)
                assert np.all(s[g <= 1.0] == 1.0)
                assert abs(to_numpy(fitted.compute(atoms))["energy"][0] - off["energy"][0]) > 1e-3
        finally:
            disable_fallback(fitted)
    # every atom inside the data: the plain hybrid, bit for bit
    atoms = rattled(rattle=0.1, seed=3)
    full = to_numpy(fitted.compute(atoms))
    try:
        enable_fallback(fitted, 1.0, 2.0, scope="structure")
        on = to_numpy(fitted.compute(atoms))
    finally:
        disable_fallback(fitted)
    assert np.array_equal(on["energies"], full["energies"]) and np.array_equal(on["forces"], full["forces"])


def test_structure_scope_batch_equals_structures_evaluated_separately(fitted):
    frames = [rattled(rattle=0.2, seed=2), rattled(rattle=0.1, seed=3, repeat=1), rattled(a=3.0, rattle=0.05),
              rattled(rattle=0.1, seed=3)]
    enable_fallback(fitted, *STRUCTURE_BAND, scope="structure")
    try:
        S = [fallback_switches(fitted, a)[0] for a in frames]
        assert 0 < S[0] < 1 and S[2] == 0 and 0 < S[3] < 1, S
        batch = to_numpy(fitted.compute(frames))
        alone = [to_numpy(fitted.compute(a)) for a in frames]
    finally:
        disable_fallback(fitted)
    ptr = np.cumsum([0] + [len(a) for a in frames])
    for k, r in enumerate(alone):
        assert batch["energy"][k] == pytest.approx(r["energy"][0], rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(batch["energies"][ptr[k] : ptr[k + 1]], r["energies"], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(batch["forces"][ptr[k] : ptr[k + 1]], r["forces"], rtol=0, atol=1e-11)
        np.testing.assert_allclose(batch["stress"][k], r["stress"][0], rtol=0, atol=1e-13)


def nve_deviation(potential: HybridPotential, atoms: Atoms, dt_fs: float, time_fs: float, seed: int = 0):
    """Velocity Verlet; max |E_tot(t) - E_tot(0)| (eV) and the fraction of steps with an atom
    inside the switching band."""
    from ase import units
    from ase.md.verlet import VelocityVerlet

    from hybridpot.calculator import Calculator
    from hybridpot.md import initial_velocities

    atoms = atoms.copy()
    atoms.calc = Calculator(potential)
    atoms.set_velocities(initial_velocities(atoms, 1200.0, seed))
    dyn = VelocityVerlet(atoms, timestep=dt_fs * units.fs)
    energies, in_band = [], []

    def record():
        energies.append(atoms.get_total_energy())
        s = fallback_switches(potential, atoms)
        in_band.append(bool(np.any((s > 0) & (s < 1))))

    dyn.attach(record, interval=1)
    dyn.run(int(round(time_fs / dt_fs)))
    e = np.array(energies)
    return float(np.max(np.abs(e - e[0]))), float(np.mean(in_band))


@pytest.mark.slow
@pytest.mark.parametrize("scope", ["atom", "structure"])
def test_nve_through_the_fallback_band_conserves_energy(fitted, scope):
    """With energy-consistent forces, velocity Verlet's energy error shrinks as dt^2; a force
    that is not -dE/dx (e.g. a switch missing from the forces) would leave an O(1) drift."""
    atoms = rattled(a=3.55, rattle=0.12, seed=8)
    # the structure's switch must stay strictly between 0 and 1: a band reaching above the grades
    lower, upper = band_of(fitted, atoms, "gamma") if scope == "atom" else (0.8, 3.0)
    enable_fallback(fitted, lower, upper, scope=scope)
    try:
        dev_1, band_1 = nve_deviation(fitted, atoms, 1.0, 100.0)
        dev_2, band_2 = nve_deviation(fitted, atoms, 0.5, 100.0)
    finally:
        disable_fallback(fitted)
    assert band_1 > 0.9 and band_2 > 0.9, "the run must go through the switching band"
    print(f"NVE max |dE|: dt 1 fs {dev_1:.3e} eV, dt 0.5 fs {dev_2:.3e} eV, ratio {dev_1 / dev_2:.2f}")
    assert 3.5 < dev_1 / dev_2 < 4.5, (dev_1, dev_2)


# ------------------------------------------------------------------------------ committee, files


def test_committee_mean_spread_and_round_trip(tmp_path, fitted):
    torch.manual_seed(0)
    K = fitted.descriptor.n_features
    members = [NNModel(["Cu"], K, hidden=[4]) for _ in range(3)]
    committee = CommitteeModel(members)
    B = torch.randn(10, K, dtype=torch.float64)
    types = torch.zeros(10, dtype=torch.int64)
    assert torch.allclose(committee(B, types), torch.stack([m(B, types) for m in members]).mean(0))
    pot = HybridPotential(fitted.baseline, fitted.descriptor, committee)
    pot.uq_data = fitted.uq_data
    atoms = rattled(rattle=0.1, seed=9, repeat=1)
    u = pot.uncertainty(atoms)
    single = [to_numpy(HybridPotential(fitted.baseline, fitted.descriptor, m).compute(atoms)) for m in members]
    assert u["source"] == "committee"
    assert u["energy_std"] == pytest.approx(np.std([r["energy"][0] for r in single], ddof=1), rel=1e-10)
    assert np.allclose(u["force_std"], np.std([r["forces"] for r in single], axis=0, ddof=1), rtol=1e-10)
    path = save(pot, tmp_path / "c.hybridpot.json")
    again = load(path)
    assert isinstance(again.model, CommitteeModel)
    assert again.uncertainty(atoms)["energy_std"] == pytest.approx(u["energy_std"], rel=1e-12)
    with pytest.raises(HybridpotError, match="at least 2"):
        CommitteeModel(members[:1])
    with pytest.raises(HybridpotError, match="member 1"):
        CommitteeModel([members[0], NNModel(["Cu"], K + 1, hidden=[4])])


def test_model_file_keeps_uq_and_fallback(tmp_path, fitted):
    atoms = rattled(rattle=0.2, seed=2)
    lower, upper = band_of(fitted, atoms, "gamma")
    enable_fallback(fitted, lower, upper)
    try:
        path = save(fitted, tmp_path / "m.hybridpot.json")
        ref = fitted.uncertainty(atoms)
    finally:
        disable_fallback(fitted)
    again = load(path)
    assert again.fallback is not None and again.fallback.to_dict() == json.loads(path.read_text())["fallback"]
    u = again.uncertainty(atoms)
    for key in ("energy", "energy_std", "atom_energy_std", "force_std", "gamma", "switch", "forces"):
        assert np.array_equal(np.asarray(u[key]), np.asarray(ref[key])), key
    # version-1 files (no uncertainty data) still load; unknown versions are refused clearly
    doc = json.loads(path.read_text())
    for key in ("uq", "fallback", "checksum"):  # what a version-1 file is (the checksum came with version 3)
        doc.pop(key)
    doc["version"] = 1
    v1 = tmp_path / "v1.hybridpot.json"
    v1.write_text(json.dumps(doc))
    old = load(v1)
    assert old.uq_data is None and old.fallback is None
    doc["version"] = 99
    v1.write_text(json.dumps(doc))
    with pytest.raises(HybridpotError, match="version 99 is not supported"):
        load(v1)
    doc = json.loads(path.read_text())
    doc["uq"]["active_set"]["rows"][0]["base64"] = "AAAA"
    bad = tmp_path / "bad.hybridpot.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(HybridpotError, match="corrupt uncertainty data"):
        load(bad)


def test_model_file_keeps_fallback_scope(tmp_path, fitted):
    atoms = rattled(rattle=0.2, seed=2)
    enable_fallback(fitted, *STRUCTURE_BAND, scope="structure")
    try:
        path = save(fitted, tmp_path / "m.hybridpot.json")
        ref = to_numpy(fitted.compute(atoms))
    finally:
        disable_fallback(fitted)
    doc = json.loads(path.read_text())
    assert doc["fallback"]["scope"] == "structure"
    again = load(path)
    assert again.fallback.scope == "structure" and again.fallback.to_dict() == doc["fallback"]
    r = to_numpy(again.compute(atoms))
    assert np.array_equal(r["energies"], ref["energies"]) and np.array_equal(r["forces"], ref["forces"])
    # files written before scopes existed (version 2: no checksum either) have no scope key: per-atom switch
    doc["fallback"].pop("scope")
    doc.pop("checksum")
    doc["version"] = 2
    old = tmp_path / "old.hybridpot.json"
    old.write_text(json.dumps(doc))
    assert load(old).fallback.scope == "atom"
    doc["fallback"]["scope"] = "galaxy"
    old.write_text(json.dumps(doc))
    with pytest.raises(HybridpotError, match="corrupt uncertainty data.*fallback scope 'galaxy'"):
        load(old)


def test_cli_md_sets_the_fallback_band_and_scope(tmp_path, fitted, capsys):
    from ase.io import write

    from hybridpot.cli import main

    model = save(fitted, tmp_path / "m.hybridpot.json")
    cell = tmp_path / "cell.xyz"
    write(cell, rattled(rattle=0.2, seed=2))
    out = tmp_path / "run.json"
    args = ["md", str(model), str(cell), "--steps", "3", "--temperature", "300"]
    assert main(args + ["--fallback", "0.9", "5", "--fallback-scope", "structure", "--json", str(out)]) == 0
    assert "fallback: gamma in [0.9, 5], scope structure" in capsys.readouterr().out
    assert json.loads(out.read_text())["steps"] == 3
    # the scope alone needs a fallback: in the model file or from --fallback
    assert main(args + ["--fallback-scope", "structure"]) == 2
    assert "--fallback-scope needs a fallback" in capsys.readouterr().err
    assert main(args + ["--fallback", "2", "1"]) == 2
    assert "need 0 <= lower < upper" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(args + ["--fallback", "1", "2", "--fallback-scope", "cell"])
    assert "invalid choice: 'cell'" in capsys.readouterr().err
    from hybridpot.cli import build_parser
    from hybridpot.uq import SCOPES

    md = build_parser()._subparsers._group_actions[0].choices["md"]
    assert tuple(next(a for a in md._actions if a.dest == "fallback_scope").choices) == SCOPES
    # a model file with a fallback: --fallback-scope changes only the scope
    enable_fallback(fitted, *STRUCTURE_BAND, measure="gamma")
    try:
        stored = save(fitted, tmp_path / "fb.hybridpot.json")
    finally:
        disable_fallback(fitted)
    assert main(["md", str(stored), str(cell), "--steps", "2", "--fallback-scope", "structure"]) == 0
    assert "fallback: gamma in [0.9, 5], scope structure" in capsys.readouterr().out


FIT = """
[data]
train = "{train}"
[baseline]
file = "{eam}"
[descriptor]
nmax = 2
lmax = 2
rcut = 4.5
[model]
type = "{model}"
{extra}
[output]
dir = "out"
plots = false
"""


@pytest.mark.parametrize("model,extra", [("linear", ""), ("quadratic", ""),
                                         ("nn", "hidden = [8]\nepochs = 3\ncommittee = 2\npatience = 5")])
def test_fit_job_model_has_uncertainty_out_of_the_box(tmp_path, model, extra):
    from hybridpot.cli import main

    cfg = tmp_path / "fit.toml"
    cfg.write_text(FIT.format(train=bundled("Cu_train.xyz"), eam=bundled("Cu_mishin1.eam.alloy"), model=model, extra=extra))
    assert main(["-q", "fit", str(cfg)]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["uq"]["active_set"]["max_training_gamma"] <= 1 + 1e-6
    pot = load(tmp_path / "out" / "model.hybridpot.json")
    u = pot.uncertainty(rattled(rattle=0.1, seed=3))
    for key in ("energy_std", "atom_energy_std", "force_std", "gamma"):
        assert np.all(np.isfinite(u[key])) and np.all(np.asarray(u[key]) > 0), key
    assert u["source"] == ("committee" if model == "nn" else "posterior")


def test_fit_job_refuses_committee_for_linear(tmp_path, capsys):
    from hybridpot.cli import main

    cfg = tmp_path / "fit.toml"
    cfg.write_text(FIT.format(train=bundled("Cu_train.xyz"), eam=bundled("Cu_mishin1.eam.alloy"), model="linear", extra="committee = 3"))
    assert main(["-q", "fit", str(cfg)]) == 2
    assert "committee = 3 applies to nn models" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.parametrize("bootstrap", [True, False])
def test_committee_spread_is_scaled_out_of_bag(tmp_path, bootstrap):
    """A bootstrap committee's spread is scaled so that its RMS matches the RMS error of each training
    structure's out-of-bag prediction (the mean of the members that never saw it). The factors are
    recomputed here from members evaluated one structure at a time through the ASE calculator."""
    from hybridpot import Calculator
    from hybridpot.cli import main
    from hybridpot.uq import member_potential

    cfg = tmp_path / "fit.toml"
    extra = f"hidden = [8]\nepochs = 20\ncommittee = 4\npatience = 50\nbootstrap = {str(bootstrap).lower()}"
    cfg.write_text(FIT.format(train=bundled("Cu_train.xyz"), eam=bundled("Cu_mishin1.eam.alloy"), model="nn", extra=extra))
    assert main(["-q", "fit", str(cfg)]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    pot = load(tmp_path / "out" / "model.hybridpot.json")
    scale = pot.uq_data.committee_scale
    atoms = rattled(rattle=0.1, seed=4, repeat=1)
    u = pot.uncertainty(atoms)
    if not bootstrap:  # no structure is out of bag: the raw spread
        assert scale is None and "committee_scale" not in report["uq"]
        assert u["energy_std"] == u["energy_std_model"] and np.array_equal(u["force_std"], u["force_std_model"])
        return
    assert report["uq"]["committee_scale"] == scale
    resamples = [m["resample"] for m in report["fit"]["nn_committee"]["members"]]
    frames = read_dataset(bundled("Cu_train.xyz")).frames
    e_err, e_std, f_err, f_std = [], [], [], []
    for s, atoms_s in enumerate(frames):
        oob = [c for c, r in enumerate(resamples) if s not in r]
        if not oob:
            continue
        e, f = [], []
        for member in pot.model.members:
            calc_atoms = atoms_s.copy()
            calc_atoms.calc = Calculator(member_potential(pot, member))
            e.append(calc_atoms.get_potential_energy() / len(atoms_s))
            f.append(calc_atoms.get_forces())
        e, f = np.array(e), np.array(f)
        e_err.append(e[oob].mean() - atoms_s.get_potential_energy() / len(atoms_s))
        e_std.append(e.std(ddof=1))
        f_err.append(f[oob].mean(axis=0) - atoms_s.get_forces())
        f_std.append(f.std(axis=0, ddof=1))
    assert scale["n_structures"] == len(e_err) > 0
    assert scale["energy"] == pytest.approx(np.sqrt(np.sum(np.square(e_err)) / np.sum(np.square(e_std))), rel=1e-8)
    assert scale["forces"] == pytest.approx(np.sqrt(np.sum(np.concatenate(f_err) ** 2) / np.sum(np.concatenate(f_std) ** 2)), rel=1e-8)
    assert u["energy_std"] == pytest.approx(scale["energy"] * u["energy_std_model"], rel=1e-12)
    assert np.allclose(u["force_std"], scale["forces"] * u["force_std_model"], rtol=1e-12)
