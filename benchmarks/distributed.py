"""Distributed fitting on Dask (issue #23): one fit job in one process, on 1 Dask worker and on 2, and a model of N.

The data: the mlearn Cu training set (``--data``; default ``$HYBRIDPOT_SHARED`` or ``../shared``:
``data/mlearn/Cu/train.xyz``) plus ``--atoms`` atoms of EAM molecular-dynamics snapshots made here: fcc Cu cells of 32,
48, 72 and 108 atoms, strained by up to 3 % in each component, run with ASE's Langevin thermostat at 300 to 1500 K with
hybridpot's calculator on the Zhou EAM (``Cu_zhou.eam.alloy``), and labelled by that EAM (energy, forces, stress), its
energies shifted by one constant per atom so that the EAM and DFT agree on the lowest-energy mlearn structure. The
generated snapshots and the combined training file are cached (``--cache``, default a folder in the system's temp
directory) under a name that holds their settings, so reruns skip the MD.

The fit: ``hybridpot fit`` through its public path (``parse_config`` + ``run_fit``) with the Mishin EAM baseline
(``Cu_mishin1.eam.alloy``) and a linear model on the LAMMPS-basis SO(3) power spectrum, nmax = lmax = 4, rcut 5 A
(the mlearn Cu settings), default weights and batches (``--batch-atoms``). Two label sources (DFT, an EAM) in one
training set make its errors no measure of accuracy: only time and memory are reported.

Each run is a fresh subprocess (``OMP_NUM_THREADS=1`` everywhere, so that one process uses one core):

* ``1 process``: no cluster;
* ``1 worker``, ``2 workers``: ``[fit] cluster`` = the address of a scheduler and N workers started for the run as
  separate processes (``dask scheduler``; ``dask worker --nthreads 1 --no-nanny``), so that each process's peak memory
  is its own. The workers import hybridpot before the clock starts (the seconds to start the cluster and for the
  workers' imports are reported apart).

Reported per run: the fit job's wall time by stage (report.json ``timings``), the seconds of each pass on the cluster,
and the peak resident memory (Linux ``VmHWM``) of the fitting process, of the scheduler and of each worker (reported by
those processes themselves through ``client.run``), with each worker's resident memory once hybridpot is imported.

Per-batch costs are measured by Dask's task stream on the workers (compute time of every batch task of each pass and of
every reduction step). From the 1-worker run they give a MODEL (not a measurement) of the time at N workers:

    T(N) = S + sum over passes p of ceil(n_p / N) * t_p + ceil(log2 n_design) * t_merge

with n_p the batches of pass p, t_p their mean compute time, t_merge the mean time of one reduction step, and S the
rest of the 1-worker run (reading the data, sending the inputs, dispatching, collecting, solving, writing), taken as
independent of N. The model's T(2) is printed beside the measured 2-worker time.

    python benchmarks/distributed.py [--atoms 300000] [--data PATH] [--potentials DIR] [--cache DIR]
                                     [--batch-atoms 1000] [--runs process,1,2] [--out benchmarks/results]

``--runs none`` only makes the training set (the MD is not timed: it can run on a busy machine, and the timed runs
later find it in the cache).

Writes ``distributed.json`` in ``--out``. Run it on a quiet machine: every timing here is wall time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# run as a script, this file's folder comes first on the path, and this file would stand in for the distributed package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO))

#: the MD snapshots: cubic fcc repeats (atoms = 4 * product), temperatures (K), lattice constant (A) and largest strain
REPEATS = [(2, 2, 2), (2, 2, 3), (2, 3, 3), (3, 3, 3)]
TEMPERATURES = [300.0, 600.0, 900.0, 1200.0, 1500.0]
LATTICE_A = 3.615
STRAIN = 0.03
#: per MD run: steps before the first snapshot, steps between snapshots, snapshots, time step (fs)
EQUILIBRATION, EVERY, SNAPSHOTS, TIMESTEP_FS = 20, 5, 20, 2.0
#: bump when the generated set changes, so that older caches are not reused
GENERATOR_VERSION = 2
SEED = 0
#: the fit: the mlearn Cu descriptor settings and a linear model (benchmarks/mlearn.py)
DESCRIPTOR = {"basis": "lammps", "kind": "power", "rcut": 5.0, "nmax": 4, "lmax": 4, "alpha": 2.0}
CHILD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def shared_dir() -> Path:
    """../shared beside the checkout, or $HYBRIDPOT_SHARED (as the tests find it)."""
    return Path(os.environ.get("HYBRIDPOT_SHARED", REPO.parent / "shared"))


def child_env() -> dict[str, str]:
    """The environment of every subprocess: one thread per process, this checkout's hybridpot first on the path."""
    path = os.pathsep.join([str(REPO)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))
    return os.environ | CHILD_ENV | {"PYTHONPATH": path}


# ----------------------------------------------------------------------------------------------------- the data


def md_snapshots(zhou: Path, n_atoms: int, offset_eV_atom: float, seed: int = SEED) -> list:
    """EAM-MD snapshots of fcc Cu holding at least ``n_atoms`` atoms in total, labelled by the EAM of ``zhou``.

    Runs of :data:`SNAPSHOTS` snapshots each (every :data:`EVERY` steps after :data:`EQUILIBRATION`), each run on a
    random repeat of :data:`REPEATS`, a random symmetric strain (components up to :data:`STRAIN`) and a random
    temperature of :data:`TEMPERATURES`; seeded by ``seed``. Energies: the EAM's plus ``offset_eV_atom`` per atom.
    """
    from ase import Atoms, units
    from ase.build import bulk
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from tqdm.auto import tqdm

    import hybridpot
    from hybridpot.calculator import Calculator

    eam = hybridpot.load(zhou)
    rng = np.random.default_rng(seed)
    frames: list[Atoms] = []
    total = 0
    with tqdm(total=n_atoms, desc="EAM MD snapshots", unit="atom") as bar:
        while total < n_atoms:
            repeat = REPEATS[int(rng.integers(len(REPEATS)))]
            T = float(TEMPERATURES[int(rng.integers(len(TEMPERATURES)))])
            atoms = bulk("Cu", "fcc", a=LATTICE_A, cubic=True).repeat(repeat)
            eps = rng.uniform(-STRAIN, STRAIN, (3, 3))
            atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
            atoms.calc = Calculator(eam)
            MaxwellBoltzmannDistribution(atoms, temperature_K=T, rng=rng)
            dyn = Langevin(atoms, timestep=TIMESTEP_FS * units.fs, temperature_K=T, friction=0.02 / units.fs, fixcm=False,
                           rng=np.random.default_rng(int(rng.integers(1 << 31))))
            dyn.run(EQUILIBRATION)
            for k in range(SNAPSHOTS):
                dyn.run(EVERY)
                snap = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=True)
                energy = atoms.get_potential_energy() + offset_eV_atom * len(atoms)
                snap.calc = SinglePointCalculator(snap, energy=energy, forces=atoms.get_forces(), stress=atoms.get_stress())
                snap.info["config_type"] = f"eam_md_{T:g}K"
                frames.append(snap)
                total += len(snap)
                bar.update(len(snap))
                if total >= n_atoms:
                    break
    return frames


def reference_offset(mlearn: list, zhou: Path) -> float:
    """eV/atom to add to the Zhou EAM's energies so that they equal DFT's on the lowest-energy (per atom) structure of
    ``mlearn`` (labelled frames)."""
    import hybridpot
    from hybridpot.calculator import Calculator

    lowest = min(mlearn, key=lambda a: a.get_potential_energy() / len(a))
    dft = lowest.get_potential_energy() / len(lowest)
    atoms = lowest.copy()
    atoms.calc = Calculator(hybridpot.load(zhou))
    return float(dft - atoms.get_potential_energy() / len(atoms))


def training_file(mlearn: Path, potentials: Path, n_atoms: int, cache: Path) -> tuple[Path, float]:
    """The combined training file (mlearn + ``n_atoms`` atoms of EAM-MD snapshots), made once and cached in ``cache``,
    and the EAM's energy offset (eV/atom, :func:`reference_offset`)."""
    from ase.io import read, write

    cache.mkdir(parents=True, exist_ok=True)
    md_path = cache / f"cu_zhou_md_{n_atoms}_seed{SEED}_v{GENERATOR_VERSION}.xyz"
    zhou = potentials / "Cu_zhou.eam.alloy"
    offset = reference_offset(read(mlearn, index=":"), zhou)
    if not md_path.is_file():
        t0 = time.perf_counter()
        frames = md_snapshots(zhou, n_atoms, offset)
        tmp = md_path.with_suffix(".xyz.tmp")
        write(tmp, frames, format="extxyz")
        tmp.replace(md_path)
        print(f"generated {len(frames)} EAM-MD snapshots ({sum(len(a) for a in frames)} atoms) in "
              f"{time.perf_counter() - t0:.0f} s -> {md_path}")
    else:
        print(f"using the cached EAM-MD snapshots {md_path}")
    combined = cache / f"train_{mlearn.parent.name}_{md_path.stem}.xyz"
    if not combined.is_file() or combined.stat().st_mtime < max(md_path.stat().st_mtime, mlearn.stat().st_mtime):
        frames = read(mlearn, index=":") + read(md_path, index=":")
        tmp = combined.with_suffix(".xyz.tmp")
        write(tmp, frames, format="extxyz")
        tmp.replace(combined)
    return combined, offset


# ----------------------------------------------------------------------------------------------------- one run


def fit_config(train: Path, potentials: Path, out: Path, batch_atoms: int, cluster: str | None) -> dict[str, Any]:
    """The raw configuration of the benchmark's fit (as read from a TOML file)."""
    return {"data": {"train": str(train)}, "baseline": {"file": str(potentials / "Cu_mishin1.eam.alloy")},
            "descriptor": dict(DESCRIPTOR), "model": {"type": "linear"},
            "fit": {"seed": 0, "batch_atoms": batch_atoms} | ({"cluster": cluster} if cluster else {}),
            "output": {"dir": str(out), "plots": False, "overwrite": True}}


def _max_rss_mib() -> float:
    """Peak resident memory of the calling process, MiB (run on workers and the scheduler by ``client.run``).

    Linux's ``VmHWM`` (/proc/self/status), which starts afresh when a process execs; ``ru_maxrss`` does not: it keeps
    the resident size of the process that forked this one (this script, with torch imported and the data read), and
    made the scheduler's peak read 311 MiB where its own was 74 MiB. ``ru_maxrss`` only where there is no /proc.
    """
    import re
    import resource

    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1)) / 1024.0


def _rss_mib() -> float:
    """Resident memory of the calling process now, MiB."""
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _cpu_seconds() -> float:
    """CPU time (user + system) of the calling process so far, s (run on workers and the scheduler by ``client.run``)."""
    t = os.times()
    return t.user + t.system


def _import_hybridpot() -> None:
    """Import what the batch tasks need (on a worker, before the clock starts)."""
    import hybridpot.fitting.assembly  # noqa: F401
    import hybridpot.prediction  # noqa: F401


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One fit in this (fresh) process as ``spec`` says; with a scheduler address, also the workers' and scheduler's
    memory and the task stream's per-batch compute times."""
    from hybridpot.fitting.config import parse_config
    from hybridpot.fitting.job import run_fit

    address = spec.get("address")
    raw = fit_config(Path(spec["train"]), Path(spec["potentials"]), Path(spec["out"]), spec["batch_atoms"], address)
    config = parse_config(raw, Path(spec["out"]).parent, "benchmarks/distributed.py")
    if address is None:
        t0 = time.perf_counter()
        result = run_fit(config, progress=False, log=print)
        wall, peak = time.perf_counter() - t0, _max_rss_mib()
        return {"wall_seconds": wall, "report": _report_part(result.report), "fit_process_peak_MiB": peak,
                "sent_MiB": sent_mib(config, result.potential)}
    from distributed import Client

    with Client(address) as client:
        t0 = time.perf_counter()
        client.run(_import_hybridpot)
        imports = time.perf_counter() - t0
        idle = client.run(_rss_mib)
        scheduler_idle = client.run_on_scheduler(_rss_mib)
        client.get_task_stream()  # starts the scheduler's recording
        cpu0 = {"fit process": _cpu_seconds(), "scheduler": client.run_on_scheduler(_cpu_seconds), **client.run(_cpu_seconds)}
        t_start = time.time()
        t0 = time.perf_counter()
        report = run_fit(config, progress=False, log=print).report
        wall = time.perf_counter() - t0
        cpu1 = {"fit process": _cpu_seconds(), "scheduler": client.run_on_scheduler(_cpu_seconds), **client.run(_cpu_seconds)}
        stream = client.get_task_stream(start=t_start)
        workers = client.run(_max_rss_mib)
        scheduler = client.run_on_scheduler(_max_rss_mib)
    cpu = {k: cpu1[k] - cpu0[k] for k in cpu0}
    return {"wall_seconds": wall, "report": _report_part(report), "fit_process_peak_MiB": _max_rss_mib(),
            "scheduler_peak_MiB": scheduler, "scheduler_before_fit_MiB": scheduler_idle, "worker_import_seconds": imports,
            "workers": [{"peak_MiB": workers[w], "after_import_MiB": idle[w], "cpu_seconds_during_fit": cpu[w]} for w in sorted(workers)],
            "cpu_seconds_during_fit": {"fit process": cpu["fit process"], "scheduler": cpu["scheduler"],
                                       "workers": sum(cpu[w] for w in workers)},
            "batch_costs": batch_costs(stream, report["cluster"]["passes"])}


def sent_mib(config, potential) -> dict[str, float]:
    """Pickled size (MiB) of what the fit job's passes on a cluster send: the shared inputs, to every worker once per
    pass (the baseline; the design-matrix pass's assembler, weights and row counts; the fitted residual that the
    evaluation evaluates), and each batch's own inputs of the design-matrix pass, the largest of any pass (its
    structures, their labels and the baseline's predictions), to one worker: mean and largest over the batches; and,
    for comparison, the whole data set with its baseline predictions."""
    import pickle

    from hybridpot.dataset import read_dataset
    from hybridpot.design import DesignAssembler
    from hybridpot.fitting.assembly import RowCounts, Weights, design_batch_atoms, design_inputs
    from hybridpot.prediction import baseline_predictions, batches, for_workers

    data = read_dataset(config["data"]["train"])
    zeros = baseline_predictions(None, data, progress=False)  # the same arrays as the baseline's predictions
    assembler = DesignAssembler(potential.descriptor, potential.model, for_workers(potential).types, potential.cutoff)
    folds, ptr = np.zeros(len(data), dtype=int), data.ptr
    batch = np.array([len(pickle.dumps(design_inputs(data, zeros, (), folds, ptr, idx)))
                      for idx in batches(data.n_atoms, design_batch_atoms(config["fit"]["batch_atoms"], assembler.n_columns))])
    return {"shared: baseline": len(pickle.dumps(potential.baseline)) / 2**20,
            "shared: design-matrix settings": len(pickle.dumps((assembler, Weights(), RowCounts.of(data), True))) / 2**20,
            "shared: fitted residual": len(pickle.dumps(potential.residual())) / 2**20,
            "design batch, mean": batch.mean() / 2**20, "design batch, largest": batch.max() / 2**20,
            "whole data set + baseline predictions": len(pickle.dumps((data, zeros))) / 2**20}


def _report_part(report: dict[str, Any]) -> dict[str, Any]:
    """What the benchmark keeps of a fit's report.json."""
    return {"timings": report["timings"], "total_seconds": report["total_seconds"], "cluster": report.get("cluster"),
            "rows": report["fit"]["solver"]["rows"], "n_train": report["data"]["train"]["n_used"]}


def batch_costs(stream: list[dict[str, Any]], passes: list[dict[str, Any]]) -> dict[str, Any]:
    """Compute seconds of every batch task and reduction step of each pass, from Dask's task stream.

    The tasks of one pass share a token in their keys (``hybridpot-task-TOKEN-i``); the passes ran one after the
    other, so the tokens in the order of their first task are the passes in the order of ``passes``.

    Raises:
        RuntimeError: the stream does not hold one token per pass with one task per batch.
    """
    tasks: dict[str, list[float]] = {}
    merges: dict[str, list[float]] = {}
    first: dict[str, float] = {}
    for msg in stream:
        match = re.fullmatch(r"hybridpot-(task|reduce)-([0-9a-f]+)-.*", str(msg["key"]))
        compute = [s for s in msg.get("startstops", ()) if s["action"] == "compute"]
        if not match or not compute:
            continue
        kind, token = match.groups()
        seconds = sum(s["stop"] - s["start"] for s in compute)
        (tasks if kind == "task" else merges).setdefault(token, []).append(seconds)
        first[token] = min(first.get(token, math.inf), min(s["start"] for s in compute))
    tokens = sorted(tasks, key=first.__getitem__)
    if len(tokens) != len(passes) or any(len(tasks[t]) != p["batches"] for t, p in zip(tokens, passes)):
        raise RuntimeError(f"the task stream holds {[len(tasks[t]) for t in tokens]} batch tasks per pass, expected "
                           f"{[p['batches'] for p in passes]}: was a task lost and recomputed, or the stream truncated?")
    out = {}
    for token, p in zip(tokens, passes):
        t, m = np.array(tasks[token]), np.array(merges.get(token, []))
        out[p["pass"]] = {"batches": len(t), "batch_seconds_mean": float(t.mean()), "batch_seconds_max": float(t.max()),
                          "batch_seconds_total": float(t.sum()), "reduce_steps": len(m),
                          "reduce_seconds_mean": float(m.mean()) if m.size else 0.0, "reduce_seconds_total": float(m.sum())}
    return out


# ----------------------------------------------------------------------------------------------------- the runs


def start_cluster(n_workers: int, folder: Path) -> tuple[str, list[subprocess.Popen]]:
    """A scheduler and ``n_workers`` single-threaded workers as separate processes; (address, processes)."""
    from distributed import Client

    scheduler_file = folder / "scheduler.json"
    env = child_env()
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--scheduler-file", str(scheduler_file),
                               "--no-dashboard", "--port", "0"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    deadline = time.time() + 60
    while not scheduler_file.is_file():
        if time.time() > deadline or procs[0].poll() is not None:
            stop(procs)
            raise RuntimeError("the Dask scheduler did not start within 60 s")
        time.sleep(0.2)
    for k in range(n_workers):
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(scheduler_file),
                                       "--nthreads", "1", "--no-nanny", "--memory-limit", "0", "--no-dashboard", "--name", f"w{k}"],
                                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    with Client(scheduler_file=str(scheduler_file)) as client:
        client.wait_for_workers(n_workers, timeout=120)
        address = client.scheduler.address
    return address, procs


def stop(procs: list[subprocess.Popen]) -> None:
    """Terminate the processes (workers first), waiting for each."""
    for p in reversed(procs):
        p.terminate()
    for p in reversed(procs):
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run(name: str, workers: int | None, train: Path, potentials: Path, batch_atoms: int, folder: Path) -> dict[str, Any]:
    """One fit in a fresh subprocess, on a fresh cluster of ``workers`` (None: no cluster)."""
    spec = {"train": str(train), "potentials": str(potentials), "out": str(folder / f"fit_{name.replace(' ', '_')}"),
            "batch_atoms": batch_atoms}
    procs: list[subprocess.Popen] = []
    start = None
    if workers is not None:
        t0 = time.perf_counter()
        spec["address"], procs = start_cluster(workers, folder)
        start = time.perf_counter() - t0
    result_path = folder / "result.json"
    try:
        print(f"--- {name}")
        subprocess.run([sys.executable, __file__, "--child", json.dumps(spec), "--result", str(result_path)], env=child_env(),
                       check=True)
    finally:
        stop(procs)
    result = json.loads(result_path.read_text())
    result_path.unlink()
    if start is not None:
        result["cluster_start_seconds"] = start
    return result


def scaling_model(one: dict[str, Any], counts: list[int]) -> dict[str, Any]:
    """The model T(N) of the module docstring, from the 1-worker run's wall time and per-batch costs."""
    costs = one["batch_costs"]
    compute = sum(c["batch_seconds_total"] + c["reduce_seconds_total"] for c in costs.values())
    serial = one["report"]["total_seconds"] - compute
    rows = {}
    for n in counts:
        t = serial + sum(math.ceil(c["batches"] / n) * c["batch_seconds_mean"]
                         + (math.ceil(math.log2(c["batches"])) * c["reduce_seconds_mean"] if c["reduce_steps"] else 0.0)
                         for c in costs.values())
        rows[n] = t
    base = rows[1]
    return {"what": "a MODEL from the 1-worker run's measured per-batch costs, not a measurement: T(N) = S + sum_p "
                    "ceil(n_p / N) t_p + ceil(log2 n_design) t_merge, S = the 1-worker fit's time outside batch tasks "
                    "and reduction steps, taken as independent of N (on one machine; over a network add the transfer of "
                    "each batch's inputs to its worker and of the shared inputs to every worker, once per pass)",
            "serial_seconds": serial, "batch_compute_seconds_one_worker": compute,
            "seconds": {str(n): t for n, t in rows.items()}, "speedup_over_one_worker": {str(n): base / t for n, t in rows.items()}}


def machine() -> dict[str, Any]:
    """The machine the numbers come from."""
    import torch

    return {"cpu_count": os.cpu_count(), "load_average_at_start": list(os.getloadavg()), "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform()}


def print_table(runs: dict[str, dict[str, Any]], model: dict[str, Any] | None) -> None:
    """The runs side by side, the speed-ups, the per-batch costs and the model."""
    stages = list(next(iter(runs.values()))["report"]["timings"])
    head = f"{'':28s}" + "".join(f"{name:>14s}" for name in runs)
    print(head)
    for stage in stages:
        print(f"{stage + ' (s)':28s}" + "".join(f"{r['report']['timings'].get(stage, {}).get('seconds', math.nan):14.1f}"
                                                for r in runs.values()))
    print(f"{'fit job total (s)':28s}" + "".join(f"{r['report']['total_seconds']:14.1f}" for r in runs.values()))
    print(f"{'passes on the cluster (s)':28s}" + "".join(
        f"{sum(p['seconds'] for p in r['report']['cluster']['passes']):14.1f}" if r["report"]["cluster"] else f"{'-':>14s}"
        for r in runs.values()))
    print(f"{'cluster start, imports (s)':28s}" + "".join(
        f"{r['cluster_start_seconds']:7.1f}{r['worker_import_seconds']:7.1f}" if "cluster_start_seconds" in r else f"{'-':>14s}"
        for r in runs.values()))
    print(f"{'fitting process peak (MiB)':28s}" + "".join(f"{r['fit_process_peak_MiB']:14.0f}" for r in runs.values()))
    print(f"{'scheduler before fit (MiB)':28s}" + "".join(
        f"{r['scheduler_before_fit_MiB']:14.0f}" if "scheduler_before_fit_MiB" in r else f"{'-':>14s}" for r in runs.values()))
    print(f"{'scheduler peak (MiB)':28s}" + "".join(
        f"{r['scheduler_peak_MiB']:14.0f}" if "scheduler_peak_MiB" in r else f"{'-':>14s}" for r in runs.values()))
    print(f"{'CPU in the fit: fit/sched (s)':28s}" + "".join(
        f"{r['cpu_seconds_during_fit']['fit process']:7.1f}{r['cpu_seconds_during_fit']['scheduler']:7.1f}"
        if "cpu_seconds_during_fit" in r else f"{'-':>14s}" for r in runs.values()))
    for label, key, fmt in (("CPU in the fit: workers (s)", "cpu_seconds_during_fit", ".1f"), ("worker peaks (MiB)", "peak_MiB", ".0f"),
                            ("workers after import (MiB)", "after_import_MiB", ".0f")):
        cells = ["/".join(format(w[key], fmt) for w in r["workers"]) if "workers" in r else "-" for r in runs.values()]
        print(f"{label:28s}" + "".join(f"{c:>14s}" for c in cells))
    for r in runs.values():
        if "sent_MiB" in r:
            print("sent by a pass (pickled): " + ", ".join(f"{k} {v:.2f} MiB" for k, v in r["sent_MiB"].items()))
    if "1 worker" in runs and "2 workers" in runs:
        one, two = runs["1 worker"], runs["2 workers"]
        passes = [sum(p["seconds"] for p in r["report"]["cluster"]["passes"]) for r in (one, two)]
        print(f"speed-up of 2 workers over 1: fit job {one['report']['total_seconds'] / two['report']['total_seconds']:.2f}x, "
              f"passes on the cluster {passes[0] / passes[1]:.2f}x (target >= 1.7x)")
    for name, r in runs.items():
        if "batch_costs" in r:
            print(f"per-batch compute ({name}, Dask task stream): " + "; ".join(
                f"{p} {c['batches']} x {1e3 * c['batch_seconds_mean']:.0f} ms" + (
                    f" + {c['reduce_steps']} reductions x {1e3 * c['reduce_seconds_mean']:.1f} ms" if c["reduce_steps"] else "")
                for p, c in r["batch_costs"].items()))
    if model:
        print(f"MODEL (not measured), from the 1-worker run: serial part {model['serial_seconds']:.1f} s; "
              + ", ".join(f"N={n}: {t:.1f} s ({model['speedup_over_one_worker'][n]:.2f}x)" for n, t in model["seconds"].items()))
        if "2 workers" in runs:
            print(f"model T(2) = {model['seconds']['2']:.1f} s against the measured {runs['2 workers']['report']['total_seconds']:.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="mlearn Cu training set (default: SHARED/data/mlearn/Cu/train.xyz)")
    parser.add_argument("--potentials", type=Path, default=None, help="folder with Cu_zhou.eam.alloy and Cu_mishin1.eam.alloy "
                                                                       "(default: SHARED/data/potentials)")
    parser.add_argument("--atoms", type=int, default=300_000, help="atoms of generated EAM-MD snapshots (default 300000)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "hybridpot-benchmark-distributed",
                        help="folder for the generated snapshots and the combined training file")
    parser.add_argument("--batch-atoms", type=int, default=None, help="[fit] batch_atoms (default: hybridpot's)")
    parser.add_argument("--runs", default="process,1,2", help="comma-separated: 'process' (no cluster) and worker counts; "
                                                              "'none': only make (and cache) the training set")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.result.write_text(json.dumps(child(json.loads(args.child))))
        return 0

    from hybridpot.prediction import DEFAULT_BATCH_ATOMS

    data = args.data or shared_dir() / "data" / "mlearn" / "Cu" / "train.xyz"
    potentials = args.potentials or shared_dir() / "data" / "potentials"
    missing = [str(p) for p in (data, potentials / "Cu_zhou.eam.alloy", potentials / "Cu_mishin1.eam.alloy") if not p.is_file()]
    if missing:
        print(f"benchmarks/distributed.py: not found: {', '.join(missing)}; pass --data / --potentials or set HYBRIDPOT_SHARED "
              "to the folder holding data/mlearn and data/potentials", file=sys.stderr)
        return 2
    if args.atoms < 0:
        parser.error(f"--atoms {args.atoms}: must be >= 0")
    batch_atoms = args.batch_atoms or DEFAULT_BATCH_ATOMS
    wanted = [r.strip() for r in args.runs.split(",") if r.strip() and r.strip() != "none"]
    bad = [r for r in wanted if r != "process" and not (r.isdigit() and int(r) >= 1)]
    if bad:
        parser.error(f"--runs {args.runs}: expected 'process' and worker counts >= 1, got {bad}")
    info = {"machine": machine()}
    train, offset = training_file(data, potentials, args.atoms, args.cache)
    if not wanted:
        print(f"training set ready: {train} (no runs asked)")
        return 0
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="hybridpot-bench-") as tmp:
        for r in wanted:
            name = "1 process" if r == "process" else f"{r} worker" + ("s" if int(r) > 1 else "")
            runs[name] = run(name, None if r == "process" else int(r), train, potentials, batch_atoms, Path(tmp))
    first = next(iter(runs.values()))["report"]
    print(f"\n{train.name}: {first['n_train']} structures ({args.atoms} generated MD atoms + {data}); {first['rows']} weighted "
          f"rows; batch_atoms {batch_atoms}; {os.cpu_count()} cores")
    model = scaling_model(runs["1 worker"], [1, 2, 4, 8, 16, 32, 64]) if "1 worker" in runs else None
    print_table(runs, model)
    result = {"description": __doc__.split("\n\n")[0], "settings": {
        "data": str(data), "generated_md_atoms": args.atoms, "structures": first["n_train"], "weighted_rows": first["rows"],
        "descriptor": DESCRIPTOR, "model": "linear", "baseline": "Cu_mishin1.eam.alloy", "md_labels": "Cu_zhou.eam.alloy",
        "md_energy_offset_eV_atom": offset,
        "batch_atoms": batch_atoms, "threads_per_process": 1}, **info, "runs": runs, "model_of_N_workers": model}
    if "1 worker" in runs and "2 workers" in runs:
        one, two = runs["1 worker"]["report"], runs["2 workers"]["report"]
        result["speedup_2_over_1_worker"] = {
            "fit_job": one["total_seconds"] / two["total_seconds"],
            "passes_on_the_cluster": sum(p["seconds"] for p in one["cluster"]["passes"]) / sum(p["seconds"] for p in two["cluster"]["passes"])}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "distributed.json"
    tmp_path = path.with_suffix(".json.tmp")
    tmp_path.write_text(json.dumps(result, indent=1))
    tmp_path.replace(path)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
