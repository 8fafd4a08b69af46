"""Fitting the residual: assembly against autograd, weight recovery, co-fitting, reproducibility."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from hybridpot.dataset import bundled, from_frames
from hybridpot.descriptors import SO3
from hybridpot.design import DesignAssembler
from hybridpot.empirical import LennardJones, load
from hybridpot.fitting.assembly import Weights, fold_batches
from hybridpot.fitting.config import parse_config
from hybridpot.fitting.job import run_fit
from hybridpot.fitting.linear import fit_linear
from hybridpot.models import PolynomialModel
from hybridpot.potential import HybridPotential, evaluate, to_numpy
from hybridpot.prediction import BaselinePredictions, baseline_predictions, batches, predict
from hybridpot.system import AtomicSystem
from hybridpot.testing import fd_forces, fd_stress, labelled, max_rel
from tests.builders import cu_eam_hybrid
from tests.structures import cluster, cu_frames, random_triclinic, slab


@pytest.mark.parametrize("quadratic", [False, True], ids=["linear", "quadratic"])
def test_design_rows_match_autograd(quadratic):
    """Rows assembled from pair-form gradients, times the coefficients, equal the energies, forces and
    virials the same model gives by autograd through the descriptor."""
    pot = cu_eam_hybrid(quadratic=quadratic)
    pot.baseline = None
    frames = cu_frames(3)
    check_rows(pot, frames)


@pytest.mark.parametrize("quadratic", [False, True], ids=["linear", "quadratic"])
def test_design_rows_match_autograd_two_elements(quadratic):
    """The same with two elements: each pair's gradient lands in its centre element's block."""
    d = SO3(rcut=4.5, nmax=3, lmax=2, alpha=1.5, elements=["Ni", "Cu"], weights={"Ni": 1.0, "Cu": 2.0})
    model = PolynomialModel(["Ni", "Cu"], d.n_features, quadratic=quadratic)
    with torch.no_grad():
        model.coef.copy_(torch.from_numpy(np.random.default_rng(4).normal(size=model.coef.shape) * 0.02))
    pot = HybridPotential(None, d, model)
    frames = [random_triclinic(["Cu", "Ni"], seed=k, repeat=(2, 2, 2)) for k in range(3)] + [slab(["Cu", "Ni"]), cluster(["Ni", "Cu"])]
    check_rows(pot, frames, pair_budget=50_000)  # a small budget: several pair chunks per batch
    check_rows(pot, frames)


def test_summed_design_rows_equal_the_pair_path():
    """The rows of a quadratic model summed in descriptor space equal those formed from each pair's feature
    gradients (the path of every other linear model) to round-off."""
    d = SO3(rcut=4.5, nmax=3, lmax=2, alpha=1.5, elements=["Ni", "Cu"])
    frames = [random_triclinic(["Cu", "Ni"], seed=7, repeat=(2, 2, 2)), slab(["Ni", "Cu"])]
    for quadratic in (True,):
        model = PolynomialModel(["Ni", "Cu"], d.n_features, quadratic=quadratic)
        pot = HybridPotential(None, d, model)
        summed = DesignAssembler(d, model, pot.types, pot.cutoff).rows(frames)

        class PairPath:  # the same model seen without summed_gradients
            def __getattr__(self, name):
                if name == "summed_gradients":
                    raise AttributeError(name)
                return getattr(model, name)

        paired = DesignAssembler(d, PairPath(), pot.types, pot.cutoff).rows(frames)
        for key in ("forces", "virial"):
            scale = np.abs(paired[key]).max()
            assert np.abs(summed[key] - paired[key]).max() < 1e-12 * scale, (quadratic, key)


def check_rows(pot, frames, pair_budget=32 * 1024**2):
    rows = DesignAssembler(pot.descriptor, pot.model, pot.types, pot.cutoff, pair_budget).rows(frames)
    coef = pot.model.coef.detach().numpy().ravel()
    ref = to_numpy(evaluate(pot, AtomicSystem.from_atoms(frames)))
    n = np.array([len(a) for a in frames])
    assert np.allclose(rows["energy"] @ coef, ref["energy"] / n, rtol=1e-12, atol=1e-12)
    assert max_rel(rows["forces"] @ coef, ref["forces"]) < 1e-10
    assert max_rel(rows["virial"] @ coef, ref["virial"] / n[:, None, None]) < 1e-10
    # without the virial rows (a batch with no stress rows): the same force rows, and no virial rows
    bare = DesignAssembler(pot.descriptor, pot.model, pot.types, pot.cutoff, pair_budget).rows(frames, virial=False)
    assert "virial" not in bare
    assert np.array_equal(bare["forces"], rows["forces"]) and np.array_equal(bare["energy"], rows["energy"])


def test_fold_batches_keep_each_batch_within_one_fold():
    """Design batches hold about batch_atoms atoms, every structure once, and the structures of one fold each."""
    rng = np.random.default_rng(3)
    counts = rng.integers(1, 40, size=57)
    folds = rng.permutation(57) % 5
    index = fold_batches(counts, folds, 100)
    assert np.array_equal(np.sort(np.concatenate(index)), np.arange(57))
    for idx in index:
        assert len(np.unique(folds[idx])) == 1
        assert counts[idx][:-1].sum() < 100  # it closes at the structure that reaches batch_atoms
    assert [folds[idx[0]] for idx in index] == sorted(folds[idx[0]] for idx in index)  # fold 0's batches first
    assert [list(b) for b in fold_batches(counts, np.zeros(57, int), 100)] == [list(b) for b in batches(counts, 100)]


def test_linear_solve_recovers_known_weights():
    truth = cu_eam_hybrid(seed=1)
    data = from_frames(labelled(truth, cu_frames(6)))
    pot = cu_eam_hybrid(seed=2)  # same structure, wrong coefficients
    bl = baseline_predictions(pot.baseline, data, progress=False)
    weights = Weights(energy=1.0, force=1.0, stress=0.1)
    fit_linear(pot, data, bl, weights, regularization=0.0, progress=False)
    c_fit, c_true = pot.model.coef.detach().numpy(), truth.model.coef.detach().numpy()
    assert np.max(np.abs(c_fit - c_true)) / np.max(np.abs(c_true)) < 1e-7
    sol, _ = fit_linear(pot, data, bl, weights, regularization="evidence", progress=False)
    assert sol.method == "evidence"
    assert np.max(np.abs(pot.model.coef.detach().numpy() - c_true)) / np.max(np.abs(c_true)) < 1e-5


def test_energy_weight_cv_errors_match_explicit_refits():
    """The CV errors of each candidate energy weight, computed from the per-fold, per-kind factors,
    equal refitting on the other folds' structures and predicting the held-out ones; the final
    coefficients equal a fit with the chosen weight fixed."""
    truth = cu_eam_hybrid(seed=1)
    data = from_frames(labelled(truth, cu_frames(9), stress=False, sigma_e=2e-3, sigma_f=0.02))
    pot = cu_eam_hybrid(seed=2)
    bl = baseline_predictions(pot.baseline, data, progress=False)
    sol, used = fit_linear(pot, data, bl, Weights(energy=7.0), cv_folds=3, seed=4, progress=False, energy_weights=[0.1, 10.0, 1000.0])
    cv = sol.energy_weight_cv
    # the candidates are factors of the given energy weight
    assert used.energy == 7.0 * cv["chosen"] == cv["energy_weight"] and cv["candidates"] == [0.1, 10.0, 1000.0] and cv["n_folds"] == 3
    folds = np.random.default_rng(4).permutation(len(data)) % 3
    n_e, n_f = len(data), 3 * int(data.n_atoms.sum())
    for c, w in enumerate(cv["candidates"]):
        e_sq, f_sq = 0.0, 0.0
        for k in range(3):
            train, held = data.subset(np.where(folds != k)[0]), data.subset(np.where(folds == k)[0])
            # the same rows as in the full fit: weights normalised by the whole set's row counts
            sub_w = Weights(energy=7.0 * w * len(train) / n_e, force=3 * int(train.n_atoms.sum()) / n_f)
            refit = cu_eam_hybrid(seed=2)
            fit_linear(refit, train, baseline_predictions(refit.baseline, train, progress=False), sub_w, progress=False)
            p = predict(refit, held, progress=False)
            e_sq += np.sum(((p["energy"] - held.energy) / held.n_atoms) ** 2)
            f_sq += np.sum((p["forces"] - held.forces) ** 2)
        assert cv["energy_rmse_meV_atom"][c] == pytest.approx(1000 * np.sqrt(e_sq / n_e), rel=1e-7)
        assert cv["force_rmse_eV_A"][c] == pytest.approx(np.sqrt(f_sq / n_f), rel=1e-7)
    fixed = cu_eam_hybrid(seed=2)
    fit_linear(fixed, data, bl, Weights(energy=7.0 * cv["chosen"]), progress=False)
    assert max_rel(pot.model.coef.detach().numpy(), fixed.model.coef.detach().numpy()) < 1e-9
    # the score: each error relative to the best any candidate reaches, or to the given targets
    e, f = np.array(cv["energy_rmse_meV_atom"]), np.array(cv["force_rmse_eV_A"])
    assert np.allclose(cv["score"], e / e.min() + f / f.min(), rtol=1e-12)
    sol_t, _ = fit_linear(cu_eam_hybrid(seed=2), data, bl, Weights(energy=7.0), cv_folds=3, seed=4, progress=False,
                          energy_weights=[0.1, 10.0, 1000.0], energy_weight_targets=(0.5, 0.01))
    assert np.allclose(sol_t.energy_weight_cv["score"], e / 0.5 + f / 0.01, rtol=1e-12)
    assert sol_t.energy_weight_cv["chosen"] == cv["candidates"][int(np.argmin(e / 0.5 + f / 0.01))]


def test_energy_weight_cv_bad_input():
    """The API refuses what choosing an energy weight cannot work with, naming the problem."""
    truth = cu_eam_hybrid(seed=1)
    data = from_frames(labelled(truth, cu_frames(3)))
    pot = cu_eam_hybrid(seed=2)
    bl = baseline_predictions(pot.baseline, data, progress=False)
    with pytest.raises(ValueError, match="energy weight candidates must be positive numbers"):
        fit_linear(pot, data, bl, Weights(), progress=False, energy_weights=[10.0, 0.0])
    with pytest.raises(ValueError, match="at least 2 cross-validation folds"):
        fit_linear(pot, data.subset(np.array([0])), BaselinePredictions(bl.energy[:1], bl.forces[: data.n_atoms[0]], bl.virial[:1]),
                   Weights(), progress=False, energy_weights=[1.0, 10.0])
    with pytest.raises(ValueError, match="needs energy and force rows"):
        fit_linear(pot, data, bl, Weights(force=0.0), progress=False, energy_weights=[1.0, 10.0])


@pytest.mark.parametrize("noisy, expected", [("energy", 0.01), ("forces", 1e4)])
def test_energy_weight_cv_follows_the_noise(noisy, expected):
    """Exact forces and noisy energies: CV picks the smallest energy weight; exact energies and
    noisy forces: the largest."""
    truth = cu_eam_hybrid(seed=1)
    e_noise, f_noise = (5e-3, 0.0) if noisy == "energy" else (0.0, 0.1)
    data = from_frames(labelled(truth, cu_frames(12), stress=False, sigma_e=e_noise, sigma_f=f_noise, seed=3))
    pot = cu_eam_hybrid(seed=2)
    bl = baseline_predictions(pot.baseline, data, progress=False)
    sol, _ = fit_linear(pot, data, bl, Weights(), cv_folds=4, progress=False, energy_weights=[0.01, 1.0, 1e4])
    assert sol.energy_weight_cv["chosen"] == expected, sol.energy_weight_cv
    assert sol.energy_weight_cv["at_edge"]


def test_fit_job_with_energy_weight_cv(tmp_path):
    """``energy_weight = "cv"`` through ``hybridpot fit``: the choice is reported, and the fit (and its
    uncertainty data) are those of the chosen weight given as a number."""
    fits = {}
    for name, ew in (("cv", "cv"), ("fixed", None)):
        fit = {"energy_weight": "cv", "energy_weight_candidates": [3, 30, 300]} if ew else \
            {"energy_weight": fits["cv"].report["fit"]["energy_weight_cv"]["chosen"]}
        cfg = _config(tmp_path / name, n_train=10, fit=fit)
        fits[name] = run_fit(cfg, progress=False, log=lambda s: None)
    cv = fits["cv"].report["fit"]["energy_weight_cv"]
    assert cv["chosen"] in (3, 30, 300) and len(cv["score"]) == 3 and min(cv["score"]) >= 2.0
    assert "energy_weight_cv" not in fits["fixed"].report["fit"]
    a, b = (fits[k].potential.model.coef.detach().numpy() for k in ("cv", "fixed"))
    assert max_rel(a, b) < 1e-9
    assert fits["cv"].report["uq"]["noise"]["evidence"] == pytest.approx(fits["fixed"].report["uq"]["noise"]["evidence"], rel=1e-6)


def _with_stress(frames, stresses):
    out = []
    for a, st in zip(frames, stresses):
        b = a.copy()
        b.calc = SinglePointCalculator(b, energy=a.get_potential_energy(), forces=a.get_forces(), stress=st)
        out.append(b)
    return out


def _baseline_stress_pair():
    """The same structures twice: without stresses, and with the baseline's own stress as reference."""
    frames = labelled(cu_eam_hybrid(seed=1), cu_frames(5), stress=False)
    baseline = cu_eam_hybrid().baseline
    stresses = [to_numpy(baseline.compute(a))["stress"][0] for a in frames]
    return from_frames(frames), from_frames(_with_stress(frames, stresses))


def test_baseline_stress_rows_are_stress_rows_with_the_baseline_as_reference():
    """baseline_stress_weight = w on unlabelled structures is exactly stress_weight = w with the
    baseline's stress as the label (zero residual virial target), for the linear solve."""
    silent, labelled_by_baseline = _baseline_stress_pair()
    coefs = []
    for data, weights in ((silent, Weights(energy=1.0, force=1.0, baseline_stress=5.0)),
                          (labelled_by_baseline, Weights(energy=1.0, force=1.0, stress=5.0))):
        pot = cu_eam_hybrid(seed=2)
        fit_linear(pot, data, baseline_predictions(pot.baseline, data, progress=False), weights, regularization=1e-6, progress=False)
        coefs.append(pot.model.coef.detach().numpy().copy())
    assert np.max(np.abs(coefs[0] - coefs[1])) <= 1e-10 * np.max(np.abs(coefs[1]))
    # and it does something: the residual's virial on the training structures shrinks
    pot0, pot1 = cu_eam_hybrid(seed=2), cu_eam_hybrid(seed=2)
    for pot, w in ((pot0, 0.0), (pot1, 1e3)):
        fit_linear(pot, silent, baseline_predictions(pot.baseline, silent, progress=False),
                   Weights(energy=1.0, force=1.0, baseline_stress=w), regularization=1e-6, progress=False)
    def residual_virial(pot):
        return np.array([np.abs(to_numpy(pot.compute(a))["stress"][0] - to_numpy(pot.baseline.compute(a))["stress"][0]).max()
                         for a in silent.frames])
    assert residual_virial(pot1).max() < 0.2 * residual_virial(pot0).max()


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_baseline_stress_nn_loss_equals_stress_loss_with_baseline_reference(optimizer):
    from hybridpot.fitting.nn import fit_nn
    from hybridpot.models.nn import NNModel, NNSettings

    silent, labelled_by_baseline = _baseline_stress_pair()
    curves = []
    for data, weights in ((silent, Weights(energy=1.0, force=1.0, baseline_stress=5.0)),
                          (labelled_by_baseline, Weights(energy=1.0, force=1.0, stress=5.0))):
        base = cu_eam_hybrid()
        torch.manual_seed(0)  # the same initial network for both
        pot = HybridPotential(base.baseline, base.descriptor, NNModel(["Cu"], base.descriptor.n_features, hidden=[4]))
        rec = fit_nn(pot, data, baseline_predictions(pot.baseline, data, progress=False), weights,
                     NNSettings(optimizer=optimizer, epochs=3, learning_rate=1e-3, patience=10, validation_fraction=0.2),
                     progress=False, log=lambda m: None)
        curves.append(np.array(rec["curve"]))
    np.testing.assert_allclose(curves[0], curves[1], rtol=1e-10)


def test_quadratic_solve_recovers_known_model():
    """Quadratic power-spectrum features are exactly dependent (the l = 0 block is a rank-one product,
    e.g. p(0,0,0) p(1,1,0) = p(0,1,0)^2 up to a constant), so the weights are not identifiable; the
    fitted model must still reproduce the true one on structures it has not seen."""
    truth = cu_eam_hybrid(quadratic=True, seed=1)
    data = from_frames(labelled(truth, cu_frames(10)))
    pot = cu_eam_hybrid(quadratic=True, seed=2)
    bl = baseline_predictions(pot.baseline, data, progress=False)
    sol, _ = fit_linear(pot, data, bl, Weights(energy=1.0, force=1.0, stress=0.1), regularization=0.0, progress=False)
    assert sol.condition > 1e12  # the dependency is real
    unseen = from_frames(labelled(truth, read(bundled("Cu_test.xyz"), index=":3")))
    pred = predict(pot, unseen, progress=False)
    assert np.max(np.abs(pred["energy"] - unseen.energy) / unseen.n_atoms) < 1e-10
    assert max_rel(pred["forces"], unseen.forces) < 1e-8


def test_predict_with_cached_baseline_equals_the_whole_hybrid():
    """Residual + cached baseline predictions = the hybrid evaluated in one piece (a periodic cell,
    and a cluster without a cell, whose stress is NaN either way)."""
    from ase.cluster import Icosahedron

    pot = cu_eam_hybrid(seed=3)
    cluster = Icosahedron("Cu", 2, latticeconstant=3.615)
    frames = cu_frames(3) + [cluster]
    frames[-1].calc = SinglePointCalculator(frames[-1], energy=0.0, forces=np.zeros((len(cluster), 3)))
    data = from_frames(frames)
    whole = predict(pot, data, batch_atoms=150, progress=False)
    split = predict(pot, data, batch_atoms=150, progress=False, baseline=baseline_predictions(pot.baseline, data, progress=False))
    assert max_rel(split["energy"], whole["energy"]) < 1e-12
    assert max_rel(split["forces"], whole["forces"]) < 1e-10
    np.testing.assert_array_equal(np.isnan(split["stress"]), np.isnan(whole["stress"]))
    assert np.isnan(whole["stress"][-1]).all()
    ok = ~np.isnan(whole["stress"])
    assert max_rel(split["stress"][ok], whole["stress"][ok]) < 1e-10
    with pytest.raises(TypeError, match="HybridPotential"):
        predict(pot.baseline, data, progress=False, baseline=baseline_predictions(pot.baseline, data, progress=False))


def test_fitted_hybrid_forces_and_stress_match_finite_differences(tmp_path):
    res = run_fit(_config(tmp_path, n_train=6), progress=False, log=lambda s: None)
    atoms = read(bundled("Cu_test.xyz"), index="0")
    atoms = atoms[[k for k in range(len(atoms)) if k % 3 == 0]]  # 36 atoms, fewer FD evaluations
    pot = res.potential
    ours = to_numpy(pot.compute(atoms))
    idx = [0, 7, 21]
    assert max_rel(ours["forces"][idx], fd_forces(pot, atoms, atoms_idx=idx)[idx]) < 1e-6
    assert max_rel(ours["stress"][0], fd_stress(pot, atoms)) < 1e-6


def test_fit_is_bit_identical_when_repeated(tmp_path):
    reports = []
    for k in range(2):
        res = run_fit(_config(tmp_path / str(k), n_train=12, fraction=0.5), progress=False, log=lambda s: None)
        reports.append(res)
    a, b = (r.potential.model.coef.detach().numpy() for r in reports)
    assert np.array_equal(a, b)
    assert reports[0].report["test"] == reports[1].report["test"]
    assert reports[0].report["data"]["train"]["n_used"] == 6
    files = [json.loads((r.output_dir / "model.hybridpot.json").read_text())["model"] for r in reports]
    assert files[0] == files[1]


def test_nn_training_curve_is_reproducible(tmp_path):
    curves = []
    for k in range(2):
        cfg = _config(tmp_path / str(k), n_train=4, model={"type": "nn", "hidden": [8], "epochs": 15, "patience": 50})
        curves.append(run_fit(cfg, progress=False, log=lambda s: None).report["fit"]["nn"]["curve"])
    assert curves[0] == curves[1]
    assert curves[0][-1][1] < curves[0][0][1]


def test_nn_validation_structures_are_drawn_one_by_one():
    """Held-out structures are spread over the file (files are ordered by configuration type), and the
    copies of a structure in a bootstrap resample stay on one side of the split."""
    from hybridpot.fitting.nn import fit_nn
    from hybridpot.models.nn import NNModel, NNSettings

    base = cu_eam_hybrid()
    data = from_frames(labelled(base, cu_frames(10)))
    settings = NNSettings(optimizer="lbfgs", epochs=1, patience=1, validation_fraction=0.3)
    for sample, n_distinct in ((data, 10), (data.subset(np.repeat(np.arange(10), 2)), 10)):
        pot = HybridPotential(base.baseline, base.descriptor, NNModel(["Cu"], base.descriptor.n_features, hidden=[4]))
        rec = fit_nn(pot, sample, baseline_predictions(pot.baseline, sample, progress=False), Weights(energy=1.0, force=1.0),
                     settings, seed=3, progress=False, log=lambda m: None)
        held = np.array(rec["validation_structures"])
        copies = len(sample) // n_distinct
        assert len(held) == 3 * copies and rec["n_validation_structures"] == len(held)
        origin = np.array([data.frames.index(sample.frames[s]) for s in held])
        assert np.all(np.bincount(origin, minlength=10)[np.unique(origin)] == copies)  # every copy held out
        assert np.ptp(np.unique(origin)) > 2  # not one consecutive block


@pytest.mark.parametrize("bootstrap", [True, False])
def test_nn_committee_members_see_a_resample_or_everything(tmp_path, bootstrap):
    """[model] bootstrap: members train on seeded bootstrap resamples (repeats, different per member) or
    all on the full set (an ensemble differing only in seeds: initial weights and validation split)."""
    cfg = _config(tmp_path, n_train=6, model={"type": "nn", "hidden": [4], "epochs": 2, "patience": 5, "committee": 3,
                                                "bootstrap": bootstrap})
    rec = run_fit(cfg, progress=False, log=lambda s: None).report["fit"]["nn_committee"]
    assert rec["bootstrap"] is bootstrap
    resamples = [m["resample"] for m in rec["members"]]
    if bootstrap:
        assert all(len(r) == 6 and len(set(r)) < 6 for r in resamples) and len({tuple(r) for r in resamples}) > 1
    else:
        assert all(r == list(range(6)) for r in resamples)
        assert len({tuple(m["validation_structures"]) for m in rec["members"]}) > 1


@pytest.mark.slow
def test_lbfgs_recovers_a_known_network():
    """Data labelled by EAM + a random NN residual (one hidden layer of 8): a fresh network of the same
    shape trained by full-batch L-BFGS on 12 rattled cells reproduces the teacher on 4 unseen cells
    from the same distribution; mini-batch Adam with as many passes over the data stays far behind."""
    from hybridpot.fitting.nn import fit_nn
    from hybridpot.models.nn import NNModel, NNSettings
    from tests.builders import CU, random_model, structure

    d = SO3(rcut=4.5, nmax=3, lmax=3, alpha=1.5, elements=["Cu"])
    frames = [structure(CU, seed=s) for s in range(16)]
    teacher = HybridPotential(load(bundled("Cu_mishin1.eam.alloy")), d, random_model("nn", d, frames, seed=1, e0=[0.02]))
    data, unseen = from_frames(labelled(teacher, frames[:12])), from_frames(labelled(teacher, frames[12:]))
    residual = unseen.forces - baseline_predictions(teacher.baseline, unseen, progress=False).forces
    errors = {}
    for optimizer in ("lbfgs", "adam"):
        torch.manual_seed(5)
        student = HybridPotential(teacher.baseline, d, NNModel(["Cu"], d.n_features, hidden=[8]))
        rec = fit_nn(student, data, baseline_predictions(teacher.baseline, data, progress=False), Weights(energy=1.0, force=1.0),
                     NNSettings(optimizer=optimizer, epochs=300, patience=300, validation_fraction=0.2),
                     progress=False, log=lambda m: None)
        assert rec["optimizer"] == optimizer and rec["steps_run"] == 300
        pred = predict(student, unseen, progress=False)
        errors[optimizer] = (np.sqrt(np.mean((pred["forces"] - unseen.forces) ** 2)) / np.sqrt(np.mean(residual**2)),
                             1000 * np.sqrt(np.mean(((pred["energy"] - unseen.energy) / unseen.n_atoms) ** 2)))
    assert errors["lbfgs"][0] < 0.15  # force error relative to the residual forces (0.09 when written)
    assert errors["lbfgs"][1] < 0.5  # meV/atom (0.20 when written)
    assert errors["adam"][0] > 5 * errors["lbfgs"][0]


@pytest.mark.parametrize("model", [{"type": "linear"}, {"type": "kernel", "zeta": 2, "n_sparse": 40}], ids=["linear", "kernel"])
def test_cofit_recovers_perturbed_lj_parameters(tmp_path, model):
    """Data from LJ(eps0, sigma0); the baseline starts 10% / 3% off; variable projection with the
    linear residual (or the kernel one, its sparse points chosen before the co-fit) recovers eps0 and sigma0."""
    eps0, sig0 = 0.0104, 3.40
    truth = LennardJones(["Ar"], {("Ar", "Ar"): eps0}, {("Ar", "Ar"): sig0}, cutoff=8.0, shift=True)
    rng = np.random.default_rng(3)
    frames = []
    for k in range(6):
        a = bulk("Ar", "fcc", a=5.26 * (0.97 + 0.012 * k), cubic=True).repeat(2)
        a.positions += rng.normal(scale=0.15, size=a.positions.shape)
        frames.append(a)
    data = tmp_path / "ar.xyz"
    write(data, labelled(truth, frames, stress=False))
    raw = {
        "data": {"train": str(data)},
        "baseline": {
            "type": "lj", "elements": ["Ar"], "cutoff": 8.0, "shift": True,
            "pair": [{"elements": ["Ar", "Ar"], "epsilon": eps0 * 1.10, "sigma": sig0 * 0.97}],
            "refit": ["epsilon", "sigma"], "refit_range": 0.3, "refit_max_evals": 200, "refit_starts": 2,
        },
        "descriptor": {"rcut": 4.5, "nmax": 2, "lmax": 2, "alpha": 1.0},
        "model": model,
        "output": {"dir": str(tmp_path / "out"), "plots": False},
    }
    res = run_fit(parse_config(raw, tmp_path, "cofit test"), progress=False, log=lambda s: None)
    assert res.potential.model.kind == model["type"]
    eps, sig = (p.item() for p in (res.potential.baseline.epsilon[0], res.potential.baseline.sigma[0]))
    assert eps == pytest.approx(eps0, rel=1e-4)
    assert sig == pytest.approx(sig0, rel=1e-5)
    cofit = res.report["fit"]["cofit"]
    assert cofit["objective_final"] < 1e-6 * cofit["objective_initial"]
    assert len(cofit["starts"]) == 2 and cofit["objective_final"] == min(s["objective_final"] for s in cofit["starts"])


def test_held_out_rss_equals_explicit_fold_refits_and_picks_the_start():
    """held_out_rss against explicit ridge fits of the other folds' rows (intercept unpenalised, the same penalty per
    row: lam x rows fitted / all rows); with row_folds, variable_projection keeps the start whose parameters have the
    lowest held-out RSS and records it for every start."""
    from hybridpot.fitting.cofit import held_out_rss, variable_projection

    rng = np.random.default_rng(1)
    A = np.column_stack([np.ones(40), rng.normal(size=(40, 3))])
    y = A @ np.array([0.5, 1.0, -2.0, 0.3]) + 0.3 * rng.normal(size=40)
    row_folds = rng.permutation(40) % 4
    lam = 2.5
    expected = 0.0
    for k in range(4):
        tr, te = row_folds != k, row_folds == k
        lam_k = lam * tr.sum() / 40
        aug = np.vstack([A[tr], np.sqrt(lam_k) * np.eye(4)[1:]])  # the ridge on the three features, not the intercept
        w = np.linalg.lstsq(aug, np.concatenate([y[tr], np.zeros(3)]), rcond=None)[0]
        expected += np.sum((A[te] @ w - y[te]) ** 2)
    assert held_out_rss(A, y, row_folds, 1, lam, scale_columns=False) == pytest.approx(expected, rel=1e-10)

    def y_at(theta):  # a double well in u: the objective's local minimum near -0.7, its global one at 0.7
        u = float(theta[0])
        return y * (1.0 + (u * u - 0.49) ** 2 + 0.1 * (u - 0.7) ** 2)

    out = variable_projection(A, y_at, 1, True, np.zeros(1), np.ones(1), [np.array([-0.6]), np.array([0.5])], "LN_BOBYQA", 100,
                              progress=False, row_folds=row_folds)
    scores = [held_out_rss(A, y_at(np.array(s["u_final"])), row_folds, 1, out["ridge_lambda"], True) for s in out["starts"]]
    assert [s["cv_rss"] for s in out["starts"]] == pytest.approx(scores, rel=1e-12)
    assert out["best_start"] == int(np.argmin(scores)) == 1 and out["theta"][0] == pytest.approx(out["starts"][1]["u_final"][0])


def _config(out, n_train, fraction=1.0, model=None, fit=None):
    out.mkdir(parents=True, exist_ok=True)
    train = out / "train.xyz"
    write(train, cu_frames(n_train))
    raw = {
        "data": {"train": str(train), "test": str(bundled("Cu_test.xyz"))},
        "baseline": {"file": str(bundled("Cu_mishin1.eam.alloy"))},
        "descriptor": {"rcut": 4.5, "nmax": 3, "lmax": 3, "alpha": 1.5},
        "model": model or {"type": "linear"},
        "fit": {"train_fraction": fraction, "seed": 7} | (fit or {}),
        "output": {"dir": str(out / "fit"), "plots": False},
    }
    return parse_config(raw, out, "test config")


def test_cofit_starts_escape_a_local_optimum():
    """A double well in one baseline parameter (objective h(u) / 4, h = (u^2 - 0.49)^2 + 0.1 (u - 0.7)^2: a local minimum
    near u = -0.7, the global one at 0.7): BOBYQA from -0.6 alone ends in the local well; with a second start at 0.5 the
    lowest objective, the global well's, is kept, and each start's record is there."""
    from hybridpot.fitting.cofit import variable_projection

    rng = np.random.default_rng(0)
    A = np.column_stack([np.ones(8), rng.normal(size=8)])  # a constant (unpenalised) and one feature
    v = rng.normal(size=8)
    v -= A @ np.linalg.lstsq(A, v, rcond=None)[0]  # targets orthogonal to A: the residual model explains none of them
    v /= 2.0 * np.linalg.norm(v)

    def y_at(theta):
        u = float(theta[0])
        return np.sqrt((u * u - 0.49) ** 2 + 0.1 * (u - 0.7) ** 2) * v

    one = variable_projection(A, y_at, 1, True, np.zeros(1), np.ones(1), [np.array([-0.6])], "LN_BOBYQA", 200, progress=False)
    two = variable_projection(A, y_at, 1, True, np.zeros(1), np.ones(1), [np.array([-0.6]), np.array([0.5])], "LN_BOBYQA", 200,
                              progress=False)
    assert one["theta"][0] < -0.6 and one["objective_final"] > 0.04
    assert two["theta"][0] == pytest.approx(0.7, abs=1e-4) and two["objective_final"] < 1e-8 and two["best_start"] == 1
    assert [s["u0"] for s in two["starts"]] == [[-0.6], [0.5]]
    assert two["starts"][0]["objective_final"] == pytest.approx(one["objective_final"], rel=1e-9)
    assert len(two["history"]) == sum(s["evaluations"] for s in two["starts"])
