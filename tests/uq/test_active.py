"""Active learning: configuration errors, oracle, greedy D-optimal selection without duplicates,
the loop end to end with an ASE oracle, and the GPAW example where GPAW is installed."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from ase.calculators.emt import EMT
from ase.io import read, write

from hybridpot.active import make_oracle, md_candidates, read_active_config, run_active, select
from hybridpot.cli import main
from hybridpot.dataset import bundled
from hybridpot.errors import HybridpotError
from hybridpot.io.modelfile import load
from tests.builders import active_cells, write_active_config

REPO = Path(__file__).resolve().parents[2]

def test_loop_with_an_ase_oracle(tmp_path):
    write(tmp_path / "test.xyz", [_emt_labelled(a) for a in active_cells(4, 7, rattle=0.1)])
    path = write_active_config(tmp_path, active_extra='test = "test.xyz"')
    path.write_text(path.read_text().replace("plots = false", 'plots = true\nname = "cu"'))
    assert main(["-q", "active", str(path)]) == 0
    out = tmp_path / "out"
    assert {"active_log.json", "cu.hybridpot.json", "learning_curve.png", "train.xyz"} <= {p.name for p in out.iterdir()}
    assert not (out / "model.hybridpot.json").exists()
    doc = json.loads((out / "active_log.json").read_text())
    its = doc["iterations"]
    assert [e["oracle_calls"] for e in its] == [3, 5, 7]  # 3 unlabelled initial cells, then 2 per iteration
    assert [e["n_train"] for e in its] == [3, 5, 7]
    for e in its[1:]:
        assert e["max_gamma_seen"] > 1
        assert all(s["gamma"] > 1 for s in e["selected"])
        assert np.isfinite(e["test"]["energy_rmse_meV_atom"]) and np.isfinite(e["test"]["force_rmse_eV_A"])
    # the stored training set carries the oracle's labels (extxyz keeps positions to 1e-8 A,
    # which moves the energy by at most ~sum |F| x 5e-9 A < 1e-6 eV here)
    train = read(out / "train.xyz", ":")
    assert len(train) == 7
    probe = train[-1].copy()
    probe.calc = EMT()
    assert train[-1].get_potential_energy() == pytest.approx(probe.get_potential_energy(), abs=1e-6)
    assert np.allclose(train[-1].get_forces(), probe.get_forces(), atol=1e-6)
    # the final model is usable with its uncertainty data
    pot = load(out / "cu.hybridpot.json")
    assert pot.uncertainty(train[0])["max_gamma"] <= 1 + 1e-6
    assert (out / "learning_curve.png").stat().st_size > 0


def _emt_labelled(atoms):
    from ase.calculators.singlepoint import SinglePointCalculator

    a = atoms.copy()
    a.calc = EMT()
    e, f = a.get_potential_energy(), a.get_forces()
    a.calc = SinglePointCalculator(a, energy=e, forces=f)
    return a


def test_initial_labels_are_checked_like_a_fits(tmp_path, capsys):
    """Labelled initial structures go through hybridpot fit's label checks: one corrupted atom among 9 EMT-labelled
    cells stops the loop before any fit or oracle call, naming it; [active] check_outliers = false goes on with a warning
    that the log records."""
    cells = [_emt_labelled(a) for a in active_cells(9, 5, rattle=0.08)]
    cells[6].calc.results["forces"][3] = [0.0, 0.0, 90.0]
    path = write_active_config(tmp_path, iterations=0)
    write(tmp_path / "initial.xyz", cells)
    assert main(["-q", "active", str(path)]) == 2
    err = capsys.readouterr().err
    assert "atom(s) with force labels far outside the rest: structure 6 (" in err and "atom 3:" in err
    assert "set [active] check_outliers = false" in err and not (tmp_path / "out").exists()
    path.write_text(path.read_text().replace("seed = 1", "seed = 1\ncheck_outliers = false"))
    assert main(["active", str(path)]) == 0
    assert "([active] check_outliers = false: fitting anyway)" in capsys.readouterr().out
    doc = json.loads((tmp_path / "out" / "active_log.json").read_text())
    assert doc["iterations"][0]["fit"]["data_checks"]["outliers"]["checks"]["atom_forces"]["outliers"] == [[6, 3]]
    out = tmp_path / "out"  # [output] plots = false and no name: no learning curve, the model under the default name
    assert (out / "model.hybridpot.json").is_file() and not (out / "learning_curve.png").exists()


@pytest.fixture(scope="module")
def fitted_small(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("active_fit")
    result = run_active(read_active_config(write_active_config(tmp, iterations=0)), write=False)
    return result.potential


def test_selection_takes_no_near_duplicates(fitted_small):
    far = active_cells(2, 11, rattle=0.25, a=3.4)  # compressed and strongly rattled: extrapolation
    candidates = [far[0], far[0].copy(), far[0].copy(), far[1]]
    candidates[1].positions += 1e-6  # a near-duplicate
    sel = select(fitted_small, candidates, 4, "gamma", 1.1, np.random.default_rng(0))
    assert sel.max_gamma_seen > 1
    assert sorted(sel.index) in ([0, 3], [1, 3], [2, 3]), sel
    assert not sel.converged
    # candidates inside the training data add nothing: converged, none selected
    inside = select(fitted_small, active_cells(3, 0), 2, "gamma", 1.0 + 1e-6, np.random.default_rng(0))
    assert inside.converged and inside.index == []
    # std ranks by predictive std but keeps the duplicate filter
    by_std = select(fitted_small, candidates, 4, "std", 1.1, np.random.default_rng(0))
    assert len(by_std.index) == 2 and 3 in by_std.index
    rand = select(fitted_small, candidates, 3, "random", 1.0, np.random.default_rng(5))
    assert len(set(rand.index)) == 3 and rand.index == select(fitted_small, candidates, 3, "random", 1.0, np.random.default_rng(5)).index


def test_md_candidates_stop_past_gamma_break(fitted_small):
    rng = np.random.default_rng(0)
    seeds = active_cells(1, 3)
    snaps = md_candidates(fitted_small, seeds, [2000.0], steps=40, every=10, timestep_fs=2.0, gamma_break=1e-3, rng=rng)
    assert len(snaps) == 1  # the first snapshot already exceeds the break: the run stops there
    snaps = md_candidates(fitted_small, seeds, [300.0, 600.0], steps=20, every=10, timestep_fs=1.0, gamma_break=1e9, rng=rng)
    assert len(snaps) == 4 and all("md T=" in s.info["candidate"] for s in snaps)


@pytest.mark.lammps
def test_md_candidates_in_lammps(fitted_small, lammps_plugin):
    """engine = "lammps": pair_style hpot runs the MD, compute hpot/gamma stops it; the grade LAMMPS reports for each
    snapshot is hybridpot's gamma of that snapshot."""
    from hybridpot.md import lammps_snapshots
    from hybridpot.uq import extrapolation_grades

    seeds = active_cells(1, 3)
    runs = lammps_snapshots(fitted_small, seeds[0], 600.0, steps=30, every=10, timestep_fs=1.0, gamma_break=1e9, seed=4)
    assert len(runs) == 3
    for snap, gamma in runs:
        assert gamma == pytest.approx(float(extrapolation_grades(fitted_small, [snap])[0].max()), rel=1e-10)
    assert len(lammps_snapshots(fitted_small, seeds[0], 2000.0, 40, 10, 2.0, gamma_break=1e-3, seed=1)) == 1
    snaps = md_candidates(fitted_small, seeds, [300.0, 600.0], steps=20, every=10, timestep_fs=1.0, gamma_break=1e9,
                          rng=np.random.default_rng(0), engine="lammps")
    assert len(snaps) == 4 and all("lammps md T=" in s.info["candidate"] for s in snaps)


def test_pool_source_converges_when_nothing_is_new(tmp_path):
    write(tmp_path / "pool.xyz", active_cells(3, 0))  # the initial structures themselves
    path = write_active_config(tmp_path, iterations=3, source="pool", candidates_extra='pool = "pool.xyz"',
                        active_extra="gamma_min = 1.000001")
    result = run_active(read_active_config(path), write=False)
    assert result.log[-1].get("converged") and len(result.log) == 2
    assert result.log[-1]["oracle_calls"] == 3


@pytest.mark.parametrize("edit,message", [
    (("[active]", "[data]\ntrain = 'x.xyz'\n[active]"), "[data] is replaced by [active] initial"),
    (('criterion = "gamma"', 'criterion = "entropy"'), "criterion = 'entropy'"),
    (('source = "perturb"', 'source = "pool"'), "needs pool = '...'"),
    (('calculator = "ase.calculators.emt.EMT"', 'calculator = "ase.calculators.emt.EMT"\npotential = "x"'), "exactly one of"),
    (("count = 12", "count = 0"), "count = 0: must be >= 1"),
    (("count = 12", "temperatures = [300, -5]"), "temperatures"),
    (("select = 2", "select = 2\nbogus = 1"), "[active]: unknown key(s) ['bogus']"),
    (("nmax = 2", "nmax = 'two'"), "[descriptor] nmax = 'two'"),
    (("[output]", "[fit]\ntune = true\n[output]"), "[fit] tune is not used by active learning"),
    (("[descriptor]", "refit = ['Cu_mishin1.eam.alloy:x']\n[descriptor]"), "[baseline] refit is not used by active learning"),
])
def test_bad_configurations(tmp_path, capsys, edit, message):
    path = write_active_config(tmp_path)
    path.write_text(path.read_text().replace(*edit, 1))
    assert main(["-q", "active", str(path)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_hybridpot_config_documents_the_active_keys_and_writes_a_working_file(tmp_path, capsys):
    """`hybridpot config --active` lists every key of the loop's sections (with help) and of the fit's but [data];
    its --toml file, with the placeholders' files given, is a configuration the loop accepts at every default."""
    from hybridpot.active import ACTIVE_SECTIONS, LOOP_SECTIONS

    assert main(["config", "--active"]) == 0
    text = capsys.readouterr().out
    assert "[data]" not in text and "[fit]" in text
    for section, settings in ACTIVE_SECTIONS.items():
        assert f"[{section}]" in text and all(f"  {key} " in text for key in settings.keys()), section
    for settings in LOOP_SECTIONS.values():
        assert all(help_text for *_, help_text in settings.describe())
    assert main(["config", "--active", "oracle"]) == 0 and "[candidates]" not in capsys.readouterr().out
    assert main(["config", "--active", "--toml"]) == 0
    toml = capsys.readouterr().out
    write(tmp_path / "initial.xyz", active_cells(3, 0))
    (tmp_path / "active.toml").write_text(toml.replace('"baseline.eam.alloy"', f'"{bundled("Cu_mishin1.eam.alloy")}"'))
    config = read_active_config(tmp_path / "active.toml")
    assert config["active"]["iterations"] == 5 and config["oracle"]["calculator"] == "ase.calculators.emt.EMT"
    assert config.fit["output"]["dir"] == tmp_path / "runs" / "active"  # its own default, not the fit's runs/fit
    assert config["candidates"]["temperatures"] == [300.0, 1200.0] and config.fit["model"]["type"] == "linear"


def test_oracle_errors():
    with pytest.raises(HybridpotError, match="cannot import the oracle calculator 'no_such_module.Calc'"):
        make_oracle({"calculator": "no_such_module.Calc", "parameters": {}})
    with pytest.raises(HybridpotError, match="rejected its parameters"):
        make_oracle({"calculator": "ase.calculators.singlepoint.SinglePointCalculator", "parameters": {}})  # needs atoms


def test_oracle_potential_file(tmp_path):
    path = write_active_config(tmp_path)
    text = path.read_text().replace('calculator = "ase.calculators.emt.EMT"', f'potential = "{bundled("Cu_mishin1.eam.alloy")}"')
    path.write_text(text)
    config = read_active_config(path)
    calc = make_oracle(config["oracle"])
    atoms = active_cells(1, 2)[0]
    atoms.calc = calc
    assert np.isfinite(atoms.get_potential_energy())


@pytest.mark.slow
def test_gpaw_example(tmp_path):
    """The real-DFT example (examples/active_gpaw) end to end; needs GPAW."""
    if importlib.util.find_spec("gpaw") is None:
        pytest.skip("GPAW is not installed (install recipe: examples/active_gpaw/README.md); the real-DFT example cannot run")
    example = REPO / "examples" / "active_gpaw"
    for name in ("active.toml", "initial.xyz"):
        shutil.copy(example / name, tmp_path / name)
    cfg = tmp_path / "active.toml"
    text = cfg.read_text().replace("../../hybridpot/data/Cu_mishin1.eam.alloy", str(bundled("Cu_mishin1.eam.alloy")))
    cfg.write_text(text.replace('txt = "gpaw.log"', f'txt = "{tmp_path / "gpaw.log"}"'))
    result = run_active(read_active_config(cfg))
    calls = [e["oracle_calls"] for e in result.log]
    assert calls[0] == 3 and calls[-1] > 3
    # GPAW's PBE energy of fcc Cu at a = 3.6 A is -3.3695 eV/atom (gpaw_oracle spec); rattled and hot
    # cells lie above it, by less than 0.3 eV/atom
    energies = np.array([a.get_potential_energy() / len(a) for a in result.train])
    assert np.all((energies > -3.3695 - 0.02) & (energies < -3.3695 + 0.3)), energies
    assert (tmp_path / "runs" / "active_gpaw" / "model.hybridpot.json").is_file()


def test_loop_with_an_nn_committee_selects_by_spread(tmp_path):
    path = write_active_config(tmp_path, iterations=1, criterion="std")
    text = path.read_text().replace("[output]", '[model]\ntype = "nn"\nhidden = [4]\nepochs = 3\npatience = 5\ncommittee = 2\n[output]')
    path.write_text(text)
    result = run_active(read_active_config(path), write=False)
    assert result.potential.model.kind == "committee"
    assert [e["oracle_calls"] for e in result.log] == [3, 5]
    assert all(s["std_eV_atom"] > 0 for s in result.log[1]["selected"])
    # a committee needs at least 2 members for the std criterion
    path.write_text(text.replace("committee = 2", "committee = 1"))
    with pytest.raises(HybridpotError, match="committee >= 2"):
        read_active_config(path)
