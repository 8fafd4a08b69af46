"""SO(3) descriptor speed and memory: hybridpot against LAMMPS ML-IAP ``so3``.

For a 4000-atom fcc Cu cell (a = 3.615 A, rattled by 0.05 A) at r_c = 5 A, alpha = 2 A^-2,
nmax = lmax = 4 and 6, every case runs in its own subprocess (so that the peak resident memory,
VmHWM from /proc/self/status, belongs to that case alone):

* LAMMPS: ``pair_style mliap model linear ... descriptor so3 ...`` with random coefficients, one
  force evaluation (``run 0``, neighbour list included), 1 MPI rank, OMP_NUM_THREADS=1 (ML-IAP has
  no threaded so3).
* hybridpot, eager and ``compile=True``, 1 and 2 torch threads:
  ``values``  descriptors only (``SO3.compute(atoms)``),
  ``pairs``   descriptors and the pair-form derivatives (P x K x 3, ``compute(atoms, gradients=True)``),
  ``forces``  energy and forces of the same linear model by autograd (what LAMMPS's run 0 computes),
  each including the neighbour list; the best of ``--repeat`` runs after a warm-up (compilation
  excluded and reported separately).
* a breakdown of the eager pair-form path by stage, timed with the library's own building blocks.

Prints a table and writes ``benchmarks/results/descriptors.json``. Take the numbers on a quiet
machine: the script records the load average before and after.

    python benchmarks/descriptors.py [--repeat 3] [--cases 4 6] [--threads 1 2]
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

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "descriptors.json"
RCUT, ALPHA, LATTICE, REPEAT_CELLS, RATTLE = 5.0, 2.0, 3.615, 10, 0.05


def structure():
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=LATTICE, cubic=True).repeat((REPEAT_CELLS,) * 3)
    atoms.rattle(RATTLE, seed=7)
    return atoms


def peak_memory_mb() -> float:
    """VmHWM (peak resident set) of this process, MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmHWM in /proc/self/status")


def best_of(fn, repeat: int) -> tuple[float, float]:
    """Best wall-clock and best CPU time (this process, all threads) of ``repeat`` calls, s."""
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(wall), min(cpu)


# ------------------------------------------------------------------------------------ workers


def lammps_worker(n: int) -> dict:
    """Time one LAMMPS so3 linear-model force evaluation."""
    from hybridpot.descriptors import PowerSpectrum
    from hybridpot.lammps_run import lammps_frame, new_lammps

    atoms = structure()
    k = PowerSpectrum(n, n).n_features
    cell, pos, _, _ = lammps_frame(atoms)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "Cu.mliap.descriptor").write_text(
            f"rcutfac {RCUT}\nnmax {n}\nlmax {n}\nalpha {ALPHA}\nnelems 1\nelems Cu\nradelems 0.5\nwelems 1\n"
        )
        (tmp / "Cu.mliap.model").write_text(f"1 {k + 1}\n" + "\n".join(repr(float(b)) for b in 1e-3 * rng.normal(size=k + 1)) + "\n")
        lmp = new_lammps()
        lmp.command("units metal")
        lmp.command("atom_style atomic")
        lmp.command("boundary p p p")
        (ax, _, _), (bx, by, _), (cx, cy, cz) = (map(float, row) for row in cell)
        lmp.command(f"region box prism 0 {ax!r} 0 {by!r} 0 {cz!r} {bx!r} {cx!r} {cy!r} units box")
        lmp.command("create_box 1 box")
        lmp.create_atoms(len(atoms), list(range(1, len(atoms) + 1)), [1] * len(atoms), pos.reshape(-1).tolist())
        lmp.command("mass 1 63.546")
        lmp.command(f"pair_style mliap model linear {tmp / 'Cu.mliap.model'} descriptor so3 {tmp / 'Cu.mliap.descriptor'}")
        lmp.command("pair_coeff * * Cu")
        wall, cpu = best_of(lambda: lmp.command("run 0"), 2)
        lmp.close()
    n = len(atoms)
    return {"us_per_atom": 1e6 * wall / n, "cpu_us_per_atom": 1e6 * cpu / n, "peak_mb": peak_memory_mb(), "n_features": k}


def hybridpot_worker(n: int, threads: int, compiled: bool, repeat: int) -> dict:
    """Time values, pair-form gradients and autograd forces of one configuration."""
    import torch

    from hybridpot.descriptors import SO3
    from hybridpot.neighbors import build_graph
    from hybridpot.system import AtomicSystem

    torch.set_num_threads(threads)
    atoms = structure()
    n_atoms = len(atoms)
    t0 = time.perf_counter()
    d = SO3(rcut=RCUT, nmax=n, lmax=n, alpha=ALPHA, compile=compiled)
    setup = time.perf_counter() - t0
    beta = torch.as_tensor(1e-3 * np.random.default_rng(0).normal(size=d.n_features))

    def forces() -> None:
        graph = build_graph(AtomicSystem.from_atoms(atoms), d.rcut)
        vectors = graph.vectors.detach().requires_grad_(True)
        graph.vectors = vectors
        energy = (d(graph) @ beta).sum()
        (g,) = torch.autograd.grad(energy, vectors)
        f = torch.zeros((n_atoms, 3), dtype=g.dtype).index_add_(0, graph.i, g).index_add_(0, graph.j, -g)
        assert torch.isfinite(f).all()

    out: dict = {"setup_s": setup}
    for name, fn in (("values", lambda: d.compute(atoms)), ("pairs", lambda: d.compute(atoms, gradients=True)), ("forces", forces)):
        t0 = time.perf_counter()
        fn()  # warm-up (compiles when compiled=True)
        out[f"{name}_first_s"] = time.perf_counter() - t0
        wall, cpu = best_of(fn, repeat)
        out[f"{name}_us_per_atom"], out[f"{name}_cpu_us_per_atom"] = 1e6 * wall / n_atoms, 1e6 * cpu / n_atoms
    _, grads = d.compute(atoms, gradients=True)
    out.update(n_pairs=int(grads.values.shape[0]), n_features=d.n_features, pair_gradient_mb=grads.values.nbytes / 2**20, peak_mb=peak_memory_mb())
    return out


def breakdown_worker(n: int, repeat: int) -> dict:
    """Eager pair-form path by stage (1 thread), with the library's building blocks."""
    import torch

    from hybridpot.descriptors import SO3
    from hybridpot.descriptors.angular import spherical_harmonics
    from hybridpot.descriptors.invariants import angular_contractions
    from hybridpot.descriptors.so3 import PairBasis, _atom_aligned_chunks, radial_times_angular
    from hybridpot.neighbors import build_graph
    from hybridpot.system import AtomicSystem

    torch.set_num_threads(1)
    atoms = structure()
    d = SO3(rcut=RCUT, nmax=n, lmax=n, alpha=ALPHA)
    inv, spline, lmax = d.invariants, d.radial, d.lmax
    best: dict[str, float] = {}
    for _ in range(repeat):
        t: dict[str, float] = {}

        def tick(key: str, start: float) -> float:
            now = time.perf_counter()
            t[key] = t.get(key, 0.0) + now - start
            return now

        s = time.perf_counter()
        graph = build_graph(AtomicSystem.from_atoms(atoms), d.rcut)
        s = tick("neighbour list + pair vectors", s)
        vectors, centers = graph.vectors.detach(), graph.i
        out = torch.from_numpy(np.empty((len(centers), d.n_features, 3)))
        features = torch.zeros((len(atoms), d.n_features), dtype=torch.float64)
        s = tick("allocate output", s)
        for a0, a1, p0, p1 in _atom_aligned_chunks(centers, len(atoms), d.chunk_size):
            v, local = vectors[p0:p1], centers[p0:p1] - a0
            s = time.perf_counter()
            r = torch.linalg.vector_norm(v, dim=1)
            u, du = spline(r, 1)
            s = tick("radial table (spline)", s)
            angular = spherical_harmonics(v, lmax, 1)
            s = tick("Y_lm and gradients (sphericart)", s)
            basis = PairBasis([u, du], angular, v / r.unsqueeze(1), r)
            c = radial_times_angular(u, angular[0], lmax)
            coefficients = torch.index_add(c.new_zeros((a1 - a0,) + c.shape[1:]), 0, local, c)
            s = tick("density scatter (c_nlm)", s)
            features[a0:a1] = inv(coefficients)
            adjoints = inv.pair_adjoints(coefficients, local)
            s = tick("contraction c -> B, gather adjoints", s)
            contractions = angular_contractions(basis.angular_stack(), adjoints)
            s = tick("angular contractions <Y, c>, <dY, c>", s)
            out[p0:p1].copy_(inv.pair_gradients(u, du, basis.unit, contractions))
            s = tick("gradient assembly (P x K x 3)", s)
        for key, value in t.items():
            best[key] = min(best.get(key, np.inf), value)
    return {key: 1e6 * value / len(atoms) for key, value in best.items()}


def compiled_profile_worker(n: int) -> dict:
    """Where the compiled pair-form path spends its time (torch profiler, 1 thread)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from hybridpot.descriptors import SO3

    torch.set_num_threads(1)
    atoms = structure()
    d = SO3(rcut=RCUT, nmax=n, lmax=n, alpha=ALPHA, compile=True)
    for _ in range(2):  # the second call may recompile with dynamic shapes
        d.compute(atoms, gradients=True)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        d.compute(atoms, gradients=True)
        total = time.perf_counter() - t0
    rows = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:8]
    return {
        "total_us_per_atom": 1e6 * total / len(atoms),
        "top_self_cpu": [{"name": e.key[:90], "us_per_atom": e.self_cpu_time_total / len(atoms), "calls": e.count} for e in rows],
    }


# ------------------------------------------------------------------------------------- driver


def run_worker(kind: str, env: dict[str, str] | None = None, **kwargs) -> dict:
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.2f}] {kind} {kwargs}", file=sys.stderr, flush=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps({"kind": kind, **kwargs})]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **(env or {})}
    load = os.getloadavg()[0]
    done = subprocess.run(cmd, capture_output=True, text=True, env=environment, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"worker {kind} {kwargs} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["load_average_1min"] = [load, os.getloadavg()[0]]  # before and after: other work on the machine
    return result


def worker_main(spec: dict) -> None:
    kind = spec.pop("kind")
    result = {"lammps": lammps_worker, "hybridpot": hybridpot_worker, "breakdown": breakdown_worker, "compiled_profile": compiled_profile_worker}[kind](**spec)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, nargs="+", default=[4, 6], help="nmax = lmax values")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(json.loads(args.worker))
        return
    import torch

    load_before = os.getloadavg()
    report: dict = {
        "machine": {"cpu": _cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__},
        "structure": {"atoms": REPEAT_CELLS**3 * 4, "lattice": LATTICE, "rattle": RATTLE, "rcut": RCUT, "alpha": ALPHA},
        "load_average_before": load_before,
        "cases": [],
    }
    rows = []
    for n in args.cases:
        lammps = run_worker("lammps", n=n)
        case = {"nmax": n, "lmax": n, "lammps": lammps, "hybridpot": [], "breakdown_eager_1thread": run_worker("breakdown", n=n, repeat=args.repeat)}
        case["profile_compiled_1thread"] = run_worker("compiled_profile", n=n)
        for compiled in (False, True):
            for threads in args.threads:
                res = run_worker("hybridpot", n=n, threads=threads, compiled=compiled, repeat=args.repeat)
                res.update(threads=threads, compiled=compiled)
                for key in ("values", "pairs", "forces"):
                    res[f"{key}_speedup_vs_lammps"] = lammps["us_per_atom"] / res[f"{key}_us_per_atom"]
                    res[f"{key}_cpu_speedup_vs_lammps"] = lammps["cpu_us_per_atom"] / res[f"{key}_cpu_us_per_atom"]
                case["hybridpot"].append(res)
                rows.append((n, "compiled" if compiled else "eager", threads, res, lammps))
        report["cases"].append(case)
    report["load_average_after"] = os.getloadavg()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2))
    tmp.replace(RESULTS)
    _print(report, rows)


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _print(report: dict, rows: list) -> None:
    s = report["structure"]
    print(f"SO(3) descriptors, {s['atoms']} atoms fcc Cu, rc {s['rcut']} A, alpha {s['alpha']}; {report['machine']['cpu']}")
    print(f"load average before {report['load_average_before']}, after {report['load_average_after']}")
    for case in report["cases"]:
        lam = case["lammps"]
        print(
            f"\nnmax = lmax = {case['nmax']} (K = {lam['n_features']}): LAMMPS so3 linear run 0: {lam['us_per_atom']:.0f} us/atom "
            f"(CPU {lam['cpu_us_per_atom']:.0f}), peak {lam['peak_mb']:.0f} MB, load {'/'.join(f'{x:.1f}' for x in lam['load_average_1min'])}"
        )
    print("\nus/atom, wall clock (CPU time of the process in brackets); ratio = LAMMPS / hybridpot; load = 1-min load average before/after")
    print(f"{'n':>2} {'mode':>8} {'thr':>3} | {'values':>13} {'pairs':>13} {'forces':>13} | {'x pairs':>11} {'x forces':>11} | {'peak MB':>7} {'dB MB':>5} {'compile s':>9} | load")
    for n, mode, threads, res, lam in rows:
        cells = " ".join(f"{res[k + '_us_per_atom']:6.1f} ({res[k + '_cpu_us_per_atom']:4.0f})" for k in ("values", "pairs", "forces"))
        ratios = " ".join(f"{res[k + '_speedup_vs_lammps']:4.1f} ({res[k + '_cpu_speedup_vs_lammps']:4.1f})" for k in ("pairs", "forces"))
        load = "/".join(f"{x:.1f}" for x in res["load_average_1min"])
        print(f"{n:>2} {mode:>8} {threads:>3} | {cells} | {ratios} | {res['peak_mb']:7.0f} {res['pair_gradient_mb']:5.0f} {res['pairs_first_s']:9.1f} | {load}")
    for case in report["cases"]:
        print(f"\neager pair-form path by stage, nmax = lmax = {case['nmax']}, 1 thread (us/atom):")
        for key, value in case["breakdown_eager_1thread"].items():
            if key != "load_average_1min":
                print(f"  {key:40s} {value:7.1f}")
        prof = case["profile_compiled_1thread"]
        print(f"compiled pair-form path, top self-CPU entries (total {prof['total_us_per_atom']:.1f} us/atom under the profiler):")
        for row in prof["top_self_cpu"]:
            print(f"  {row['us_per_atom']:7.1f}  x{row['calls']:<4d} {row['name']}")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
