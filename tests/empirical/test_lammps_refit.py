"""Refitting parameters of LAMMPS potential files with the residual ([baseline] type = "lammps", refit = ["FILE:PATH"]).

Parameter paths into ReaxFF, MEAM and triplet files (hybridpot.empirical.file_parameters) are checked against what the
file says and against LAMMPS reading the rewritten file; co-fits recover parameters perturbed away from the ones that
made the labels, and write a refitted file that LAMMPS runs on its own.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase.io import write

from hybridpot.empirical.file_parameters import locate, parameters, rewrite
from hybridpot.empirical.lammps import LammpsSettings
from hybridpot.empirical.triplet_file import read_entries
from hybridpot.errors import ConfigError, PotentialFileError
from hybridpot.potential import to_numpy
from hybridpot.testing import labelled
from tests.lammps_reference import lammps_reference
from tests.structures import random_triclinic

pytestmark = pytest.mark.lammps


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("HYBRIDPOT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# ------------------------------------------------------------------------------ paths into files


def test_reaxff_paths_name_the_numbers_of_the_file(lammps_potentials):
    text = (lammps_potentials / "ffield.reax.cho").read_text()
    lines = text.split("\n")
    found = parameters(text, "reaxff", "ffield.reax.cho")
    n_general = int(lines[1].split()[0])
    assert found["general.1"].value == float(lines[2].split()[0]) and f"general.{n_general}" in found
    # the atom block of C: the line starting with C, then three lines of 8 numbers (32 parameters)
    c_line = next(k for k, ln in enumerate(lines) if ln.split()[:1] == ["C"])
    c_numbers = [float(w) for w in lines[c_line].split()[1:]] + [float(w) for k in (1, 2, 3) for w in lines[c_line + k].split()]
    assert [found[f"atom.C.{k}"].value for k in range(1, 33)] == c_numbers
    # bond C-H (atoms 1 and 2), in either order: the 16 numbers of the entry "1 2 ..."
    bond = next(k for k, ln in enumerate(lines) if ln.split()[:2] == ["1", "2"] and len(ln.split()) == 10)
    numbers = [float(w) for w in lines[bond].split()[2:]] + [float(w) for w in lines[bond + 1].split()]
    assert [locate(text, "reaxff", f"bond.H.C.{k}", "x").value for k in range(1, 17)] == numbers
    assert locate(text, "reaxff", "bond.C.H.3", "x") == locate(text, "reaxff", "bond.H.C.3", "x")
    assert {"torsion.X.C.C.X.1", "angle.C.C.H.7", "hbond.O.H.O.4", "offdiagonal.C.H.6"} <= set(found)
    with pytest.raises(ConfigError, match=r"no parameter 'bond.C.N.1' in this reaxff file; its parameters are named like general.1"):
        locate(text, "reaxff", "bond.C.N.1", "ffield.reax.cho")
    with pytest.raises(PotentialFileError, match=r"ends early"):
        parameters("\n".join(lines[:60]), "reaxff", "truncated")


def test_rewriting_changes_one_number_and_nothing_else(lammps_potentials):
    text = (lammps_potentials / "library.meam").read_text()
    span = locate(text, "meam/library", "Li.b0", "library.meam")
    new = rewrite(text, [(span, 1.2345678901234567)])
    assert new.replace("1.2345678901234567", span.text, 1) == text
    assert locate(new, "meam/library", "Li.b0", "x").value == 1.2345678901234567
    assert {"Li.alpha", "Li.esub", "Li.rozero", "Cu.t3"} <= set(parameters(text, "meam/library", "x"))
    assert "Li.ibar" not in parameters(text, "meam/library", "x")  # not a continuous parameter
    params = "rc = 4.5\ndelr = 0.1\nalpha(1,1) = 2.97  # comment\nlattce(1,1) = 'bcc'\nCmin(1, 1,1) = 0.5\n"
    found = parameters(params, "meam/parameters", "Li.meam")
    assert set(found) == {"rc", "delr", "alpha(1,1)", "Cmin(1,1,1)"} and found["alpha(1,1)"].value == 2.97
    with pytest.raises(PotentialFileError, match="line 1: expected 'keyword = value'"):
        parameters("rc 4.5\n", "meam/parameters", "bad.meam")


def test_triplet_paths_agree_with_the_triplet_reader(lammps_potentials, tmp_path):
    from hybridpot.empirical import sw

    text = (lammps_potentials / "GaN.sw").read_text()
    _, entries, _ = read_entries(lammps_potentials / "GaN.sw", sw.FIELDS)
    found = parameters(text, "sw", "GaN.sw")
    for key, values in entries.items():
        assert [found[".".join(key) + f".{f}"].value for f in sw.FIELDS] == values
    span = found["Ga.N.N.epsilon"]
    (tmp_path / "GaN.sw").write_text(rewrite(text, [(span, 2.5)]))
    _, changed, _ = read_entries(tmp_path / "GaN.sw", sw.FIELDS)
    assert changed[("Ga", "N", "N")][0] == 2.5 and all(changed[k] == v for k, v in entries.items() if k != ("Ga", "N", "N"))


def test_a_rewritten_file_is_what_lammps_runs(lammps_potentials, tmp_path):
    """Every SW energy term is proportional to epsilon: scaling it in the file scales LAMMPS's energy, forces and virial."""
    table = {"pair_style": "sw", "pair_coeff": ["* * Si.sw Si"], "elements": ["Si"], "files": ["Si.sw"]}
    baseline = LammpsSettings.from_table(table, "t", base=lammps_potentials).build("t")
    atoms = random_triclinic(["Si"], "diamond", a=5.43, repeat=(1, 1, 2), seed=2)
    before = to_numpy(baseline.compute(atoms))
    eps = baseline.parameter_values(["Si.sw:Si.Si.Si.epsilon"])
    baseline.set_parameter_values(["Si.Si.Si.epsilon"], eps * 1.25)  # FILE: may be left out: one file can hold it
    after = to_numpy(baseline.compute(atoms))
    for key in ("energy", "forces", "virial"):
        np.testing.assert_allclose(after[key], 1.25 * before[key], rtol=1e-12, atol=1e-12 * np.abs(before[key]).max())
    assert baseline.parameter_values(["Si.Si.Si.epsilon"])[0] == eps[0] * 1.25  # full precision in the file
    with pytest.raises(ConfigError, match=r"cannot name parameters of the files of pair_style eam/alloy"):
        LammpsSettings.from_table({"pair_style": "eam/alloy", "pair_coeff": ["* * Cu_u3.eam Cu"], "elements": ["Cu"],
                                   "files": ["Cu_u3.eam"]}, "t", base=lammps_potentials).build("t").parameter_values(["Cu.x"])
    (tmp_path / "Li.meam").write_text("rc = 4.8\ndelr = 0.1\n")
    meam = LammpsSettings.from_table({"pair_style": "meam", "pair_coeff": ["* * library.meam Li Li.meam Li"], "elements": ["Li"],
                                      "files": ["library.meam", str(tmp_path / "Li.meam")]}, "t", base=lammps_potentials).build("t")
    with pytest.raises(ConfigError, match=r"name the file, as 'FILE:rc' \(one of library.meam, Li.meam\)"):
        meam.parameter_values(["rc"])
    assert meam.parameter_values(["Li.meam:rc", "library.meam:Li.alat"]).tolist() == [4.8, 3.509]


# ------------------------------------------------------------------------------ co-fits


def _fit(folder: Path, lammps_potentials: Path, table: dict, frames, refit: list[str], extra: dict | None = None):
    from hybridpot.fitting.config import parse_config
    from hybridpot.fitting.job import run_fit

    write(folder / "train.xyz", frames)
    raw = {"data": {"train": "train.xyz"}, "baseline": {"type": "lammps", **table, "refit": refit, **(extra or {})},
           "descriptor": {"rcut": 4.0, "nmax": 2, "lmax": 2}, "model": {"type": "linear"}, "fit": {"energy_weight": 10.0},
           "output": {"dir": "out", "plots": False}}
    return run_fit(parse_config(raw, folder, "refit test"), progress=False, log=lambda m: None)


def _perturbed(table: dict, lammps_potentials: Path, folder: Path, path: str, factor: float) -> dict:
    """``table`` whose file holds ``path`` times ``factor`` (written into ``folder``)."""
    baseline = LammpsSettings.from_table(table, "t", base=lammps_potentials).build("t")
    baseline.set_parameter_values([path], baseline.parameter_values([path]) * factor)
    file = path.split(":")[0]
    (folder / file).write_text(baseline.texts[file])
    return table | {"files": [str(folder / f) if f == file else str(lammps_potentials / f) for f in table["files"]]}


@pytest.mark.parametrize("table, path, factor, structures", [
    ({"pair_style": "sw", "pair_coeff": ["* * Si.sw Si"], "elements": ["Si"], "files": ["Si.sw"]}, "Si.sw:Si.Si.Si.epsilon", 1.1,
     lambda: [random_triclinic(["Si"], "diamond", a=5.43 * (0.97 + 0.01 * s), repeat=(1, 1, 2), seed=20 + s) for s in range(6)]),
    ({"pair_style": "meam", "pair_coeff": ["* * library.meam Li NULL Li"], "elements": ["Li"], "files": ["library.meam"]},
     "library.meam:Li.esub", 0.9,
     lambda: [random_triclinic(["Li"], "bcc", a=3.44 * (0.96 + 0.015 * s), repeat=(2, 2, 2), seed=30 + s) for s in range(6)]),
], ids=["sw-epsilon", "meam-esub"])
def test_cofit_recovers_a_perturbed_parameter(table, path, factor, structures, lammps_potentials, tmp_path):
    """Labels made with the original file; the fit starts from the file with ``path`` times ``factor`` and recovers the
    original value; the refitted file written into the output folder runs in LAMMPS on its own."""
    truth = LammpsSettings.from_table(table, "t", base=lammps_potentials).build("t")
    frames = labelled(truth, structures(), stress=False)
    start = _perturbed(table, lammps_potentials, tmp_path, path, factor)
    result = _fit(tmp_path, lammps_potentials, start, frames, [path], {"refit_max_evals": 60})
    record = result.report["fit"]["cofit"]
    true_value = truth.parameter_values([path])[0]
    assert record["labels"] == [path] and record["initial"][0] == pytest.approx(true_value * factor, rel=1e-15)
    assert record["final"][0] == pytest.approx(true_value, rel=1e-5)
    assert record["objective_final"] < 1e-8 * record["objective_initial"]
    assert len(record["history"]) == record["evaluations"] and min(record["history"]) == record["objective_final"]
    report = json.loads((result.output_dir / "report.json").read_text())
    assert report["fit"]["cofit"]["history"] == record["history"]
    # the refitted files, usable in LAMMPS on their own
    folder = result.output_dir / "baseline"
    assert record["refitted_baseline"] == "baseline/baseline.lammps.toml"
    file = path.split(":")[0]
    refitted = (folder / file).read_text()
    assert locate(refitted, {"sw": "sw", "meam": "meam/library"}[table["pair_style"]], path.split(":")[1], file).value == record["final"][0]
    atoms = frames[2]
    lines = [f"pair_style {table['pair_style']}", f"pair_coeff {table['pair_coeff'][0].replace(file, str(folder / file))}"]
    ref = lammps_reference(atoms, lines, table["elements"], tmp_path)
    ours = to_numpy(result.potential.baseline.compute(atoms))
    assert ours["energy"][0] == pytest.approx(ref["energy"], rel=1e-12)
    assert np.abs(ours["forces"] - ref["forces"]).max() <= 1e-12 * np.abs(ref["forces"]).max()
    from hybridpot.empirical import load

    again = load(folder / "baseline.lammps.toml")  # the definition beside the file reads back
    assert to_numpy(again.compute(atoms))["energy"][0] == pytest.approx(ref["energy"], rel=1e-12)


def test_reaxff_bond_parameter_is_recovered_with_explicit_bounds(lammps_potentials, tmp_path):
    from ase.build import molecule

    table = {"pair_style": "reaxff NULL", "pair_coeff": ["* * ffield.reax.cho C H O"], "elements": ["C", "H", "O"],
             "files": ["ffield.reax.cho"], "commands": ["fix q all qeq/reaxff 1 0.0 10.0 1e-14 reaxff maxiter 2000"]}
    frames = []
    for k, name in enumerate(("CH4", "CH3OH", "CH3CH2OH", "H2O", "HCOOH", "CH3CHO", "C2H6")):
        m = molecule(name)
        m.rattle(0.05, seed=k)
        m.pbc = False
        frames.append(m)
    path = "ffield.reax.cho:bond.C.H.1"
    truth = LammpsSettings.from_table(table, "t", base=lammps_potentials).build("t")
    true_value = truth.parameter_values([path])[0]
    start = _perturbed(table, lammps_potentials, tmp_path, path, 1.08)
    result = _fit(tmp_path, lammps_potentials, start, labelled(truth, frames, stress=False), [path],
                  {"refit_bounds": {path: [150.0, 200.0]}, "refit_algorithm": "LN_COBYLA", "refit_max_evals": 60})
    record = result.report["fit"]["cofit"]
    assert (record["lower"], record["upper"], record["algorithm"]) == ([150.0], [200.0], "LN_COBYLA")
    assert record["final"][0] == pytest.approx(true_value, rel=1e-4)
    assert record["objective_final"] < 1e-6 * record["objective_initial"]


def test_refit_configuration_errors(lammps_potentials, tmp_path):
    from hybridpot.fitting.config import parse_config

    table = {"pair_style": "sw", "pair_coeff": ["* * Si.sw Si"], "elements": ["Si"], "files": [str(lammps_potentials / "Si.sw")]}
    frames = labelled(LammpsSettings.from_table(table, "t").build("t"),
                      [random_triclinic(["Si"], "diamond", a=5.43, repeat=(1, 1, 2), seed=s) for s in range(3)], stress=False)
    with pytest.raises(ConfigError, match=r"refit: Si.sw:Si.Si.Si.tol is 0, so refit_range gives it no room; give its bounds"):
        _fit(tmp_path, lammps_potentials, table, frames, ["Si.sw:Si.Si.Si.tol"])
    with pytest.raises(ConfigError, match=r"refit_bounds.Si.sw:Si.Si.Si.epsilon = \[3.0, 4.0\]: Si.sw:Si.Si.Si.epsilon starts at 2.1683"):
        _fit(tmp_path, lammps_potentials, table, frames, ["Si.sw:Si.Si.Si.epsilon"], {"refit_bounds": {"Si.sw:Si.Si.Si.epsilon": [3.0, 4.0]}})
    with pytest.raises(ConfigError, match=r"no parameter 'Si.Si.Si.eps' in this sw file; its parameters are named like Si.Si.Si.epsilon"):
        _fit(tmp_path, lammps_potentials, table, frames, ["Si.sw:Si.Si.Si.eps"])
    base = {"data": {"train": "train.xyz"}, "baseline": {"type": "lammps", **table, "refit": ["Si.Si.Si.epsilon"]}}
    with pytest.raises(ConfigError, match=r"refit_algorithm = 'LD_LBFGS': expected one of LN_BOBYQA, LN_COBYLA, LN_NELDERMEAD"):
        parse_config(base | {"baseline": base["baseline"] | {"refit_algorithm": "LD_LBFGS"}}, tmp_path, "t")
    with pytest.raises(ConfigError, match=r"refit_bounds names 'x', which refit does not list"):
        parse_config(base | {"baseline": base["baseline"] | {"refit_bounds": {"x": [0, 1]}}}, tmp_path, "t")
    with pytest.raises(ConfigError, match=r"refit_bounds.Si.Si.Si.epsilon = \[2, 1\]: expected \[lower, upper\]"):
        parse_config(base | {"baseline": base["baseline"] | {"refit_bounds": {"Si.Si.Si.epsilon": [2, 1]}}}, tmp_path, "t")
    with pytest.raises(ConfigError, match=r"\[baseline\] refit_starts = 0: must be >= 1"):
        parse_config(base | {"baseline": base["baseline"] | {"refit_starts": 0}}, tmp_path, "t")
    with pytest.raises(ConfigError, match=r"refit_choose = 'test': expected one of objective, cv"):
        parse_config(base | {"baseline": base["baseline"] | {"refit_choose": "test"}}, tmp_path, "t")


# ------------------------------------------------------------------------------ the ReaxFF retraining example

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "reaxff_retrain"


def _require_reaxff(lammps_module) -> None:
    """Skip (with the reason) where this LAMMPS lacks pair_style reaxff or fix qeq/reaxff (a build without REAXFF)."""
    from hybridpot.lammps_run import new_lammps

    lmp = new_lammps()
    try:
        missing = [f"{kind} {name}" for kind, name in (("pair", "reaxff"), ("fix", "qeq/reaxff")) if not lmp.has_style(kind, name)]
    finally:
        lmp.close()
    if missing:
        pytest.skip(f"this LAMMPS has no {' and no '.join(missing)} (built without the REAXFF package): the ReaxFF example cannot run")


def test_reaxff_example_runs_on_its_shipped_data(lammps_module, lammps_potentials, tmp_path):
    """examples/reaxff_retrain/fit.toml on the GPAW labels it ships, quickly: a third of the training set and 8 co-fit
    evaluations of its six ReaxFF parameters. The shipped force field is the LAMMPS distribution's; the data are small,
    non-periodic C/H/O molecules with energies and forces; the refitted force field is written and stays in the bounds."""
    from hybridpot.dataset import read_dataset
    from hybridpot.fitting.config import parse_config
    from hybridpot.fitting.job import run_fit
    from hybridpot.io.toml import read_toml

    _require_reaxff(lammps_module)
    assert (EXAMPLE / "ffield.reax.cho").read_text() == (lammps_potentials / "ffield.reax.cho").read_text()
    for name in ("train.xyz", "test.xyz"):
        path = EXAMPLE / "data" / name
        assert path.stat().st_size < 1_000_000
        data = read_dataset(path)
        assert data.has_forces.all() and not any(a.pbc.any() for a in data.frames)
        assert {s for a in data.frames for s in a.get_chemical_symbols()} == {"C", "H", "O"}
        assert {"equilibrium", "rattled", "strained", "stretch"} == set(data.config_type)
    raw = read_toml(EXAMPLE / "fit.toml")
    raw["fit"]["train_fraction"] = 0.3
    raw["baseline"]["refit_max_evals"] = 8
    raw["output"] = {"dir": str(tmp_path / "out"), "plots": False}
    result = run_fit(parse_config(raw, EXAMPLE, "examples/reaxff_retrain/fit.toml"), progress=False, log=lambda m: None)
    record = result.report["fit"]["cofit"]
    assert record["labels"] == raw["baseline"]["refit"] and record["evaluations"] == 8
    assert record["objective_final"] <= record["objective_initial"]
    lower, upper = np.array(record["lower"]), np.array(record["upper"])
    assert np.all((lower <= record["final"]) & (np.array(record["final"]) <= upper))
    refitted = (result.output_dir / "baseline" / "ffield.reax.cho").read_text()
    for label, value in zip(record["labels"], record["final"]):
        assert locate(refitted, "reaxff", label.split(":")[1], "refitted").value == value
    for part in ("test", "baseline_only"):
        errors = result.report[part]["test"] if part == "baseline_only" else result.report[part]
        assert np.isfinite(errors["energy_mae_meV_atom"]) and np.isfinite(errors["force_mae_eV_A"])
