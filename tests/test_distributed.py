"""The design-matrix pass on Dask ([fit] cluster): the same model as one process, for any number of workers."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from hybridpot.dataset import bundled, read_dataset
from hybridpot.errors import ConfigError, HybridpotError
from hybridpot.fitting.assembly import Weights
from hybridpot.fitting.linear import fit_linear
from hybridpot.prediction import baseline_predictions
from tests.models import cu_eam_hybrid

distributed = pytest.importorskip("distributed", reason="dask[distributed] is not installed (pip install 'hybridpot[dask]')")

#: the fits compared: (quadratic, energy-weight candidates, the baseline check's pure-ML second target and mode)
CASES = {"linear": (False, (), None), "linear-cv": (False, (10.0, 100.0, 1000.0), None), "quadratic": (True, (), None),
         "quadratic-cv": (True, (10.0, 100.0), None), "linear-check-auto": (False, (), "auto")}


#: each case's model from the first worker count run (the others must equal it bit for bit)
FIRST_COUNT: dict[str, np.ndarray] = {}


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
