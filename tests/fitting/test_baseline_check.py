"""Weights normalised by the targets' spread, the baseline check (hybrid / pure ML / baseline alone CV errors)
and ``[baseline] mode``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from hybridpot.dataset import bundled, from_frames
from hybridpot.design import DesignAssembler
from hybridpot.errors import ConfigError
from hybridpot.fitting.assembly import Weights, accumulate, target_scales
from hybridpot.fitting.config import parse_config
from hybridpot.fitting.job import baseline_check_lines, run_fit
from hybridpot.fitting.linear import CVFit, cv_errors, cv_errors_of, fit_linear, kind_factors
from hybridpot.fitting.solver import QRAccumulator, solve
from hybridpot.io.modelfile import load
from hybridpot.prediction import BaselinePredictions, baseline_predictions, predict
from hybridpot.testing import labelled, max_rel
from tests.builders import cu_eam_hybrid
from tests.structures import cu_frames


def _scaled(frames, c: float):
    """Copies of ``frames`` with energies and forces multiplied by ``c`` (a consistent change of energy unit)."""
    out = []
    for a in frames:
        b = a.copy()
        b.calc = SinglePointCalculator(b, energy=c * a.get_potential_energy(), forces=c * a.get_forces())
        out.append(b)
    return out


def _scaled_baseline(bl: BaselinePredictions, c: float) -> BaselinePredictions:
    return BaselinePredictions(c * bl.energy, c * bl.forces, c * bl.virial)


@pytest.mark.parametrize("energy_weights", [(), (0.3, 3.0, 30.0)])
def test_spread_normalised_weights_are_unit_invariant(energy_weights):
    """Energies and forces (labels and baseline) in another energy unit (x 23.06, eV -> kcal/mol): the spread-normalised
    weights scale by 1/c^2, the chosen energy weight, the baseline check's choice and the model (in the new unit,
    i.e. coefficients x c) are the same to round-off; the CV errors scale by c."""
    truth = cu_eam_hybrid(seed=1)
    frames = labelled(truth, cu_frames(9), stress=False, sigma_e=2e-3, sigma_f=0.02)
    c = 23.06
    fits = []
    for factor in (1.0, c):
        data = from_frames(_scaled(frames, factor))
        pot = cu_eam_hybrid(seed=2)
        bl = _scaled_baseline(baseline_predictions(pot.baseline, data, progress=False), factor)
        w = Weights().scaled(target_scales(data, bl, ["Cu"]))
        pure = Weights().scaled(target_scales(data, baseline_predictions(None, data, progress=False), ["Cu"]))
        sol, used = fit_linear(pot, data, bl, w, cv_folds=3, progress=False, energy_weights=list(energy_weights), pure_weights=pure,
                               mode="auto")
        fits.append((pot.model.coef.detach().numpy().copy(), used, sol))
    (c1, w1, s1), (c2, w2, s2) = fits
    assert w2.energy == pytest.approx(w1.energy / c**2, rel=1e-10) and w2.force == pytest.approx(w1.force / c**2, rel=1e-10)
    assert max_rel(c2, c * c1) < 1e-7
    assert s1.baseline_check["used"] == s2.baseline_check["used"]
    for variant in ("hybrid", "pure_ml", "baseline_only"):
        for key, v in s1.baseline_check[variant].items():
            assert s2.baseline_check[variant][key] == pytest.approx(c * v, rel=1e-7)
    if energy_weights:
        assert s1.energy_weight_cv["chosen"] == s2.energy_weight_cv["chosen"]


def test_target_scales_follow_each_kinds_unit():
    """Forces in another unit (x 10) and energies unchanged: only the force scale changes, by the same factor (so the
    spread-normalised force rows are the same)."""
    truth = cu_eam_hybrid(seed=1)
    data = from_frames(labelled(truth, cu_frames(6)))
    bl = baseline_predictions(truth.baseline, data, progress=False)
    s = target_scales(data, bl, ["Cu"])
    bl10 = BaselinePredictions(bl.energy, 10 * bl.forces, bl.virial)
    frames10 = []
    for a in data.frames:
        b = a.copy()
        b.calc = SinglePointCalculator(b, energy=a.get_potential_energy(), forces=10 * a.get_forces())
        frames10.append(b)
    data10 = from_frames(frames10)
    s10 = target_scales(data10, bl10, ["Cu"])
    assert s10["energy"] == pytest.approx(s["energy"], rel=1e-12) and s10["force"] == pytest.approx(10 * s["force"], rel=1e-12)


def test_baseline_check_errors_match_separate_fits():
    """The pure-ML CV errors from the second right-hand side equal those of a separate assembly without the baseline
    (and its full fit's ridge, which the folds use);
    the baseline-alone errors equal explicit per-fold reference energies (energies) and the baseline's force error."""
    truth = cu_eam_hybrid(seed=1)
    data = from_frames(labelled(truth, cu_frames(9), stress=False, sigma_e=2e-3, sigma_f=0.02))
    pot = cu_eam_hybrid(seed=2)
    bl = baseline_predictions(pot.baseline, data, progress=False)
    zero = baseline_predictions(None, data, progress=False)
    w, pure = Weights().scaled(target_scales(data, bl, ["Cu"])), Weights().scaled(target_scales(data, zero, ["Cu"]))
    sol, _ = fit_linear(pot, data, bl, w, cv_folds=3, seed=5, progress=False, pure_weights=pure)
    check = sol.baseline_check
    folds = np.random.default_rng(5).permutation(len(data)) % 3
    assembler = DesignAssembler(pot.descriptor, pot.model, pot.types, pot.cutoff)
    parts, _, _ = accumulate(assembler, data, zero, pure, folds=folds, by_kind=True, progress=False)
    full = solve(QRAccumulator.combine([(acc, 1.0) for _, acc in sorted(parts.items())]), n_free=1)
    assert check["ridge_per_row"]["pure_ml"] == pytest.approx(full.lam / full.n_rows, rel=1e-8)
    separate = cv_errors(parts, 3, 1, full.lam / full.n_rows, kind_factors(pure, pure), pure)
    for key, v in separate.items():
        assert check["pure_ml"][key] == pytest.approx(v, rel=1e-8)
    e_sq = 0.0
    for k in range(3):
        tr, held = folds != k, folds == k
        resid = (data.energy - bl.energy) / data.n_atoms
        e_sq += np.sum((resid[held] - resid[tr].mean()) ** 2)
    assert check["baseline_only"]["energy_rmse_meV_atom"] == pytest.approx(1000 * np.sqrt(e_sq / len(data)), rel=1e-8)
    assert check["baseline_only"]["force_rmse_eV_A"] == pytest.approx(np.sqrt(np.mean((data.forces - bl.forces) ** 2)), rel=1e-8)


def test_cv_fits_sharing_row_factors_equal_separate_ones():
    """Two CV fits at the same row factors (hybrid and pure ML at the same weights) share each fold's training factor;
    their errors equal those of separate cv_errors calls."""
    truth = cu_eam_hybrid(seed=1)
    data = from_frames(labelled(truth, cu_frames(9), stress=False, sigma_e=2e-3, sigma_f=0.02))
    pot = cu_eam_hybrid(seed=2)
    bl = baseline_predictions(pot.baseline, data, progress=False)
    zero = baseline_predictions(None, data, progress=False)
    w = Weights(energy=30.0)
    folds = np.random.default_rng(5).permutation(len(data)) % 3
    assembler = DesignAssembler(pot.descriptor, pot.model, pot.types, pot.cutoff)
    parts, _, _ = accumulate(assembler, data, bl, w, folds=folds, by_kind=True, progress=False, extra_baselines=(zero,))
    f = kind_factors(w, w)
    joint = cv_errors_of(parts, 3, 1, [CVFit(0, 1e-3, f, w), CVFit(1, 1e-2, f, w)])
    for target, ridge, errors in ((0, 1e-3, joint[0]), (1, 1e-2, joint[1])):
        separate = cv_errors(parts, 3, 1, ridge, f, w, target)
        assert errors.keys() == separate.keys() and len(errors) == 2
        for key, v in separate.items():
            assert errors[key] == pytest.approx(v, rel=1e-12)
    assert joint[0] != joint[1]


def _bad_lj_config(out, mode: str, baseline: str):
    """Cu data labelled by the Mishin EAM; baseline: the same EAM ("good") or an unshifted LJ whose hard cutoff sits
    between the first and second neighbour shells ("bad": energy steps no smooth descriptor represents)."""
    out.mkdir(parents=True, exist_ok=True)
    train = out / "train.xyz"
    write(train, cu_frames(24))
    bl = ({"file": str(bundled("Cu_mishin1.eam.alloy"))} if baseline == "good" else
          {"type": "lj", "elements": ["Cu"], "cutoff": 2.9, "shift": False,
           "pair": [{"elements": ["Cu", "Cu"], "epsilon": 0.4, "sigma": 2.3}]})
    raw = {
        "data": {"train": str(train), "test": str(bundled("Cu_test.xyz")), "check_units": False},
        "baseline": {**bl, "mode": mode},
        "descriptor": {"rcut": 4.5, "nmax": 3, "lmax": 3, "alpha": 1.5},
        "model": {"type": "linear", "cv_folds": 4},
        "fit": {"seed": 3},
        "output": {"dir": str(out / "fit"), "plots": False},
    }
    return parse_config(raw, out, "test config")


def test_bad_baseline_is_reported_and_auto_drops_it(tmp_path):
    """A deliberately bad baseline: the log shows the three CV errors side by side and a warning with the numbers and
    the likely cause; mode = "auto" fits pure ML, which the model file records and loads as pure ML."""
    logs: dict[str, list[str]] = {}
    fits = {}
    for mode in ("on", "auto"):
        logs[mode] = []
        fits[mode] = run_fit(_bad_lj_config(tmp_path / mode, mode, "bad"), progress=False, log=logs[mode].append)
    check = fits["on"].report["fit"]["baseline_check"]
    assert check["better"] == "pure_ml" and check["used"] == "hybrid"
    assert check["hybrid"]["energy_rmse_meV_atom"] > check["pure_ml"]["energy_rmse_meV_atom"]
    line = next(s for s in logs["on"] if s.startswith("baseline check"))
    assert f"{check['hybrid']['energy_rmse_meV_atom']:.3f} meV/atom" in line and f"{check['pure_ml']['force_rmse_eV_A']:.4f}" in line
    warning = next(s for s in logs["on"] if s.startswith("warning: the baseline makes the fit worse"))
    assert "sharp cutoff" in warning and "mode = 'auto'" in warning
    # the measured remedy, with the baseline's own parameter names (the LJ's), so that the user can act on it
    names = sorted(dict(fits["on"].potential.baseline.named_parameters()))
    assert names and f"[baseline] refit = [...] (its parameters: {', '.join(names)})" in warning and "refit_starts = 3" in warning
    auto = fits["auto"]
    assert auto.report["fit"]["baseline_check"]["used"] == "pure_ml" and auto.report["fit"]["baseline_mode"] == "pure_ml"
    assert fits["on"].report["fit"]["baseline_mode"] == "hybrid"
    # report.json's "cv": the CV errors of the fit kept (pure ML here), with the held-out energy MAE
    cv = auto.report["fit"]["cv"]
    assert cv["energy_rmse_meV_atom"] == auto.report["fit"]["baseline_check"]["pure_ml"]["energy_rmse_meV_atom"]
    assert cv["energy_mae_meV_atom"] == pytest.approx(1000 * np.mean(np.abs(auto.potential.solution.cv_energy_errors)))
    assert 0 < cv["energy_mae_meV_atom"] <= cv["energy_rmse_meV_atom"]
    assert auto.potential.baseline is None
    loaded = load(auto.model_path)
    assert loaded.baseline is None
    stored = json.loads(auto.model_path.read_text())
    assert "pure_ml" in json.dumps(stored)
    test = from_frames(cu_frames(3))
    p1, p2 = predict(auto.potential, test, progress=False), predict(loaded, test, progress=False)
    assert max_rel(p1["energy"], p2["energy"]) < 1e-10 and max_rel(p1["forces"], p2["forces"]) < 1e-10
    # auto's test errors are those of pure ML, better than the hybrid's here
    assert auto.report["test"]["energy_mae_meV_atom"] < fits["on"].report["test"]["energy_mae_meV_atom"]


def test_warning_after_a_cofit_names_what_was_cofitted():
    """Where the baseline was co-fitted and still makes the fit worse, the warning says so and does not suggest the
    co-fit again; a LAMMPS baseline (no torch parameters) is told how its parameters are named."""
    potential = cu_eam_hybrid()
    e = {"energy_rmse_meV_atom": 2.0, "force_rmse_eV_A": 0.05}
    check = {"n_folds": 5, "hybrid": {**e, "force_rmse_eV_A": 0.08}, "pure_ml": e, "baseline_only": e, "better": "pure_ml",
             "used": "hybrid"}
    cofitted = baseline_check_lines(check, potential, "on", ["F_rho"])[1]
    assert "with F_rho co-fitted" in cofitted and "refit = [...]" not in cofitted
    fresh = baseline_check_lines(check, potential, "on")[1]
    assert "refit = [...]" in fresh and "F 0.0800 eV/A against pure ML E 2.000 meV/atom, F 0.0500 eV/A" in fresh
    potential.baseline = type("NoTorchParameters", (torch.nn.Module,), {})()
    assert "names as 'FILE:PATH' into its potential file" in baseline_check_lines(check, potential, "on")[1]


def test_auto_keeps_a_good_baseline(tmp_path):
    """The baseline that generated the data (Mishin EAM, the bundled labels are close to it): auto keeps the hybrid,
    without a warning."""
    lines: list[str] = []
    fit = run_fit(_bad_lj_config(tmp_path, "auto", "good"), progress=False, log=lines.append)
    check = fit.report["fit"]["baseline_check"]
    assert check["used"] == "hybrid" == check["better"] and fit.potential.baseline is not None
    assert not any(s.startswith("warning: the baseline") for s in lines)
    assert check["baseline_only"]["force_rmse_eV_A"] > check["hybrid"]["force_rmse_eV_A"]


def test_baseline_mode_config_errors(tmp_path):
    """[baseline] mode: unknown values, a mode without a baseline and auto with an nn model are refused, naming why."""
    write(tmp_path / "train.xyz", cu_frames(2))
    eam = str(bundled("Cu_mishin1.eam.alloy"))
    r = {"data": {"train": str(tmp_path / "train.xyz")}, "baseline": {"file": eam, "mode": "sometimes"}}
    with pytest.raises(ConfigError, match="expected 'on', 'off' or 'auto'"):
        parse_config(r, tmp_path, "t")
    r = {"data": {"train": str(tmp_path / "train.xyz")}, "baseline": {"type": "none", "mode": "auto"}}
    with pytest.raises(ConfigError, match="needs a baseline to compare"):
        parse_config(r, tmp_path, "t")
    r = {"data": {"train": str(tmp_path / "train.xyz")}, "baseline": {"file": eam, "mode": "auto"}, "model": {"type": "nn"}}
    with pytest.raises(ConfigError, match="needs a model linear in its parameters"):
        parse_config(r, tmp_path, "t")


def _tune_config(out, fit):
    out.mkdir(parents=True, exist_ok=True)
    train = out / "train.xyz"
    write(train, cu_frames(10))
    raw = {
        "data": {"train": str(train), "test": str(bundled("Cu_test.xyz"))},
        "baseline": {"file": str(bundled("Cu_mishin1.eam.alloy"))},
        "descriptor": {"rcut": 4.5, "nmax": 3, "lmax": 3, "alpha": 1.5},
        "model": {"type": "linear", "cv_folds": 3},
        "fit": {"seed": 1, "tune": True, "tune_rcut_factors": [1.6, 1.9], "tune_nmax": [2, 3], "tune_lmax": [2], **fit},
        "output": {"dir": str(out / "fit"), "plots": False},
    }
    return parse_config(raw, out, "test config")


def test_tune_chooses_the_best_cv_candidate(tmp_path):
    """[fit] tune: every candidate's CV errors are in the table; the chosen settings are the lowest score's, and the
    fitted model (and the report's config) use them; the scores are recomputable from the table."""
    lines: list[str] = []
    fit = run_fit(_tune_config(tmp_path, {}), progress=False, log=lines.append)
    tune = fit.report["fit"]["tune"]
    table = tune["table"]
    assert len(table) >= 3 and not tune["stopped_by_budget"]
    best = table[int(np.argmin([r["score"] for r in table]))]
    assert tune["chosen"] == {"descriptor": {k: best[k] for k in ("rcut", "kind", "nmax", "lmax", "alpha")}, "model": {"type": best["type"]}}
    assert fit.potential.model.kind == best["type"]
    assert float(fit.potential.descriptor.rcut) == pytest.approx(best["rcut"])
    assert fit.report["config"]["descriptor"]["nmax"] == best["nmax"] and fit.report["config"]["descriptor"]["lmax"] == best["lmax"]
    assert {round(f * tune["nearest_neighbour_A"], 2) for f in (1.6, 1.9)} <= {r["rcut"] for r in table}
    e, fo = np.array([r["energy_rmse_meV_atom"] for r in table]), np.array([r["force_rmse_eV_A"] for r in table])
    assert np.allclose([r["score"] for r in table], e / e.min() + fo / fo.min(), rtol=1e-12)
    assert any(s.startswith("tune: chose") for s in lines)


def test_tune_stops_at_its_budget(tmp_path):
    """A budget already spent after the first candidate: only the first of each model type's search is fitted, the rest
    are listed as not tried."""
    fit = run_fit(_tune_config(tmp_path, {"tune_budget_s": 1e-6}), progress=False, log=lambda s: None)
    tune = fit.report["fit"]["tune"]
    assert [r["type"] for r in tune["table"]] == ["linear", "quadratic"] and tune["stopped_by_budget"] and len(tune["skipped"]) >= 4


def test_report_cv_by_config_type(tmp_path):
    """report.json's fit.cv on the bundled Cu set (5 config_types, read here from the file): the held-out energy MAE
    of each config_type is the mean |held-out error| of its structures (``solution.cv_energy_errors``, checked against
    explicit refits in tests/uq/test_uq.py), the overall MAE their structure-weighted mean; the log names them."""
    raw = {"data": {"train": str(bundled("Cu_train.xyz")), "test": str(bundled("Cu_test.xyz"))},
           "baseline": {"file": str(bundled("Cu_mishin1.eam.alloy"))},
           "descriptor": {"rcut": 4.5, "nmax": 3, "lmax": 3, "alpha": 1.5},
           "model": {"type": "linear", "cv_folds": 3}, "fit": {"seed": 5},
           "output": {"dir": str(tmp_path / "fit"), "plots": False}}
    lines: list[str] = []
    res = run_fit(parse_config(raw, tmp_path, "test config"), progress=False, log=lines.append)
    cv = res.report["fit"]["cv"]
    types = np.asarray([a.info["config_type"] for a in read(bundled("Cu_train.xyz"), ":")])
    held = 1000 * np.abs(res.potential.solution.cv_energy_errors)
    assert len(held) == len(types)
    by_type = cv["energy_mae_by_config_type_meV_atom"]
    assert set(by_type) == {"aimd", "elastic", "ground_state", "surface", "vacancy"}
    for t, v in by_type.items():
        assert v == pytest.approx(np.mean(held[types == t]), rel=1e-12)
    counts = {t: int(np.sum(types == t)) for t in by_type}
    assert cv["energy_mae_meV_atom"] == pytest.approx(sum(by_type[t] * counts[t] for t in by_type) / len(types), rel=1e-10)
    assert cv["energy_mae_meV_atom"] <= cv["energy_rmse_meV_atom"]
    line = next(s for s in lines if s.startswith("k-fold CV of this fit"))
    assert f"energy MAE of surface {by_type['surface']:.4g}" in line
