"""The passes over the data on Dask ([fit] cluster): the same model, predictions, uncertainty data and candidate scores as
one process, for any number of workers."""

from __future__ import annotations

import io
import json
import os
import pickle
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from hybridpot.active import perturbed_candidates, select, structure_std
from hybridpot.dataset import bundled, read_dataset
from hybridpot.descriptors import SO3
from hybridpot.distributed import IN_FLIGHT_PER_THREAD, Cluster
from hybridpot.errors import ConfigError, HybridpotError
from hybridpot.evaluation import evaluate_model
from hybridpot.fitting.assembly import Weights
from hybridpot.fitting.config import parse_config
from hybridpot.fitting.job import run_fit
from hybridpot.fitting.linear import fit_linear, fit_linear_joint
from hybridpot.fitting.solver import LinearSolution
from hybridpot.models.committee import CommitteeModel
from hybridpot.models.kernel import KernelModel
from hybridpot.potential import HybridPotential
from hybridpot.prediction import baseline_predictions, batches, descriptors, predict
from hybridpot.uq import attach_uq
from tests.builders import cu_eam_hybrid, random_model

distributed = pytest.importorskip("distributed", reason="dask[distributed] is not installed (pip install 'hybridpot[dask]')")

#: the fits compared: (quadratic, energy-weight candidates, the baseline check's pure-ML second target and mode)
CASES = {"linear": (False, (), None), "linear-cv": (False, (10.0, 100.0, 1000.0), None), "quadratic": (True, (), None),
         "quadratic-cv": (True, (10.0, 100.0), None), "linear-check-auto": (False, (), "auto")}


#: each case's model from the first worker count run (the others must equal it bit for bit)
FIRST_COUNT: dict[str, np.ndarray] = {}
#: each pure map's arrays from the first worker count run
FIRST_MAP: dict[str, np.ndarray] = {}


@pytest.fixture(scope="module")
def data():
    train = read_dataset(bundled("Cu_train.xyz"))
    return train, baseline_predictions(cu_eam_hybrid().baseline, train, progress=False)


def fit(data, case: str, cluster: str | None, batch_atoms: int = 150) -> np.ndarray:
    train, bl = data
    quadratic, candidates, mode = CASES[case]
    pot = cu_eam_hybrid(nmax=2, lmax=2, alpha=2.0, quadratic=quadratic, scale=0)
    check = {"pure_weights": Weights(energy=3.0), "mode": mode} if mode else {}
    sol, _ = fit_linear(pot, train, bl, Weights(energy=100.0), batch_atoms=batch_atoms, progress=False, cluster=cluster,
                        energy_weights=candidates, **check)
    if mode:  # the check's CV errors come from the same factors: equal too
        return np.concatenate([sol.coef, [v for e in ("hybrid", "pure_ml", "baseline_only") for v in sol.baseline_check[e].values()]])
    return sol.coef


@pytest.fixture(scope="module")
def single(data):
    return {case: fit(data, case, None) for case in CASES}


def map_passes(data, cluster) -> dict[str, np.ndarray]:
    """Every array of the pure-map passes on the bundled training set: the baseline's predictions, a hybrid's
    predictions (whole, and its residual added to the stored baseline predictions) and the descriptors."""
    train, _ = data
    pot = cu_eam_hybrid()  # random coefficients
    bl = baseline_predictions(pot.baseline, train, 150, progress=False, cluster=cluster)
    whole = predict(pot, train, 150, progress=False, cluster=cluster)
    added = predict(pot, train, 150, progress=False, baseline=bl, cluster=cluster)
    B, types, owner = descriptors(pot, train.frames, 150, cluster=cluster)
    return {"baseline energy": bl.energy, "baseline forces": bl.forces, "baseline virial": bl.virial,
            **{f"{k} {name}": v for name, p in (("whole", whole), ("added", added)) for k, v in p.items()},
            "descriptors": B, "types": types, "owner": owner}


def assert_round_off(got: np.ndarray, want: np.ndarray, what: str, rel: float = 1e-12) -> None:
    """``got`` equals ``want`` to ``rel`` relative to the largest |want| (NaN where ``want`` is NaN)."""
    assert got.shape == want.shape, what
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=what)
    ok = ~np.isnan(want)
    scale = max(float(np.abs(want[ok]).max(initial=0.0)), 1e-300)
    assert float(np.abs(got[ok] - want[ok]).max(initial=0.0)) <= rel * scale, what


@pytest.fixture(scope="module")
def single_maps(data):
    return map_passes(data, None)


@pytest.fixture(scope="module")
def cluster2():
    """A local cluster of 2 worker processes, opened once for the evaluation-pass tests."""
    with Cluster("local:2") as cluster:
        yield cluster


def test_a_joint_kernel_fit_on_workers_equals_one_process(data, cluster2):
    """The tune's joint fit of several zetas (KernelModel.joint: a KernelFamily's rows on the workers) gives every member
    the model of one process, to round-off."""
    train, bl = data

    def members():
        base = cu_eam_hybrid().baseline
        d = SO3(rcut=4.5, nmax=2, lmax=2, alpha=2.0, elements=["Cu"])
        return [HybridPotential(base, d, KernelModel(["Cu"], d.n_features, 12, "polynomial", z, linear_term=1.0)) for z in (2, 3)]

    solved = {name: fit_linear_joint(members(), train, bl, Weights(energy=100.0), batch_atoms=150, progress=False, cluster=c,
                                     cv_score=True, cv_folds=3)
              for name, c in (("one process", None), ("two workers", cluster2))}
    for (one, _), (two, _) in zip(*solved.values()):
        assert_round_off(two.coef, one.coef, "joint kernel coefficients", rel=1e-10)
        assert two.cv_errors == pytest.approx(one.cv_errors, rel=1e-10)


def test_prediction_passes_equal_one_process(data, single_maps, cluster2):
    """Baseline predictions, predictions (with and without stored baseline predictions) and descriptors on 2 workers:
    the one-process numbers to round-off; each pass is recorded by the cluster."""
    before = len(cluster2.passes)
    got = map_passes(data, cluster2)
    for key, want in single_maps.items():
        assert_round_off(got[key], want, key)
    assert [p["pass"] for p in cluster2.passes[before:]] == ["baseline", "predict", "predict", "descriptors"]
    assert all(p["workers"] == 2 and p["batches"] > 1 for p in cluster2.passes[before:])


def instances_in(obj, cls: type) -> list[int]:
    """The ids of the ``cls`` objects that pickling ``obj`` writes (what sending it would send)."""
    found = []

    class Finder(pickle.Pickler):
        def persistent_id(self, o):
            if isinstance(o, cls):
                found.append(id(o))
            return None  # pickle it as usual, and look inside

    Finder(io.BytesIO()).dump(obj)
    return found


def _scattered_in_memory(dask_scheduler) -> int:
    """Scattered values (no task makes them) the scheduler knows to be in worker memory (run on the scheduler)."""
    return sum(1 for ts in dask_scheduler.tasks.values() if ts.run_spec is None and ts.state == "memory")


def test_each_task_gets_only_its_own_batch(data, cluster2, monkeypatch):
    """What the design-matrix and prediction passes send: the shared inputs (scattered to every worker) hold no
    structure; every other scatter is one batch's own inputs, and each structure is in exactly one of them; and no
    more batches are on the workers at once than the passes keep in flight (IN_FLIGHT_PER_THREAD per worker thread),
    whatever the number of batches."""
    train, bl = data
    client = cluster2.client
    real = type(client).scatter
    sent: list[tuple[bool, list[int], int]] = []  # (broadcast, structures in it, scattered values on the workers before it)

    def scatter(self, values, *args, broadcast=False, **kwargs):
        sent.append((broadcast, instances_in(values, Atoms), self.run_on_scheduler(_scattered_in_memory)))
        return real(self, values, *args, broadcast=broadcast, **kwargs)

    monkeypatch.setattr(type(client), "scatter", scatter)
    pot = cu_eam_hybrid(nmax=2, lmax=2, scale=0)
    fit_linear(pot, train, bl, Weights(energy=100.0), batch_atoms=150, progress=False, cluster=cluster2)
    predict(pot, train, 150, progress=False, cluster=cluster2)
    monkeypatch.undo()

    starts = [k for k, (broadcast, _, _) in enumerate(sent) if broadcast]
    assert len(starts) == 2, "one scatter of shared inputs per pass"
    frames = {id(a) for a in train.frames}
    window = IN_FLIGHT_PER_THREAD * sum(client.nthreads().values())
    for start, end in zip(starts, starts[1:] + [len(sent)]):
        assert not sent[start][1], "the shared inputs hold structures"
        batches = [[a for a in found if a in frames] for _, found, _ in sent[start + 1 : end]]
        assert all(batches) and sorted(a for b in batches for a in b) == sorted(frames), "each structure in one batch"
        assert len(batches) > 2 * window, "too few batches to see the window"
        # before a batch is sent: the batches in flight (at most window - 1), this pass's shared inputs, and the last
        # pass's, whose release may still be on its way to the scheduler
        assert max(alive for _, _, alive in sent[start + 1 : end]) <= window + 1


def test_the_passes_on_an_open_cluster_share_one_progress_bar(data, cluster2):
    """Every pass run with progress on an open cluster advances the same bar, its total grown by each pass's batches,
    as the workers' results come back."""
    train, _ = data
    pot = cu_eam_hybrid(nmax=2, lmax=2, scale=0)
    before = cluster2._bar.total if cluster2._bar is not None else 0
    predict(pot, train, 150, progress=True, cluster=cluster2)
    bar = cluster2._bar
    predict(pot, train, 300, progress=True, cluster=cluster2)
    assert cluster2._bar is bar
    n = len(list(batches(train.n_atoms, 150))) + len(list(batches(train.n_atoms, 300)))
    assert bar.total - before == n and bar.n == bar.total


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_models_equal_the_single_process_fit_and_each_other(workers, data, single):
    """Linear and quadratic, with and without the energy-weight CV: equal to the one-process fit to 1e-10 relative, and
    bit for bit the same for every number of workers (the reduction tree depends on the batches only)."""
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        for case in CASES:
            coef = fit(data, case, cluster.scheduler_address)
            rel = np.abs(coef - single[case]).max() / np.abs(single[case]).max()
            print(f"{workers} workers, {case}: max relative difference to one process {rel:.1e}")
            assert rel < 1e-10, case
            reference = FIRST_COUNT.setdefault(case, coef)
            np.testing.assert_array_equal(coef, reference, err_msg=f"{case}: {workers} workers differ from the first count run")
        for key, arr in map_passes(data, cluster.scheduler_address).items():  # pure maps: bit for bit
            np.testing.assert_array_equal(arr, FIRST_MAP.setdefault(key, arr), err_msg=f"{key}: {workers} workers differ")


def test_local_cluster_spec_runs_and_matches(data, single):
    """``cluster = "local:2"`` starts its own two-process cluster."""
    coef = fit(data, "linear", "local:2")
    assert np.abs(coef - single["linear"]).max() / np.abs(single["linear"]).max() < 1e-10


def kill_a_busy_worker(client, killed: list) -> None:
    """SIGKILL the first worker seen running a batch task (within 120 s); its pid goes into ``killed``."""
    deadline = time.time() + 120
    while time.time() < deadline:
        busy = [addr for addr, keys in client.processing().items() if any("hybridpot-task" in str(k) for k in keys)]
        if busy:
            pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [2, 1])
def test_a_worker_killed_mid_fit_changes_nothing(workers, data, single, caplog):
    """SIGKILL a worker while the pass runs: its tasks are recomputed and the model is the same. With one worker (its
    nanny starts a fresh one) the scattered inputs are surely lost with it, and the pass is sent again."""
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        killed: list[int] = []
        killer = threading.Thread(target=kill_a_busy_worker, args=(client, killed))
        killer.start()
        coef = fit(data, "linear", cluster.scheduler_address, batch_atoms=40)
        killer.join()
        assert killed, "no worker was busy with a batch to kill"
    assert np.abs(coef - single["linear"]).max() / np.abs(single["linear"]).max() < 1e-10
    if workers == 1:
        assert "a Dask worker died with the inputs of pass 'design matrix'" in caplog.text


def test_unreachable_scheduler_and_bad_settings(data, monkeypatch, tmp_path):
    from hybridpot import distributed as dist
    from hybridpot.fitting.config import read_config

    monkeypatch.setattr(dist, "CONNECT_TIMEOUT", 2)
    with pytest.raises(HybridpotError, match=r"cannot reach the Dask scheduler at tcp://127.0.0.1:9 within 2 s"):
        fit(data, "linear", "tcp://127.0.0.1:9")
    for bad in ("local:0", "local:two", "8786", ""):
        with pytest.raises(ConfigError, match=r"expected 'local:N'"):
            dist.check_cluster(bad)
    base = f'[data]\ntrain = "{bundled("Cu_train.xyz")}"\n[baseline]\nfile = "{bundled("Cu_mishin1.eam.alloy")}"\n'
    (tmp_path / "a.toml").write_text(base + '[fit]\ncluster = "local:-1"\n')
    with pytest.raises(ConfigError, match=r"a.toml: .*cluster = 'local:-1': expected 'local:N'"):
        read_config(tmp_path / "a.toml")
    (tmp_path / "b.toml").write_text(base + '[model]\ntype = "nn"\n[fit]\ncluster = "local:2"\n')
    assert read_config(tmp_path / "b.toml")["fit"]["cluster"] == "local:2"  # nn: its passes over the data run there


def test_kernel_fit_equals_one_process(data, cluster2):
    """A kernel model on 2 workers: its sparse points, chosen from the descriptors' pass, are those of one process bit
    for bit, and the fitted model's predictions (its K_NM rows went through the design-matrix pass) equal one process's
    to 1e-10 relative. Its weights are not compared: this solve's condition number is ~1e16, so they move with the order
    of the sums (two one-process fits with other batch sizes differ by 2.5e-10 relative) where the predictions do not."""
    from hybridpot.models.kernel import KernelModel

    train, bl = data
    fits = {}
    for name, cluster in (("one", None), ("dask", cluster2)):
        base = cu_eam_hybrid(nmax=2, lmax=2, scale=0)
        pot = HybridPotential(base.baseline, base.descriptor, KernelModel(["Cu"], base.descriptor.n_features, 30, "polynomial", 2))
        before = len(cluster2.passes)
        fit_linear(pot, train, bl, Weights(energy=100.0), batch_atoms=150, progress=False, cluster=cluster)
        fits[name] = (pot, [p["pass"] for p in cluster2.passes[before:]])
    (want, none), (got, passes) = fits["one"], fits["dask"]
    assert not none and passes == ["basis descriptors", "design matrix"]
    for key in ("sparse", "whiten"):
        np.testing.assert_array_equal(getattr(got.model, key).numpy(), getattr(want.model, key).numpy(), err_msg=key)
    got_pred, want_pred = predict(got, train, 150, progress=False), predict(want, train, 150, progress=False)
    for key in ("energy", "forces", "stress"):
        assert_round_off(got_pred[key], want_pred[key], key, 1e-10)


def committee_hybrid(train) -> HybridPotential:
    """The small Cu EAM hybrid with a committee of 3 random one-layer networks as its model."""
    base = cu_eam_hybrid(nmax=2, lmax=2)
    members = [random_model("nn", base.descriptor, train.frames[:20], seed, [0.02]) for seed in range(3)]
    return HybridPotential(base.baseline, base.descriptor, CommitteeModel(members))


def test_uncertainty_data_equal_one_process(data, cluster2):
    """The uncertainty data built after a fit that keeps no descriptors (an nn committee): the training descriptors'
    pass (the MaxVol active set) and the members' out-of-bag predictions (the spread's calibration) on 2 workers give
    what one process gives."""
    train, bl = data
    resamples = [np.random.default_rng(c).integers(len(train), size=len(train)).tolist() for c in range(3)]
    built = {}
    for name, cluster in (("one", None), ("dask", cluster2)):
        pot = committee_hybrid(train)
        before = len(cluster2.passes)
        summary = attach_uq(pot, train, bl, Weights(), committee_resamples=resamples, batch_atoms=150, cluster=cluster)
        built[name] = (summary, pot.uq_data, [p["pass"] for p in cluster2.passes[before:]])
    (want, want_uq, none), (got, got_uq, passes) = built["one"], built["dask"]
    assert not none and passes == ["uq descriptors", "committee member 0", "committee member 1", "committee member 2"]
    assert want["committee_scale"]["n_structures"] == got["committee_scale"]["n_structures"] > 0
    for key in ("energy", "forces"):
        assert_round_off(np.array(got["committee_scale"][key]), np.array(want["committee_scale"][key]), key)
    assert_round_off(np.array(got["active_set"]["max_training_gamma"]), np.array(want["active_set"]["max_training_gamma"]), "gamma")
    for t, (a, b) in enumerate(zip(got_uq.active_set.rows, want_uq.active_set.rows)):
        assert_round_off(a, b, f"active rows of type {t}")


@pytest.fixture(scope="module")
def fitted(data):
    """A linear hybrid fitted in this process to the bundled training set, with its uncertainty data."""
    train, bl = data
    pot = cu_eam_hybrid(nmax=2, lmax=2, scale=0)
    sol, weights = fit_linear(pot, train, bl, Weights(energy=100.0), batch_atoms=150, progress=False)
    attach_uq(pot, train, bl, weights, solution=sol)
    pot.solution = sol  # as `hybridpot fit` keeps it, with the training descriptors
    return pot


def test_active_learning_scores_equal_one_process(data, fitted, cluster2):
    """Candidate scoring on 2 workers (their descriptors, and their predictive std for criterion "std") selects the same
    candidates with the same scores as one process."""
    train, _ = data
    candidates = perturbed_candidates(train.frames[:10], 16, 0.15, 0.04, np.random.default_rng(5))
    assert_round_off(structure_std(fitted, candidates, cluster2), structure_std(fitted, candidates), "std")
    for criterion in ("gamma", "std"):
        want = select(fitted, candidates, 4, criterion, 1.0, np.random.default_rng(0))
        got = select(fitted, candidates, 4, criterion, 1.0, np.random.default_rng(0), cluster2)
        assert want.index and got.index == want.index, criterion
        for key in ("gamma", "std"):
            assert_round_off(np.array(getattr(got, key)), np.array(getattr(want, key)), f"{criterion}: {key}")
        assert_round_off(np.array(got.max_gamma_seen), np.array(want.max_gamma_seen), f"{criterion}: max gamma")


def test_passes_send_a_fitted_potential_without_its_fit_record(data, fitted, cluster2, monkeypatch):
    """A fitted potential carries its solution (training descriptors, as large as the training set): the passes that
    send the whole potential (candidate descriptors and std, predictions without stored baseline predictions) send it
    without, and give what one process gives."""
    train, _ = data
    assert fitted.solution.training_descriptors is not None
    client = cluster2.client
    real = type(client).scatter
    shared: list[list[int]] = []  # per pass: the LinearSolution objects in its shared inputs

    def scatter(self, values, *args, broadcast=False, **kwargs):
        if broadcast:
            shared.append(instances_in(values, LinearSolution))
        return real(self, values, *args, broadcast=broadcast, **kwargs)

    monkeypatch.setattr(type(client), "scatter", scatter)
    candidates = perturbed_candidates(train.frames[:4], 4, 0.15, 0.04, np.random.default_rng(5))
    got = {"std": structure_std(fitted, candidates, cluster2), "descriptors": descriptors(fitted, candidates, cluster=cluster2)[0],
           **predict(fitted, train, 150, progress=False, cluster=cluster2)}
    monkeypatch.undo()
    assert len(shared) == 3 and not any(shared)
    want = {"std": structure_std(fitted, candidates), "descriptors": descriptors(fitted, candidates)[0],
            **predict(fitted, train, 150, progress=False)}
    for key in want:
        assert_round_off(got[key], want[key], key)


def test_the_scheduler_is_sent_no_function_of_hybridpot(data, cluster2, monkeypatch):
    """Dask's scheduler unpickles the task graph: every task of a pass names only functions of modules that import
    neither torch nor ase (the scheduler would import them, 200 MiB, to pass the tasks on)."""
    import operator
    import subprocess
    import sys

    from hybridpot import distributed as dist

    train, bl = data
    client = cluster2.client
    real = type(client).submit
    functions = []

    def submit(self, func, *args, **kwargs):
        functions.append(func)
        return real(self, func, *args, **kwargs)

    monkeypatch.setattr(type(client), "submit", submit)
    fit_linear(cu_eam_hybrid(nmax=2, lmax=2, scale=0), train, bl, Weights(), batch_atoms=150, progress=False, cluster=cluster2)
    monkeypatch.undo()
    assert functions and all(f is dist._call or isinstance(f, operator.itemgetter) for f in functions)
    loaded = subprocess.run([sys.executable, "-c", "import sys, hybridpot.distributed; print(sorted({'torch', 'ase', 'numpy'} & "
                             "set(sys.modules)))"], capture_output=True, text=True, check=True,
                            cwd=Path(dist.__file__).parents[1]).stdout.strip()  # this checkout's hybridpot
    assert loaded == "[]"


def nested_numbers(d, prefix: str = "") -> dict[str, float]:
    """The numbers of a nested report section, by their path."""
    if isinstance(d, dict):
        return {k: v for key, value in d.items() for k, v in nested_numbers(value, f"{prefix}/{key}").items()}
    return {prefix: float(d)} if isinstance(d, (int, float)) and not isinstance(d, bool) else {}


@pytest.mark.slow
def test_fit_job_and_eval_on_the_cluster_equal_one_process(tmp_path, cluster2):
    """`hybridpot fit` with [fit] cluster = a scheduler's address: the model, the train and test errors, the
    baseline-only rows and the uncertainty data equal the one-process fit's to 1e-10 relative, and report.json lists
    the passes that ran on the cluster; `hybridpot eval` on the cluster gives the same errors as in one process."""
    address = cluster2.client.scheduler.address
    reports, coef, paths = {}, {}, {}
    for name, cluster in (("one", None), ("dask", address)):
        raw = {"data": {"train": str(bundled("Cu_train.xyz")), "test": str(bundled("Cu_test.xyz"))},
               "baseline": {"file": str(bundled("Cu_mishin1.eam.alloy"))},
               "descriptor": {"rcut": 4.5, "nmax": 3, "lmax": 3, "alpha": 1.5}, "model": {"type": "linear"},
               "fit": {"seed": 7, "batch_atoms": 300} | ({"cluster": cluster} if cluster else {}),
               "output": {"dir": str(tmp_path / name), "plots": False}}
        res = run_fit(parse_config(raw, tmp_path, "test config"), progress=False, log=lambda s: None)
        reports[name] = json.loads((res.output_dir / "report.json").read_text())
        coef[name] = res.potential.model.coef.detach().numpy().copy()
        paths[name] = res.model_path
    assert_round_off(coef["dask"], coef["one"], "coefficients", 1e-10)
    for section in ("train", "test", "baseline_only", "uq"):
        want, got = nested_numbers(reports["one"][section]), nested_numbers(reports["dask"][section])
        assert want and got.keys() == want.keys(), section
        for key in want:
            assert_round_off(np.array(got[key]), np.array(want[key]), f"{section}{key}", 1e-10)
    assert "cluster" not in reports["one"]
    record = reports["dask"]["cluster"]
    assert record["cluster"] == address and record["workers"] == 2
    assert [p["pass"] for p in record["passes"]] == ["baseline train", "baseline test", "design matrix", "evaluate train", "evaluate test"]

    test = bundled("Cu_test.xyz")
    want = evaluate_model(paths["one"], test, progress=False, log=lambda s: None)
    got = evaluate_model(paths["one"], test, progress=False, log=lambda s: None, cluster=cluster2)
    for row in ("hybrid", "baseline only"):
        for key, value in want[row].items():
            assert_round_off(np.array(got[row][key]), np.array(value), f"eval {row} {key}", 1e-10)
    assert [p["pass"] for p in got["cluster"]["passes"]][-2:] == ["baseline", "predict"] and "cluster" not in want


@pytest.mark.slow
def test_a_worker_killed_mid_prediction_changes_nothing(data, caplog):
    """SIGKILL the only worker while a prediction pass runs: the pass is sent again, the batches already kept are not
    computed again, and the predictions are those of one process."""
    train, _ = data
    pot = cu_eam_hybrid()
    want = predict(pot, train, 40, progress=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        killed: list[int] = []
        killer = threading.Thread(target=kill_a_busy_worker, args=(client, killed))
        killer.start()
        got = predict(pot, train, 40, progress=False, cluster=cluster.scheduler_address)
        killer.join()
        assert killed, "no worker was busy with a batch to kill"
    for key in want:
        assert_round_off(got[key], want[key], key)
    assert "a Dask worker died with the inputs of pass 'predict'" in caplog.text
