"""What `hybridpot fit` and `hybridpot eval` report: tables per config_type, report.json's provenance, parity plots
with units, eval's JSON and plots."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.io import read, write

from hybridpot.cli import main
from hybridpot.dataset import bundled, read_dataset
from hybridpot.fitting.config import demo_config
from hybridpot.fitting.job import run_fit


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return run_fit(demo_config(out / "run", plots=True), progress=False, log=lambda m: None)


def test_report_carries_provenance_and_errors_per_config_type(demo):
    report = json.loads((demo.output_dir / "report.json").read_text())
    who = report["written_by"]
    assert who["hybridpot_version"] and who["time_utc"].endswith("+00:00") and who["versions"]["torch"]
    test_types = {a.info.get("config_type", "default") for a in read(bundled("Cu_test.xyz"), ":")}
    assert len(test_types) > 1
    by_type = report["by_config_type"]["test"]
    assert set(by_type["hybrid"]) == test_types == set(by_type["baseline only"])
    n = sum(row["n_structures"] for row in by_type["hybrid"].values())
    assert n == report["test"]["n_structures"]


def test_parity_plots_have_units_and_both_series(demo):
    from hybridpot.dataset import read_dataset
    from hybridpot.plots import parity_figures
    from hybridpot.prediction import baseline_predictions, predict
    from hybridpot.scoring import baseline_only

    test = read_dataset(bundled("Cu_test.xyz"))
    pot = demo.potential
    bl = baseline_predictions(pot.baseline, test, progress=False)
    ref = demo.report["baseline_only"]["reference_energies_eV"]
    figures = parity_figures({"test": test}, {"test": predict(pot, test, progress=False, baseline=bl)},
                             {"test": baseline_only(test, bl, ref)})
    assert set(figures) == {"energy", "forces", "stress"}  # the bundled test set has stresses
    for what, unit in (("energy", "meV/atom"), ("forces", "eV/A"), ("stress", "GPa")):
        ax = figures[what].axes[0]
        assert f"({unit})" in ax.get_xlabel() and f"({unit})" in ax.get_ylabel()
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert [lab.split(" (")[0] for lab in labels] == ["baseline only", "hybrid"]
        assert all("MAE" in lab and unit in lab for lab in labels)
    hybrid_label = [t.get_text() for t in figures["energy"].axes[0].get_legend().get_texts()][1]
    assert f"MAE {demo.report['test']['energy_mae_meV_atom']:.3g} meV/atom" in hybrid_label
    assert (demo.output_dir / "parity_stress.png").is_file()


def test_eval_prints_writes_json_and_plots(demo, tmp_path, capsys):
    data = tmp_path / "test.xyz"
    write(data, read(bundled("Cu_test.xyz"), ":"))
    code = main(["-q", "eval", str(demo.model_path), str(data), "--json", str(tmp_path / "eval.json"), "--plots", str(tmp_path / "p")])
    assert code == 0
    out = capsys.readouterr().out
    assert "baseline only" in out and "by config_type" in out
    doc = json.loads((tmp_path / "eval.json").read_text())
    assert doc["hybrid"]["energy_mae_meV_atom"] == pytest.approx(demo.report["test"]["energy_mae_meV_atom"], rel=1e-9)
    assert doc["baseline only"]["stress_mae_GPa"] == pytest.approx(demo.report["baseline_only"]["test"]["stress_mae_GPa"], rel=1e-9)
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["parity_energy.png", "parity_forces.png", "parity_stress.png"]
    assert np.isfinite(doc["hybrid"]["force_mae_eV_A"])


def test_worst_structures_rank_the_errors_and_reach_the_reports(demo, tmp_path, capsys):
    """Errors planted in two structures come out on top with their sizes; fit's report.json and eval's JSON carry the
    same ranking for the same model and data."""
    from hybridpot.scoring import worst_structures

    data = read_dataset(bundled("Cu_test.xyz"))
    pred = {"energy": data.energy.copy(), "forces": data.forces.copy()}
    pred["energy"][3] -= 0.002 * data.n_atoms[3]  # -2 meV/atom
    pred["energy"][5] += 0.001 * data.n_atoms[5]
    rows = data.atom_rows([7])
    pred["forces"][rows[2]] += [0.3, 0.0, -0.4]  # one atom 0.5 eV/A off
    worst = worst_structures(data, pred, n=2)
    assert [w["index"] for w in worst["energy"]] == [3, 5]
    assert worst["energy"][0]["error_meV_atom"] == pytest.approx(-2.0, abs=1e-9)
    assert worst["energy"][0]["structure"] == data.describe(3)
    assert worst["forces"][0]["index"] == 7 and worst["forces"][0]["max_atom_error_eV_A"] == pytest.approx(0.5, abs=1e-12)
    assert worst["forces"][0]["force_rmse_eV_A"] == pytest.approx(0.5 / np.sqrt(3 * data.n_atoms[7]), rel=1e-12)
    assert worst["forces"][1]["force_rmse_eV_A"] == 0.0
    assert [w["index"] for w in demo.report["worst"]["test"]["energy"]] and len(demo.report["worst"]["train"]["forces"]) == 5
    assert main(["-q", "eval", str(demo.model_path), str(bundled("Cu_test.xyz")), "--json", str(tmp_path / "e.json")]) == 0
    doc = json.loads((tmp_path / "e.json").read_text())
    assert [w["index"] for w in doc["worst"]["energy"]] == [w["index"] for w in demo.report["worst"]["test"]["energy"]]
    for got, want in zip(doc["worst"]["forces"], demo.report["worst"]["test"]["forces"]):
        assert got["index"] == want["index"] and got["force_rmse_eV_A"] == pytest.approx(want["force_rmse_eV_A"], rel=1e-9)


def test_eval_warns_of_label_outliers_and_records_them(demo, tmp_path, capsys):
    """eval changes nothing (its errors include the outlier) but says which labels are far outside the rest."""
    frames = read(bundled("Cu_test.xyz"), ":")
    frames[9].calc.results["forces"][4] = [70.0, 0.0, -10.0]
    write(tmp_path / "odd.xyz", frames)
    code = main(["eval", str(demo.model_path), str(tmp_path / "odd.xyz"), "--json", str(tmp_path / "eval.json")])
    assert code == 0
    out = capsys.readouterr().out
    assert "warning: " in out and "atom(s) with force labels far outside the rest: structure 9 (" in out and " atom 4:" in out
    doc = json.loads((tmp_path / "eval.json").read_text())
    assert doc["outliers"]["checks"]["atom_forces"]["outliers"] == [[9, 4]]
    clean = main(["-q", "eval", str(demo.model_path), str(bundled("Cu_test.xyz")), "--json", str(tmp_path / "c.json")])
    assert clean == 0 and json.loads((tmp_path / "c.json").read_text())["outliers"]["findings"] == []


def test_eval_warns_of_copies_with_other_labels_and_records_them(demo, tmp_path, capsys):
    """A structure given twice with two energies: eval reports the errors against both, and says so."""
    from ase.calculators.singlepoint import SinglePointCalculator

    frames = read(bundled("Cu_test.xyz"), ":")
    copy = frames[3].copy()
    copy.calc = SinglePointCalculator(copy, energy=frames[3].get_potential_energy() + 0.01 * len(copy), forces=frames[3].get_forces())
    write(tmp_path / "twice.xyz", frames + [copy])
    assert main(["-q", "eval", str(demo.model_path), str(tmp_path / "twice.xyz"), "--json", str(tmp_path / "eval.json")]) == 0
    out = capsys.readouterr().out
    assert (f"structure {len(frames)} (" in out and ") is structure 3 (" in out and "energy by 10 meV/atom" in out
            and "(the errors below include both)" in out), out
    (c,) = json.loads((tmp_path / "eval.json").read_text())["conflicting_copies"]
    assert (c["structure"], c["first"]) == (len(frames), 3) and c["energy_meV_atom"] == pytest.approx(10.0)


def test_global_options_before_or_after_the_command():
    from hybridpot.cli import build_parser

    parser = build_parser()
    for argv, quiet, threads in ((["-q", "config"], True, None), (["config", "-q"], True, None), (["config"], False, None),
                                 (["--threads", "2", "config"], False, 2), (["config", "--threads", "3"], False, 3),
                                 (["-q", "--threads", "2", "eval", "m", "d"], True, 2)):
        args = parser.parse_args(argv)
        assert (args.quiet, args.threads) == (quiet, threads), argv


def test_errors_split_by_extrapolation_in_the_fit_and_eval_reports(demo, tmp_path, capsys):
    """errors_by_extrapolation: structures whose largest gamma exceeds the threshold against the rest, each group's errors
    those of its structures alone; the fit's report.json and eval's JSON carry the same split for the same model and data,
    and the training structures themselves do not extrapolate (MaxVol's hull)."""
    from hybridpot.io.modelfile import load
    from hybridpot.scoring import EXTRAPOLATION_THRESHOLD, errors, errors_by_extrapolation
    from hybridpot.uq import extrapolation_grades

    data = read_dataset(bundled("Cu_test.xyz"))
    pred = {"energy": data.energy + 0.001 * data.n_atoms * np.arange(len(data)), "forces": data.forces + 0.01}
    grades = [np.full(n, 0.5) for n in data.n_atoms]
    grades[2][4], grades[7][0] = 3.0, 1.5
    split = errors_by_extrapolation(data, pred, grades)
    assert split["n_extrapolating"] == 2 and [x["index"] for x in split["largest"][:2]] == [2, 7]
    assert split["largest"][0]["gamma"] == 3.0
    out = np.array([2, 7])
    want = errors(data.subset(out), {"energy": pred["energy"][out], "forces": pred["forces"][data.atom_rows(out)]})
    assert split["extrapolating"]["energy_mae_meV_atom"] == pytest.approx(want["energy_mae_meV_atom"], rel=1e-12) == 4.5
    assert split["interpolating"]["n_structures"] == len(data) - 2
    assert "interpolating" not in errors_by_extrapolation(data, pred, [np.full(n, 2.0) for n in data.n_atoms])

    fit = demo.report["test_extrapolation"]
    assert fit["n_structures"] == len(data) and fit["threshold"] == EXTRAPOLATION_THRESHOLD
    assert main(["-q", "eval", str(demo.model_path), str(bundled("Cu_test.xyz")), "--json", str(tmp_path / "e.json")]) == 0
    doc = json.loads((tmp_path / "e.json").read_text())
    assert doc["extrapolation"]["n_extrapolating"] == fit["n_extrapolating"]
    assert [x["gamma"] for x in doc["extrapolation"]["largest"]] == pytest.approx([x["gamma"] for x in fit["largest"]], rel=1e-9)
    assert "extrapolation (MaxVol):" in capsys.readouterr().out
    train = read(bundled("Cu_train.xyz"), ":")
    assert max(float(g.max()) for g in extrapolation_grades(load(demo.model_path), train)) <= 1.0 + 1e-6
