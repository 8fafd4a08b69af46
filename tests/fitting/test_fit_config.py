"""``hybridpot fit``: bad configurations and data fail with a clear message and write nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.io import read, write

from hybridpot.cli import main
from hybridpot.dataset import bundled

BASE = """
[data]
train = "{train}"
[baseline]
file = "{eam}"
[descriptor]
nmax = 3
lmax = 3
[model]
type = "linear"
[output]
dir = "out"
"""


def config(tmp_path: Path, text: str = BASE, **kw) -> Path:
    fields = {"train": str(bundled("Cu_train.xyz")), "eam": str(bundled("Cu_mishin1.eam.alloy"))} | kw
    path = tmp_path / "fit.toml"
    path.write_text(text.format(**fields))
    return path


def run_fails(tmp_path: Path, path: Path, capsys, message: str) -> None:
    assert main(["-q", "fit", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert not (tmp_path / "out").exists(), "a failed fit must write nothing"


def test_missing_data_file(tmp_path, capsys):
    run_fails(tmp_path, config(tmp_path, train="nowhere.xyz"), capsys, "[data] train: file not found")


def test_missing_baseline_file(tmp_path, capsys):
    run_fails(tmp_path, config(tmp_path, eam="missing.eam.alloy"), capsys, "[baseline] file: file not found")


def test_unknown_key(tmp_path, capsys):
    text = BASE.replace("[model]\n", "[model]\nlearning_rat = 0.1\n")
    run_fails(tmp_path, config(tmp_path, text), capsys, "unknown key(s) ['learning_rat'] in [model]")


def test_unknown_section(tmp_path, capsys):
    run_fails(tmp_path, config(tmp_path, BASE + "\n[fitt]\nseed = 1\n"), capsys, "unknown section(s) ['fitt']")


def test_wrong_type(tmp_path, capsys):
    text = BASE.replace("nmax = 3", "nmax = 'three'")
    run_fails(tmp_path, config(tmp_path, text), capsys, "[descriptor] nmax = 'three': expected int")


def test_negative_weight(tmp_path, capsys):
    text = BASE + "[fit]\nbaseline_stress_weight = -1.0\n"
    run_fails(tmp_path, config(tmp_path, text), capsys, "[fit] baseline_stress_weight = -1.0: must be >= 0")


def test_missing_forces_with_force_weight(tmp_path, capsys):
    frames = read(bundled("Cu_train.xyz"), index=":5")
    for a in frames[2:4]:
        a.calc.results.pop("forces")
    data = tmp_path / "noforces.xyz"
    write(data, frames)
    run_fails(tmp_path, config(tmp_path, train=str(data)), capsys, "structures [2, 3] have no forces, but force_weight = 1.0 > 0")


def test_nan_forces(tmp_path, capsys):
    frames = read(bundled("Cu_train.xyz"), index=":3")
    frames[1].calc.results["forces"][5, 1] = np.nan
    data = tmp_path / "nan.xyz"
    write(data, frames)
    run_fails(tmp_path, config(tmp_path, train=str(data)), capsys, "structure 1 has NaN or infinite forces")


def test_element_absent_from_baseline(tmp_path, capsys):
    frames = read(bundled("Cu_train.xyz"), index=":3")
    frames[2][0].symbol = "Ni"
    data = tmp_path / "cuni.xyz"
    write(data, frames)
    run_fails(tmp_path, config(tmp_path, train=str(data)), capsys, "element(s) ['Ni'] not in the baseline")


def test_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text("{}")
    assert main(["-q", "fit", str(config(tmp_path))]) == 2
    assert "already holds a fit" in capsys.readouterr().err
    assert (out / "report.json").read_text() == "{}"


def test_more_parameters_than_rows_is_refused_before_the_design_pass(tmp_path, capsys):
    """A quadratic 4/4 model (1326 parameters) on one structure: refused up front with the counts, nothing written."""
    one = tmp_path / "one.xyz"
    write(one, read(bundled("Cu_train.xyz"), index=":1"))
    n = len(read(one))
    text = BASE.replace('type = "linear"', 'type = "quadratic"').replace("nmax = 3\nlmax = 3", "nmax = 4\nlmax = 4")
    run_fails(tmp_path, config(tmp_path, text, train=str(one)), capsys,
              f"the quadratic model has 1326 parameters (50 descriptor features), more than the at most {7 + 3 * n} rows")


def test_the_tune_flag_validates_the_tune_keys(tmp_path, capsys):
    """``hybridpot fit --tune`` checks the [fit] tune_* keys like ``tune = true`` in the file does (before, the flag was set
    after the validation, which then skipped them)."""
    path = config(tmp_path, BASE + "[fit]\ntune_alpha = []\n")
    assert main(["-q", "fit", "--tune", str(path)]) == 2
    assert "[fit] tune_alpha = []: expected a non-empty list" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fit, message", [
    ("energy_weight = 'auto'", "[fit] energy_weight = 'auto': expected a number >= 0 or 'cv'"),
    ("energy_weight = 'cv'\nenergy_weight_candidates = []", "energy_weight_candidates = []: expected a non-empty list"),
    ("energy_weight = 'cv'\nenergy_weight_candidates = [1, -3]", "expected a non-empty list of positive numbers"),
    ("energy_weight = 'cv'\nforce_weight = 0.0", "it needs force_weight > 0"),
    ("energy_weight = 'cv'\nenergy_weight_targets = [0.5]", "expected [energy meV/atom, force eV/A], both positive"),
    ("energy_weight = 3.0\nenergy_weight_targets = [0.5, 0.01]", "energy_weight_targets only applies to energy_weight = 'cv'"),
    ("energy_weight = 3.0\nenergy_weight_candidates = [1, 10]", "energy_weight_candidates only applies to energy_weight = 'cv'"),
], ids=["unknown-string", "no-candidates", "negative-candidate", "no-forces", "one-target", "targets-without-cv",
        "candidates-without-cv"])
def test_bad_energy_weight_cv(tmp_path, capsys, fit, message):
    run_fails(tmp_path, config(tmp_path, BASE + f"[fit]\n{fit}\n"), capsys, message)


@pytest.mark.parametrize("baseline, why", [("type = 'none'", "there is none"),
                                            ("mode = 'off'", "with mode = 'off' the residual may be fitted without it")])
def test_baseline_stress_weight_needs_a_baseline_under_the_residual(tmp_path, capsys, baseline, why):
    """Without a baseline under the residual, the rows that keep its stress would pull the ML stress to zero: refused."""
    text = BASE.replace("[descriptor]", f"{baseline}\n[descriptor]") + "[fit]\nbaseline_stress_weight = 0.1\n"
    if "none" in baseline:
        text = text.replace(next(line for line in text.splitlines() if line.startswith("file =")) + "\n", "")
    run_fails(tmp_path, config(tmp_path, text), capsys, f"[fit] baseline_stress_weight = 0.1 keeps the baseline's stress "
                                                        f"where the data have none: it needs a baseline under the residual "
                                                        f"([baseline] mode = 'on'); {why}")


def test_energy_weight_cv_needs_a_solved_model(tmp_path, capsys):
    text = BASE.replace('type = "linear"', 'type = "nn"') + "[fit]\nenergy_weight = 'cv'\n"
    run_fails(tmp_path, config(tmp_path, text), capsys, "energy_weight = 'cv' needs a model linear in its parameters")
    text = BASE.replace("[descriptor]", "refit = ['F_scale']\n[descriptor]") + "[fit]\nenergy_weight = 'cv'\n"
    run_fails(tmp_path, config(tmp_path, text), capsys, "cannot be combined with [baseline] refit")



@pytest.mark.parametrize("model, message", [
    ("optimizer = 'sgd'", "[model] optimizer = 'sgd': expected 'lbfgs' or 'adam'"),
    ("learning_rate = 0.01", "[model] learning_rate applies to optimizer = 'adam'"),
    ("optimizer = 'adam'\nlearning_rate = -0.01", "[model] learning_rate = -0.01: must be positive"),
    ("epochs = 0", "[model] epochs and patience must be >= 1"),
    ("bootstrap = false", "[model] bootstrap = false applies to a committee (committee > 1)"),
], ids=["unknown-optimizer", "lr-with-lbfgs", "negative-lr", "no-epochs", "bootstrap-without-committee"])
def test_bad_nn_training_settings(tmp_path, capsys, model, message):
    text = BASE.replace('type = "linear"', f'type = "nn"\n{model}')
    run_fails(tmp_path, config(tmp_path, text), capsys, message)


def test_keys_of_a_switch_that_is_off_are_noted_not_silently_ignored(tmp_path, capsys):
    """[fit] tune_* keys without tune, [baseline] refit_* without refit: a warning in the log and report.json
    config_notes (not an error: a file may keep its tune settings for runs with --tune); none where the switch is on."""
    import json

    from hybridpot.fitting.config import read_config

    path = config(tmp_path, BASE.replace("[baseline]\n", "[baseline]\nrefit_range = 0.2\n") + "[fit]\ntune_budget_s = 60.0\ntune_lmax = [4]\n")
    notes = read_config(path).notes
    assert notes == ["[fit] tune_budget_s, tune_lmax have no effect without tune = true (or hybridpot fit --tune): ignored",
                     "[baseline] refit_range has no effect without refit = [the names of the parameters to co-fit]: ignored"]
    assert read_config(path, {"fit": {"tune": True}}).notes == notes[1:]
    plain = tmp_path / "plain"
    plain.mkdir()
    assert read_config(config(plain)).notes == []
    assert main(["-q", "fit", str(path)]) == 0
    assert f"warning: {path}: [fit] tune_budget_s, tune_lmax have no effect" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "report.json").read_text())["config_notes"] == notes


def test_test_structures_copied_from_the_training_set_are_named(tmp_path, capsys):
    """A test set holding copies of training structures: a warning naming them and report.json
    data_checks.test_in_train (test errors would silently include training errors); a moved atom is not a copy."""
    import json

    frames = read(bundled("Cu_train.xyz"), ":")
    moved = frames[7].copy()
    moved.calc = frames[7].calc
    moved.positions[0, 0] += 1e-4
    test = [frames[3], frames[2].copy(), moved]
    test[1].calc = frames[2].calc
    write(tmp_path / "test.xyz", test)
    text = BASE.replace("[baseline]\n", f"test = \"{tmp_path / 'test.xyz'}\"\n[baseline]\n")
    assert main(["-q", "fit", str(config(tmp_path, text))]) == 0
    out = capsys.readouterr().out
    assert "warning: 2 of the 3 structures of" in out, out
    assert "structure 0 (" in out and "= training structure 3 (" in out
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["data_checks"]["test_in_train"] == [{"test": 0, "train": 3}, {"test": 1, "train": 2}]
    # the model file keeps the training structures' digests: hybridpot eval names them too
    model = tmp_path / "out" / "model.hybridpot.json"
    assert main(["-q", "eval", str(model), str(tmp_path / "test.xyz"), "--json", str(tmp_path / "eval.json")]) == 0
    out = capsys.readouterr().out
    assert f"warning: 2 of the 3 structures of {tmp_path / 'test.xyz'} are also in the training set of {model}" in out, out
    assert "= its training structure 3" in out
    assert json.loads((tmp_path / "eval.json").read_text())["training_structures"] == [0, 1]


def test_test_copies_of_training_structures_with_other_labels_are_named(tmp_path, capsys):
    """A test structure that copies a training structure under other labels: besides the test_in_train warning, one that
    names the differences, and report.json data_checks.test_in_train_other_labels; exact copies are not listed there."""
    import json

    from ase.calculators.singlepoint import SinglePointCalculator

    frames = read(bundled("Cu_train.xyz"), ":")
    other = frames[3].copy()
    forces = frames[3].get_forces().copy()
    forces[5, 2] += 0.3
    other.calc = SinglePointCalculator(other, energy=frames[3].get_potential_energy(), forces=forces)
    same = frames[2].copy()
    same.calc = frames[2].calc
    write(tmp_path / "test.xyz", [same, other])
    text = BASE.replace("[baseline]\n", f"test = \"{tmp_path / 'test.xyz'}\"\n[baseline]\n")
    assert main(["-q", "fit", str(config(tmp_path, text))]) == 0
    out = capsys.readouterr().out
    assert ("structure 1 (config_type 'vacancy', Cu107) is training structure 3 (config_type 'vacancy', Cu107) again" in out
            and "forces by up to 0.3 eV/A; its test error is against labels the fit was given otherwise" in out), out
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["data_checks"]["test_in_train"] == [{"test": 0, "train": 2}, {"test": 1, "train": 3}]
    (c,) = report["data_checks"]["test_in_train_other_labels"]
    assert (c["structure"], c["first"]) == (1, 3) and c["force_eV_A"] == pytest.approx(0.3) and c["energy_meV_atom"] == 0.0


def test_repeated_training_structures_are_named(tmp_path, capsys):
    """A training set holding a structure twice (each copy weighs again): a warning and report.json
    data_checks.train_repeats; none for the bundled set."""
    import json

    frames = read(bundled("Cu_train.xyz"), ":")
    copy = frames[4].copy()
    copy.calc = frames[4].calc
    write(tmp_path / "train.xyz", frames + [copy])
    assert main(["-q", "fit", str(config(tmp_path, train=str(tmp_path / "train.xyz")))]) == 0
    out = capsys.readouterr().out
    assert (f"warning: 1 of the {len(frames) + 1} training structures of {tmp_path / 'train.xyz'} repeat earlier ones "
            f"(structure {len(frames)} (") in out, out
    assert json.loads((tmp_path / "out" / "report.json").read_text())["data_checks"]["train_repeats"] == [
        {"structure": len(frames), "first": 4}]
    plain = tmp_path / "plain"
    plain.mkdir()
    assert main(["-q", "fit", str(config(plain))]) == 0
    assert "repeat earlier ones" not in capsys.readouterr().out
